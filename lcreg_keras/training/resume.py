"""Resuming a run exactly: the pipelines' epoch counter and a safer backup.

The training pipelines of `lcreg_keras.data` key every random choice (order,
crops, flips, mixup) on `(seed, epoch, batch)`, where `epoch` is a counter
the pipeline keeps (a CPU `tf.Variable`, incremented each time an iterator
over the dataset starts), handed to the caller in its `PipelineState`
(`return_state=True`). Left alone, that counter is wrong in two cases:

- after `keras.callbacks.BackupAndRestore` resumes a run at epoch `k`, the
  dataset is a new object whose counter starts at 0, so epoch `k` would
  replay epoch 0's permutation, crops and mixup;
- `fit` itself sometimes pulls one batch before training to build the model
  (the TensorFlow backend under a `tf.distribute` strategy, JAX and PyTorch
  while the compiled metrics are unbuilt), which starts an iterator and
  moves the counter to 1: the first epoch would draw epoch 1's numbers, and
  a distributed run would see other batches than a one-device run.

`DataEpochSync(state)` sets the counter to the epoch `fit` is about to
train, at the start of the first epoch of each `fit` call (after any resume,
before `fit` starts its first iterator), so epoch `e` of a run always draws
epoch `e`'s numbers: a resumed run sees the batches the uninterrupted run
would have seen, and one, two or many replicas see the same global batches.

`BackupAndRestore(backup_dir, data_state=...)` is Keras' callback plus that
synchronisation, atomic writes, and multi-worker awareness (the chief writes,
every worker restores). With it, a run killed and started again ends with
the same weights, bit for bit on CPU, as a run never interrupted
(tests/determinism_test.py).

Usage (the callbacks' place in the list does not matter):

    train, state = small_image_train_dataset(..., return_state=True)
    model.fit(
        train,
        epochs=epochs,
        callbacks=[BackupAndRestore(backup_dir, data_state=state)],
    )
"""

import json
import os
import shutil
import tempfile

import keras

from lcreg_keras.data.pipelines import PipelineState
from lcreg_keras.training.distribute import is_chief
from lcreg_keras.serving import run_folder


def epoch_counter(state):
    """The epoch counter of a training pipeline's `PipelineState`, or None.

    Anything else (a `tf.data.Dataset`, an array, None) has no counter: the
    pipelines hand their counter to the caller, never through the dataset.
    """
    return state.epoch if isinstance(state, PipelineState) else None


def set_data_epoch(state, epoch):
    """Makes the next pass of the pipeline draw epoch `epoch`; False if it has no counter."""
    counter = epoch_counter(state)
    if counter is None:
        return False
    counter.assign(int(epoch))
    return True


class DataEpochSync(keras.callbacks.Callback):
    """Points `lcreg_keras.data` pipelines at the epoch `fit` trains.

    At the first `on_epoch_begin` of every `fit` call (epoch `k`: 0 for a
    fresh run, the restored epoch after `BackupAndRestore`), each dataset's
    epoch counter is set to `k`; the following epochs advance it themselves.
    A dataset without a counter (any other `tf.data.Dataset`, a NumPy array)
    is left alone.

    Args:
        data_state: the `PipelineState` of a training pipeline
            (`small_image_train_dataset(..., return_state=True)` or the
            file-list pipeline), or a list / tuple of them (e.g. stage
            one's and stage two's: setting the counter of a pipeline that
            this `fit` does not iterate is harmless, the next `fit` sets it
            again).
    """

    def __init__(self, data_state):
        super().__init__()
        self.states = _as_list(data_state)
        self._pending = True

    def on_train_begin(self, logs=None):
        self._pending = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._pending:
            for state in self.states:
                set_data_epoch(state, epoch)
            self._pending = False


def _as_list(state):
    if state is None:
        return []
    if isinstance(state, (list, tuple)):
        return [s for s in state if s is not None]
    return [state]


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for resumable, reproducible runs.

    What it adds to Keras' callback (same arguments, plus `data_state`):

    - the data order: with `data_state` (the `PipelineState` of an
      `lcreg_keras.data` training pipeline) it also does what `DataEpochSync` does, so the resumed
      epochs draw the batches the uninterrupted run would have drawn;
    - crash safety: each backup writes its weights to a new file named
      after the epoch, then renames a new metadata file (the epoch and that
      file's name) over the old one: that rename is the only commit point,
      so a kill at any moment of a backup leaves the previous backup whole
      (Keras writes in place: a kill during `save_weights` leaves a
      truncated file, or new weights beside the old epoch). Remote folders
      (`gs://...`) keep Keras' in-place writes;
    - fits after it: Keras' callback leaves the restored epoch on the model
      (`model._initial_epoch`), so the next `fit` of the same model object
      would start there (stage two after a resumed stage one trained 0
      epochs); this callback clears it at the start and the end of its fit;
    - several workers: only the chief (`lcreg_keras.training.distribute.is_chief()`)
      writes and deletes the backup; every worker restores from it, so the
      backup folder must be shared (a network file system or a bucket), as
      for tf.keras' multi-worker BackupAndRestore. The workers then restart
      from the same epoch with the same weights.

    Args:
        backup_dir: the folder of the backup (shared by all workers).
        data_state: optional `PipelineState` of the training pipeline (or a
            list of them, see `DataEpochSync`) whose epoch counter follows
            the restored epoch.
        **kwargs: `save_freq`, `double_checkpoint`, `delete_checkpoint` as in
            Keras.
    """

    def __init__(self, backup_dir, data_state=None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self._data_sync = DataEpochSync(data_state) if _as_list(data_state) else None

    def set_model(self, model):
        super().set_model(model)
        if self._data_sync is not None:
            self._data_sync.set_model(model)

    def on_train_begin(self, logs=None):
        # A fit starts at epoch 0 unless this backup says otherwise: Keras
        # keeps `model._initial_epoch` from the last restore, and a later
        # `fit` of the same model object (stage two after a resumed stage
        # one) would start at that epoch and train nothing.
        self.model._initial_epoch = None
        super().on_train_begin(logs)
        if self._data_sync is not None:
            self._data_sync.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if self._data_sync is not None:
            self._data_sync.on_epoch_begin(epoch, logs)

    def _load_model(self):
        meta = _read_metadata(self._training_metadata_path)
        if meta is None or "weights" not in meta:
            return super()._load_model()  # none yet, or a backup of Keras' own
        if not self.model.built:
            return super()._load_model()  # Keras' error message
        try:
            self._restore(meta)
        except OSError:
            previous = _read_metadata(self._prev_training_metadata_path)
            if previous is None or "weights" not in previous:
                raise
            self._restore(previous)

    def _restore(self, meta):
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, meta["weights"]))
        self.model._initial_epoch = meta["epoch"]

    def _save_model(self):
        if not is_chief():
            # The other workers save too (reading distributed variables may
            # need them all), into a local scratch folder they delete.
            scratch = tempfile.mkdtemp(prefix="lcreg-backup-")
            try:
                self.model.save_weights(os.path.join(scratch, "latest.weights.h5"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        if "://" in str(self.backup_dir):  # gs://, s3://, ...: Keras' own writes
            return super()._save_model()
        # One commit point: the weights go to a new file named after the
        # epoch, then the metadata naming it replaces the old metadata. A
        # kill before that rename leaves the previous backup in force.
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{self._current_epoch}-batch-{self._last_batch_seen}.weights.h5"
        self.model.save_weights(filepath=os.path.join(self.backup_dir, name), overwrite=True)
        meta = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        previous = _read_metadata(self._training_metadata_path)
        if self.double_checkpoint and previous is not None:
            _write_atomic(self._prev_training_metadata_path, previous)
        _write_atomic(self._training_metadata_path, meta, kill_point="write:backup")
        keep = {name}
        if self.double_checkpoint and previous is not None:
            keep.add(previous.get("weights"))
        for other in os.listdir(self.backup_dir):
            if other.startswith("epoch-") and other.endswith(".weights.h5") and other not in keep:
                os.remove(os.path.join(self.backup_dir, other))

    def on_train_end(self, logs=None):
        # The restored epoch belongs to this fit only (see on_train_begin).
        self.model._initial_epoch = None
        if is_chief():
            super().on_train_end(logs)


def _read_metadata(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_atomic(path, content, kill_point=None):
    tmp = path + ".writing"
    with open(tmp, "w") as f:
        f.write(json.dumps(content))
        f.flush()
        os.fsync(f.fileno())
    if kill_point:
        run_folder.kill_point(kill_point)
    os.replace(tmp, path)
