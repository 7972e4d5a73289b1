"""`evaluation_report`: one test-set evaluation as a JSON-ready dict."""

import numpy as np

from lcreg_keras.evaluation.accuracy import _counts
from lcreg_keras.evaluation.accuracy import per_class_accuracy
from lcreg_keras.evaluation.accuracy import split_accuracy
from lcreg_keras.evaluation.accuracy import split_classes
from lcreg_keras.evaluation.accuracy import top1_accuracy
from lcreg_keras.evaluation.calibration import _looks_like_probabilities
from lcreg_keras.evaluation.calibration import _num_bins
from lcreg_keras.evaluation.calibration import _probabilities
from lcreg_keras.evaluation.calibration import _scores
from lcreg_keras.evaluation.calibration import expected_calibration_error
from lcreg_keras.evaluation.calibration import negative_log_likelihood
from lcreg_keras.evaluation.calibration import reliability_bins


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
