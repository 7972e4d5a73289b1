"""The default job end to end: `python -m lcreg_keras.recipes.fashion_mnist_lt --smoke`."""

import csv
import json
import os
import subprocess
import sys

import pytest

from tests.fakes import fake_fashion_mnist

pytestmark = pytest.mark.multibackend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_recipe(module, *args, env=None):
    cmd = [sys.executable, "-m", f"lcreg_keras.recipes.{module}", *args]
    env = dict(os.environ, **(env or {}))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_fashion_mnist_lt_smoke_writes_everything(tmp_path):
    data_dir = tmp_path / "fashion"
    fake_fashion_mnist(data_dir, n_train=9000, n_test=500, learnable=True)
    out = tmp_path / "run"
    args = ["--smoke", f"--data_dir={data_dir}", f"--model_dir={out}", "--epochs=3",
            "--verbose=2", "--imbalance_factor=10", "--eval_every=2"]
    stdout = run_recipe("fashion_mnist_lt", *args)
    assert f"from {data_dir}" in stdout
    assert "[index (cifar10)]" in stdout and "Epoch 3/3" in stdout and "[count (many > 100, few < 20)]" in stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
    assert metrics["train_examples"] <= 2048 and metrics["test_examples"] == 500
    split = metrics["splits"]["cifar10"]
    assert set(split) >= {"overall", "many", "medium", "few", "rule"}
    # The bands make the classes learnable: well above chance (10 %).
    assert metrics["top1"] > 0.3, metrics["top1"]
    # --eval_every validated epoch 2: the best of epochs 2 and 3 beside the
    # last (the headline), named, in metrics.json and the printed summary.
    assert metrics["top1_last"] == metrics["top1"] == metrics["stages"]["stage1"]["top1"]
    assert metrics["top1_best"] >= metrics["top1"] and metrics["top1_best_epoch"] in (2, 3)
    assert "top-1 last" in stdout and f"at epoch {metrics['top1_best_epoch']}" in stdout

    with open(out / "stage1" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for column in ("loss", "loss_cls", "loss_aug", "loss_recon", "isda_lambda",
                   "share_aug", "share_recon", "latents_in_use", "top_latent_share",
                   "learning_rate"):
        assert column in rows[0], column
    # lambda ramps up, the learning rate decays (x0.1 at 80 % of 3 epochs).
    assert float(rows[0]["isda_lambda"]) < float(rows[-1]["isda_lambda"])
    assert float(rows[-1]["learning_rate"]) < float(rows[0]["learning_rate"])
    for name in ("model.keras", "preprocessing.json", "stage1/last.keras", "stage1/done.json",
                 "stage1/best.keras"):
        assert (out / name).exists(), name
    events = [f for _, _, files in os.walk(out / "stage1" / "tensorboard") for f in files]
    assert any(f.startswith("events.out.tfevents") for f in events)
    # A finished run leaves no backup behind, and running it again trains nothing.
    assert not (out / "stage1" / "backup").exists() or not os.listdir(out / "stage1" / "backup")
    again = run_recipe("fashion_mnist_lt", *args)
    assert "finished earlier" in again and "Epoch 1/" not in again
    assert json.loads((out / "metrics.json").read_text())["top1_best"] == metrics["top1_best"]


def test_missing_dataset_says_what_to_install(tmp_path):
    cmd = [sys.executable, "-c", (
        "from lcreg_keras.data import fashion_mnist as fm\n"
        "fm.SEARCH_PATHS = lambda: []\n"
        f"fm.load_fashion_mnist({str(tmp_path)!r}, allow_download=False)\n"
    )]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "apt-get install dataset-fashion-mnist" in proc.stderr
    assert str(tmp_path) in proc.stderr


@pytest.mark.slow
def test_killed_run_resumes_from_backup(tmp_path):
    """SIGKILL in the middle of stage one; the same command resumes and finishes."""
    import signal
    import time

    data_dir = tmp_path / "fashion"
    fake_fashion_mnist(data_dir, n_train=9000, n_test=200, learnable=True)
    out = tmp_path / "run"
    args = ["--smoke", f"--data_dir={data_dir}", f"--model_dir={out}", "--epochs=6",
            "--verbose=2", "--imbalance_factor=10"]
    cmd = [sys.executable, "-m", "lcreg_keras.recipes.fashion_mnist_lt", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history = out / "stage1" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if history.exists() and len(history.read_text().strip().splitlines()) >= 3:
            break  # header + two finished epochs
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(history.read_text().strip().splitlines()) - 1
    assert 2 <= killed_at < 6, killed_at
    assert not (out / "metrics.json").exists()

    stdout = run_recipe("fashion_mnist_lt", *args)
    assert "Epoch 1/6" not in stdout  # resumed, not restarted
    with open(history) as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs[-1] == 5 and set(range(6)) <= set(epochs)
    assert json.loads((out / "metrics.json").read_text())["top1"] > 0.3
