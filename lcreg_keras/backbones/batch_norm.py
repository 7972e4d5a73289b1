"""Batch normalisation that uses TensorFlow's fused kernel in training.

Keras 3 (3.15) normalises a batch on TensorFlow with separate ops: `moments`
(Mean, SquaredDifference, Mean) and the affine map (Mul, Sub, AddV2), and
their gradients (Tile, Mul, Sum). On a CPU these element-wise passes over the
feature map cost about a quarter of a ResNet-32 training step (the per-op
profile in `docs/results.md`). TensorFlow's `FusedBatchNormV3` does the same
arithmetic in one pass forwards and one backwards.
"""

import keras
from keras import ops


def _fused_backend():
    return keras.backend.backend() == "tensorflow"


@keras.saving.register_keras_serializable(package="lcreg_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, fused on TensorFlow in training.

    The same layer, weights, config and results as Keras' (to float
    rounding). In training on TensorFlow, for a 4-D channels-last input
    without mask, renorm or synchronisation, the batch statistics and the
    normalisation come from one `FusedBatchNormV3` call instead of Keras'
    separate ops. The moving statistics are updated as Keras updates them:
    the fused kernel returns the batch variance with Bessel's correction,
    which is undone, so the moving variance follows the biased batch
    variance as in Keras. Every other case (other backends, inference, masks,
    `synchronized=True`, `renorm=True`, a frozen layer) is Keras' own code.

    Args:
        **kwargs: those of `keras.layers.BatchNormalization`.

    Call arguments:
        inputs: a tensor, channels last for the fused path.
        training: Python bool; batch statistics when True and the layer is
            trainable.
        mask: as in Keras; a mask takes Keras' path.

    Returns:
        The normalised tensor, in the layer's compute dtype.

    Example:

    >>> bn = BatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> y = bn(keras.random.normal((8, 4, 4, 16)), training=True)
    >>> tuple(y.shape)
    (8, 4, 4, 16)
    """

    def _fused(self, inputs, training, mask):
        return (
            _fused_backend()
            and training is True
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only on the TensorFlow backend

        x = ops.cast(inputs, "float32")
        channels = x.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,), "float32")
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,), "float32")
        empty = tf.constant([], "float32")
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=empty, variance=empty,
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True,
        )
        count = ops.cast(ops.prod(ops.shape(x)[:-1]), "float32")
        variance = variance * (count - 1.0) / ops.maximum(count, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(
            ops.cast(self.moving_mean, "float32") * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            ops.cast(self.moving_variance, "float32") * momentum + variance * (1.0 - momentum)
        )
        return ops.cast(outputs, self.compute_dtype)


def batch_norm(x, name, momentum, epsilon, axis=-1):
    """`BatchNormalization(axis, momentum, epsilon, name)` applied to `x`."""
    return BatchNormalization(axis=axis, momentum=momentum, epsilon=epsilon, name=name)(x)
