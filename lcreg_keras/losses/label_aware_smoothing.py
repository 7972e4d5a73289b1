"""Label-aware smoothing for the second, decoupled stage (MiSLAS; LCReg Sec. 3.4).

LCReg fine-tunes its classifier as MiSLAS (Zhong et al., 2021) does, "further
adding the label-aware smoothing" (Sec. 3.4; spec Sec. 5): each class `y` gets
its own smoothing factor `eps_y`, large for head classes (over-confident) and
small for tail classes, and the loss of a sample of class `y` is

```
loss = (1 - eps_y) * (-log p_y) + eps_y * mean_k(-log p_k)
```
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

_SHAPES = ("concave", "linear", "convex")


def _validate_factor(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(
            f"Argument `{name}` must be a number in [0, 1]. Received: {name}={value!r}"
        )


def validate_class_counts(class_counts, min_classes=1, hint=""):
    """`class_counts` as a float64 array: 1-D, at least `min_classes`, finite and > 0.

    The one check of the per-class training counts that the long-tailed
    losses (`min_classes=2`) and label-aware smoothing (`min_classes=1`)
    take; `hint` is appended to the message about non-positive counts.
    """
    try:
        counts = np.asarray(class_counts, dtype="float64")
    except (TypeError, ValueError):
        raise ValueError(
            "Argument `class_counts` must be a 1-D sequence of positive numbers. "
            f"Received: class_counts={class_counts!r}"
        ) from None
    if counts.ndim != 1 or counts.size < max(min_classes, 1):
        what = "non-empty 1-D sequence" if min_classes <= 1 else (
            f"1-D sequence of at least {min_classes} class counts"
        )
        raise ValueError(f"Argument `class_counts` must be a {what}. Received shape {counts.shape}.")
    if not np.all(np.isfinite(counts)) or np.any(counts <= 0):
        raise ValueError(
            "Argument `class_counts` must contain finite positive numbers "
            f"(training examples per class{hint}). Received: {counts.tolist()}"
        )
    return counts


def label_aware_epsilons(class_counts, head, tail, shape="concave"):
    """Per-class smoothing factors of MiSLAS's label-aware smoothing.

    With `r_y = (N_y - N_min) / (N_max - N_min)` in `[0, 1]` (0 for the
    rarest class, 1 for the most frequent):

    ```
    concave: eps_y = tail + (head - tail) * sin(pi / 2 * r_y)
    linear:  eps_y = tail + (head - tail) * r_y
    convex:  eps_y = tail + (head - tail) * (1 - cos(pi / 2 * r_y))
    ```

    The most frequent class gets `head`, the rarest `tail`. For `head >= tail`
    the shapes are ordered pointwise, `convex <= linear <= concave`. If every
    class has the same count, every class gets `head`.

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        head: `eps` of the most frequent class, in `[0, 1]`.
        tail: `eps` of the rarest class, in `[0, 1]`.
        shape: `"concave"` (MiSLAS's default, the spec's), `"linear"` or
            `"convex"`.

    Returns:
        A NumPy float32 array of shape `(C,)`.

    Example:

    >>> label_aware_epsilons([100, 10, 1], head=0.4, tail=0.1)
    array([0.4       , 0.14269446, 0.1       ], dtype=float32)
    """
    counts = validate_class_counts(class_counts)
    _validate_factor("head", head)
    _validate_factor("tail", tail)
    if shape not in _SHAPES:
        raise ValueError(
            f"Argument `shape` must be one of {_SHAPES}. Received: shape={shape!r}"
        )
    n_min, n_max = counts.min(), counts.max()
    if n_max == n_min:
        return np.full(counts.shape, head, dtype="float32")
    ratio = (counts - n_min) / (n_max - n_min)
    if shape == "concave":
        curve = np.sin(0.5 * math.pi * ratio)
    elif shape == "linear":
        curve = ratio
    else:
        curve = 1.0 - np.cos(0.5 * math.pi * ratio)
    eps = float(tail) + (float(head) - float(tail)) * curve
    return eps.astype("float32")


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LabelAwareSmoothing(keras.losses.Loss):
    """Label-aware smoothing cross-entropy (MiSLAS), LCReg's stage-2 loss.

    For a sample of class `y` with predicted distribution `p`:

    ```
    loss = (1 - eps_y) * (-log p_y) + eps_y * mean_k(-log p_k)
    ```

    with `eps_y` from `label_aware_epsilons(class_counts, head, tail, shape)`.
    This is the cross-entropy against the smoothed target
    `(1 - eps_y) * onehot(y) + eps_y / C`. With `head = tail = 0` it is the
    plain sparse cross-entropy. The computation is done in float32.

    Labels must lie in `[0, C)`; this is not checked (a range check cannot
    be done cheaply in graph mode on every backend): out-of-range labels
    raise on some backends and devices and are silently clipped on others
    (e.g. JAX).

    Args:
        class_counts: 1-D sequence of the C positive training counts per
            class (the original long-tailed counts, not the re-sampled ones).
        head: `eps` of the most frequent class, in `[0, 1]`.
        tail: `eps` of the rarest class, in `[0, 1]`.
        shape: `"concave"` (default), `"linear"` or `"convex"`; see
            `label_aware_epsilons`.
        from_logits: whether `y_pred` are logits (default) or probabilities.
        reduction: Keras loss reduction, default `"sum_over_batch_size"`.
        name: name of the loss.
        dtype: dtype of the reduced loss (Keras `Loss` argument).

    Call arguments:
        y_true: `(N,)` or `(N, 1)` integer class labels.
        y_pred: `(N, C)` logits (or probabilities if `from_logits=False`).
        sample_weight: optional `(N,)` weights.

    Returns:
        The reduced loss (a scalar by default; `(N,)` with `reduction=None`).

    Example:

    >>> loss = LabelAwareSmoothing([500, 50, 5], head=0.4, tail=0.1)
    >>> value = loss(np.array([0, 2]), np.random.randn(2, 3).astype("float32"))
    """

    def __init__(
        self,
        class_counts,
        head=0.4,
        tail=0.1,
        shape="concave",
        from_logits=True,
        reduction="sum_over_batch_size",
        name="label_aware_smoothing",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        # Validates everything (counts, head, tail, shape).
        self._epsilons = label_aware_epsilons(class_counts, head, tail, shape)
        self.class_counts = [
            int(c) if float(c).is_integer() else float(c)
            for c in np.asarray(class_counts, dtype="float64").tolist()
        ]
        self.head = float(head)
        self.tail = float(tail)
        self.shape = shape
        self.from_logits = bool(from_logits)
        self._dtype_arg = dtype

    @property
    def epsilons(self):
        """The `(C,)` NumPy float32 per-class smoothing factors."""
        return self._epsilons.copy()

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        pred_shape = tuple(y_pred.shape)
        if len(pred_shape) != 2:
            raise ValueError(
                "Argument `y_pred` must have shape (N, C). "
                f"Received: y_pred.shape={pred_shape}"
            )
        num_classes = len(self.class_counts)
        if pred_shape[-1] is not None and int(pred_shape[-1]) != num_classes:
            raise ValueError(
                f"The last dimension of `y_pred` ({pred_shape[-1]}) does not match "
                f"the number of classes in `class_counts` ({num_classes})."
            )
        true_shape = tuple(y_true.shape)
        if len(true_shape) == 2 and true_shape[-1] == 1:
            y_true = ops.reshape(y_true, (-1,))
        elif len(true_shape) != 1:
            raise ValueError(
                "Argument `y_true` must hold integer labels of shape (N,) or "
                f"(N, 1). Received: y_true.shape={true_shape}"
            )
        labels = ops.cast(y_true, "int32")

        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
            log_probs = ops.log(ops.clip(probs, keras.backend.epsilon(), 1.0))
        nll = -ops.squeeze(
            ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1),
            axis=-1,
        )
        uniform = -ops.mean(log_probs, axis=-1)
        eps = ops.take(ops.convert_to_tensor(self._epsilons), labels, axis=0)
        return (1.0 - eps) * nll + eps * uniform

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "class_counts": list(self.class_counts),
                "head": self.head,
                "tail": self.tail,
                "shape": self.shape,
                "from_logits": self.from_logits,
            }
        )
        if self._dtype_arg is not None:
            config["dtype"] = keras.saving.serialize_keras_object(self._dtype_arg)
        return config
