"""Shared test setup.

The Keras backend is fixed when keras is first imported, so each backend runs
in its own pytest process: `python tools/run_tests.py` runs the whole suite on
TensorFlow and the tests marked `multibackend` on JAX and PyTorch.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As `import lcreg_keras` sets it: the tests run the kernels users get.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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


# ---------------------------------------------------------------------------
# Image data written to disk (tests of lcreg_keras.data and the recipe loaders).


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A miniature ImageNet-LT: images, ImageNet_LT_train.txt / _test.txt."""
    from tests import fakes

    root = str(tmp_path_factory.mktemp("imagenet_lt"))
    train_rel, train_y = fakes.fake_image_tree(root, fakes.COUNTS, "train", "ImageNet_LT_train.txt")
    test_rel, test_y = fakes.fake_image_tree(root, [2] * 5, "val", "ImageNet_LT_test.txt")
    return {
        "root": root,
        "train": ([os.path.join(root, p) for p in train_rel], train_y),
        "test": ([os.path.join(root, p) for p in test_rel], test_y),
    }


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    """The files ImageNet is known for, plus broken ones."""
    folder = tmp_path_factory.mktemp("odd")
    rows, cols = np.mgrid[0:40, 0:52]
    image = np.stack([rows * 5, cols * 4, 255 - rows * 3], axis=-1).astype(np.uint8)
    image[:, :26] = (200, 30, 60)  # a flat half with a known colour
    files = {}

    def put(name, content):
        path = str(folder / name)
        with open(path, "wb") as f:
            f.write(content)
        files[name] = path

    import tensorflow as tf

    jpeg = tf.io.encode_jpeg(image, quality=95).numpy()
    put("good.jpg", jpeg)
    put("png_named.jpg", tf.io.encode_png(image).numpy())
    put("grey.jpg", tf.io.encode_jpeg(image[..., :1], quality=95).numpy())
    put("trailing.jpg", jpeg + b"\0" * 6000)  # data after the end marker
    put("truncated.jpg", jpeg[: len(jpeg) // 2])
    put("no_end.jpg", jpeg[:-2])
    put("text.jpg", b"<html>not found</html>")
    put("empty.jpg", b"")
    try:
        from PIL import Image
    except ImportError:
        pass
    else:
        Image.fromarray(image).convert("CMYK").save(str(folder / "cmyk.jpg"), quality=95)
        files["cmyk.jpg"] = str(folder / "cmyk.jpg")
    files["missing.jpg"] = str(folder / "missing.jpg")
    return files, image


@pytest.fixture
def cifar_offline(monkeypatch, tmp_path):
    from lcreg_keras.data import cifar

    monkeypatch.setattr(cifar, "SEARCH_PATHS", lambda: [str(tmp_path / "keras-cache")])
    monkeypatch.setattr(cifar, "ALLOW_DOWNLOAD", False)

    def no_download(num_classes):
        raise AssertionError("tests must never download")

    monkeypatch.setattr(cifar, "_download", no_download)
    return tmp_path / "keras-cache"
