"""The generic heads `LCRegClassifier` and `CosineClassifier` through the shared layer harness."""

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.layers import CosineClassifier
from lcreg_keras.layers import LCRegClassifier
from tests.testing import run_layer_test

pytestmark = pytest.mark.multibackend


def test_lcreg_classifier_layer_harness(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = run_layer_test(
        LCRegClassifier, dict(units=5, gradient_scale=0.5), x,
        expected_output_shape=(4, 5),
        expected_num_trainable_weights=2, expected_num_non_trainable_weights=1,
    )
    # The logits are x W + b (the scaling starts at ones).
    kernel, bias = (ops.convert_to_numpy(v) for v in (layer.kernel, layer.bias))
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), x @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_cosine_classifier_layer_harness(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = run_layer_test(
        CosineClassifier, dict(units=5, cosine_scale=7.0), x,
        expected_output_shape=(4, 5),
        expected_num_trainable_weights=1, expected_num_non_trainable_weights=2,
    )
    kernel = ops.convert_to_numpy(layer.kernel)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (kernel / np.linalg.norm(kernel, axis=0, keepdims=True))
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), 7.0 * cos, rtol=1e-4, atol=1e-5)
    assert keras.saving.get_registered_name(CosineClassifier) == "lcreg_keras>CosineClassifier"
