"""Tests of lcreg_keras.evaluation (accuracy and many / medium / few splits)."""

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
