"""Top-1 accuracy, many / medium / few-shot splits and calibration (NumPy).

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

Calibration (spec Sec. 7, as MiSLAS reports it): `expected_calibration_error`
with 15 equal-width confidence bins closed on the right, `reliability_bins`
(the data of a reliability diagram) and `negative_log_likelihood`.
`evaluation_report` gathers all of it, per class too, in one JSON-ready dict;
`lcreg_keras.metrics` has Keras-metric versions for `compile`.
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


# ---------------------------------------------------------------------------
# Probabilities, calibration and the full report.
# ---------------------------------------------------------------------------


def softmax(logits, axis=-1):
    """Numerically stable softmax in NumPy (float64).

    Args:
        logits: array of logits, e.g. `(N, C)`.
        axis: the class axis.

    Returns:
        A float64 array of the same shape whose entries along `axis` are
        positive and sum to 1. Large logits do not overflow (the row maximum
        is subtracted first).

    Example:
        >>> softmax([[0.0, 0.0], [1000.0, 0.0]]).round(3).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """
    logits = np.asarray(logits, np.float64)
    if not np.all(np.isfinite(logits)):
        raise ValueError("`logits` must be finite (found NaN or inf).")
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def _looks_like_probabilities(values, atol=1e-3):
    return bool(
        values.size
        and np.all(values >= 0)
        and np.all(values <= 1)
        and np.allclose(values.sum(axis=-1), 1.0, atol=atol)
    )


def _scores(labels, values, name):
    """`(labels, values)` checked: `(N,)` ids and `(N, C)` finite float64."""
    labels = _labels(labels)
    values = np.asarray(values, np.float64)
    if values.ndim != 2:
        raise ValueError(
            f"`{name}` must have shape (N, C) (one row of class scores per "
            f"sample). Received shape {values.shape}."
        )
    if len(values) != len(labels):
        raise ValueError(
            f"`labels` and `{name}` must have the same length. Received "
            f"{len(labels)} labels and {len(values)} rows."
        )
    if labels.size and labels.max() >= values.shape[1]:
        raise ValueError(
            f"`labels` must lie in [0, C) = [0, {values.shape[1]}). Found "
            f"{labels.max()}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must be finite (found NaN or inf).")
    return labels, values


def _probabilities(labels, probs_or_logits, from_logits=None, name="probs"):
    """`(labels, probs)` checked; logits go through `softmax`."""
    labels, values = _scores(labels, probs_or_logits, name)
    if from_logits is None:
        from_logits = not _looks_like_probabilities(values)
    if from_logits:
        values = softmax(values)
    elif values.size and (np.any(values < 0) or np.any(values > 1)):
        raise ValueError(
            f"`{name}` must be probabilities in [0, 1]; pass logits with "
            "`from_logits=True`."
        )
    return labels, values


def _num_bins(num_bins):
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"`num_bins` must be an int >= 1. Received: {num_bins!r}")
    return int(num_bins)


def confidence_bin(confidences, num_bins=15):
    """Bin index of each confidence: equal-width bins closed on the right.

    Bin `b` holds confidences in `(b / num_bins, (b + 1) / num_bins]`, as in
    MiSLAS (`np.digitize(conf, linspace(0, 1, num_bins + 1), right=True)`); a
    confidence of exactly 0 (impossible for a softmax maximum) goes to bin 0.

    Args:
        confidences: array of values in [0, 1].
        num_bins: number of equal-width bins.

    Returns:
        An int64 array of bin indices in `[0, num_bins)`.

    Example:
        >>> confidence_bin([0.1, 0.25, 0.2501, 1.0], num_bins=4).tolist()
        [0, 0, 1, 3]
    """
    num_bins = _num_bins(num_bins)
    confidences = np.asarray(confidences, np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # Number of inner edges strictly below the value: (lo, hi] bins.
    return np.searchsorted(edges[1:-1], confidences, side="left").astype(np.int64)


def reliability_bins(labels, probs, num_bins=15, from_logits=None):
    """Per-bin confidence, accuracy and count (a reliability diagram's data).

    Each sample's confidence is its top probability, its prediction the
    argmax (lowest class index on ties). Samples are binned by confidence in
    `num_bins` equal-width bins closed on the right (see `confidence_bin`).

    Args:
        labels: 1-D array of `N` integer class ids.
        probs: `(N, C)` probabilities (or logits, see `from_logits`).
        num_bins: number of equal-width confidence bins (MiSLAS: 15).
        from_logits: `True` if `probs` holds logits, `False` if
            probabilities, `None` to detect (rows in [0, 1] summing to 1 are
            probabilities).

    Returns:
        A dict of NumPy arrays: `edges` `(num_bins + 1,)`, `confidence` (mean
        confidence per bin), `accuracy` (fraction correct per bin), both
        `(num_bins,)` and NaN for an empty bin, and `count` (int64 samples
        per bin).

    Example:
        >>> bins = reliability_bins([0, 1], [[0.9, 0.1], [0.8, 0.2]], num_bins=5)
        >>> bins["count"].tolist()  # 0.8 sits on an edge: bin (0.6, 0.8]
        [0, 0, 0, 1, 1]
        >>> float(bins["accuracy"][4]), float(bins["confidence"][4])
        (1.0, 0.9)
    """
    num_bins = _num_bins(num_bins)
    labels, probs = _probabilities(labels, probs, from_logits)
    confidence = probs.max(axis=-1) if probs.size else np.zeros(0)
    correct = (np.argmax(probs, axis=-1) == labels) if probs.size else np.zeros(0)
    index = confidence_bin(confidence, num_bins)
    count = np.bincount(index, minlength=num_bins).astype(np.int64)
    conf_sum = np.bincount(index, weights=confidence, minlength=num_bins)
    correct_sum = np.bincount(index, weights=correct.astype(np.float64), minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
        accuracy = np.where(count > 0, correct_sum / np.maximum(count, 1), np.nan)
    return {
        "edges": np.linspace(0.0, 1.0, num_bins + 1),
        "confidence": mean_conf,
        "accuracy": accuracy,
        "count": count,
    }


def expected_calibration_error(labels, probs, num_bins=15, from_logits=None):
    """Expected calibration error (ECE) with equal-width confidence bins.

    `ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|` over the
    `num_bins` bins of `reliability_bins` (MiSLAS's definition, 15 bins).

    Args:
        labels: 1-D array of `N` integer class ids.
        probs: `(N, C)` probabilities (or logits, see `from_logits`).
        num_bins: number of equal-width bins.
        from_logits: as in `reliability_bins`.

    Returns:
        A Python float in [0, 1]; NaN for an empty set.

    Example:
        >>> # Confidence 0.9 on every sample, 60 % correct: ECE = 0.3.
        >>> probs = [[0.9, 0.1]] * 10
        >>> round(expected_calibration_error([0] * 6 + [1] * 4, probs), 6)
        0.3
    """
    bins = reliability_bins(labels, probs, num_bins, from_logits)
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    used = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(gaps * bins["count"][used]) / total)


def negative_log_likelihood(labels, probs_or_logits, from_logits=None, epsilon=1e-12):
    """Mean negative log-likelihood of the labels (natural log).

    Args:
        labels: 1-D array of `N` integer class ids.
        probs_or_logits: `(N, C)` probabilities or logits. Logits go through
            a stable log-softmax; probabilities are clipped at `epsilon`.
        from_logits: `True` / `False` to say which; `None` detects it (rows
            in [0, 1] summing to 1 are probabilities).
        epsilon: floor of a probability before the log.

    Returns:
        A Python float (nats); NaN for an empty set.

    Example:
        >>> round(negative_log_likelihood([0, 1], [[0.5, 0.5], [0.5, 0.5]]), 6)
        0.693147
        >>> round(negative_log_likelihood([0], [[0.0, 0.0]]), 6)  # logits
        0.693147
    """
    labels, values = _scores(labels, probs_or_logits, "probs_or_logits")
    if from_logits is None:
        from_logits = not _looks_like_probabilities(values)
    if from_logits:
        shifted = values - values.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    else:
        labels, values = _probabilities(labels, values, from_logits=False)
        log_probs = np.log(np.clip(values, epsilon, 1.0))
    if labels.size == 0:
        return float("nan")
    return float(-np.mean(log_probs[np.arange(len(labels)), labels]))


def _json_ready(value):
    """NaN -> None, NumPy scalars / arrays -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def evaluation_report(
    labels,
    logits,
    train_counts,
    rule="count",
    class_names=None,
    num_bins=15,
    many=100,
    few=20,
    ranges=None,
):
    """Everything one test-set evaluation reports, as a JSON-ready dict.

    Args:
        labels: 1-D array of `N` test class ids.
        logits: `(N, C)` logits (or probabilities: detected, see
            `negative_log_likelihood`).
        train_counts: `(C,)` training images per class (defines the splits).
        rule: the main split rule: `"count"`, `"index"` (with `ranges`) or an
            index preset name such as `"cifar10"`. The count rule is always
            reported; a different `rule` is reported beside it.
        class_names: optional list of `C` names.
        num_bins: confidence bins of the ECE.
        many, few, ranges: as in `split_classes`.

    Returns:
        A dict (NaN written as `None`, so `json.dumps` gives valid JSON):

        - `top1`, `ece`, `nll` (floats; ECE with `num_bins` bins, NLL in nats),
          `num_bins`, `num_examples`, `num_classes`;
        - `rule`: the key of the main rule in `splits`; `many`, `medium`,
          `few`: that rule's split accuracies;
        - `splits`: `{"count": split_accuracy(...), <rule>: ...}`, each
          with its own `rule` string naming thresholds or ranges;
        - `per_class_accuracy`: list of `C` accuracies (`None` for a class
          with no test sample);
        - `per_class`: list of `C` dicts `class`, `name`, `train_count`,
          `test_count`, `accuracy`;
        - `reliability`: `reliability_bins` as lists.

    Example:
        >>> r = evaluation_report([0, 1], [[2.0, 0.0], [0.0, 1.0]], [200, 10])
        >>> r["top1"], r["splits"]["count"]["few"], r["per_class_accuracy"]
        (1.0, 1.0, [1.0, 1.0])
    """
    labels, scores = _scores(labels, logits, "logits")
    from_logits = not _looks_like_probabilities(scores)
    _, probs = _probabilities(labels, scores, from_logits=from_logits)
    counts = _counts(train_counts)
    num_classes = probs.shape[1]
    if counts.size != num_classes:
        raise ValueError(
            f"`train_counts` has {counts.size} classes but `logits` has "
            f"{num_classes} columns."
        )
    if class_names is not None:
        class_names = [str(n) for n in class_names]
        if len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` has {len(class_names)} names for {num_classes} classes."
            )
    rule_key = str(rule).lower().replace("-", "_")
    rules = ["count"] if rule_key == "count" else ["count", rule_key]
    splits = {
        key: split_accuracy(
            labels, probs, counts, rule=key, many=many, few=few,
            ranges=ranges if key != "count" else None,
        )
        for key in rules
    }
    for key in rules:
        classes = split_classes(
            counts, rule=key, many=many, few=few, ranges=ranges if key != "count" else None
        )
        splits[key]["classes"] = {k: v.tolist() for k, v in classes.items()}
    accuracy = per_class_accuracy(labels, probs, num_classes)
    test_counts = np.bincount(labels, minlength=num_classes)
    per_class = [
        {
            "class": c,
            "name": class_names[c] if class_names else str(c),
            "train_count": int(counts[c]),
            "test_count": int(test_counts[c]),
            "accuracy": accuracy[c],
        }
        for c in range(num_classes)
    ]
    main = splits[rules[-1]]
    report = {
        "num_examples": int(labels.size),
        "num_classes": int(num_classes),
        "top1": top1_accuracy(labels, probs),
        "rule": rules[-1],
        "many": main["many"],
        "medium": main["medium"],
        "few": main["few"],
        "ece": expected_calibration_error(labels, probs, num_bins, from_logits=False),
        "num_bins": _num_bins(num_bins),
        "nll": negative_log_likelihood(labels, scores, from_logits=from_logits),
        "splits": splits,
        "per_class_accuracy": accuracy,
        "per_class": per_class,
        "reliability": reliability_bins(labels, probs, num_bins, from_logits=False),
    }
    return _json_ready(report)
