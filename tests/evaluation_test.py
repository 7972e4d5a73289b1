"""Tests of lcreg_keras.evaluation (accuracy and many / medium / few splits)."""

import json

import numpy as np
import pytest

from lcreg_keras import evaluation as ev
from lcreg_keras.data import long_tailed_counts


def test_top1_accuracy_preds_and_logits():
    assert ev.top1_accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    assert ev.top1_accuracy([0, 1, 2], logits) == pytest.approx(2 / 3)


def test_argmax_ties_go_to_lowest_index():
    # Documented rule: np.argmax, the first (lowest) index of the maxima.
    logits = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
    assert ev.top1_accuracy([0, 1, 0], logits) == 1.0
    assert ev.top1_accuracy([1, 2, 2], logits) == 0.0
    acc = ev.per_class_accuracy([0, 1, 0], logits, 3)
    np.testing.assert_array_equal(acc[:2], [1.0, 1.0])


def test_top1_empty_and_mismatch():
    assert np.isnan(ev.top1_accuracy([], []))
    with pytest.raises(ValueError, match="same length"):
        ev.top1_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="preds"):
        ev.top1_accuracy([0], np.zeros((1, 2, 2)))


def test_per_class_accuracy_with_absent_class():
    labels = [0, 0, 0, 0, 2, 2, 3]
    preds = [0, 0, 1, 3, 2, 0, 3]
    acc = ev.per_class_accuracy(labels, preds, 4)
    assert acc[0] == 0.5
    assert np.isnan(acc[1])  # class 1 has no test sample
    assert acc[2] == 0.5 and acc[3] == 1.0
    with pytest.raises(ValueError, match="labels"):
        ev.per_class_accuracy([4], [0], 4)
    with pytest.raises(ValueError, match="num_classes"):
        ev.per_class_accuracy([0], [0], 0)


def test_count_rule_boundaries():
    counts = [500, 101, 100, 99, 21, 20, 19, 1, 0]
    splits = ev.split_classes(counts)
    assert splits["many"].tolist() == [0, 1]
    assert splits["medium"].tolist() == [2, 3, 4, 5]  # exactly 100 and 20
    assert splits["few"].tolist() == [6, 7, 8]
    custom = ev.split_classes(counts, many=20, few=2)
    assert custom["many"].tolist() == [0, 1, 2, 3, 4]
    assert custom["few"].tolist() == [7, 8]


def test_count_rule_on_cifar_lt():
    counts = long_tailed_counts(5000, 10, 100)  # ... 139, 83, 50
    splits = ev.split_classes(counts)
    assert splits["many"].tolist() == list(range(8))
    assert splits["medium"].tolist() == [8, 9]
    assert splits["few"].size == 0
    counts = long_tailed_counts(500, 100, 100)
    splits = ev.split_classes(counts)
    sizes = {k: v.size for k, v in splits.items()}
    assert sum(sizes.values()) == 100
    assert all(counts[c] > 100 for c in splits["many"])
    assert all(counts[c] < 20 for c in splits["few"])


@pytest.mark.parametrize(
    "preset,num_classes,sizes",
    [
        ("cifar10", 10, (3, 4, 3)),
        ("cifar100", 100, (36, 35, 29)),
        ("imagenet_lt", 1000, (390, 445, 165)),
        ("inaturalist2018", 8142, (842, 3701, 3599)),
        ("places_lt", 365, (131, 157, 77)),
    ],
)
def test_index_presets_sizes(preset, num_classes, sizes):
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 1000, num_classes)
    for kwargs in (dict(rule="index", ranges=preset), dict(rule="index"),
                   dict(rule=preset)):
        splits = ev.split_classes(counts, **kwargs)
        assert tuple(splits[k].size for k in ev.SPLITS) == sizes
        everything = np.concatenate([splits[k] for k in ev.SPLITS])
        assert sorted(everything.tolist()) == list(range(num_classes))
    # Every many class has at least the count of every medium class, etc.
    assert counts[splits["many"]].min() >= counts[splits["medium"]].max()
    assert counts[splits["medium"]].min() >= counts[splits["few"]].max()


def test_index_rule_ranks_by_count_stably():
    counts = [5, 50, 50, 10, 1]
    splits = ev.split_classes(counts, rule="index", ranges=[(0, 2), (2, 4), (4, 5)])
    # Rank: class 1 (50), class 2 (50, tie -> lower id first), 3, 0, 4.
    assert splits["many"].tolist() == [1, 2]
    assert splits["medium"].tolist() == [0, 3]
    assert splits["few"].tolist() == [4]


def test_split_errors():
    with pytest.raises(ValueError, match="rule"):
        ev.split_classes([1, 2], rule="median")
    with pytest.raises(ValueError, match="ranges"):
        ev.split_classes([1, 2, 3], rule="index")  # no 3-class preset
    with pytest.raises(ValueError, match="ranges"):
        ev.split_classes(np.ones(10), rule="index", ranges="cifar100")
    with pytest.raises(ValueError, match="preset"):
        ev.split_classes(np.ones(10), rule="index", ranges="cifar7")
    with pytest.raises(ValueError, match="train_counts"):
        ev.split_classes([])


def test_split_accuracy_hand_computed():
    train_counts = [300, 150, 50, 30, 10, 5]
    # many: 0, 1; medium: 2, 3; few: 4, 5 (class 5 absent from the test set).
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])
    preds = np.array([0, 1, 1, 1, 0, 2, 0, 0, 4])
    result = ev.split_accuracy(labels, preds, train_counts)
    assert result["overall"] == pytest.approx(5 / 9)
    assert result["many"] == pytest.approx(3 / 5)  # per sample, not per class
    assert result["medium"] == pytest.approx(1 / 3)
    assert result["few"] == 1.0
    assert result["rule"].startswith("count")
    assert result["num_classes"] == {"many": 2, "medium": 2, "few": 2}
    # Logits give the same result.
    logits = np.eye(6)[preds]
    assert ev.split_accuracy(labels, logits, train_counts)["many"] == result["many"]


def test_split_accuracy_empty_split_is_nan_and_index_rule_named():
    result = ev.split_accuracy([0, 1], [0, 0], [500, 400, 300])
    assert result["many"] == 0.5
    assert np.isnan(result["medium"]) and np.isnan(result["few"])
    counts = long_tailed_counts(5000, 10, 100)
    labels = np.repeat(np.arange(10), 2)
    result = ev.split_accuracy(labels, labels, counts, rule="index", ranges="cifar10")
    assert result["rule"] == "index (cifar10)"
    assert result["num_classes"] == {"many": 3, "medium": 4, "few": 3}
    assert result["overall"] == result["many"] == result["few"] == 1.0
    with pytest.raises(ValueError, match="labels"):
        ev.split_accuracy([3], [3], [10, 10, 10])


def test_format_report_one_line():
    result = ev.split_accuracy([0, 1, 2], [0, 0, 2], [200, 50, 5])
    line = ev.format_report(result, name="toy")
    assert "\n" not in line
    assert line.startswith("toy: top-1 66.67 | many 100.00 | medium 0.00 | few 100.00")
    assert "count (many > 100, few < 20)" in line
    nan_line = ev.format_report(
        {"overall": 0.5, "many": 1.0, "medium": 0.5, "few": float("nan"),
         "rule": "count"}, digits=1
    )
    assert nan_line == "top-1 50.0 | many 100.0 | medium 50.0 | few nan [count]"


# ---------------------------------------------------------------------------
# Calibration, NLL and the full report.
# ---------------------------------------------------------------------------


def mislas_ece(labels, probs, num_bins=15):
    """MiSLAS's loop (np.digitize, right-closed bins), written out for reference."""
    confidences = probs.max(1)
    preds = probs.argmax(1)
    bins = np.linspace(0.0, 1.0, num_bins + 1)
    indices = np.digitize(confidences, bins, right=True)
    gaps, counts = np.zeros(num_bins), np.zeros(num_bins)
    for b in range(num_bins):
        selected = np.where(indices == b + 1)[0]
        if len(selected):
            gaps[b] = abs(np.mean(labels[selected] == preds[selected])
                          - np.mean(confidences[selected]))
            counts[b] = len(selected)
    return np.sum(gaps * counts) / np.sum(counts)


def test_softmax_is_stable_and_normalised():
    probs = ev.softmax([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    np.testing.assert_allclose(probs[0], [1.0, 0.0, 0.0], atol=1e-12)
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(probs[1], expected)
    with pytest.raises(ValueError, match="finite"):
        ev.softmax([[np.nan, 0.0]])


def test_ece_perfectly_calibrated_is_zero():
    # 10 samples at confidence 0.8 with 8 right, 10 at 0.6 with 6 right.
    probs = np.array([[0.8, 0.2]] * 10 + [[0.6, 0.4]] * 10)
    labels = np.array([0] * 8 + [1] * 2 + [0] * 6 + [1] * 4)
    assert ev.expected_calibration_error(labels, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_overconfident_known_values():
    # Confidence 0.9 everywhere, 60 % right: ECE = 0.3.
    probs = np.array([[0.9, 0.05, 0.05]] * 10)
    labels = np.array([0] * 6 + [2] * 4)
    assert ev.expected_calibration_error(labels, probs) == pytest.approx(0.3)
    # Two bins: 4 at 0.95 with 2 right (gap 0.45), 6 at 0.55 with 3 right
    # (gap 0.05): 0.4 * 0.45 + 0.6 * 0.05 = 0.21.
    probs = np.array([[0.95, 0.05]] * 4 + [[0.55, 0.45]] * 6)
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1, 1])
    assert ev.expected_calibration_error(labels, probs) == pytest.approx(0.21)
    bins = ev.reliability_bins(labels, probs)
    assert bins["count"].sum() == 10 and bins["count"][14] == 4 and bins["count"][8] == 6
    assert bins["accuracy"][14] == 0.5 and bins["confidence"][8] == pytest.approx(0.55)
    assert np.isnan(bins["accuracy"][0]) and np.isnan(bins["confidence"][0])


def test_ece_bins_are_closed_on_the_right_and_ties_go_low():
    # 0.5 is the upper edge of bin 1 with 4 bins; 1.0 is in the last bin.
    assert ev.confidence_bin([0.5, 0.5000001, 1.0, 0.0, 0.25], 4).tolist() == [1, 2, 3, 0, 0]
    # A tie: argmax picks class 0, so label 1 is wrong at confidence 0.5.
    bins = ev.reliability_bins([1, 0], [[0.5, 0.5], [0.5, 0.5]], num_bins=4)
    assert bins["count"].tolist() == [0, 2, 0, 0]
    assert bins["accuracy"][1] == 0.5 and bins["confidence"][1] == 0.5
    assert ev.expected_calibration_error([1, 1], [[0.5, 0.5]] * 2, 4) == 0.5


def test_ece_matches_mislas_reference(rng):
    logits = rng.normal(size=(500, 7)) * 3
    labels = rng.integers(0, 7, 500)
    probs = ev.softmax(logits)
    for num_bins in (1, 10, 15):
        expected = mislas_ece(labels, probs, num_bins)
        assert ev.expected_calibration_error(labels, probs, num_bins) == pytest.approx(expected)
        # Logits are detected and turned into probabilities.
        assert ev.expected_calibration_error(labels, logits, num_bins) == pytest.approx(expected)


def test_ece_errors_and_empty():
    assert np.isnan(ev.expected_calibration_error(np.zeros(0, int), np.zeros((0, 3))))
    with pytest.raises(ValueError, match="num_bins"):
        ev.expected_calibration_error([0], [[1.0, 0.0]], num_bins=0)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        ev.expected_calibration_error([0], [1.0, 0.0])
    with pytest.raises(ValueError, match="same length"):
        ev.expected_calibration_error([0, 1], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="labels"):
        ev.expected_calibration_error([2], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="from_logits"):
        ev.expected_calibration_error([0], [[2.0, 0.0]], from_logits=False)


def test_negative_log_likelihood_probs_and_logits():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.25, 0.5, 0.25]])
    labels = np.array([0, 2, 0])
    expected = -np.mean(np.log([0.7, 0.8, 0.25]))
    assert ev.negative_log_likelihood(labels, probs) == pytest.approx(expected)
    logits = np.log(probs) + 5.0  # same softmax
    assert ev.negative_log_likelihood(labels, logits) == pytest.approx(expected)
    assert ev.negative_log_likelihood(labels, logits, from_logits=True) == pytest.approx(expected)
    # Huge logits stay finite and exact (log-softmax, no clipping).
    assert ev.negative_log_likelihood([1], [[1000.0, 0.0]]) == pytest.approx(1000.0)
    # A zero probability is clipped at epsilon.
    assert ev.negative_log_likelihood([1], [[1.0, 0.0]]) == pytest.approx(-np.log(1e-12))
    assert np.isnan(ev.negative_log_likelihood(np.zeros(0, int), np.zeros((0, 2))))


def test_evaluation_report_hand_computed():
    train_counts = [300, 150, 50, 30, 10, 5]
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])  # class 5 absent from the test set
    preds = np.array([0, 1, 1, 1, 0, 2, 0, 0, 4])
    logits = 4.0 * np.eye(6)[preds]
    names = ["a", "b", "c", "d", "e", "f"]
    report = ev.evaluation_report(labels, logits, train_counts, class_names=names)
    assert report["top1"] == pytest.approx(5 / 9)
    assert report["rule"] == "count" and list(report["splits"]) == ["count"]
    count = report["splits"]["count"]
    assert count["rule"] == "count (many > 100, few < 20)"
    assert (count["many"], count["medium"], count["few"]) == pytest.approx((3 / 5, 1 / 3, 1.0))
    assert report["many"] == count["many"]
    assert count["classes"] == {"many": [0, 1], "medium": [2, 3], "few": [4, 5]}
    acc = report["per_class_accuracy"]
    assert acc[:5] == pytest.approx([0.5, 2 / 3, 1.0, 0.0, 1.0]) and acc[5] is None
    assert report["per_class"][5] == {
        "class": 5, "name": "f", "train_count": 5, "test_count": 0, "accuracy": None
    }
    assert report["per_class"][1]["test_count"] == 3
    probs = ev.softmax(logits)
    assert report["ece"] == pytest.approx(ev.expected_calibration_error(labels, probs))
    assert report["nll"] == pytest.approx(ev.negative_log_likelihood(labels, logits, True))
    assert report["num_bins"] == 15 and report["num_examples"] == 9 and report["num_classes"] == 6
    assert sum(report["reliability"]["count"]) == 9
    # Valid strict JSON: NaN became None.
    json.dumps(report, allow_nan=False)


def test_evaluation_report_names_both_rules():
    counts = long_tailed_counts(5000, 10, 100)
    labels = np.repeat(np.arange(10), 3)
    logits = np.eye(10)[labels] * 3
    report = ev.evaluation_report(labels, logits, counts, rule="cifar10")
    assert list(report["splits"]) == ["count", "cifar10"]
    assert report["rule"] == "cifar10"
    assert report["splits"]["cifar10"]["rule"] == "index (cifar10)"
    assert report["splits"]["count"]["rule"].startswith("count")
    assert report["splits"]["count"]["few"] is None  # no class under 20 images
    assert report["top1"] == 1.0 and report["per_class"][0]["name"] == "0"
    report = ev.evaluation_report(labels, logits, counts, rule="index", ranges=[(0, 5), (5, 8), (8, 10)])
    assert report["splits"]["index"]["num_classes"] == {"many": 5, "medium": 3, "few": 2}


def test_evaluation_report_errors():
    with pytest.raises(ValueError, match="train_counts"):
        ev.evaluation_report([0], [[1.0, 0.0]], [5, 5, 5])
    with pytest.raises(ValueError, match="class_names"):
        ev.evaluation_report([0], [[1.0, 0.0]], [5, 5], class_names=["x"])
    with pytest.raises(ValueError, match="rule"):
        ev.evaluation_report([0], [[1.0, 0.0]], [5, 5], rule="median")
