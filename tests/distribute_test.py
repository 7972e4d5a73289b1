"""Data parallelism: replicas, workers and preemption give the one-device model.

The device setup (logical CPUs, forced host devices, TF_CONFIG) must happen
before TensorFlow or JAX initialise, so each comparison runs in a fresh
process: `python -m tests.distribute_test MODE OUT_DIR` (the `_child_*`
functions at the bottom), started by the tests here.

Tolerances (measured on a 2-core x86 CPU, TF 2.21, JAX 0.10, Keras 3.15):
after 8 SGD steps with momentum, LCReg's losses, weight decay and mixup in
the input pipeline, one device and two replicas (TF MirroredStrategy on two
logical CPUs, JAX DataParallel on two host devices) agree to max |diff|
<= 1.6e-7 on the weights, <= 1.2e-7 on the covariance mean and <= 1.3e-9 on
the covariance, <= 2.2e-6 on per-step losses (recovered from `fit`'s
running means, which multiplies the rounding by the step index) and 0 on
isda_lambda; two MultiWorkerMirroredStrategy workers, killed and resumed,
agree with an uninterrupted one-device run to 2.4e-7 on the weights. That
is float32 rounding of differently summed gradients. The tests allow
`ATOL` = 1e-5. The covariance count, the step counter, the per-replica
covariance updates and the two workers' final weights agree exactly.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATOL = 1e-5
STEP_TERMS = ("loss", "loss_cls", "loss_aug", "loss_recon", "isda_lambda")
EPOCHS, STEPS, BATCH = 2, 4, 16


# ---------------------------------------------------------------------------
# Parent side.


def _child_env(backend="tensorflow", **extra):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def run_child(mode, out, *args, env=None, timeout=300):
    """Runs `_child_<mode>(out, *args)` in a fresh interpreter; returns its JSON."""
    cmd = [sys.executable, "-m", "tests.distribute_test", mode, str(out), *map(str, args)]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env or _child_env(), capture_output=True, text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    with open(os.path.join(out, f"{mode}.json")) as f:
        return json.load(f)


def assert_same_training(result, atol=ATOL):
    """Per-step terms and every weight of the two runs agree within `atol`."""
    for term, diff in result["step_diffs"].items():
        assert diff <= atol, (term, diff)
    for name, diff in result["weight_diffs"].items():
        assert diff <= atol, (name, diff)
    # Integer state: exactly equal.
    for name in ("count", "lcreg_step"):
        hits = [d for n, d in result["weight_diffs"].items() if n.endswith(name)]
        assert hits and max(hits) == 0, (name, hits)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Tests.


def test_tf_config_roles(monkeypatch):
    """Chief, worker index, scratch folders and `auto` from TF_CONFIG."""
    import keras

    from lcreg_keras.training import distribute

    if keras.config.backend() != "tensorflow":
        pytest.skip("TF_CONFIG is the TensorFlow backend's cluster description")
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    with_chief = {"chief": ["127.0.0.1:3"], **cluster}

    def task(spec, kind, index):
        config = {"cluster": spec, "task": {"type": kind, "index": index}}
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))

    task(cluster, "worker", 1)
    assert not distribute.is_chief() and distribute.worker_index() == 1
    assert distribute.worker_dir("/runs/a") == os.path.join("/runs/a", "workertemp_1")
    assert distribute.resolve("auto") == "multi_worker"
    task(cluster, "worker", 0)
    assert distribute.is_chief() and distribute.worker_dir("/runs/a") == "/runs/a"
    task(with_chief, "worker", 0)
    assert not distribute.is_chief() and distribute.worker_index() == 1
    task(with_chief, "chief", 0)
    assert distribute.is_chief() and distribute.worker_index() == 0
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.is_chief() and distribute.resolve("auto") == "none"
    with pytest.raises(ValueError, match="JAX strategy"):
        distribute.resolve("data_parallel")
    with pytest.raises(ValueError, match="must be one of"):
        distribute.resolve("horovod")


def test_batch_note_states_global_batch_and_lr():
    from lcreg_keras.training import distribute

    assert distribute.batch_note(128, 1, 0.1) == (
        "global batch 128 on one replica; "
        "lr 0.1 for the global batch (not scaled with the replicas)"
    )
    assert distribute.batch_note(128, 4).startswith("global batch 128 = 4 replicas x 32")
    with pytest.warns(UserWarning, match="does not split evenly"):
        distribute.batch_note(100, 3)
    with distribute.distribution_scope("none") as where:
        assert where == "one device" and where.replicas == 1 and where.kind == "none"


def test_distribution_scope_takes_what_prepare_returned():
    """The runner hands `prepare`'s result to `distribution_scope` (no module cache)."""
    from lcreg_keras.training import distribute

    made = distribute.prepare("none")
    assert made is None
    with distribute.distribution_scope("none", prepared=made) as where:
        assert where.kind == "none" and where.replicas == 1
    with pytest.raises(TypeError, match="prepared"):
        with distribute.distribution_scope("none", prepared="mirrored"):
            pass


@pytest.mark.slow
def test_tf_mirrored_two_cpus_matches_one_device(tmp_path):
    """MirroredStrategy on 2 logical CPUs == one device, covariance state included."""
    result = run_child("tf_mirrored", tmp_path)
    print(json.dumps(result, indent=1))
    assert result["placement"] == "mirrored: 2 replicas"
    assert result["init_diff"] == 0.0  # the seed fixes the initialisation under a strategy
    assert_same_training(result["plain"])
    # Every replica computes the same covariance update, and the mirrored
    # copies of the state hold the same values.
    assert result["replica_update_diff"] == 0.0
    assert result["replica_copies_diff"] == 0.0
    # BatchNorm: local-batch statistics per replica differ by design;
    # synchronized=True gives the one-device numbers back.
    assert_same_training(result["sync_bn"])
    assert result["sync_bn"]["moving_mean_copies_diff"] == 0.0
    assert max(result["bn"]["weight_diffs"].values()) > 1e2 * ATOL
    assert result["bn"]["moving_mean_copies_diff"] > 1e2 * ATOL


def test_tf_mirrored_one_step_loss_matches_one_device(tmp_path):
    """One training step, L_aug and L_recon on: the total loss on 2 replicas == one device.

    The terms reach `compute_loss` in each replica's own `y_pred`. Through
    `add_loss` each replica would also sum the other replica's terms (the
    layer's loss list is shared by the replica threads), which this catches:
    the auxiliary part of the loss is far above the tolerance.
    """
    result = run_child("tf_mirrored_one_step", tmp_path)
    print(json.dumps(result, indent=1))
    one, two = result["none"], result["mirrored"]
    assert two["placement"] == "mirrored: 2 replicas" and one["placement"] == "one device"
    assert one["loss_aug"] > 0 and one["loss_recon"] > 0
    aux = one["loss"] - one["loss_cls"]  # alpha L_aug + beta L_recon + weight decay
    assert aux > 1e3 * ATOL, one
    for term in ("loss", "loss_cls", "loss_aug", "loss_recon", "isda_lambda"):
        assert abs(one[term] - two[term]) <= ATOL, (term, one[term], two[term])
    # The shares are ratios on each replica's local batch, averaged over the
    # replicas (like latents_in_use): close to the global ratio, not equal.
    for term in ("share_aug", "share_recon"):
        assert abs(one[term] - two[term]) <= 0.05 * one[term], (term, one[term], two[term])


@pytest.mark.slow
def test_jax_data_parallel_two_devices_matches_one_device(tmp_path):
    """keras.distribution.DataParallel over 2 host devices == one device."""
    cache = os.environ.get("LCREG_JAX_CACHE", os.path.join("/tmp", "lcreg-jax-cache"))
    env = _child_env(
        "jax", XLA_FLAGS="--xla_force_host_platform_device_count=2", LCREG_JAX_CACHE=cache
    )
    result = run_child("jax_data_parallel", tmp_path, env=env)
    print(json.dumps(result, indent=1))
    assert result["devices"] == 2 and result["placement"] == "data_parallel: 2 devices"
    assert result["init_diff"] == 0.0
    assert_same_training(result["plain"])
    # The batch statistics are over the global batch under JAX: BN matches too.
    assert_same_training(result["bn"])


def _launch_workers(out, tag, epochs):
    ports = [free_port(), free_port()]
    procs = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
        env = _child_env(TF_CONFIG=json.dumps(tf_config))
        log = open(os.path.join(out, f"{tag}-worker{index}.log"), "w")
        cmd = [sys.executable, "-m", "tests.distribute_test", "multi_worker", str(out), epochs]
        procs.append(
            subprocess.Popen(
                list(map(str, cmd)), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    return procs


def _log_tail(out, tag):
    text = ""
    for index in range(2):
        path = os.path.join(out, f"{tag}-worker{index}.log")
        if os.path.exists(path):
            with open(path) as f:
                text += f"--- {tag} worker {index}\n" + f.read()[-3000:]
    return text


@pytest.mark.slow
def test_multi_worker_two_processes_survive_a_killed_worker(tmp_path):
    """Two MultiWorkerMirroredStrategy workers on 127.0.0.1; SIGKILL one; restart; resume.

    The restarted job resumes from the chief's BackupAndRestore backup, both
    workers end with identical weights, and those match a one-device run
    that was never interrupted.
    """
    epochs = 6
    out = str(tmp_path)
    progress = os.path.join(out, "progress.txt")

    def lines(prefix):
        if not os.path.exists(progress):
            return []
        with open(progress) as f:
            return [line.split() for line in f if line.startswith(prefix)]

    procs = _launch_workers(out, "first", epochs)
    try:
        deadline = time.time() + 120
        while len(lines("end")) < 2 and time.time() < deadline:
            assert all(p.poll() is None for p in procs), _log_tail(out, "first")
            time.sleep(0.1)
        assert len(lines("end")) >= 2, _log_tail(out, "first")
        time.sleep(0.3)  # into the next epoch
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        # The survivor's collectives fail once the coordination service sees
        # the dead peer (about 10 s); a cluster manager would restart the job.
        try:
            code = procs[0].wait(timeout=60)
        except subprocess.TimeoutExpired:
            procs[0].kill()
            code = procs[0].wait()
        assert code != 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    finished_before = len(lines("end"))
    assert finished_before < epochs

    procs = _launch_workers(out, "second", epochs)
    try:
        for p in procs:
            p.wait(timeout=180)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], _log_tail(out, "second")
    begins = lines("begin")
    restarted = [int(b[-1]) for b in begins[2:]]
    assert restarted == [finished_before] * 2, begins  # resumed, not restarted at 0
    ends = {int(e[1]): float(e[3]) for e in lines("end")}
    assert sorted(ends) == list(range(epochs))

    w0, w1 = (np.load(os.path.join(out, f"final-worker{i}.npz")) for i in range(2))
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])  # the workers agree exactly
    reference = run_child("reference", tmp_path, epochs)
    worst = max(
        float(np.max(np.abs(w0[f"arr_{i}"].astype(np.float64) - np.asarray(w))))
        for i, w in enumerate(reference["weights"])
    )
    print("multi-worker vs one device, max |weight diff|:", worst)
    assert worst <= ATOL
    np.testing.assert_allclose(
        [ends[e] for e in range(epochs)], reference["epoch_losses"], atol=ATOL
    )


# ---------------------------------------------------------------------------
# Child side: `python -m tests.distribute_test MODE OUT [ARGS]`.


def _toy_images():
    """64 uint8 images 8x8x3; class c brightens channel c."""
    rng = np.random.default_rng(0)
    y = (np.arange(64) % 3).astype(np.int32)
    x = rng.integers(0, 200, (64, 8, 8, 3)).astype(np.uint8)
    x[np.arange(64), :, :, y] = 255
    return x, y


def _backbone(norm=None):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu")(inputs)
    if norm == "bn":
        x = keras.layers.BatchNormalization()(x)
    elif norm == "sync_bn":
        x = keras.layers.BatchNormalization(synchronized=True)(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inputs, x, name="tiny")


def _step_recorder():
    """A callback keeping per-step values of the logged terms (from `fit`'s running means)."""
    import keras

    class StepRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = {t: [] for t in STEP_TERMS}
            self._previous = {}

        def on_epoch_begin(self, epoch, logs=None):
            self._previous = {}

        def on_train_batch_end(self, batch, logs=None):
            for term in STEP_TERMS:
                mean = float(logs[term])
                before = self._previous.get(term, 0.0)
                self.steps[term].append((batch + 1) * mean - batch * before)
                self._previous[term] = mean

    return StepRecorder()


def _train(name, devices=None, norm=None, init=None, epochs=EPOCHS, callbacks=()):
    """Builds, compiles and fits the toy LCReg model under `distribution_scope(name)`."""
    import keras

    from lcreg_keras.data.pipelines import small_image_train_dataset
    from lcreg_keras.training.distribute import distribution_scope
    from lcreg_keras.models import LCRegModel
    from lcreg_keras.resume import DataEpochSync

    keras.utils.set_random_seed(0)
    x, y = _toy_images()
    # Mixup in the pipeline (on the global batch), crops and flips, seeded.
    data, state = small_image_train_dataset(x, y, 3, BATCH, 0.5, 0.25, mixup_alpha=1.0, seed=1,
                                            return_state=True)
    recorder = _step_recorder()
    with distribution_scope(name, devices=devices) as where:
        model = LCRegModel(
            _backbone(norm), num_classes=3, num_latents=4, weight_decay=1e-3, seed=0
        )
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
        model.build((None, 8, 8, 3))
        first = [np.asarray(w) for w in model.get_weights()]
        if init is not None:
            model.set_weights(init)
        history = model.fit(
            data, epochs=epochs, steps_per_epoch=STEPS, verbose=0, shuffle=False,
            callbacks=[recorder, DataEpochSync(state), *callbacks],
        )
    return {
        "model": model,
        "placement": where,
        "init": first,
        "steps": recorder.steps,
        "epoch_losses": history.history["loss"],
    }


def _compare(a, b):
    steps = {
        t: float(np.max(np.abs(np.subtract(a["steps"][t], b["steps"][t])))) for t in STEP_TERMS
    }
    weights = {
        v.path: float(np.max(np.abs(np.asarray(wa, np.float64) - np.asarray(wb, np.float64))))
        for v, wa, wb in zip(a["model"].weights, a["model"].get_weights(), b["model"].get_weights())
    }
    return {"step_diffs": steps, "weight_diffs": weights}


def _max_diff(xs, ys):
    return max(
        float(np.max(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64))))
        for p, q in zip(xs, ys)
    )


def _write(out, mode, result):
    with open(os.path.join(out, f"{mode}.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)


def _child_tf_mirrored(out):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras

    from lcreg_keras.training.distribute import prepare

    cpus = ["/cpu:0", "/cpu:1"]
    result = {}
    for norm in (None, "sync_bn", "bn"):
        one = _train("none", norm=norm)
        two = _train("mirrored", devices=cpus, norm=norm)
        if norm is None:
            result["placement"] = str(two["placement"])
            result["batch_note"] = two["placement"].batch_note(BATCH, 0.05)
            result["init_diff"] = _max_diff(one["init"], two["init"])
            model = two["model"]
            strategy = prepare("mirrored", devices=cpus)
            labels = keras.ops.arange(4, dtype="int32")

            def update():
                return model.latent_covariance.updated_state(model.latent_pool.latents, labels)

            per_replica = strategy.run(tf.function(update))
            local = [strategy.experimental_local_results(v) for v in per_replica]
            result["replica_update_diff"] = max(_max_diff([r[0]], [r[1]]) for r in local)
            copies = model.latent_covariance.covariance.value.values
            result["replica_copies_diff"] = _max_diff([copies[0]], [copies[1]])
        result[norm or "plain"] = _compare(one, two)
        if norm is not None:
            # Keras makes BN's moving averages with aggregation="none": each
            # replica keeps its own copy.
            layer = next(
                lay for lay in two["model"].backbone.layers
                if isinstance(lay, keras.layers.BatchNormalization)
            )
            copies = layer.moving_mean.value.values
            result[norm]["moving_mean_copies_diff"] = _max_diff([copies[0]], [copies[1]])
    _write(out, "tf_mirrored", result)


def _child_tf_mirrored_one_step(out):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras

    from lcreg_keras.models import LCRegModel
    from lcreg_keras.training.distribute import distribution_scope

    x, y = _toy_images()
    batch = tf.data.Dataset.from_tensors((x[:BATCH].astype("float32") / 255.0, y[:BATCH]))
    result, init = {}, None
    for name, devices in (("none", None), ("mirrored", ["/cpu:0", "/cpu:1"])):
        keras.utils.set_random_seed(0)
        with distribution_scope(name, devices=devices) as where:
            model = LCRegModel(_backbone(), num_classes=3, num_latents=4, weight_decay=1e-3, seed=0)
            model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
            model.build((None, 8, 8, 3))
            if init is None:
                init = model.get_weights()
            model.set_weights(init)
            logs = model.fit(batch, epochs=1, steps_per_epoch=1, verbose=0).history
        result[name] = {term: float(values[0]) for term, values in logs.items()}
        result[name]["placement"] = str(where)
    _write(out, "tf_mirrored_one_step", result)


def _child_jax_data_parallel(out):
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ["LCREG_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    result = {"devices": len(jax.devices())}
    for norm in (None, "bn"):
        one = _train("none", norm=norm)
        two = _train("auto", norm=norm)  # auto: data_parallel over both devices
        if norm is None:
            result["placement"] = str(two["placement"])
            result["init_diff"] = _max_diff(one["init"], two["init"])
        result[norm or "plain"] = _compare(one, two)
    _write(out, "jax_data_parallel", result)


def _child_multi_worker(out, epochs):
    import time as _time

    from lcreg_keras.training import distribute

    # Before any TensorFlow op: MultiWorkerMirroredStrategy sets up the
    # collective ops of the runtime, which TensorFlow allows only at startup.
    distribute.prepare("multi_worker")
    import keras

    from lcreg_keras.resume import BackupAndRestore

    index = distribute.worker_index()
    progress = os.path.join(out, "progress.txt")

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            with open(progress, "a") as f:
                f.write(f"begin worker {index} initial_epoch {self.model._initial_epoch or 0}\n")

        def on_train_batch_end(self, batch, logs=None):
            _time.sleep(0.15)  # leaves time to kill a worker in mid-epoch

        def on_epoch_end(self, epoch, logs=None):
            if distribute.is_chief():
                with open(progress, "a") as f:
                    f.write(f"end {epoch} loss {logs['loss']!r}\n")

    # Only the chief writes the backup; both workers restore from it. `_train`
    # adds DataEpochSync, so the resumed epochs draw the same batches.
    backup = BackupAndRestore(os.path.join(out, "backup"))
    run = _train("multi_worker", epochs=int(epochs), callbacks=[backup, Progress()])
    assert run["placement"].workers == 2 and run["placement"].replicas == 2
    np.savez(
        os.path.join(out, f"final-worker{index}.npz"),
        *[np.asarray(w) for w in run["model"].get_weights()],
    )


def _child_reference(out, epochs):
    run = _train("none", epochs=int(epochs))
    _write(
        out, "reference",
        {"weights": [np.asarray(w).tolist() for w in run["model"].get_weights()],
         "epoch_losses": run["epoch_losses"]},
    )


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    mode, out_dir, *rest = sys.argv[1:]
    globals()[f"_child_{mode}"](out_dir, *rest)
