"""Softmax cross-entropy that takes integer labels or soft (mixup) labels."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lcreg_keras")
class SoftmaxCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits for integer labels `(N,)` or soft labels `(N, C)`.

    The classification loss `L_cls` of Eq. 7. Stage one trains on mixup
    batches whose labels are convex combinations of one-hot vectors; stage two
    and evaluation use integer labels. This loss picks the form from the rank
    of `y_true` (known when the step is traced), so one compiled model serves
    both. Computed in float32.

    Args:
        reduction, name: as in `keras.losses.Loss`.

    Call arguments:
        y_true: integer `(N,)` / `(N, 1)` labels, or float `(N, C)` soft labels.
        y_pred: `(N, C)` logits.

    Returns:
        The reduced loss.

    Example:

    >>> loss = SoftmaxCrossentropy()
    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> float(loss(np.array([0, 1]), logits)) < 0.2
    True
    """

    def __init__(self, reduction="sum_over_batch_size", name="softmax_crossentropy"):
        super().__init__(reduction=reduction, name=name)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        log_probs = ops.log_softmax(logits, axis=-1)
        if len(y_true.shape) == len(logits.shape) and y_true.shape[-1] != 1:
            return -ops.sum(ops.cast(y_true, "float32") * log_probs, axis=-1)
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        onehot = ops.one_hot(labels, logits.shape[-1], dtype="float32")
        return -ops.sum(onehot * log_probs, axis=-1)

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name}


@keras.saving.register_keras_serializable(package="lcreg_keras")
class Top1Accuracy(keras.metrics.Mean):
    """Top-1 accuracy for integer labels `(N,)` or soft labels `(N, C)`.

    Soft (mixup) labels count as their argmax. Lowest index wins ties, as in
    `numpy.argmax`.

    Example:

    >>> m = Top1Accuracy()
    >>> m.update_state(np.array([0, 1]), np.array([[2.0, 0.0], [3.0, 1.0]]))
    >>> float(m.result())
    0.5
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] != 1:
            labels = ops.argmax(y_true, axis=-1)
        else:
            labels = ops.reshape(y_true, (-1,))
        hits = ops.cast(
            ops.equal(ops.cast(labels, "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")),
            "float32",
        )
        return super().update_state(hits, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
