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

if os.environ["KERAS_BACKEND"] == "jax":
    # JAX compiles every new shape of every op; keep the compiled code across
    # tests and runs (the suite builds the same small shapes many times).
    import jax  # noqa: E402

    # One cache folder per pytest-xdist worker: two processes never write
    # the same entry at once.
    _cache = os.environ.get("LCREG_JAX_CACHE", os.path.join("/tmp", "lcreg-jax-cache"))
    jax.config.update(
        "jax_compilation_cache_dir",
        os.path.join(_cache, os.environ.get("PYTEST_XDIST_WORKER", "main")),
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
