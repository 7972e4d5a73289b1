"""Export for serving (lcreg_keras.serving.export, tools/export.py) and safe-mode loading.

The SavedModel is a TensorFlow artifact: these tests run on the TensorFlow
backend, and the JAX- and PyTorch-trained cases train in a child process on
that backend, save `.keras`, and export it with tools/export.py.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lcreg_keras.data import transforms
from lcreg_keras.serving import export
from tests.tiny_model import ROOT
from tests.tiny_model import build_tiny_model
from tests.fakes import fake_images
from tests.tiny_model import train_tiny_model
from tests.tiny_model import train_tiny_model_subprocess

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow", reason="SavedModel export runs on TensorFlow"
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_run")
    train_tiny_model(folder)
    return folder


def reference_probs(model, images, prep):
    """Probabilities of the Keras model on images preprocessed in NumPy.

    The resize is tf.image.resize (bilinear, antialiased) as in the SavedModel
    and the evaluation pipeline of lcreg_keras.data.pipelines; rounding,
    crop and normalisation are NumPy.
    """
    height, width, _ = prep["input_shape"]
    x = images.astype(np.float32)
    h, w = x.shape[1:3]
    if prep["resize"] is None:
        if (h, w) != (height, width):
            x = tf.image.resize(x, (height, width), antialias=True).numpy()
    else:
        size = prep["resize"]
        if h <= w:
            new_h, new_w = size, int(size * w / h)
        else:
            new_h, new_w = int(size * h / w), size
        x = tf.image.resize(x, (new_h, new_w), antialias=True).numpy()
        top, left = int(round((new_h - height) / 2)), int(round((new_w - width) / 2))
        x = x[:, top : top + height, left : left + width]
    x = np.clip(np.round(x), 0, 255)
    x = (x / 255.0 - np.array(prep["mean"])) / np.array(prep["std"])
    logits = model.predict(x.astype(np.float32), verbose=0)
    return np.asarray(keras.ops.softmax(logits)), np.asarray(logits)


def serving_fn(export_dir):
    return tf.saved_model.load(str(export_dir)).signatures["serving_default"]


def test_keras_file_loads_in_safe_mode(tiny_run):
    model = keras.saving.load_model(str(tiny_run / "last.keras"), safe_mode=True)
    images, _ = fake_images(8)
    prep = json.loads((tiny_run / "preprocessing.json").read_text())
    probs, _ = reference_probs(model, images, prep)
    np.testing.assert_allclose(probs, np.load(tiny_run / "probs.npy"), atol=1e-5)


def test_export_round_trip_two_sizes(tiny_run, tmp_path):
    model = keras.saving.load_model(str(tiny_run / "last.keras"), safe_mode=True)
    prep = json.loads((tiny_run / "preprocessing.json").read_text())
    out = export.export_serving(model, tmp_path / "export", prep)
    assert os.path.exists(os.path.join(out, "saved_model.pb"))
    serve = serving_fn(out)
    spec = serve.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 1]
    assert set(serve.structured_outputs) == {"probabilities", "logits"}
    for size in ((28, 28), (41, 35)):
        images = np.random.default_rng(1).integers(0, 256, (3,) + size + (1,)).astype(np.uint8)
        outputs = serve(images=tf.constant(images))
        probs, logits = reference_probs(model, images, prep)
        assert outputs["probabilities"].shape == (3, 10)
        np.testing.assert_allclose(outputs["probabilities"].numpy(), probs, atol=1e-4)
        np.testing.assert_allclose(outputs["logits"].numpy(), logits, atol=1e-3)
        np.testing.assert_allclose(outputs["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


def test_export_resize_then_centre_crop_rgb(tmp_path):
    # An untrained RGB model; resize the shorter side to 36, crop 32 x 32.
    model = build_tiny_model(input_shape=(32, 32, 3))
    model.build((None, 32, 32, 3))
    prep = {"input_shape": [32, 32, 3], "mean": [0.5, 0.4, 0.3],
            "std": [0.25, 0.2, 0.3], "resize": 36}
    export.export_serving(model, tmp_path / "export", prep)
    serve = serving_fn(tmp_path / "export")
    assert serve.structured_input_signature[1]["images"].shape.as_list() == [None, None, None, 3]
    rng = np.random.default_rng(2)
    for size in ((45, 60), (50, 37), (36, 36)):
        images = rng.integers(0, 256, (2,) + size + (3,)).astype(np.uint8)
        probs, _ = reference_probs(model, images, prep)
        got = serve(images=tf.constant(images))["probabilities"].numpy()
        np.testing.assert_allclose(got, probs, atol=1e-4)
    # The preprocessing travels with the SavedModel.
    saved = json.loads((tmp_path / "export" / "preprocessing.json").read_text())
    assert saved["resize"] == 36 and saved["input_shape"] == [32, 32, 3]


def test_preprocess_matches_numpy_crop():
    prep = {"input_shape": [4, 4, 1], "mean": [0.0], "std": [1.0], "resize": 4}
    images = np.arange(4 * 8, dtype=np.uint8).reshape(1, 4, 8, 1)
    got = export.preprocess(images, prep).numpy()
    np.testing.assert_allclose(got, images[:, :, 2:6] / 255.0, atol=1e-7)


def test_check_preprocessing_errors(tmp_path):
    good = {"input_shape": [28, 28, 1], "mean": [0.3], "std": [0.3], "resize": None}
    path = tmp_path / "preprocessing.json"
    path.write_text(json.dumps(good))
    assert export.check_preprocessing(str(path))["mean"] == [0.3]
    assert export.check_preprocessing(dict(good, mean=0.3, std=[0.3]))["std"] == [0.3]
    cases = [
        ({"input_shape": [28, 28, 1]}, "lacks"),
        (dict(good, input_shape=[28, 28]), "input_shape"),
        (dict(good, mean=[0.1, 0.2]), "mean"),
        (dict(good, mean=[125.0]), "pixel scale"),
        (dict(good, std=[0.0]), "positive"),
        (dict(good, resize=20), "resize"),
    ]
    for prep, match in cases:
        with pytest.raises(ValueError, match=match):
            export.check_preprocessing(prep)
    with pytest.raises(ValueError, match="uint8"):
        export.preprocess(np.zeros((1, 28, 28, 1), np.float32), good)
    with pytest.raises(ValueError, match="shape"):
        export.preprocess(np.zeros((1, 28, 28, 3), np.uint8), good)


def test_export_rejects_a_preprocessing_of_another_shape(tmp_path):
    model = build_tiny_model()
    model.build((None, 28, 28, 1))
    prep = {"input_shape": [32, 32, 1], "mean": [0.3], "std": [0.3], "resize": None}
    with pytest.raises(ValueError, match="input shape"):
        export.export_serving(model, tmp_path / "export", prep)


def run_tool(*args, backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def check_export_matches_training(folder, export_dir):
    """Serving raw images gives the probabilities the training backend computed."""
    images, _ = fake_images(8)
    outputs = serving_fn(export_dir)(images=tf.constant(images))
    np.testing.assert_allclose(
        outputs["probabilities"].numpy(), np.load(folder / "probs.npy"), atol=1e-4
    )


@pytest.mark.slow
def test_export_tool_tensorflow_trained(tiny_run, tmp_path):
    proc = run_tool(f"--model={tiny_run / 'last.keras'}", f"--out={tmp_path / 'export'}",
                    backend="tensorflow")
    assert "serving_default" in proc.stdout and "re-running" not in proc.stderr
    check_export_matches_training(tiny_run, tmp_path / "export")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_export_tool_for_a_model_trained_on(backend, tmp_path):
    folder = tmp_path / f"trained_on_{backend}"
    train_tiny_model_subprocess(folder, backend)
    proc = run_tool(
        f"--model={folder / 'last.keras'}",
        f"--preprocessing={folder / 'preprocessing.json'}",
        f"--out={tmp_path / 'export'}",
        backend=backend,
    )
    assert f"KERAS_BACKEND='{backend}'" in proc.stderr
    assert "runs again with KERAS_BACKEND=tensorflow" in proc.stderr
    assert "(backend tensorflow)" in proc.stdout
    check_export_matches_training(folder, tmp_path / "export")


def test_export_serving_refuses_other_backends(tmp_path):
    code = (
        "from lcreg_keras.serving import export\n"
        "try:\n"
        "    export.export_serving(None, %r, {})\n"
        "except RuntimeError as e:\n"
        "    print('refused:', e)\n"
    ) % str(tmp_path / "x")
    env = dict(os.environ, KERAS_BACKEND="jax")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "refused:" in proc.stdout and "tools/export.py" in proc.stdout, proc.stderr[-2000:]


def test_export_tool_usage_errors(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export.py"),
         f"--model={tmp_path / 'missing.keras'}", f"--out={tmp_path / 'out'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0 and "preprocessing" in proc.stderr


def test_preprocess_matches_the_evaluation_pipeline():
    # The SavedModel must see what the test batches of list datasets showed
    # the model: resize the shorter side, centre crop, round, normalise.
    pipeline = transforms
    prep = {"input_shape": [32, 32, 3], "mean": [0.5, 0.4, 0.3],
            "std": [0.25, 0.2, 0.3], "resize": 36}
    rng = np.random.default_rng(3)
    for size in ((45, 60), (61, 37)):
        image = rng.integers(0, 256, size + (3,)).astype(np.uint8)
        expected = pipeline.center_crop(
            pipeline.resize_shorter_side(tf.cast(image, tf.float32), 36), 32
        )
        expected = np.clip(np.round(expected.numpy()), 0, 255)
        expected = (expected / 255.0 - np.array(prep["mean"])) / np.array(prep["std"])
        got = export.preprocess(image[None], prep).numpy()[0]
        np.testing.assert_allclose(got, expected, atol=1e-5)
