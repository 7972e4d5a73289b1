"""The latent feature pool and its similarity maps (LCReg Sec. 3.1, Eq. 1)."""

import math

import keras
from keras import ops

from lcreg_keras.lcreg import latent_isda


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LatentPool(keras.layers.Layer):
    """A pool of M learnable latent features and their similarity maps.

    LCReg keeps M class-agnostic latent features `f'_m` (an `(M, D)` table,
    initialised like an embedding table, N(0, 1)) and encodes them with a 1x1
    projection `FC: D -> D` (kernel `W: (D, D)`, bias `b: (D,)`):
    `E = FC(f') = f' W + b`, shape `(M, D)`. Row `m` of `E` is the filter of
    latent category `m`. Applied to a feature map `f: (B, H, W, D)`:

    ```
    Z = einsum("bhwd,md->bhwm", f, E) * logit_scale      # Eq. 1, inside sigma
    S = sigmoid(Z)                                        # Eq. 1
    ```

    so `Z` is a 1x1 convolution of `f` whose M filters are `E`. The paper
    leaves the dot product unscaled; unscaled, float32 sigmoid saturates (see
    `../shared/design/lcreg-spec.md` Sec. 1), so the default scale is
    `1/sqrt(D)`. With `similarity="cosine"` both `f` and `E` are L2-normalised
    along D and the product is multiplied by `cosine_scale`.

    The same projection also defines the latent classes of Sec. 3.1 / Eq. 6
    (the first M output channels of `FC`, hence `num_latents <= D`); those
    live in `lcreg_keras.lcreg.latent_isda` (`latent_class_logits`,
    `latent_class_weights`), which the methods of the same names call.

    Args:
        num_latents: int >= 2, the number M of latent categories.
        similarity: `"dot"` (Eq. 1 with `logit_scale`) or `"cosine"`.
        logit_scale: float, or `None` for `1/sqrt(D)`. Used by `"dot"`.
        cosine_scale: float, the temperature-like scale used by `"cosine"`.
        latent_initializer: initializer of the `(M, D)` latent table.
            Defaults to `RandomNormal(0, 1)`, an embedding-table init.
        kernel_initializer: initializer of the 1x1 projection's kernel.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        features: `(B, H, W, D)` feature map from the image encoder.

    Returns:
        A tuple `(logits, similarity, encoded_latents)`: `Z` and
        `S = sigmoid(Z)` of Eq. 1, both `(B, H, W, M)`, and `E = FC(f')`,
        `(M, D)`, which the reconstruction (Eq. 3) and the latent classes
        (Eq. 6) reuse.

    Example:

    >>> pool = LatentPool(num_latents=8)
    >>> z, s, e = pool(np.random.rand(2, 4, 4, 16).astype("float32"))
    >>> s.shape
    (2, 4, 4, 8)
    """

    def __init__(
        self,
        num_latents,
        similarity="dot",
        logit_scale=None,
        cosine_scale=10.0,
        latent_initializer=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_latents, int) or num_latents < 2:
            raise ValueError(
                "`num_latents` must be an integer >= 2 (one latent category "
                f"cannot separate anything). Received: num_latents={num_latents}"
            )
        if similarity not in ("dot", "cosine"):
            raise ValueError(
                "`similarity` must be 'dot' or 'cosine'. "
                f"Received: similarity={similarity!r}"
            )
        if logit_scale is not None and not logit_scale > 0:
            raise ValueError(
                f"`logit_scale` must be positive or None. Received: {logit_scale}"
            )
        if not cosine_scale > 0:
            raise ValueError(
                f"`cosine_scale` must be positive. Received: {cosine_scale}"
            )
        self.num_latents = num_latents
        self.similarity = similarity
        self.logit_scale = logit_scale
        self.cosine_scale = float(cosine_scale)
        self.latent_initializer = keras.initializers.get(
            latent_initializer
            or keras.initializers.RandomNormal(mean=0.0, stddev=1.0)
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "`features` must be a channels-last feature map of rank 4 "
                f"(B, H, W, D). Received shape: {tuple(input_shape)}"
            )
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(
                "The channel dimension D of `features` must be known. "
                f"Received shape: {tuple(input_shape)}"
            )
        if self.num_latents > dim:
            raise ValueError(
                f"`num_latents` ({self.num_latents}) must be <= the feature "
                f"dimension D ({dim}): the latent-class logits are the first M "
                "channels of the D-dimensional projection FC(f'_m) (spec Sec. 3)."
            )
        self.feature_dim = dim
        # autocast=False: read in the owner's mixed-precision scope (the model
        # calls `encode` / `latent_class_weights` directly), the variables
        # stay float32 instead of being rounded to bfloat16 (spec Sec. 3).
        self.latents = self.add_weight(
            shape=(self.num_latents, dim),
            initializer=self.latent_initializer,
            name="latents",
            autocast=False,
        )
        self.kernel = self.add_weight(
            shape=(dim, dim), initializer=self.kernel_initializer, name="kernel",
            autocast=False,
        )
        self.bias = self.add_weight(
            shape=(dim,), initializer="zeros", name="bias", autocast=False
        )

    def encode(self, vectors):
        """`FC(v) = v W + b` of `(..., D)` vectors (e.g. augmented latents)."""
        return ops.matmul(vectors, self.kernel) + self.bias

    def encoded_latents(self):
        """`E = FC(f')`, the `(M, D)` encoded latent features."""
        return self.encode(self.latents)

    def latent_class_logits(self, encoded=None):
        """`(M, M)` latent-class logits `E[:, :M]` (Eq. 6; see `latent_isda.latent_class_logits`)."""
        return latent_isda.latent_class_logits(self, encoded)

    def latent_class_logits_of(self, samples):
        """`FC(v)[..., :M]` of samples (Eq. 6; see `latent_isda.latent_class_logits_of`)."""
        return latent_isda.latent_class_logits_of(self, samples)

    def latent_class_weights(self):
        """`(M, D)` latent-class weights (Eq. 6; see `latent_isda.latent_class_weights`)."""
        return latent_isda.latent_class_weights(self)

    def similarity_logits(self, features, encoded):
        """`Z` of Eq. 1 for `features (B, H, W, D)` and encoded latents `(M, D)`."""
        encoded = ops.cast(encoded, features.dtype)
        if self.similarity == "cosine":
            features = _l2_normalize(features)
            encoded = _l2_normalize(encoded)
            scale = self.cosine_scale
        else:
            scale = self.logit_scale or 1.0 / math.sqrt(self.feature_dim)
        return ops.einsum("bhwd,md->bhwm", features, encoded) * scale

    def call(self, features):
        if features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"`features` has {features.shape[-1]} channels but the layer was "
                f"built for D={self.feature_dim}."
            )
        encoded = self.encoded_latents()
        logits = self.similarity_logits(features, encoded)
        return logits, ops.sigmoid(logits), encoded

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[:-1]) + (self.num_latents,)
        return shape, shape, (self.num_latents, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_latents": self.num_latents,
                "similarity": self.similarity,
                "logit_scale": self.logit_scale,
                "cosine_scale": self.cosine_scale,
                "latent_initializer": keras.initializers.serialize(
                    self.latent_initializer
                ),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


def _l2_normalize(x, epsilon=1e-6):
    norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
    return x / ops.maximum(norm, epsilon)
