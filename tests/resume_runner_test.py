"""Resume is a property of the whole runner: kill it anywhere, run the same command again.

A real `python -m lcreg_keras.recipes.fashion_mnist_lt` subprocess (both
stages, a tiny generated Fashion-MNIST) is SIGKILLed at named points through
the test-only hook `LCREG_KILL_AT` (`lcreg_keras.serving.run_folder.kill_point`):
during stage one, while the backup / done.json / metrics.json is written,
between the stages, during stage two and during the final evaluation (JAX:
during stage one and during stage two). After each kill the same command runs again (the next
one killed at the next point); the last run finishes. Its metrics.json (but
the wall time), both histories, done.json files and the weights of every
saved model must equal, bit for bit, those of a run never killed. (The first
point is the case of issue 11: after a resumed stage one, stage two trained
0 epochs; its history then had no row.)

Each run is a fresh process (imports, tracing), so these tests are `slow`;
the quick set keeps the in-process regression test of that case
(tests/determinism_test.py::test_fit_after_a_resumed_fit_trains_every_epoch).
"""

import io
import json
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from tests.fakes import fake_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = (
    "--smoke", "--stage=both", "--epochs=2", "--stage2_epochs=2", "--max_train_examples=256",
    "--max_test_examples=48", "--batch_size=32", "--stage2_epoch_size=64",
    "--imbalance_factor=10", "--verbose=2", "--seed=0",
)
# In the order a run reaches them. Stage one has 7 steps an epoch (the
# long-tailed 256-image cap is 250 images), stage two 2.
ALL_POINTS = (
    "stage1.batch#10",  # in the middle of stage one's second epoch
    "write:backup",  # while the backup of stage one's epoch 2 is written
    "write:done.json",  # while stage one is marked finished (the same atomic write as
    # every checkpoint: last.keras, best.keras, model.keras, history.csv)
    "between_stages",
    "stage2.batch#3",  # in stage two's second epoch
    "evaluate.stage2",  # during the final evaluation
    "write:metrics.json",
)
# The files and stages do not depend on the backend; restoring a backup does.
JAX_POINTS = ("stage1.batch#10", "stage2.batch#3")


def _command(data_dir, out):
    return [sys.executable, "-m", "lcreg_keras.recipes.fashion_mnist_lt", *ARGS,
            f"--data_dir={data_dir}", f"--model_dir={out}"]


def _run(data_dir, out, backend, kill_at=None):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    if backend == "jax":  # the runs compile the same steps: keep them (same code, same bits)
        env.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ.get(
            "LCREG_JAX_CACHE", os.path.join("/tmp", "lcreg-jax-cache")))
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.pop("LCREG_KILL_AT", None)
    if kill_at:
        env["LCREG_KILL_AT"] = kill_at
    proc = subprocess.run(_command(data_dir, out), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if kill_at:
        assert proc.returncode == -9, (
            f"not killed at {kill_at} (exit {proc.returncode}):\n"
            + proc.stdout[-2000:] + proc.stderr[-2000:]
        )
    else:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _weights(path):
    """Every array in a .keras file's weights, by name."""
    with zipfile.ZipFile(path) as archive:
        raw = archive.read("model.weights.h5")
    arrays = {}
    with h5py.File(io.BytesIO(raw), "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return arrays


def _outcome(out):
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("total_seconds")
    metrics["config"].pop("model_dir")
    texts = {name: (out / name).read_text() for name in (
        "stage1/history.csv", "stage2/history.csv", "stage1/done.json", "stage2/done.json")}
    weights = {name: _weights(out / name) for name in (
        "model.keras", "stage1/model.keras", "stage2/model.keras")}
    return metrics, texts, weights


def _assert_same(resumed, reference):
    metrics, texts, weights = resumed
    assert metrics == reference[0]
    for name, text in texts.items():
        assert text == reference[1][name], name
    for name, arrays in weights.items():
        expected = reference[2][name]
        assert sorted(arrays) == sorted(expected), name
        for key, array in arrays.items():
            np.testing.assert_array_equal(array, expected[key], err_msg=f"{name}:{key}")


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fashion")
    fake_fashion_mnist(folder, n_train=3000, n_test=100, learnable=True)
    return folder


@pytest.fixture(scope="module")
def references(fashion, tmp_path_factory):
    """The uninterrupted run, per backend (made on first use)."""
    made = {}

    def reference(backend):
        if backend not in made:
            out = tmp_path_factory.mktemp(f"straight_{backend}")
            _run(fashion, out, backend)
            made[backend] = _outcome(out)
            # The run itself: both stages trained every epoch.
            history = made[backend][1]
            assert len(history["stage1/history.csv"].strip().splitlines()) == 3
            assert len(history["stage2/history.csv"].strip().splitlines()) == 3
        return made[backend]

    return reference


def _kill_chain(fashion, out, backend, points):
    for point in points:
        _run(fashion, out, backend, kill_at=point)
    return _run(fashion, out, backend)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_killed_at_every_point_then_rerun_matches_on_tensorflow(fashion, references, tmp_path):
    reference = references("tensorflow")
    out = tmp_path / "run"
    _kill_chain(fashion, out, "tensorflow", ALL_POINTS)
    _assert_same(_outcome(out), reference)
    assert not (out / "stage1" / "backup").exists() and not (out / "stage2" / "backup").exists()
    leftovers = [name for _, _, names in os.walk(out) for name in names if ".writing" in name]
    assert not leftovers  # the killed writers' temporary files are gone


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_killed_at_the_main_points_then_rerun_matches_on_jax(fashion, references, tmp_path):
    reference = references("jax")
    out = tmp_path / "run"
    _kill_chain(fashion, out, "jax", JAX_POINTS)
    resumed = _outcome(out)
    assert resumed[0]["backend"] == "jax"
    _assert_same(resumed, reference)
