"""The linear classifier, with MiSLAS's learnable logit scaling for stage two."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LCRegClassifier(keras.layers.Layer):
    """`logits = (x @ W + b) * s`: a dense classifier with optional per-class scaling.

    Stage one trains `W` and `b`; `s: (C,)` is there from the start, ones and
    not trainable, so it changes nothing. Stage two (MiSLAS's decoupled
    fine-tuning) makes it MiSLAS's learnable weight scaling with
    `enable_logit_scaling()`.

    `gradient_scale` multiplies the gradients that reach `W` and `b` (the
    forward value is unchanged: `w + (gradient_scale - 1) * (w - stop_gradient(w))`
    has value `w` and derivative `gradient_scale`). For SGD with momentum this
    equals a per-parameter-group learning rate `lr * gradient_scale`, which is
    how stage two trains the classifier at `lr_factor * lr` beside the scaling
    at `lr` with one optimizer on every backend.

    Args:
        units: int, the number of classes C.
        logit_scaling: bool, whether `s` is trainable (set by stage two).
        gradient_scale: float > 0, see above.
        kernel_initializer: initializer of `W`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(B, D)` pooled features.

    Returns:
        `(B, C)` logits.

    Example:

    >>> head = LCRegClassifier(10)
    >>> head(np.ones((2, 64), "float32")).shape
    (2, 10)
    """

    def __init__(
        self,
        units,
        logit_scaling=False,
        gradient_scale=1.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not gradient_scale > 0:
            raise ValueError(f"`gradient_scale` must be positive. Received: {gradient_scale}")
        self.units = int(units)
        self.logit_scaling = bool(logit_scaling)
        self.gradient_scale = float(gradient_scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(dim, self.units), initializer=self.kernel_initializer, name="kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        # Created trainable (TensorFlow's tape only watches variables born
        # trainable), then left out of training until stage two asks for it.
        self.scale = self.add_weight(
            shape=(self.units,), initializer="ones", trainable=True, name="logit_scale"
        )
        self.scale.trainable = self.logit_scaling

    def enable_logit_scaling(self):
        """Makes the per-class scaling `s` trainable (it keeps its value)."""
        if not self.built:
            raise ValueError("Build the classifier before enabling logit scaling.")
        self.logit_scaling = True
        self.scale.trainable = True
        return self.scale

    def _scaled(self, weight):
        if self.gradient_scale == 1.0:
            return weight
        weight = ops.convert_to_tensor(weight)
        return weight + (self.gradient_scale - 1.0) * (weight - ops.stop_gradient(weight))

    def call(self, inputs):
        kernel = ops.cast(self._scaled(self.kernel), inputs.dtype)
        bias = ops.cast(self._scaled(self.bias), inputs.dtype)
        logits = ops.matmul(inputs, kernel) + bias
        return logits * ops.cast(self.scale, logits.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "logit_scaling": self.logit_scaling,
                "gradient_scale": self.gradient_scale,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
