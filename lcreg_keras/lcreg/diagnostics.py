"""Latent-usage diagnostics (spec Sec. 9): a collapsed latent pool must be visible."""

from keras import ops

# S within this distance of 0 or 1 counts as saturated: float32 sigmoid has
# almost no gradient there.
SATURATION_MARGIN = 1e-3


def latent_usage(logits, similarity, weights):
    """Summaries of how a batch uses the latent categories.

    Args:
        logits: `(B, H, W, M)` similarity logits `Z` (Eq. 1).
        similarity: `(B, H, W, M)` similarity maps `S = sigmoid(Z)`.
        weights: `(B, H, W, M)` normalised weights `S_hat` (Eq. 2).

    Returns:
        A dict of float32 scalars:
        `latents_in_use`: how many latents are the argmax of `Z` at one or
            more positions of the batch;
        `top_latent_share`: the share of positions won by the most used one
            (1/M when perfectly balanced, 1.0 when collapsed);
        `mean_max_weight`: the mean over positions of `max_m S_hat`;
        `saturated_fraction`: the fraction of `S` entries within 1e-3 of 0 or 1.
    """
    num_latents = logits.shape[-1]
    winners = ops.reshape(ops.argmax(logits, axis=-1), (-1,))
    wins = ops.sum(ops.one_hot(winners, num_latents, dtype="float32"), axis=0)
    positions = ops.maximum(ops.sum(wins), 1.0)
    s = ops.cast(similarity, "float32")
    saturated = ops.logical_or(s < SATURATION_MARGIN, s > 1.0 - SATURATION_MARGIN)
    return {
        "latents_in_use": ops.sum(ops.cast(wins > 0, "float32")),
        "top_latent_share": ops.max(wins) / positions,
        "mean_max_weight": ops.mean(ops.max(ops.cast(weights, "float32"), axis=-1)),
        "saturated_fraction": ops.mean(ops.cast(saturated, "float32")),
    }
