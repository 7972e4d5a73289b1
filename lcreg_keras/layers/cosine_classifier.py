"""A cosine-similarity classifier (normalised features and weights), for LDAM."""

import keras
from keras import ops

from lcreg_keras.layers.classifier import LCRegClassifier


def _unit(x, axis):
    """`x / max(||x||, 1e-12)` along `axis`, as PyTorch's `F.normalize`."""
    norm = ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))
    return x / ops.maximum(norm, 1e-12)


@keras.saving.register_keras_serializable(package="lcreg_keras")
class CosineClassifier(LCRegClassifier):
    """`logits = cosine_scale * cos(x, w_j) * s_j`: Cao et al.'s `NormedLinear`, scaled.

    LDAM (Cao et al., 2019, Sec. 3.2 and their code) classifies with the
    cosine of the angle between the L2-normalised pooled feature `x` and the
    L2-normalised class weight `w_j` (a column of the `(D, C)` kernel), and
    multiplies by `s` (30) before the softmax. This layer returns
    `s * cos` directly, so the model's outputs are the logits the loss's
    softmax sees (`LDAMLoss(scale=s)` subtracts its margins as `s * Delta`).

    It is an `LCRegClassifier` (same kernel, per-class scaling `s_j` for stage
    two, `gradient_scale`); its bias exists for that interface but is frozen at
    zero and unused, as `NormedLinear` has none. Normalisation is done in
    float32.

    Args:
        units: int, the number of classes C.
        cosine_scale: float > 0, `s` (Cao et al.: 30).
        **kwargs: `LCRegClassifier` arguments (`logit_scaling`,
            `gradient_scale`, `kernel_initializer`) and standard layer ones.

    Call arguments:
        inputs: `(B, D)` pooled features.

    Returns:
        `(B, C)` logits in `[-s, s]` (times `s_j`).

    Example:

    >>> head = CosineClassifier(10, cosine_scale=30.0)
    >>> logits = head(np.ones((2, 64), "float32"))
    >>> bool(np.abs(logits).max() <= 30.0 + 1e-4)
    True
    """

    def __init__(self, units, cosine_scale=30.0, **kwargs):
        super().__init__(units, **kwargs)
        if not cosine_scale > 0:
            raise ValueError(f"`cosine_scale` must be positive. Received: {cosine_scale}")
        self.cosine_scale = float(cosine_scale)

    def build(self, input_shape):
        super().build(input_shape)
        self.bias.trainable = False

    def call(self, inputs):
        kernel = ops.cast(self._scaled(self.kernel), "float32")
        features = _unit(ops.cast(inputs, "float32"), axis=-1)
        cosine = ops.matmul(features, _unit(kernel, axis=0))
        logits = cosine * self.cosine_scale * ops.cast(self.scale, "float32")
        return ops.cast(logits, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config["cosine_scale"] = self.cosine_scale
        return config
