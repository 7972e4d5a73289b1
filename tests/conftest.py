"""Shared test setup.

The Keras backend is fixed when keras is first imported, so each backend runs
in its own pytest process: `python tools/run_tests.py` runs the whole suite on
TensorFlow and the tests marked `multibackend` on JAX and PyTorch.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
