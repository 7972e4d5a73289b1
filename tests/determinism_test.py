"""Reproducibility: a seed fixes everything on CPU; a resumed run repeats the uninterrupted one.

What the seed fixes: the initialisation (`keras.utils.set_random_seed`), the
data order, crops, flips and mixup (stateless ops keyed on
`(seed, epoch, batch)` in the tf.data pipeline) and the model's own seed
generators. On CPU two runs with the same seed give bit-identical losses and
metrics; on GPU see BUILD.md ("Running on a cluster", determinism).
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.fakes import fake_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE_ARGS = ("--smoke", "--epochs=3", "--verbose=2", "--imbalance_factor=10")


# ---------------------------------------------------------------------------
# Resuming inside one process, on every backend.


class _Interrupt(Exception):
    """Raised by a callback to stop a run mid-way, as a crash would."""


def _toy_run(backup_dir, init, epochs=4, stop_after=None, sync=True):
    """Fits the toy LCReg model from `init`; a fresh dataset object every call."""
    import keras

    from lcreg_keras import resume
    from lcreg_keras.data.pipelines import small_image_train_dataset
    from lcreg_keras.models import LCRegModel
    from tests.distribute_test import _backbone
    from tests.distribute_test import _toy_images

    x, y = _toy_images()
    data, state = small_image_train_dataset(x, y, 3, 16, 0.5, 0.25, mixup_alpha=1.0, seed=1,
                                            return_state=True)
    model = LCRegModel(_backbone(), num_classes=3, num_latents=4, weight_decay=1e-3, seed=0)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.build((None, 8, 8, 3))
    model.set_weights(init)

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == stop_after:
                raise _Interrupt(epoch)  # after the backup of this epoch

    if sync:
        backup = resume.BackupAndRestore(backup_dir, data_state=state)
    else:
        backup = keras.callbacks.BackupAndRestore(backup_dir)
    callbacks = [backup] + ([StopAfter()] if stop_after is not None else [])
    model.fit(data, epochs=epochs, steps_per_epoch=4, verbose=0, shuffle=False, callbacks=callbacks)
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.multibackend
def test_resumed_fit_repeats_the_uninterrupted_run(tmp_path):
    """Interrupted after epoch 2 of 4 and resumed from the backup: bit-identical weights."""
    from lcreg_keras.models import LCRegModel
    from tests.distribute_test import _backbone

    model = LCRegModel(_backbone(), num_classes=3, num_latents=4)
    model.build((None, 8, 8, 3))
    init = [np.asarray(w) for w in model.get_weights()]

    straight = _toy_run(str(tmp_path / "a"), init)
    with pytest.raises(_Interrupt):
        _toy_run(str(tmp_path / "b"), init, stop_after=1)
    assert os.path.exists(tmp_path / "b" / "training_metadata.json")
    resumed = _toy_run(str(tmp_path / "b"), init)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)

    # Keras' own callback restores the weights but not the data epoch: the
    # resumed epochs replay other batches, and the weights differ.
    with pytest.raises(_Interrupt):
        _toy_run(str(tmp_path / "c"), init, stop_after=1, sync=False)
    unsynced = _toy_run(str(tmp_path / "c"), init, sync=False)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(straight, unsynced)) > 1e-4


@pytest.mark.multibackend
def test_fit_after_a_resumed_fit_trains_every_epoch(tmp_path):
    """Issue 11: Keras' restore left `model._initial_epoch` set, so the next fit of the
    same model (stage two after a resumed stage one) started there and trained nothing."""
    import keras

    from lcreg_keras import resume
    from lcreg_keras.data.pipelines import small_image_train_dataset
    from lcreg_keras.models import LCRegModel
    from lcreg_keras.training.stage_two import DecoupledStageTwo
    from tests.distribute_test import _backbone
    from tests.distribute_test import _toy_images

    model = LCRegModel(_backbone(), num_classes=3, num_latents=4)
    model.build((None, 8, 8, 3))
    init = [np.asarray(w) for w in model.get_weights()]
    with pytest.raises(_Interrupt):
        _toy_run(str(tmp_path / "backup"), init, stop_after=1)

    x, y = _toy_images()
    data, state = small_image_train_dataset(x, y, 3, 16, 0.5, 0.25, mixup_alpha=1.0, seed=1,
                                            return_state=True)
    plain = small_image_train_dataset(x, y, 3, 16, 0.5, 0.25, seed=1)
    model = LCRegModel(_backbone(), num_classes=3, num_latents=4, weight_decay=1e-3, seed=0)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.build((None, 8, 8, 3))
    model.set_weights(init)
    resumed = model.fit(data, epochs=4, steps_per_epoch=4, verbose=0, callbacks=[
        resume.BackupAndRestore(str(tmp_path / "backup"), data_state=state)])
    assert resumed.epoch == [2, 3]
    again = model.fit(data, epochs=2, steps_per_epoch=4, verbose=0, callbacks=[
        resume.BackupAndRestore(str(tmp_path / "other_backup"), data_state=state)])
    assert again.epoch == [0, 1]
    # Keras' own callback still leaves the epoch behind; stage two starts at 0 anyway.
    model.fit(data, epochs=5, steps_per_epoch=1, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path / "keras_backup"), delete_checkpoint=False)])
    model.fit(data, epochs=5, steps_per_epoch=1, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path / "keras_backup"), delete_checkpoint=False)])
    assert model._initial_epoch == 5
    history = DecoupledStageTwo([30, 20, 10], epochs=2).fit(model, plain, steps_per_epoch=2,
                                                            verbose=0)
    assert history.epoch == [0, 1]


def test_data_epoch_sync_sets_the_pipeline_counter():
    from lcreg_keras import resume
    from lcreg_keras.data.pipelines import small_image_train_dataset
    from tests.distribute_test import _toy_images

    x, y = _toy_images()
    data, state = small_image_train_dataset(x, y, 3, 16, 0.5, 0.25, seed=1, return_state=True)
    first_of = lambda: next(iter(data))[0].numpy()  # noqa: E731
    epochs = [first_of() for _ in range(3)]  # epochs 0, 1, 2
    assert resume.set_data_epoch(state, 1)
    np.testing.assert_array_equal(first_of(), epochs[1])
    sync = resume.DataEpochSync(state)
    sync.on_train_begin()
    sync.on_epoch_begin(2)
    np.testing.assert_array_equal(first_of(), epochs[2])
    sync.on_epoch_begin(0)  # only the first epoch of a `fit` sets it: this is epoch 3
    assert not np.array_equal(first_of(), epochs[0])
    assert not resume.set_data_epoch(data.map(lambda a, b: (a, b)), 0)
    assert not resume.set_data_epoch(data, 0)  # the counter travels in the state only
    assert resume.epoch_counter(state) is not None


@pytest.mark.slow
def test_enable_determinism_keeps_training_identical(tmp_path):
    """TF op determinism accepts every op of the training step; two fits agree bitwise."""
    code = (
        "import json, sys, numpy as np\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from lcreg_keras.training import distribute\n"
        "done = distribute.enable_determinism(0)\n"
        "from tests.distribute_test import _train\n"
        "a, b = _train('none'), _train('none')\n"
        "wa, wb = a['model'].get_weights(), b['model'].get_weights()\n"
        "same = all(np.array_equal(p, q) for p, q in zip(wa, wb))\n"
        "steps = a['steps']['loss'] == b['steps']['loss']\n"
        "print(json.dumps({'done': done, 'same': same, 'steps': steps}))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"done": ["seed 0", "tf op determinism"], "same": True, "steps": True}


# ---------------------------------------------------------------------------
# The default recipe end to end (TensorFlow).


def _recipe(data_dir, out, *extra, backend="tensorflow"):
    cmd = [sys.executable, "-m", "lcreg_keras.recipes.fashion_mnist_lt", *RECIPE_ARGS,
           f"--data_dir={data_dir}", f"--model_dir={out}", *extra]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _outcome(out)


def _outcome(out):
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(out, "stage1", "history.csv")) as f:
        rows = {int(row["epoch"]): row for row in csv.DictReader(f)}
    return metrics, [rows[e] for e in sorted(rows)]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fashion")
    fake_fashion_mnist(folder, n_train=9000, n_test=300, learnable=True)
    return folder


@pytest.fixture(scope="module")
def seed0_run(fashion, tmp_path_factory):
    return _recipe(fashion, tmp_path_factory.mktemp("seed0"), "--seed=0")


@pytest.mark.slow
def test_recipe_same_seed_same_metrics_other_seed_differs(fashion, seed0_run, tmp_path):
    metrics, history = seed0_run
    again_metrics, again_history = _recipe(fashion, tmp_path / "again", "--seed=0")
    assert again_metrics["top1"] == metrics["top1"]
    assert again_metrics["splits"] == metrics["splits"]
    assert again_history == history  # every logged loss term, bit for bit (as text)
    assert len(history) == 3

    other_metrics, other_history = _recipe(fashion, tmp_path / "other", "--seed=1")
    losses = [float(r["loss"]) for r in history]
    assert [float(r["loss"]) for r in other_history] != losses
    assert other_metrics["config"]["seed"] == 1


@pytest.mark.slow
def test_killed_recipe_resumes_bit_identical(fashion, seed0_run, tmp_path):
    """SIGKILL in stage one, same command again: the same history and metrics as never killed."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lcreg_keras.recipes.fashion_mnist_lt", *RECIPE_ARGS,
           f"--data_dir={fashion}", f"--model_dir={out}", "--seed=0"]
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    history = out / "stage1" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(history.read_text().strip().splitlines()) >= 2:
            break  # header + one finished epoch
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()

    metrics, resumed = _recipe(fashion, out, "--seed=0")
    expected_metrics, expected = seed0_run
    assert resumed == expected
    assert metrics["top1"] == expected_metrics["top1"]


@pytest.mark.slow
def test_recipe_same_seed_same_metrics_on_jax(fashion, tmp_path):
    first = _recipe(fashion, tmp_path / "a", "--seed=3", backend="jax")
    second = _recipe(fashion, tmp_path / "b", "--seed=3", backend="jax")
    assert first[0]["backend"] == "jax"
    assert first[0]["top1"] == second[0]["top1"]
    assert first[1] == second[1]
