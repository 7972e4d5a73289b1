"""Top-1 accuracy and the many / medium / few-shot splits (NumPy).

Two rules split the classes by their *training* counts (spec Sec. 7):

* `"count"` (the default, the standard rule of Liu et al. 2019): a class with
  more than `many` (100) training images is many-shot, fewer than `few` (20)
  few-shot, the rest medium-shot. Exactly 100 and exactly 20 are medium.
* `"index"` (MiSLAS): classes are ranked by training count, largest first
  (ties keep the lower class id first), and the ranks are cut at fixed index
  ranges. `INDEX_PRESETS` holds MiSLAS's ranges for CIFAR-10, CIFAR-100,
  ImageNet-LT, iNaturalist 2018 and Places-LT.

A split's accuracy is the mean of the per-sample correctness over the test
samples whose label is in the split (on a balanced test set this equals the
mean of the per-class accuracies). Predictions given as logits / scores are
turned into classes by `np.argmax`, which breaks ties by the lowest class
index.
"""

import numpy as np

SPLITS = ("many", "medium", "few")

INDEX_PRESETS = {
    "cifar10": ((0, 3), (3, 7), (7, 10)),
    "cifar100": ((0, 36), (36, 71), (71, 100)),
    "imagenet_lt": ((0, 390), (390, 835), (835, 1000)),
    "inaturalist2018": ((0, 842), (842, 4543), (4543, 8142)),
    "places_lt": ((0, 131), (131, 288), (288, 365)),
}


def _labels(labels, name="labels"):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of class ids. Received shape "
            f"{labels.shape}."
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.mod(labels, 1) == 0):
            raise ValueError(f"`{name}` must hold integer class ids.")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"`{name}` must be >= 0. Found {labels.min()}.")
    return labels


def _predictions(logits_or_preds, n):
    """Class predictions from `(N,)` ids or `(N, C)` scores (argmax)."""
    values = np.asarray(logits_or_preds)
    if values.ndim == 2:
        preds = np.argmax(values, axis=-1)
    elif values.ndim == 1:
        preds = _labels(values, "preds")
    else:
        raise ValueError(
            "`preds` must be class ids `(N,)` or logits `(N, C)`. Received "
            f"shape {values.shape}."
        )
    if len(preds) != n:
        raise ValueError(
            f"`labels` and `preds` must have the same length. Received {n} "
            f"labels and {len(preds)} predictions."
        )
    return preds.astype(np.int64)


def top1_accuracy(labels, logits_or_preds):
    """Fraction of samples whose predicted class is the label.

    Args:
        labels: 1-D array of `N` integer class ids.
        logits_or_preds: `(N,)` predicted class ids, or `(N, C)` logits /
            probabilities (argmax; ties go to the lowest class index).

    Returns:
        A Python float in [0, 1]; NaN for an empty set.

    Example:
        >>> top1_accuracy([0, 1, 2, 2], [0, 1, 1, 2])
        0.75
        >>> top1_accuracy([1], [[0.5, 0.5]])  # tie -> class 0
        0.0
    """
    labels = _labels(labels)
    preds = _predictions(logits_or_preds, len(labels))
    if labels.size == 0:
        return float("nan")
    return float(np.mean(preds == labels))


def per_class_accuracy(labels, preds, num_classes):
    """Accuracy of each class over the test samples of that class.

    Args:
        labels: 1-D array of `N` class ids in `[0, num_classes)`.
        preds: `(N,)` predicted ids or `(N, C)` logits (argmax, lowest index
            wins ties).
        num_classes: number of classes.

    Returns:
        A float64 array `(num_classes,)`; NaN for a class with no test sample.

    Example:
        >>> per_class_accuracy([0, 0, 1], [0, 1, 1], 3).tolist()
        [0.5, 1.0, nan]
    """
    if isinstance(num_classes, bool) or not isinstance(
        num_classes, (int, np.integer)
    ) or num_classes < 1:
        raise ValueError(
            f"`num_classes` must be an int >= 1. Received: {num_classes!r}"
        )
    labels = _labels(labels)
    preds = _predictions(preds, len(labels))
    if labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"`labels` must lie in [0, num_classes) = [0, {num_classes}). "
            f"Found {labels.max()}."
        )
    total = np.bincount(labels, minlength=num_classes).astype(np.float64)
    correct = np.bincount(labels[preds == labels], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = correct / total
    accuracy[total == 0] = np.nan
    return accuracy


def _counts(train_counts):
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(
            "`train_counts` must be a non-empty 1-D array of per-class "
            f"training counts. Received shape {counts.shape}."
        )
    if np.any(counts < 0):
        raise ValueError("`train_counts` must be >= 0.")
    return counts


def _resolve_ranges(ranges, num_classes):
    if ranges is None:
        matches = [
            name for name, r in INDEX_PRESETS.items() if r[-1][1] == num_classes
        ]
        if not matches:
            raise ValueError(
                "rule='index' needs `ranges`: a preset name "
                f"({', '.join(INDEX_PRESETS)}) or three (start, end) rank "
                f"ranges; no preset has {num_classes} classes."
            )
        ranges = matches[0]
    if isinstance(ranges, str):
        key = ranges.lower().replace("-", "_")
        if key not in INDEX_PRESETS:
            raise ValueError(
                f"Unknown `ranges` preset {ranges!r}. Choose one of "
                f"{', '.join(INDEX_PRESETS)}."
            )
        name, ranges = key, INDEX_PRESETS[key]
    else:
        name = None
    try:
        ranges = tuple((int(a), int(b)) for a, b in ranges)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "`ranges` must be a preset name or three (start, end) pairs for "
            f"many, medium, few. Received: {ranges!r}"
        ) from error
    if len(ranges) != 3:
        raise ValueError(
            "`ranges` must hold three (start, end) pairs (many, medium, few). "
            f"Received {len(ranges)}."
        )
    for start, end in ranges:
        if not 0 <= start <= end <= num_classes:
            raise ValueError(
                f"`ranges` entry ({start}, {end}) is outside the {num_classes} "
                "classes ranked by training count."
            )
    if name is None:
        name = "[" + " ".join(f"[{a},{b})" for a, b in ranges) + "]"
    return name, ranges


def _split(train_counts, rule, many, few, ranges):
    counts = _counts(train_counts)
    rule_key = str(rule).lower().replace("-", "_")
    if rule_key in INDEX_PRESETS and ranges is None:
        rule_key, ranges = "index", rule_key
    if rule_key == "count":
        if ranges is not None:
            raise ValueError("`ranges` applies to rule='index' only.")
        if few > many:
            raise ValueError(
                f"`few` ({few}) must not exceed `many` ({many})."
            )
        classes = np.arange(counts.size)
        splits = {
            "many": classes[counts > many],
            "medium": classes[(counts <= many) & (counts >= few)],
            "few": classes[counts < few],
        }
        return splits, f"count (many > {many}, few < {few})"
    if rule_key == "index":
        name, ranges = _resolve_ranges(ranges, counts.size)
        ranked = np.argsort(-counts, kind="stable")
        splits = {
            split: np.sort(ranked[start:end])
            for split, (start, end) in zip(SPLITS, ranges)
        }
        return splits, f"index ({name})"
    raise ValueError(
        f"`rule` must be 'count' or 'index' (or an index preset name: "
        f"{', '.join(INDEX_PRESETS)}). Received: rule={rule!r}"
    )


def split_classes(train_counts, rule="count", many=100, few=20, ranges=None):
    """Splits classes into many / medium / few-shot by training count.

    Args:
        train_counts: 1-D array, training images per class.
        rule: `"count"` (> `many` many-shot, < `few` few-shot, else medium) or
            `"index"` (rank by count, descending, stable; cut at `ranges`).
            A preset name (e.g. `"cifar100"`) is shorthand for `"index"` with
            that preset.
        many: count threshold of the count rule (strictly above is many).
        few: count threshold of the count rule (strictly below is few).
        ranges: for the index rule, a name in `INDEX_PRESETS` or three
            `(start, end)` rank ranges; `None` picks the preset whose class
            number matches `len(train_counts)`.

    Returns:
        A dict `{"many": ids, "medium": ids, "few": ids}` of sorted int64
        class-id arrays.

    Example:
        >>> s = split_classes([500, 101, 100, 20, 19])
        >>> {k: v.tolist() for k, v in s.items()}
        {'many': [0, 1], 'medium': [2, 3], 'few': [4]}
    """
    splits, _ = _split(train_counts, rule, many, few, ranges)
    return {key: value.astype(np.int64) for key, value in splits.items()}


def split_accuracy(
    labels, preds, train_counts, rule="count", many=100, few=20, ranges=None
):
    """Overall and many / medium / few-shot top-1 accuracy.

    Args:
        labels: 1-D array of `N` test class ids.
        preds: `(N,)` predicted ids or `(N, C)` logits (argmax; lowest index
            wins ties).
        train_counts: 1-D array, training images per class (defines splits).
        rule, many, few, ranges: as in `split_classes`.

    Returns:
        A dict with `overall`, `many`, `medium`, `few` (floats in [0, 1]; NaN
        for a split with no test sample), `rule` (a string naming the rule
        and its thresholds / ranges) and `num_classes` (a dict of classes
        per split).

    Example:
        >>> r = split_accuracy([0, 1, 2], [0, 0, 2], [200, 50, 5])
        >>> r["overall"], r["many"], r["medium"], r["few"]
        (0.6666666666666666, 1.0, 0.0, 1.0)
    """
    labels = _labels(labels)
    preds = _predictions(preds, len(labels))
    splits, rule_name = _split(train_counts, rule, many, few, ranges)
    num_classes = len(np.asarray(train_counts))
    if labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"`labels` must lie in [0, len(train_counts)) = [0, {num_classes}). "
            f"Found {labels.max()}."
        )
    correct = preds == labels
    result = {
        "overall": float(np.mean(correct)) if labels.size else float("nan")
    }
    for split in SPLITS:
        mask = np.isin(labels, splits[split])
        result[split] = float(np.mean(correct[mask])) if mask.any() else float("nan")
    result["rule"] = rule_name
    result["num_classes"] = {split: int(splits[split].size) for split in SPLITS}
    return result


def format_report(result, name=None, digits=2):
    """One-line summary of a `split_accuracy` result, in percent.

    Args:
        result: dict from `split_accuracy`.
        name: optional prefix (e.g. a dataset or run name).
        digits: decimals of the percentages.

    Returns:
        A string such as
        `"cifar10-lt: top-1 83.10 | many 91.00 | medium 80.00 | few 75.00
        [count (many > 100, few < 20)]"` (one line).

    Example:
        >>> format_report({"overall": 0.5, "many": 1.0, "medium": 0.5,
        ...                "few": float("nan"), "rule": "count"})
        'top-1 50.00 | many 100.00 | medium 50.00 | few nan [count]'
    """

    def pct(value):
        value = float(value)
        return "nan" if np.isnan(value) else f"{100.0 * value:.{digits}f}"

    parts = [f"top-1 {pct(result['overall'])}"]
    parts += [f"{split} {pct(result[split])}" for split in SPLITS if split in result]
    line = " | ".join(parts)
    if result.get("rule"):
        line += f" [{result['rule']}]"
    return f"{name}: {line}" if name else line
