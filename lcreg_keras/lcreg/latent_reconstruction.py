"""Reconstruction of image features from latent categories (LCReg Sec. 3.2, Eq. 2-4)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LatentReconstruction(keras.layers.Layer):
    """Re-represents a feature map as a similarity-weighted sum of latents.

    Given the similarity maps `S: (B, H, W, M)` of `LatentPool` and the encoded
    latents `E: (M, D)`:

    ```
    S_hat = softmax(S / temperature, axis=-1)           # Eq. 2
    f_hat = einsum("bhwm,md->bhwd", S_hat, E)           # Eq. 3
    ```

    With the original features `f` it also returns the reconstruction loss of
    Eq. 4. Per image, `C = f_hat_flat @ f_flat^T * loss_scale` is an
    `(HW, HW)` correlation matrix whose rows are reconstructed positions; the
    loss is the mean over images and rows `j` of the cross-entropy of
    `softmax_k(C[j, k])` with target `k = j`: each reconstructed position must
    match its own original position best. `loss_scale` defaults to
    `1/sqrt(D)` (attention-style): raw dot products of ReLU features saturate
    the softmax. The loss is computed in float32 under mixed precision.

    Args:
        temperature: float > 0, the softmax temperature `tau` of Eq. 2. The
            paper uses 1.
        loss_scale: float, or `None` for `1/sqrt(D)`; the scale `s` of `C`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        similarity: `(B, H, W, M)` similarity maps `S` (Eq. 1).
        encoded_latents: `(M, D)` encoded latents `E = FC(f')`.
        features: optional `(B, H, W, D)` original features `f`. When given,
            the reconstruction loss is computed too.

    Returns:
        A dict with `"reconstruction"` (`f_hat`, `(B, H, W, D)`), `"weights"`
        (`S_hat`, `(B, H, W, M)`) and, when `features` is given, `"loss"`
        (float32 scalar, Eq. 4 averaged over images and positions).

    Example:

    >>> pool = LatentPool(num_latents=8)
    >>> recon = LatentReconstruction()
    >>> f = np.random.rand(2, 4, 4, 16).astype("float32")
    >>> _, s, e = pool(f)
    >>> out = recon(s, e, features=f)
    >>> out["reconstruction"].shape, float(out["loss"]) > 0
    ((2, 4, 4, 16), True)
    """

    def __init__(self, temperature=1.0, loss_scale=None, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(
                f"`temperature` must be positive. Received: temperature={temperature}"
            )
        if loss_scale is not None and not loss_scale > 0:
            raise ValueError(
                f"`loss_scale` must be positive or None. Received: {loss_scale}"
            )
        self.temperature = float(temperature)
        self.loss_scale = loss_scale

    def call(self, similarity, encoded_latents, features=None):
        if len(similarity.shape) != 4:
            raise ValueError(
                "`similarity` must have rank 4 (B, H, W, M). "
                f"Received shape: {similarity.shape}"
            )
        if similarity.shape[-1] != encoded_latents.shape[0]:
            raise ValueError(
                f"`similarity` has {similarity.shape[-1]} maps but "
                f"`encoded_latents` has {encoded_latents.shape[0]} rows."
            )
        return self.reconstruct(
            self.similarity_weights(similarity), encoded_latents, features=features
        )

    def similarity_weights(self, similarity):
        """`S_hat = softmax(S / temperature)` over the M maps (Eq. 2)."""
        return ops.softmax(similarity / self.temperature, axis=-1)

    def reconstruct(self, weights, encoded_latents, features=None):
        """Eq. 3 (and Eq. 4 with `features`) from given weights `S_hat`.

        `call` is `similarity_weights` then this; `LCRegModel` calls the two
        apart when the latents of Eq. 3 are augmented (spec Sec. 3.c).
        """
        encoded = ops.cast(encoded_latents, weights.dtype)
        reconstruction = ops.einsum("bhwm,md->bhwd", weights, encoded)
        outputs = {"reconstruction": reconstruction, "weights": weights}
        if features is not None:
            outputs["loss"] = self.reconstruction_loss(features, reconstruction)
        return outputs

    def reconstruction_loss(self, features, reconstruction):
        """Eq. 4: mean CE of each reconstructed position against its own."""
        if features.shape[1:] != reconstruction.shape[1:]:
            raise ValueError(
                f"`features` shape {features.shape} does not match the "
                f"reconstruction's {reconstruction.shape}."
            )
        dim = features.shape[-1]
        scale = self.loss_scale or 1.0 / math.sqrt(dim)
        f = ops.cast(features, "float32")
        f_hat = ops.cast(reconstruction, "float32")
        batch = ops.shape(f)[0]
        positions = f.shape[1] * f.shape[2]
        f = ops.reshape(f, (batch, positions, dim))
        f_hat = ops.reshape(f_hat, (batch, positions, dim))
        corr = ops.einsum("bjd,bkd->bjk", f_hat, f) * scale
        diagonal = ops.diagonal(corr, axis1=1, axis2=2)
        return ops.mean(ops.logsumexp(corr, axis=-1) - diagonal)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"temperature": self.temperature, "loss_scale": self.loss_scale}
        )
        return config
