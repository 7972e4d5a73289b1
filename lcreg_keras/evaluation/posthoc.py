"""Post-hoc re-balancing of a trained classifier: logit adjustment and tau-normalisation.

Neither trains anything:

- `adjust_logits` (Menon et al., 2021, Eq. 9): predict with
  `argmax_j z_j - tau * log pi_j`, `pi` the training class prior. With
  `tau = 1` and a model whose softmax estimates `P(y | x)` this is the
  Bayes rule for the balanced error.
- `TauNormalization` (Kang et al., 2020, Sec. 4): replace each class weight
  `w_j` (a column of the classifier's kernel) by `w_j / ||w_j||^tau`, which
  evens out the norms a long-tailed training set makes unequal. `tau` is
  chosen on a held-out split of the training data (never the test set) as
  the one with the best balanced (mean per-class) accuracy. As in Kang et
  al.'s code (`dotproduct_similarity(feat, pnorm(w, tau))`), the normalised
  classifier has no bias.
"""

import numbers

import numpy as np
from keras import ops

from lcreg_keras.layers.cosine_classifier import CosineClassifier

# The candidate taus: 0 to 2 in steps of 0.05 (tau = 1 is the full normalisation).
DEFAULT_TAUS = tuple(round(0.05 * i, 2) for i in range(41))


def _log_priors(class_counts):
    counts = np.asarray(class_counts, "float64")
    if counts.ndim != 1 or counts.size < 2 or not np.all(np.isfinite(counts)) or np.any(counts <= 0):
        raise ValueError(
            "`class_counts` must be a 1-D sequence of at least 2 positive counts "
            f"(give a class without examples 1). Received: {np.asarray(class_counts).tolist()}"
        )
    return np.log(counts / counts.sum())


def _check_tau(tau, name="tau"):
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not np.isfinite(tau) or tau < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0. Received: {name}={tau!r}")
    return float(tau)


def adjust_logits(logits, class_counts, tau=1.0):
    """Post-hoc logit adjustment: `z - tau * log pi` (Menon et al., 2021, Eq. 9).

    Args:
        logits: `(N, C)` logits, a NumPy array or a backend tensor.
        class_counts: the C positive training counts (defining `pi`).
        tau: >= 0; 0 returns the logits unchanged.

    Returns:
        The adjusted logits: float64 NumPy for NumPy input, else a float32
        backend tensor (so it can sit inside a served model).

    Example:

    >>> adjust_logits(np.zeros((1, 2)), [3, 1], tau=1.0).round(3).tolist()
    [[0.288, 1.386]]
    """
    tau = _check_tau(tau)
    offsets = tau * _log_priors(class_counts)
    if isinstance(logits, (np.ndarray, list, tuple)):
        logits = np.asarray(logits, "float64")
        if logits.ndim != 2 or logits.shape[1] != len(offsets):
            raise ValueError(
                f"`logits` must have shape (N, {len(offsets)}). Received: {logits.shape}"
            )
        return logits - offsets
    logits = ops.cast(logits, "float32")
    if logits.shape[-1] is not None and int(logits.shape[-1]) != len(offsets):
        raise ValueError(
            f"`logits` must have {len(offsets)} classes. Received shape {tuple(logits.shape)}."
        )
    return logits - ops.convert_to_tensor(offsets.astype("float32"))


def balanced_accuracy(labels, logits_or_preds):
    """Mean over the classes present in `labels` of their accuracy.

    The accuracy a class-balanced test set would measure; used to choose
    `tau` on a (long-tailed) held-out split.

    Example:

    >>> balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0])
    0.5
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    values = np.asarray(logits_or_preds)
    preds = np.argmax(values, axis=-1) if values.ndim == 2 else values.astype(np.int64)
    if len(preds) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"`labels` ({len(labels)}) and predictions ({len(preds)}) must be non-empty "
            "and of the same length."
        )
    classes = np.unique(labels)
    return float(np.mean([np.mean(preds[labels == c] == c) for c in classes]))


def _classifier(model):
    classifier = getattr(model, "classifier", None)
    if classifier is None or not hasattr(classifier, "kernel"):
        raise ValueError("`model` must be a built LCRegModel (with a `classifier` layer).")
    if isinstance(classifier, CosineClassifier):
        raise ValueError(
            "tau-normalisation rescales class-weight norms, which a CosineClassifier "
            "normalises away: it would change nothing."
        )
    return classifier


def kernel_norms(model):
    """`||w_j||` of the classifier's kernel columns, a float64 NumPy `(C,)`."""
    kernel = ops.convert_to_numpy(_classifier(model).kernel).astype("float64")
    return np.sqrt((kernel ** 2).sum(axis=0))


def linear_scores(model, x, **predict_kwargs):
    """`x_pooled @ W` of every input: the model's logits without bias and scaling.

    Runs `model.predict(x)` once with the classifier's bias set to zero and
    its per-class scaling to one (restored afterwards), so the tau-normalised
    logits of any `tau` follow without another pass: `scores / ||w||^tau *
    s`. Returns a float64 NumPy `(N, C)`.
    """
    classifier = _classifier(model)
    bias = ops.convert_to_numpy(classifier.bias)
    scale = ops.convert_to_numpy(classifier.scale)
    try:
        classifier.bias.assign(np.zeros_like(bias))
        classifier.scale.assign(np.ones_like(scale))
        predict_kwargs.setdefault("verbose", 0)
        scores = model.predict(x, **predict_kwargs)
    finally:
        classifier.bias.assign(bias)
        classifier.scale.assign(scale)
    return np.asarray(scores, "float64")


def tau_normalized_logits(scores, norms, tau, scale=None):
    """`scores_j / norms_j^tau * scale_j`: the logits of a tau-normalised classifier.

    Args:
        scores: `(N, C)` `x @ W` (`linear_scores`).
        norms: `(C,)` positive kernel column norms (`kernel_norms`).
        tau: >= 0.
        scale: optional `(C,)` per-class logit scaling of the classifier.

    Returns:
        Float64 NumPy `(N, C)`.
    """
    tau = _check_tau(tau)
    norms = np.asarray(norms, "float64")
    if np.any(norms <= 0):
        raise ValueError("Every class weight must have a positive norm.")
    logits = np.asarray(scores, "float64") / norms ** tau
    return logits if scale is None else logits * np.asarray(scale, "float64")


def apply_tau_normalization(model, tau):
    """Sets the classifier to `w_j / ||w_j||^tau` and its bias to zero, in place."""
    tau = _check_tau(tau)
    classifier = _classifier(model)
    kernel = ops.convert_to_numpy(classifier.kernel).astype("float64")
    norms = np.sqrt((kernel ** 2).sum(axis=0))
    if np.any(norms <= 0):
        raise ValueError("Every class weight must have a positive norm.")
    classifier.kernel.assign((kernel / norms ** tau).astype(classifier.kernel.dtype))
    classifier.bias.assign(np.zeros(classifier.bias.shape, classifier.bias.dtype))
    return model


class TauNormalization:
    """Kang et al.'s tau-normalised classifier, `tau` chosen on held-out training data.

    `fit(model, heldout, heldout_labels)` scores every `tau` of `taus` by the
    balanced accuracy (`balanced_accuracy`) of the tau-normalised classifier
    on the held-out split, keeps the best (the smallest on ties), and applies
    it to the model in place (`apply_tau_normalization`: kernel
    `w_j / ||w_j||^tau`, bias 0; the per-class scaling is kept). One
    `predict` pass over the held-out data serves every `tau`.

    The held-out split must come from the training data (e.g. the recipes'
    `--heldout_fraction`), never from the test set.

    Args:
        taus: the candidate values, each >= 0 (default: 0, 0.05, ..., 2).

    Example:

    >>> result = TauNormalization().fit(model, heldout_images, heldout_labels)  # doctest: +SKIP
    >>> result["tau"], result["heldout_balanced_accuracy"]  # doctest: +SKIP
    """

    def __init__(self, taus=DEFAULT_TAUS):
        taus = [_check_tau(t, "taus") for t in np.atleast_1d(np.asarray(taus, "float64")).tolist()]
        if not taus:
            raise ValueError("`taus` must hold at least one value.")
        self.taus = tuple(taus)

    def select(self, scores, norms, labels, scale=None):
        """The best tau and the `(tau, balanced accuracy)` curve on held-out scores."""
        curve = [
            (tau, balanced_accuracy(labels, tau_normalized_logits(scores, norms, tau, scale)))
            for tau in self.taus
        ]
        best = max(range(len(curve)), key=lambda i: (curve[i][1], -i))
        return curve[best][0], curve

    def fit(self, model, heldout, heldout_labels, **predict_kwargs):
        """Chooses `tau` on `heldout` and applies it to `model`; returns a report dict.

        Args:
            model: a trained LCRegModel with a linear classifier.
            heldout: what `model.predict` takes: held-out training inputs.
            heldout_labels: their `(N,)` integer labels.
            **predict_kwargs: passed to `model.predict`.

        Returns:
            `{"tau", "heldout_balanced_accuracy", "curve": [[tau, acc], ...],
            "heldout_examples"}`.
        """
        labels = np.asarray(heldout_labels).reshape(-1)
        scores = linear_scores(model, heldout, **predict_kwargs)
        if len(scores) != len(labels):
            raise ValueError(
                f"The model scored {len(scores)} held-out examples but there are "
                f"{len(labels)} labels."
            )
        scale = ops.convert_to_numpy(model.classifier.scale).astype("float64")
        tau, curve = self.select(scores, kernel_norms(model), labels, scale)
        apply_tau_normalization(model, tau)
        return {
            "tau": tau,
            "heldout_balanced_accuracy": dict(curve)[tau],
            "curve": [[t, a] for t, a in curve],
            "heldout_examples": int(len(labels)),
        }


__all__ = [
    "DEFAULT_TAUS",
    "TauNormalization",
    "adjust_logits",
    "apply_tau_normalization",
    "balanced_accuracy",
    "kernel_norms",
    "linear_scores",
    "tau_normalized_logits",
]
