"""Calibration as MiSLAS reports it (spec Sec. 7), in NumPy.

`expected_calibration_error` with 15 equal-width confidence bins closed on
the right, `reliability_bins` (the data of a reliability diagram) and
`negative_log_likelihood`; `softmax` turns logits into probabilities.
"""

import numpy as np

from lcreg_keras.evaluation.accuracy import _labels


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
