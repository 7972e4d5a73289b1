"""Keras metrics for long-tailed evaluation: calibration and split accuracy.

Both metrics run inside `compile(metrics=[...])` on every backend (they use
`keras.ops` only), accumulate over batches in metric variables, and match the
NumPy functions of `lcreg_keras.evaluation` on the same data:

* `ExpectedCalibrationError`: `evaluation.expected_calibration_error`
  (equal-width confidence bins closed on the right, MiSLAS's 15 by default);
* `SplitAccuracy`: the `"overall"`-style accuracy of one many / medium / few
  split of `evaluation.split_accuracy` (per sample, over the test samples
  whose label is in the split).

Labels are integer class ids, shape `(B,)` or `(B, 1)`; predictions are
`(B, C)` scores. Accumulators are float32 (exact counts up to 2**24 samples
per bin / split).
"""

import keras
import numpy as np
from keras import ops

from lcreg_keras import evaluation


def _flat_labels(y_true):
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 2 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) != 1:
        raise ValueError(
            "Labels must be integer class ids of shape (B,) or (B, 1); one-hot "
            f"labels are not supported. Received shape {y_true.shape}."
        )
    return ops.cast(y_true, "int32")


def _check_scores(y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) != 2:
        raise ValueError(
            f"`y_pred` must have shape (B, C). Received shape {y_pred.shape}."
        )
    return ops.cast(y_pred, "float32")


def _sample_weight(sample_weight, like):
    if sample_weight is None:
        return ops.ones_like(like)
    sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    return ops.reshape(sample_weight, ops.shape(like))


@keras.saving.register_keras_serializable(package="lcreg_keras")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Expected calibration error over equal-width confidence bins.

    `ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`, where a sample's
    confidence is its top softmax probability, its prediction the argmax,
    and bin `b` holds confidences in `(b / num_bins, (b + 1) / num_bins]`
    (MiSLAS's binning; see `lcreg_keras.evaluation.confidence_bin`). The
    metric keeps, per bin, the (weighted) count, the sum of confidences and
    the sum of correct predictions, so the result over many batches equals
    the NumPy `expected_calibration_error` over all of them. Ties in the
    argmax go to the lowest class index, as in NumPy.

    Args:
        num_bins: int >= 1, the number of bins (MiSLAS: 15).
        from_logits: whether `y_pred` holds logits (softmax is applied) or
            probabilities. Keras' convention is `False`; `LCRegModel` outputs
            logits, so pass `True` with it.
        name: metric name.
        dtype: metric dtype.

    Example:

    >>> m = ExpectedCalibrationError(num_bins=15)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.9, 0.1]])
    >>> round(float(m.result()), 4)  # both in bin (0.8667, 0.9333]: |0.5 - 0.9|
    0.4
    >>> model.compile(optimizer="sgd", metrics=[
    ...     ExpectedCalibrationError(from_logits=True)])  # doctest: +SKIP
    """

    def __init__(self, num_bins=15, from_logits=False, name="ece", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
            raise ValueError(f"`num_bins` must be an int >= 1. Received: {num_bins!r}")
        self.num_bins = int(num_bins)
        self.from_logits = bool(from_logits)
        self.bin_counts = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", dtype="float32", name="bin_counts"
        )
        self.bin_confidence = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", dtype="float32",
            name="bin_confidence",
        )
        self.bin_correct = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", dtype="float32", name="bin_correct"
        )
        # Inner edges, as NumPy's linspace makes them (then float32).
        self._inner_edges = np.linspace(0.0, 1.0, self.num_bins + 1)[1:-1].astype("float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = _flat_labels(y_true)
        scores = _check_scores(y_pred)
        probs = ops.softmax(scores, axis=-1) if self.from_logits else scores
        confidence = ops.max(probs, axis=-1)
        correct = ops.cast(ops.equal(ops.cast(ops.argmax(probs, axis=-1), "int32"), labels), "float32")
        weight = _sample_weight(sample_weight, confidence)
        # Bin index = number of inner edges strictly below the confidence.
        edges = ops.convert_to_tensor(self._inner_edges)
        index = ops.sum(
            ops.cast(ops.greater(confidence[:, None], edges[None, :]), "int32"), axis=-1
        )
        onehot = ops.one_hot(index, self.num_bins, dtype="float32") * weight[:, None]
        self.bin_counts.assign_add(ops.sum(onehot, axis=0))
        self.bin_confidence.assign_add(ops.sum(onehot * confidence[:, None], axis=0))
        self.bin_correct.assign_add(ops.sum(onehot * correct[:, None], axis=0))

    def result(self):
        total = ops.sum(self.bin_counts)
        gaps = ops.abs(ops.convert_to_tensor(self.bin_correct) - self.bin_confidence)
        return ops.divide_no_nan(ops.sum(gaps), total)

    def reliability(self):
        """The accumulated bins as NumPy, like `evaluation.reliability_bins`.

        Returns:
            A dict with `edges`, `confidence`, `accuracy` (NaN in empty bins)
            and `count` (float, weighted counts).
        """
        count = np.asarray(ops.convert_to_numpy(self.bin_counts), np.float64)
        conf = np.asarray(ops.convert_to_numpy(self.bin_confidence), np.float64)
        correct = np.asarray(ops.convert_to_numpy(self.bin_correct), np.float64)
        safe = np.maximum(count, 1e-12)
        return {
            "edges": np.linspace(0.0, 1.0, self.num_bins + 1),
            "confidence": np.where(count > 0, conf / safe, np.nan),
            "accuracy": np.where(count > 0, correct / safe, np.nan),
            "count": count,
        }

    def get_config(self):
        config = super().get_config()
        config.update({"num_bins": self.num_bins, "from_logits": self.from_logits})
        return config


@keras.saving.register_keras_serializable(package="lcreg_keras")
class SplitAccuracy(keras.metrics.Metric):
    """Top-1 accuracy over the samples of one many / medium / few split.

    The split's classes are fixed at construction from the training counts
    with `lcreg_keras.evaluation.split_classes` (the count rule: > `many`
    training images is many-shot, < `few` is few-shot; or MiSLAS's index
    rule). The result is `correct / samples` over the (weighted) samples
    whose label is in the split, as `evaluation.split_accuracy` computes it;
    it is NaN while no sample of the split has been seen (for instance the
    few split of a set with no few-shot class), so it never reads as a 0 %
    accuracy. Ties in the argmax go to the lowest class index.

    Args:
        train_counts: 1-D sequence of training images per class (length C).
        split: `"many"`, `"medium"` or `"few"`.
        rule: `"count"`, `"index"` or an index preset name (`"cifar10"`,
            `"cifar100"`, `"imagenet_lt"`, `"inaturalist2018"`,
            `"places_lt"`); see `evaluation.split_classes`.
        many, few: thresholds of the count rule.
        ranges: rank ranges or preset name of the index rule.
        name: metric name; defaults to `"<split>_accuracy"`.
        dtype: metric dtype.

    Example:

    >>> m = SplitAccuracy([500, 50, 5], split="few")
    >>> m.update_state([2, 2, 0], [[0, 0, 1.0], [1.0, 0, 0], [1.0, 0, 0]])
    >>> float(m.result())  # class 2 is the only few-shot class: 1 of 2
    0.5
    >>> model.compile(optimizer="sgd", metrics=[
    ...     SplitAccuracy(counts, split=s) for s in ("many", "medium", "few")
    ... ])  # doctest: +SKIP
    """

    def __init__(
        self,
        train_counts,
        split="few",
        rule="count",
        many=100,
        few=20,
        ranges=None,
        name=None,
        dtype=None,
    ):
        if split not in evaluation.SPLITS:
            raise ValueError(
                f"`split` must be one of {evaluation.SPLITS}. Received: {split!r}"
            )
        super().__init__(name=name or f"{split}_accuracy", dtype=dtype)
        counts = np.asarray(train_counts)
        classes = evaluation.split_classes(counts, rule=rule, many=many, few=few, ranges=ranges)
        self.train_counts = [int(c) for c in counts.reshape(-1)]
        self.split = split
        self.rule = rule
        self.many = many
        self.few = few
        self.ranges = ranges
        self.num_classes = len(self.train_counts)
        self.split_class_ids = classes[split]
        mask = np.zeros(self.num_classes, np.float32)
        mask[classes[split]] = 1.0
        self._mask = mask
        self.correct = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = _flat_labels(y_true)
        scores = _check_scores(y_pred)
        if scores.shape[-1] is not None and scores.shape[-1] != self.num_classes:
            raise ValueError(
                f"`y_pred` has {scores.shape[-1]} classes but `train_counts` has "
                f"{self.num_classes}."
            )
        in_split = ops.take(ops.convert_to_tensor(self._mask), labels, axis=0)
        weight = _sample_weight(sample_weight, in_split) * in_split
        preds = ops.cast(ops.argmax(scores, axis=-1), "int32")
        correct = ops.cast(ops.equal(preds, labels), "float32")
        self.correct.assign_add(ops.sum(correct * weight))
        self.total.assign_add(ops.sum(weight))

    def result(self):
        total = ops.convert_to_tensor(self.total)
        return ops.where(
            total > 0, self.correct / ops.maximum(total, 1e-12), float("nan")
        )

    def get_config(self):
        config = super().get_config()
        ranges = self.ranges
        if ranges is not None and not isinstance(ranges, str):
            ranges = [[int(a), int(b)] for a, b in ranges]
        config.update(
            {
                "train_counts": list(self.train_counts),
                "split": self.split,
                "rule": self.rule,
                "many": self.many,
                "few": self.few,
                "ranges": ranges,
            }
        )
        return config
