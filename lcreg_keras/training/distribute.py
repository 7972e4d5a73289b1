"""Choosing how a run spreads over devices and machines, per backend.

Strategies (`--distribution`, `config.distribution`):

- `none`: one device.
- `mirrored` (TensorFlow): `tf.distribute.MirroredStrategy`, one machine with
  several GPUs. `fit` splits each global batch across the replicas, every
  replica computes its share of the loss, gradients are all-reduced (summed)
  and every replica applies the same update.
- `multi_worker` (TensorFlow): `tf.distribute.MultiWorkerMirroredStrategy`,
  several machines described by the `TF_CONFIG` environment variable (see
  BUILD.md, "Running on a cluster"). The same synchronous data parallelism
  across the GPUs of all workers; each worker runs the whole input pipeline
  and `fit` keeps its part of each global batch. The strategy must exist
  before TensorFlow runs its first op: call `prepare(name)` first thing in
  the program (before loading data), `distribution_scope` then reuses it.
- `data_parallel` (JAX): `keras.distribution.DataParallel` over all devices.
  JAX sees the whole global batch as one sharded array and jit-compiles one
  program, so the step is the one-device step, partitioned by XLA. Several
  processes (machines) join through `jax.distributed.initialize`, which
  `prepare` calls through `keras.distribution.initialize()` when the
  `KERAS_DISTRIBUTION_*` variables are set (BUILD.md).
- `auto`: `multi_worker` when `TF_CONFIG` names more than one task, else
  `mirrored` with more than one GPU (TensorFlow); `data_parallel` with more
  than one device (JAX); `none` otherwise. PyTorch runs on one device
  (Keras' torch backend has no data-parallel `fit`).

Batch size and learning rate: a recipe's `batch_size` is the GLOBAL batch,
whatever the number of replicas (each replica gets `batch_size / replicas`),
and its `lr` is the learning rate for that global batch. Nothing is scaled
automatically: the same command on 1, 2 or 8 GPUs trains the same model (up
to floating point). Changing `--batch_size` is a different recipe; the usual
rule is to scale `--lr` by the same factor (linear scaling, Goyal et al.
2017) and keep the warm-up. `distribution_scope` yields a `Placement` whose
`batch_note(global_batch)` says all this in one line for the logs.

LCReg's state under data parallelism (checked by tests/distribute_test.py):

- The covariance estimator (`LatentCovariance`: mean, covariance, count) is
  updated from the M latent vectors `f'_m` themselves, one sample per latent
  class per step, not from the images of the batch. The latent vectors are
  trainable weights, identical on every replica (they are mirrored and
  receive the same all-reduced update), so every replica computes exactly
  the same covariance update from the same old state. The state variables
  use `aggregation="only_first_replica"`: under `tf.distribute` the value
  the first replica computes is written to every copy, no all-reduce needed
  (and none would change anything). The step counter `lcreg_step` is
  incremented once per step the same way, so the ISDA ramp `lambda(t)` is
  the one-device ramp. On JAX the state is an ordinary replicated array
  updated by the one global program.
- The loss terms: under `tf.distribute` each replica's loss is divided by
  the number of replicas R before the gradients are summed. Keras' own
  losses do that; `LCRegModel.compute_loss` does it for `L_aug`, `L_recon`
  and the weight decay (`L_aug` and the weight decay are the same on every
  replica and would otherwise count R times, `L_recon` is a mean over the
  local batch) and reports `loss_cls` undivided. The logged losses are the
  global-batch values.
- Per-batch diagnostics that are not averages (`latents_in_use`,
  `top_latent_share`) are computed on each replica's local batch and then
  averaged over replicas under `tf.distribute`, so they differ from the
  one-device numbers by design (JAX computes them on the global batch).
- BatchNormalization under `tf.distribute` normalises with the statistics
  of each replica's local batch, as PyTorch's DDP does without
  SyncBatchNorm, so a BN network trains slightly differently on R replicas
  than on one device. Moreover Keras 3 creates the moving mean and variance
  with `aggregation="none"`, so each replica keeps its own moving averages:
  the copies drift apart, evaluation under the strategy uses each replica's
  own, and a saved model the first replica's.
  `keras.layers.BatchNormalization(synchronized=True)` (TensorFlow only)
  fixes both: global batch statistics, identical copies, the one-device
  numbers. Under JAX's `DataParallel` the batch statistics are those of the
  global batch and the moving averages are one array, as on one device.
- Mixup: the input pipeline mixes (`lcreg_keras.data.mixup_batch`), on the
  global batch, before it is split, so mixup is the same on any number of
  replicas; the model itself never mixes.
- The auxiliary terms reach `compute_loss` in each replica's own `y_pred`
  (the dict `LCRegModel.call` returns in training), not through `add_loss`,
  whose list the replica threads share under `tf.distribute`.
- Multi-worker output files: every worker runs the same callbacks. Only the
  chief (`is_chief()`) should write the shared files (backup, checkpoints,
  logs, metrics); `worker_dir(path)` gives the others a scratch folder.
  `lcreg_keras.training.resume.BackupAndRestore` writes its backup from the chief
  only and restores every worker from it.
"""

import contextlib
import json
import os
import warnings

import keras

CHOICES = ("auto", "none", "mirrored", "multi_worker", "data_parallel")

# The TensorFlow strategies and JAX distributions made so far, by name: a
# MultiWorkerMirroredStrategy can be made only once in a process, so `prepare`
# hands out the one made before. Callers that can should pass what `prepare`
# returned to `distribution_scope(prepared=...)` (the runner does).
_PREPARED = {}
_NOT_GIVEN = object()  # `distribution_scope`'s `prepared` was not passed


class Placement(str):
    """What `distribution_scope` yields: a description, with the details.

    Attributes:
        kind: `"none"`, `"mirrored"`, `"multi_worker"` or `"data_parallel"`.
        replicas: number of model replicas a global batch is split over.
        workers: number of processes (machines) taking part.
        worker: this process' index, 0 on the chief.
    """

    def __new__(cls, text, kind="none", replicas=1, workers=1, worker=0):
        obj = super().__new__(cls, text)
        obj.kind = kind
        obj.replicas = int(replicas)
        obj.workers = int(workers)
        obj.worker = int(worker)
        return obj

    def batch_note(self, global_batch, lr=None):
        """One log line: global batch, per-replica batch, learning rate."""
        return batch_note(global_batch, self.replicas, lr)


def batch_note(global_batch, replicas=1, lr=None):
    """`"global batch 128 = 2 replicas x 64; lr 0.1 for the global batch ..."`.

    Warns when the global batch does not split evenly over the replicas
    (the replicas then get batches of different sizes and the loss weights
    their samples unequally).
    """
    global_batch, replicas = int(global_batch), max(int(replicas), 1)
    if replicas == 1:
        text = f"global batch {global_batch} on one replica"
    else:
        per = global_batch / replicas
        per_text = f"{global_batch // replicas}" if global_batch % replicas == 0 else f"{per:.1f}"
        text = f"global batch {global_batch} = {replicas} replicas x {per_text}"
        if global_batch % replicas:
            warnings.warn(
                f"The global batch {global_batch} does not split evenly over "
                f"{replicas} replicas; pick a multiple of {replicas}."
            )
    if lr is not None:
        text += f"; lr {lr:g} for the global batch (not scaled with the replicas)"
    return text


# ---------------------------------------------------------------------------
# Cluster membership.


def tf_config():
    """The parsed `TF_CONFIG` environment variable, or None."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {raw!r}") from e


def _tf_cluster_tasks():
    """`(task_type, task_index, number of training tasks, has a chief)` from TF_CONFIG."""
    config = tf_config() or {}
    cluster = config.get("cluster", {})
    task = config.get("task", {})
    chiefs = cluster.get("chief", [])
    size = len(chiefs) + len(cluster.get("worker", []))
    return task.get("type"), int(task.get("index", 0)), size, bool(chiefs)


def _jax_multi_process():
    if keras.config.backend() != "jax":
        return False
    import jax

    return jax.distributed.is_initialized() and jax.process_count() > 1


def worker_index():
    """This process' index among the training processes (0 on the chief).

    TensorFlow: from `TF_CONFIG` (a `chief` task counts as 0 and the workers
    after it). JAX: `jax.process_index()` once `jax.distributed` is
    initialised. 0 everywhere else.
    """
    if _jax_multi_process():
        import jax

        return jax.process_index()
    if keras.config.backend() == "tensorflow":
        task_type, index, _, has_chief = _tf_cluster_tasks()
        if task_type == "worker" and has_chief:
            return index + 1
        return index if task_type in ("chief", "worker") else 0
    return 0


def is_chief():
    """True on the process that writes the shared files (and on one machine).

    TensorFlow: the `chief` task of `TF_CONFIG`, or worker 0 when the cluster
    has no chief (MultiWorkerMirroredStrategy's convention). JAX: process 0.
    """
    if keras.config.backend() == "tensorflow":
        task_type, index, _, has_chief = _tf_cluster_tasks()
        if task_type is None:
            return True
        return task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)
    return worker_index() == 0


def worker_dir(path):
    """`path` on the chief; a scratch folder inside it on the other workers.

    Callbacks that write files (checkpoints, CSV and TensorBoard logs) run on
    every worker; pointing the non-chief ones here keeps them from writing
    the chief's files at the same time (tf.keras did the same).
    """
    if is_chief():
        return path
    return os.path.join(path, f"workertemp_{worker_index()}")


# ---------------------------------------------------------------------------
# Strategies.


def initialize_multi_process():
    """Joins a multi-process JAX job described by the environment; True if it did.

    Reads `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's `host:port`
    first, or all of them, comma-separated), `KERAS_DISTRIBUTION_NUM_PROCESSES`
    and `KERAS_DISTRIBUTION_PROCESS_ID` and calls
    `keras.distribution.initialize()`, which calls
    `jax.distributed.initialize(coordinator, num_processes, process_id)`.
    Must run before JAX does any computation. Without those variables (one
    process, or a launcher that calls `jax.distributed.initialize()` itself)
    it does nothing. TensorFlow reads `TF_CONFIG` in the strategy instead.
    """
    if keras.config.backend() != "jax":
        return False
    import jax

    if jax.distributed.is_initialized():
        return False
    if not (
        os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
        or os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    ):
        return False
    keras.distribution.initialize()
    return True


def resolve(name="auto"):
    """The strategy `name` stands for on this backend and machine."""
    if name not in CHOICES:
        raise ValueError(f"`distribution` must be one of {CHOICES}. Received: {name!r}")
    backend = keras.config.backend()
    if backend == "tensorflow":
        if name == "auto":
            if _tf_cluster_tasks()[2] > 1:
                return "multi_worker"
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
            return "mirrored" if len(gpus) > 1 else "none"
        if name == "data_parallel":
            raise ValueError(
                "`distribution='data_parallel'` is the JAX strategy; on TensorFlow "
                "use 'mirrored' (one machine) or 'multi_worker' (TF_CONFIG)."
            )
        return name
    if backend == "jax":
        if name == "auto":
            initialize_multi_process()
            return "data_parallel" if len(keras.distribution.list_devices()) > 1 else "none"
        if name in ("mirrored", "multi_worker"):
            raise ValueError(
                f"`distribution={name!r}` is a TensorFlow strategy; on JAX use "
                "'data_parallel' (all devices of all processes)."
            )
        return name
    if name not in ("auto", "none"):
        raise ValueError(f"`distribution={name!r}` is not available on the {backend} backend.")
    return "none"


def prepare(name="auto", devices=None):
    """Creates (once) what `distribution_scope(name)` will use; returns it.

    Call it at the start of the program, before any TensorFlow op runs
    (`MultiWorkerMirroredStrategy` configures the collective ops of the
    runtime, which TensorFlow allows only at startup) and before JAX computes
    anything (multi-process JAX joins its job here). Returns the
    `tf.distribute.Strategy`, the `keras.distribution.DataParallel`, or None
    for one device.

    Args:
        name: one of `CHOICES`.
        devices: optional devices for `mirrored` (names such as
            `["/gpu:0", "/gpu:1"]`; default all GPUs) or `data_parallel`
            (JAX devices; default all of them).
    """
    return _prepared(name, devices)[1]


def _prepared(name, devices=None):
    key = (name, tuple(str(d) for d in devices) if devices is not None else None)
    if key in _PREPARED:
        return _PREPARED[key]
    if keras.config.backend() == "jax":
        initialize_multi_process()
    kind = resolve(name)
    kind_key = (kind, key[1])
    if kind_key in _PREPARED:
        _PREPARED[key] = _PREPARED[kind_key]
        return _PREPARED[key]
    made = None
    if kind == "mirrored":
        import tensorflow as tf

        made = tf.distribute.MirroredStrategy(devices=devices)
    elif kind == "multi_worker":
        import tensorflow as tf

        try:
            made = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            if "startup" not in str(e):
                raise
            raise RuntimeError(
                "MultiWorkerMirroredStrategy must be created before TensorFlow "
                "runs any op: call lcreg_keras.training.distribute.prepare('multi_worker') "
                "at the start of the program, before loading data."
            ) from e
    elif kind == "data_parallel":
        made = keras.distribution.DataParallel(
            devices=list(devices) if devices is not None else keras.distribution.list_devices()
        )
    _PREPARED[key] = _PREPARED[kind_key] = (kind, made)
    return kind, made


def _placement(kind, made):
    if kind in ("mirrored", "multi_worker"):
        replicas = made.num_replicas_in_sync
        workers = max(_tf_cluster_tasks()[2], 1) if kind == "multi_worker" else 1
        text = f"{kind}: {replicas} replicas"
        if kind == "multi_worker":
            text += f" on {workers} workers (this is worker {worker_index()})"
        return Placement(text, kind, replicas, workers, worker_index())
    if kind == "data_parallel":
        replicas = int(made.device_mesh.devices.size)
        workers = 1
        if _jax_multi_process():
            import jax

            workers = jax.process_count()
        text = f"data_parallel: {replicas} devices"
        if workers > 1:
            text += f" in {workers} processes (this is process {worker_index()})"
        return Placement(text, kind, replicas, workers, worker_index())
    return Placement("one device")


def _kind_of(made):
    """The `CHOICES` entry of what `prepare` returned."""
    if made is None:
        return "none"
    if isinstance(made, keras.distribution.DataParallel):
        return "data_parallel"
    import tensorflow as tf

    if isinstance(made, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(made, tf.distribute.MirroredStrategy):
        return "mirrored"
    raise TypeError(
        "`prepared` must be what `prepare` returned (a MirroredStrategy, a "
        f"MultiWorkerMirroredStrategy, a DataParallel or None). Received: {made!r}"
    )


@contextlib.contextmanager
def distribution_scope(name="auto", devices=None, prepared=_NOT_GIVEN):
    """Context in which to build, compile and fit; yields a `Placement`.

    The `Placement` is a string ("mirrored: 2 replicas", "one device", ...)
    with `kind`, `replicas`, `workers`, `worker` and `batch_note(batch, lr)`.
    `name` and `devices` as in `prepare`, which this calls (a no-op when it
    ran before with the same arguments) unless `prepared`, what `prepare`
    returned, is handed over (the runner does: nothing then passes through
    this module's cache).
    """
    if prepared is _NOT_GIVEN:
        kind, made = _prepared(name, devices)
    else:
        kind, made = _kind_of(prepared), prepared
    if made is None:
        yield _placement("none", None)
        return
    if kind in ("mirrored", "multi_worker"):
        with made.scope():
            yield _placement(kind, made)
        return
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(made)
    try:
        yield _placement(kind, made)
    finally:
        keras.distribution.set_distribution(previous)


# ---------------------------------------------------------------------------
# Determinism.


def enable_determinism(seed=None):
    """Asks every backend for deterministic kernels; returns what it set.

    - `seed`: `keras.utils.set_random_seed(seed)` (Python, NumPy, the
      backend's global seed). The recipes' `--seed` does this and also keys
      the input pipeline and the model's seed generators.
    - TensorFlow: `tf.config.experimental.enable_op_determinism()` (and
      `TF_DETERMINISTIC_OPS=1` for child processes): GPU kernels with
      nondeterministic reductions (atomics in cuDNN convolution backprop,
      scatter / segment sums, bias-add gradients) switch to deterministic
      ones or raise an error where none exists. Slower on GPU.
    - JAX: adds `--xla_gpu_deterministic_ops=true` to `XLA_FLAGS`, which XLA
      reads when JAX initialises its GPU backend: call this before the first
      JAX computation (a warning says so if JAX has started already).
    - PyTorch: `torch.use_deterministic_algorithms(True)`, cuDNN autotuning
      off, and `CUBLAS_WORKSPACE_CONFIG=:4096:8` (which must be set before
      the first cuBLAS call).

    On CPU the three backends are deterministic run to run already (same
    machine, same thread counts); this matters on GPUs.
    """
    done = []
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
        done.append(f"seed {int(seed)}")
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        os.environ["TF_DETERMINISTIC_OPS"] = "1"
        tf.config.experimental.enable_op_determinism()
        done.append("tf op determinism")
    elif backend == "jax":
        import sys

        flags = os.environ.get("XLA_FLAGS", "")
        if "--xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()
        jax_lib = sys.modules.get("jax._src.xla_bridge")
        if jax_lib is not None and getattr(jax_lib, "_backends", None):
            warnings.warn(
                "JAX has initialised its backends already: "
                "--xla_gpu_deterministic_ops takes effect only in new processes "
                "(set XLA_FLAGS before importing jax)."
            )
        done.append("XLA_FLAGS=--xla_gpu_deterministic_ops=true")
    elif backend == "torch":
        import torch

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        done.append("torch deterministic algorithms")
    return done


# ---------------------------------------------------------------------------
# Workarounds inside `LCRegModel`'s Keras hooks, each for one Keras/TF issue.


def first_replica_build_batch(model, iterator, data_batch):
    """`(iterator, data_batch)` for `Model._maybe_symbolic_build` under a strategy.

    Works around keras-team/keras#20585: on the TensorFlow backend under a
    `tf.distribute` strategy Keras takes one batch to build the model and
    merges its replicas with `strategy.reduce`, which
    MultiWorkerMirroredStrategy cannot do on an `(x, y)` tuple. Only the
    shapes matter: this takes the first replica's part instead (and returns
    the arguments unchanged without a strategy). Uses Keras' private
    `model._distribute_strategy` and the private `_maybe_symbolic_build`
    hook it serves.
    """
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None or iterator is None or data_batch is not None:
        return iterator, data_batch
    import tensorflow as tf

    for _, _, it in iterator:
        data_batch = keras.tree.map_structure(
            lambda v: strategy.experimental_local_results(v)[0]
            if isinstance(v, tf.distribute.DistributedValues)
            else v,
            next(it),
        )
        break
    return None, data_batch


def reducible_step_logs(logs):
    """The step's logs, as shape `(1,)` inside a multi-worker replica.

    Works around keras-team/keras#20585: Keras merges a step's logs over
    MultiWorkerMirroredStrategy's replicas with `reduce("MEAN", axis=0)`,
    which fails on scalars; as shape `(1,)` they reduce to the scalar.
    Elsewhere `logs` is returned unchanged.
    """
    if not _multi_worker_replica():
        return logs
    from keras import ops

    return {k: ops.reshape(v, (1,)) for k, v in logs.items()}


def _multi_worker_replica():
    """True inside a replica of a multi-worker tf.distribute strategy.

    Reads TF's private `extended._in_multi_worker_mode()` (no public
    equivalent; a one-worker MultiWorkerMirroredStrategy is not in
    multi-worker mode and needs no workaround).
    """
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
        and not tf.distribute.in_cross_replica_context()
    )


def replicas_in_sync():
    """R of the enclosing tf.distribute strategy (TensorFlow backend), else 1."""
    if keras.config.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync
