"""The online covariance estimator (ISDA's update) against NumPy's covariance."""

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.layers import LatentCovariance
from tests.testing import run_layer_test

pytestmark = pytest.mark.multibackend


def _feed(layer, batches):
    for x, y in batches:
        layer(x.astype("float32"), y.astype("int32"), training=True)


def _uneven_batches(rng, num_classes=4, dim=5):
    """Batches of 1 to 40 samples; class 3 is missing from most of them."""
    batches = []
    for size in (7, 1, 40, 3, 19, 2):
        labels = rng.integers(0, num_classes - 1, size=size)
        if size in (40, 2):
            labels[: size // 2] = num_classes - 1
        # Offset means keep the float32 cancellation honest.
        x = rng.normal(size=(size, dim)) * (1 + labels[:, None]) + 5.0 * labels[:, None]
        batches.append((x, labels))
    return batches


@pytest.mark.parametrize("mode", ["full", "diagonal"])
def test_matches_numpy_covariance_of_all_samples(mode, rng):
    batches = _uneven_batches(rng)
    layer = LatentCovariance(num_classes=5, mode=mode)  # class 4 is never seen
    _feed(layer, batches)
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    cov = ops.convert_to_numpy(layer.covariance)
    mean = ops.convert_to_numpy(layer.mean)
    count = ops.convert_to_numpy(layer.count)
    for c in range(4):
        xc = x[y == c]
        ref = np.cov(xc, rowvar=False, bias=True)
        expected = ref if mode == "full" else np.diag(ref)
        np.testing.assert_allclose(cov[c], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(mean[c], xc.mean(0), rtol=1e-5, atol=1e-5)
        assert count[c] == len(xc)
    # A class never seen keeps zero state.
    assert count[4] == 0 and not cov[4].any() and not mean[4].any()


def test_one_sample_per_class_per_step(rng):
    """LCReg's use: each step brings the M latent vectors, label m each."""
    layer = LatentCovariance(num_classes=3)
    history = [rng.normal(size=(3, 4)) for _ in range(25)]
    for latents in history:
        layer(latents.astype("float32"), np.arange(3), training=True)
    stacked = np.stack(history)  # (steps, M, D)
    cov = ops.convert_to_numpy(layer.covariance)
    for m in range(3):
        np.testing.assert_allclose(
            cov[m], np.cov(stacked[:, m], rowvar=False, bias=True), rtol=1e-4, atol=1e-5
        )


def test_no_update_outside_training(rng):
    layer = LatentCovariance(num_classes=2)
    x = rng.normal(size=(6, 3)).astype("float32")
    y = np.array([0, 1, 0, 1, 0, 1])
    layer(x, y, training=True)
    before = ops.convert_to_numpy(layer.covariance).copy()
    out = layer(x * 10, y, training=False)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), before)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.covariance), before)
    assert list(ops.convert_to_numpy(layer.count)) == [3, 3]


def test_state_is_float32_non_trainable_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = LatentCovariance(num_classes=2, mode="diagonal")
        layer(np.ones((2, 3), "float16"), np.array([0, 1]), training=True)
        assert layer.covariance.dtype == "float32" and layer.mean.dtype == "float32"
        assert not layer.trainable_weights and len(layer.non_trainable_weights) == 3
        assert "int" in str(layer.count.dtype)
    finally:
        keras.config.set_dtype_policy("float32")


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        LatentCovariance(2, mode="sparse")
    with pytest.raises(ValueError, match="num_classes"):
        LatentCovariance(0)
    with pytest.raises(ValueError, match="samples"):
        LatentCovariance(2)(np.zeros((2, 3, 4), "float32"), np.zeros(2), training=True)


def test_serialization():
    layer = LatentCovariance(7, mode="diagonal", name="cov")
    clone = LatentCovariance.from_config(layer.get_config())
    assert (clone.num_classes, clone.mode, clone.name) == (7, "diagonal", "cov")


@pytest.mark.parametrize("mode", ["full", "diagonal"])
def test_latent_covariance_layer_harness(mode, rng):
    x = rng.normal(size=(6, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2], "int32")
    run_layer_test(
        LatentCovariance, dict(num_classes=3, mode=mode), (x, y),
        expected_output_shape=(3, 4, 4) if mode == "full" else (3, 4),
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=3,
    )
