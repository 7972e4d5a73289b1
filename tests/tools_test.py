"""The evaluation and latent-map tools, the pictures (lcreg_keras.evaluation.plots) and LatentUsageImages.

The command-line tools run in child processes on a tiny trained model and
fake Fashion-MNIST files; the pictures' functions run in this process (the
latent ones on every backend).
"""

import csv
import json
import os
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest

from lcreg_keras import evaluation as ev
from lcreg_keras.evaluation import plots
from lcreg_keras.training.latent_images import LatentUsageImages
from tests.fakes import fake_fashion_mnist
from tests.tiny_model import ROOT
from tests.tiny_model import build_tiny_model
from tests.fakes import fake_images
from tests.tiny_model import train_tiny_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                 "Shirt", "Sneaker", "Bag", "Ankle boot"]


def png_size(path, min_bytes=5000):
    """(width, height) of a valid, non-trivial PNG file."""
    data = open(path, "rb").read()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100
    return width, height


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tools")
    if keras.config.backend() == "tensorflow":
        train_tiny_model(folder / "run")
    fake_fashion_mnist(folder / "fashion", n_train=9000, n_test=300)
    return folder


def run_tool(args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


tf_only = pytest.mark.skipif(
    keras.config.backend() != "tensorflow", reason="the tools' tests run on TensorFlow"
)


# ---------------------------------------------------------------------------
# tools/evaluate.py and python -m lcreg_keras.recipes.evaluate
# ---------------------------------------------------------------------------


def check_evaluation_outputs(out, num_examples):
    report = json.loads((out / "report.json").read_text())
    for key in ("top1", "many", "medium", "few", "rule", "splits", "ece", "nll",
                "num_bins", "per_class_accuracy", "per_class", "reliability", "model",
                "recipe", "dataset", "backend"):
        assert key in report, key
    assert report["num_examples"] == num_examples and report["num_classes"] == 10
    assert report["num_bins"] == 15 and 0 <= report["ece"] <= 1 and report["nll"] > 0
    assert report["recipe"] == "fashion_mnist_lt" and report["dataset"] == "fashion_mnist_lt"
    # The recipe's rule (MiSLAS's CIFAR-10 ranges) and the count rule, named.
    assert report["rule"] == "cifar10"
    assert report["splits"]["cifar10"]["rule"] == "index (cifar10)"
    assert report["splits"]["count"]["rule"] == "count (many > 100, few < 20)"
    assert report["splits"]["cifar10"]["num_classes"] == {"many": 3, "medium": 4, "few": 3}
    assert sum(report["reliability"]["count"]) == num_examples

    with open(out / "per_class.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert list(rows[0]) == ["class", "name", "train_count", "test_count", "accuracy"]
    assert [r["name"] for r in rows] == FASHION_NAMES
    counts = [int(r["train_count"]) for r in rows]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    assert sum(int(r["test_count"]) for r in rows) == num_examples
    # top-1 is the test-count-weighted mean of the per-class accuracies.
    weighted = sum(float(r["accuracy"]) * int(r["test_count"]) for r in rows) / num_examples
    assert report["top1"] == pytest.approx(weighted, abs=1e-5)
    for name in ("reliability.png", "accuracy_by_frequency.png"):
        png_size(out / name)
    return report


@tf_only
def test_evaluate_tool_writes_everything(workspace, tmp_path):
    out = tmp_path / "eval"
    proc = run_tool([
        "tools/evaluate.py", f"--model={workspace / 'run' / 'last.keras'}",
        "--recipe=fashion_mnist_lt", f"--data_dir={workspace / 'fashion'}", "--smoke",
        f"--out={out}",
    ])
    assert "[index (cifar10)]" in proc.stdout and "ECE (15 bins)" in proc.stdout
    report = check_evaluation_outputs(out, 300)
    assert report["backend"] == "tensorflow" and report["smoke"] is True


@tf_only
@pytest.mark.slow
def test_evaluate_module_with_max_test_examples(workspace, tmp_path):
    out = tmp_path / "eval"
    run_tool([
        "-m", "lcreg_keras.recipes.evaluate", f"--model={workspace / 'run' / 'last.keras'}",
        "--recipe=fashion_mnist_lt", f"--data_dir={workspace / 'fashion'}", "--smoke",
        "--max_test_examples=120", f"--out={out}", "--verbose=0",
    ])
    check_evaluation_outputs(out, 120)


@tf_only
def test_evaluate_model_in_process(workspace, tmp_path):
    from lcreg_keras.evaluation.evaluate import evaluate_model
    from lcreg_keras.evaluation.evaluate import summary
    from lcreg_keras.serving.trained_run import load_model

    model = load_model(str(workspace / "run" / "last.keras"))
    images, labels = fake_images(60)
    prep = json.loads((workspace / "run" / "preprocessing.json").read_text())
    x = ((images / 255.0 - prep["mean"]) / prep["std"]).astype("float32")
    counts = np.array([900, 500, 300, 150, 101, 90, 50, 20, 19, 5])
    out = tmp_path / "eval"
    report = evaluate_model(model, x, labels, counts, out, rule="cifar10",
                            class_names=FASHION_NAMES, verbose=0)
    logits = np.asarray(model.predict(x, verbose=0))
    assert report["top1"] == pytest.approx(ev.top1_accuracy(labels, logits))
    assert report["ece"] == pytest.approx(
        ev.expected_calibration_error(labels, logits, from_logits=True), abs=1e-6
    )
    check_lines = summary(report, name="toy")
    assert len(check_lines) == 3 and "[count (many > 100, few < 20)]" in check_lines[0]
    assert {p.name for p in out.iterdir()} == {
        "report.json", "per_class.csv", "reliability.png", "accuracy_by_frequency.png"
    }
    with pytest.raises(ValueError, match="classes"):
        evaluate_model(model, x, labels, counts[:5], tmp_path / "bad", verbose=0)
    with pytest.raises(ValueError, match="test labels"):
        evaluate_model(model, x, labels[:10], counts, tmp_path / "bad", verbose=0)


@tf_only
def test_evaluate_errors(tmp_path):
    from lcreg_keras.recipes.evaluate import load_recipe_config
    from lcreg_keras.serving.trained_run import load_model

    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_model(str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match="No recipe"):
        load_recipe_config("no_such_recipe")
    assert load_recipe_config("fashion_mnist_lt").dataset == "fashion_mnist_lt"


# ---------------------------------------------------------------------------
# tools/latent_maps.py
# ---------------------------------------------------------------------------


@tf_only
def test_latent_maps_tool(workspace, tmp_path):
    out = tmp_path / "latent_maps.png"
    usage = tmp_path / "usage.png"
    proc = run_tool([
        "tools/latent_maps.py", f"--model={workspace / 'run' / 'last.keras'}",
        "--recipe=fashion_mnist_lt", f"--data_dir={workspace / 'fashion'}", "--smoke",
        "--num_images=4", f"--out={out}", f"--usage_out={usage}",
    ])
    assert "4 images, M=8 latents, maps 7x7" in proc.stdout
    width, height = png_size(out, min_bytes=20000)
    assert height > 400 and width > 600  # 4 rows; image, histogram, 3 maps
    png_size(usage)


@tf_only
def test_pick_examples_spans_head_to_tail():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import latent_maps
    finally:
        sys.path.pop(0)

    class Data:
        test_labels = np.array([3, 1, 0, 2, 3, 1, 0, 2])
        train_counts = np.array([10, 500, 50, 5])

    indices = latent_maps.pick_examples(Data, 3)
    # Classes by count: 1, 2, 0, 3; three spread over them: 1, 2 or 0, 3.
    picked = [int(Data.test_labels[i]) for i in indices]
    assert picked[0] == 1 and picked[-1] == 3 and len(set(picked)) == 3
    assert len(latent_maps.pick_examples(Data, 6)) == 6


# ---------------------------------------------------------------------------
# lcreg_keras.evaluation.plots and LatentUsageImages (latent pictures on every backend)
# ---------------------------------------------------------------------------


@pytest.fixture
def tiny_model():
    model = build_tiny_model()
    model.build((None, 28, 28, 1))
    return model


@pytest.mark.multibackend
def test_latent_weights_shapes_and_values(tiny_model):
    images, _ = fake_images(5)
    x = (images / 255.0 - 0.3).astype("float32")
    hist, maps = plots.latent_weights(tiny_model, x, batch_size=2)
    assert hist.shape == (5, 8) and maps.shape == (5, 7, 7, 8)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)  # softmax over M (Eq. 2)
    np.testing.assert_allclose(hist.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(hist, maps.mean(axis=(1, 2)), atol=1e-6)
    # Eq. 1-2 by hand from the backbone's features.
    features = keras.ops.convert_to_numpy(tiny_model.backbone(x, training=False))
    pool = tiny_model.latent_pool
    encoded = keras.ops.convert_to_numpy(pool.encoded_latents())
    z = np.einsum("bhwd,md->bhwm", features, encoded) / np.sqrt(features.shape[-1])
    s = 1 / (1 + np.exp(-z))
    s_hat = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    np.testing.assert_allclose(maps, s_hat, atol=1e-5)
    # Raw uint8 images with a preprocessing dict give the same.
    prep = {"input_shape": [28, 28, 1], "mean": [0.3], "std": [1.0], "resize": None}
    hist_raw, _ = plots.latent_weights(tiny_model, images, preprocessing=prep)
    np.testing.assert_allclose(hist_raw, hist, atol=1e-5)


@pytest.mark.multibackend
def test_latent_pictures(tiny_model, tmp_path):
    images, _ = fake_images(3)
    x = (images / 255.0 - 0.3).astype("float32")
    hist, maps = plots.latent_weights(tiny_model, x)
    path = tmp_path / "maps.png"
    fig = plots.plot_latent_histograms(images, hist, maps, top_k=2, path=path,
                                           titles=["a", "b", "c"])
    assert len(fig.axes) == 3 * (2 + 2)
    png_size(path)
    picture = plots.latent_usage_image(tiny_model, x)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[-1] == 3
    assert picture.shape[0] > 100 and picture.std() > 10  # not blank
    with pytest.raises(ValueError, match="top_k"):
        plots.plot_latent_histograms(images, hist, maps, top_k=9)
    with pytest.raises(ValueError, match="match"):
        plots.plot_latent_histograms(images[:2], hist, maps)
    with pytest.raises(ValueError, match="preprocessing"):
        plots.latent_weights(tiny_model, images)


@pytest.mark.multibackend
def test_latent_weights_needs_the_latent_pool():
    from lcreg_keras.backbones import get_backbone
    from lcreg_keras.models import LCRegModel

    model = LCRegModel(get_backbone("resnet8", (28, 28, 1), width=4), num_classes=10,
                       latent=False)
    model.build((None, 28, 28, 1))
    with pytest.raises(ValueError, match="latent pool"):
        plots.latent_weights(model, np.zeros((1, 28, 28, 1), "float32"))


@pytest.mark.multibackend
def test_latent_usage_images_callback_writes_tensorboard(tiny_model, tmp_path):
    import tensorflow as tf

    images, labels = fake_images(32)
    x = (images / 255.0 - 0.3).astype("float32")
    tiny_model.compile(optimizer=keras.optimizers.SGD(0.01))
    log_dir = tmp_path / "latents"
    callback = LatentUsageImages(x[:6], str(log_dir), every=1)
    tiny_model.fit(x, labels, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    files = [f for f in os.listdir(log_dir) if f.startswith("events.out.tfevents")]
    assert files
    steps = []
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(log_dir / path)):
            for value in event.summary.value:
                if value.tag == "latent_usage":
                    steps.append(event.step)
                    tensor = tf.make_ndarray(value.tensor)
                    # [width, height, PNG bytes] of one image.
                    assert int(tensor[0]) > 100 and tensor[2][:8] == PNG_SIGNATURE
    assert sorted(steps) == [0, 1]
    with pytest.raises(ValueError, match="every"):
        LatentUsageImages(x, str(log_dir), every=0)


# ---------------------------------------------------------------------------
# Evaluation pictures
# ---------------------------------------------------------------------------


def test_evaluation_plots(tmp_path, rng):
    counts = [900, 500, 300, 150, 101, 90, 50, 20, 19, 5]
    labels = np.repeat(np.arange(10), 10)
    logits = rng.normal(size=(100, 10)) + 2.5 * np.eye(10)[labels]
    report = ev.evaluation_report(labels, logits, counts, rule="cifar10")
    fig = plots.plot_reliability(report["reliability"], tmp_path / "r.png", ece=report["ece"])
    assert f"{100 * report['ece']:.2f} %" in fig.axes[0].get_title()
    png_size(tmp_path / "r.png")
    fig = plots.plot_accuracy_by_frequency(report, tmp_path / "a.png")
    assert fig.axes[0].get_xscale() == "log"
    png_size(tmp_path / "a.png")
    # Straight from reliability_bins too (NaN for empty bins).
    plots.plot_reliability(ev.reliability_bins(labels, logits), tmp_path / "r2.png")
    png_size(tmp_path / "r2.png")
