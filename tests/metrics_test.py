"""Keras metrics (lcreg_keras.evaluation.metrics) against the NumPy functions, on every backend."""

import keras
import numpy as np
import pytest

from lcreg_keras import evaluation as ev
from lcreg_keras.evaluation.metrics import ExpectedCalibrationError
from lcreg_keras.evaluation.metrics import SplitAccuracy

pytestmark = pytest.mark.multibackend


def feed(metric, labels, scores, batch=7, sample_weight=None):
    for start in range(0, len(labels), batch):
        sw = None if sample_weight is None else sample_weight[start : start + batch]
        metric.update_state(labels[start : start + batch], scores[start : start + batch], sw)
    return float(keras.ops.convert_to_numpy(metric.result()))


def test_ece_matches_numpy_over_batches(rng):
    logits = (rng.normal(size=(101, 5)) * 2).astype("float32")
    labels = rng.integers(0, 5, 101)
    probs = ev.softmax(logits).astype("float32")
    expected = ev.expected_calibration_error(labels, probs)
    assert feed(ExpectedCalibrationError(), labels, probs) == pytest.approx(expected, abs=1e-5)
    from_logits = ExpectedCalibrationError(num_bins=15, from_logits=True)
    assert feed(from_logits, labels, logits) == pytest.approx(expected, abs=1e-5)
    for num_bins in (1, 4, 10):
        expected = ev.expected_calibration_error(labels, probs, num_bins)
        metric = ExpectedCalibrationError(num_bins=num_bins)
        assert feed(metric, labels, probs) == pytest.approx(expected, abs=1e-5)
    bins = metric.reliability()
    reference = ev.reliability_bins(labels, probs, 10)
    np.testing.assert_allclose(bins["count"], reference["count"])
    np.testing.assert_allclose(bins["accuracy"], reference["accuracy"], atol=1e-6)
    np.testing.assert_allclose(bins["confidence"], reference["confidence"], atol=1e-6)


def test_ece_hand_computed_cases():
    # Perfectly calibrated: 0.
    probs = np.array([[0.8, 0.2]] * 10 + [[0.625, 0.375]] * 8, "float32")
    labels = np.array([0] * 8 + [1] * 2 + [0] * 5 + [1] * 3)
    assert feed(ExpectedCalibrationError(), labels, probs) == pytest.approx(0.0, abs=1e-6)
    # Overconfident: 0.9 everywhere, 60 % right -> 0.3.
    probs = np.array([[0.9, 0.1]] * 10, "float32")
    labels = np.array([0] * 6 + [1] * 4)
    assert feed(ExpectedCalibrationError(), labels, probs) == pytest.approx(0.3, abs=1e-6)
    # Edge 0.5 belongs to bin (0.25, 0.5]; ties pick class 0 as NumPy does.
    metric = ExpectedCalibrationError(num_bins=4)
    metric.update_state(np.array([[1], [0]]), np.array([[0.5, 0.5], [0.5, 0.5]], "float32"))
    assert keras.ops.convert_to_numpy(metric.bin_counts).tolist() == [0, 2, 0, 0]
    assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx(0.0)


def test_ece_sample_weight_equals_repetition(rng):
    probs = ev.softmax(rng.normal(size=(20, 3)) * 2).astype("float32")
    labels = rng.integers(0, 3, 20)
    weights = rng.integers(0, 3, 20).astype("float32")
    repeated = np.repeat(np.arange(20), weights.astype(int))
    expected = ev.expected_calibration_error(labels[repeated], probs[repeated])
    metric = ExpectedCalibrationError()
    assert feed(metric, labels, probs, sample_weight=weights) == pytest.approx(expected, abs=1e-5)
    metric.reset_state()
    assert float(keras.ops.convert_to_numpy(metric.result())) == 0.0
    assert float(keras.ops.convert_to_numpy(keras.ops.sum(metric.bin_counts))) == 0.0


@pytest.mark.parametrize("rule", ["count", "cifar10"])
def test_split_accuracy_matches_numpy(rng, rule):
    counts = [500, 300, 150, 101, 100, 60, 20, 19, 5, 2]
    labels = rng.integers(0, 10, 200)
    labels = labels[labels != 6]  # class 6 absent from the test set
    logits = rng.normal(size=(len(labels), 10)).astype("float32")
    logits[np.arange(len(labels)) % 3 == 0, :] = 0.0  # ties -> class 0
    logits[labels == 0, 0] += 1.0
    expected = ev.split_accuracy(labels, logits, counts, rule=rule)
    for split in ev.SPLITS:
        metric = SplitAccuracy(counts, split=split, rule=rule)
        assert metric.name == f"{split}_accuracy"
        assert feed(metric, labels, logits) == pytest.approx(expected[split], abs=1e-6)


def test_split_accuracy_hand_computed_and_empty():
    counts = [300, 150, 50, 30, 10, 5]
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])
    preds = np.array([0, 1, 1, 1, 0, 2, 0, 0, 4])
    logits = np.eye(6, dtype="float32")[preds]
    values = {s: feed(SplitAccuracy(counts, split=s), labels, logits) for s in ev.SPLITS}
    assert values == pytest.approx({"many": 3 / 5, "medium": 1 / 3, "few": 1.0})
    # A split without classes (or without test samples) is NaN, not 0.
    metric = SplitAccuracy([500, 400, 300], split="few")
    assert metric.split_class_ids.size == 0
    assert np.isnan(feed(metric, np.array([0, 1]), np.eye(3, dtype="float32")[:2]))
    # Sample weights: only in-split samples count.
    metric = SplitAccuracy(counts, split="many")
    metric.update_state(labels, logits, np.array([1, 0, 1, 1, 1, 5, 5, 5, 5], "float32"))
    # in split: labels 0, 0, 1, 1, 1 weighted 1, 0, 1, 1, 1; right: 1st, 3rd, 4th.
    assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx(3 / 4)


def test_metric_errors():
    with pytest.raises(ValueError, match="split"):
        SplitAccuracy([10, 10], split="tail")
    with pytest.raises(ValueError, match="rule"):
        SplitAccuracy([10, 10], rule="median")
    with pytest.raises(ValueError, match="num_bins"):
        ExpectedCalibrationError(num_bins=0)
    with pytest.raises(ValueError, match="classes"):
        SplitAccuracy([10, 10, 10]).update_state(np.array([0]), np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="one-hot"):
        ExpectedCalibrationError().update_state(np.eye(3), np.eye(3, dtype="float32"))


def test_serialization_round_trip():
    for metric in (
        ExpectedCalibrationError(num_bins=10, from_logits=True, name="cal"),
        SplitAccuracy([500, 50, 5], split="medium", many=60, few=6),
        SplitAccuracy(list(range(100, 0, -10)), split="few", rule="index",
                      ranges=[(0, 3), (3, 7), (7, 10)]),
    ):
        config = keras.saving.serialize_keras_object(metric)
        restored = keras.saving.deserialize_keras_object(config)
        assert type(restored) is type(metric)
        assert restored.get_config() == metric.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(SplitAccuracy([500, 50, 5], split="medium", many=60, few=6))
    )
    assert restored.split_class_ids.tolist() == [1]


def test_metrics_in_compile_and_evaluate(rng):
    counts = [500, 200, 60, 30, 10]
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.integers(0, 5, 64)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[ExpectedCalibrationError(from_logits=True)]
        + [SplitAccuracy(counts, split=s) for s in ev.SPLITS],
    )
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    logits = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    assert logs["ece"] == pytest.approx(ev.expected_calibration_error(y, logits, from_logits=True), abs=1e-5)
    expected = ev.split_accuracy(y, logits, counts)
    for split in ev.SPLITS:
        assert logs[f"{split}_accuracy"] == pytest.approx(expected[split], abs=1e-6)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # usable in training too


def test_metrics_with_lcreg_model(rng):
    from tests.tiny_model import build_tiny_model
    from tests.fakes import fake_images

    images, labels = fake_images(40)
    x = (images / 255.0 - 0.3).astype("float32")
    counts = [900, 500, 300, 150, 101, 90, 50, 20, 19, 5]
    model = build_tiny_model()
    model.compile(
        optimizer="sgd",
        metrics=[ExpectedCalibrationError(from_logits=True), SplitAccuracy(counts, split="few")],
    )
    logs = model.evaluate(x, labels, batch_size=20, verbose=0, return_dict=True)
    logits = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    assert logs["ece"] == pytest.approx(
        ev.expected_calibration_error(labels, logits, from_logits=True), abs=1e-4
    )
    assert logs["few_accuracy"] == pytest.approx(
        ev.split_accuracy(labels, logits, counts)["few"], abs=1e-6
    )
