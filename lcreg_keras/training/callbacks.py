"""Callbacks used by the recipes."""

import math

import keras
from keras import ops

from lcreg_keras.serving import run_folder as run_dir


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs.

    Put it before `TensorBoard` / `CSVLogger` in the callback list: they read
    the same logs dict afterwards and record `learning_rate` with the rest.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        # A schedule is evaluated at the optimizer's step count here.
        lr = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(ops.convert_to_numpy(lr))


class LossShareMonitor(keras.callbacks.Callback):
    """Warns once per term when an auxiliary loss is inert (spec Sec. 3.d).

    `LCRegModel` logs each auxiliary term's share of the loss,
    `share_aug = alpha L_aug / L` and `share_recon = beta L_recon / L`. After
    the first `warmup_fraction` of the epochs, the first epoch whose mean
    share of a term is below `threshold` prints one warning naming the term
    (and never again for that term): a term that small barely trains
    anything, which a user should know before reading an ablation.

    Args:
        threshold: the share below which a term counts as inert (1 %).
        warmup_fraction: the share of the epochs left unchecked (a tenth).
        terms: the log keys to watch.

    Example:

    >>> model.fit(x, y, epochs=20, callbacks=[LossShareMonitor()])  # doctest: +SKIP
    """

    def __init__(self, threshold=0.01, warmup_fraction=0.1, terms=("share_aug", "share_recon")):
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError(f"`threshold` must lie in (0, 1). Received: {threshold}")
        if not 0 <= warmup_fraction < 1:
            raise ValueError(
                f"`warmup_fraction` must lie in [0, 1). Received: {warmup_fraction}"
            )
        self.threshold = float(threshold)
        self.warmup_fraction = float(warmup_fraction)
        self.terms = tuple(terms)
        self.warned = []  # the messages printed, in order

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        epochs = (self.params or {}).get("epochs") or 0
        if epoch + 1 <= math.ceil(self.warmup_fraction * epochs):
            return
        for term in self.terms:
            if term not in logs or any(term in message for message in self.warned):
                continue
            share = float(logs[term])
            if share < self.threshold:
                message = (
                    f"WARNING: {term} = {100 * share:.2f} % of the loss at epoch "
                    f"{epoch + 1} of {epochs}, below {100 * self.threshold:g} % after the "
                    f"first {100 * self.warmup_fraction:g} % of training: that auxiliary "
                    "term is close to inert (spec Sec. 3.d)."
                )
                self.warned.append(message)
                print(message, flush=True)


class HistoryCSV(keras.callbacks.Callback):
    """`CSVLogger` for resumable runs: one row per finished epoch, never doubled.

    Writes `path` as `keras.callbacks.CSVLogger` does (an `epoch` column,
    then the logged values in sorted order), but rewrites the whole file
    atomically after every epoch, and at the first epoch of a `fit` drops
    the rows of that epoch and later ones (left by a run killed after the
    row was written and before its backup). A run resumed by
    `BackupAndRestore` so ends with the same file as a run never killed.
    Put it before the backup callback in the list.

    Args:
        path: the CSV file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self._rows = None
        self._keys = None

    def _read(self):
        import csv
        import os

        if not os.path.exists(self.path):
            return [], None
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return rows, reader.fieldnames

    def on_train_begin(self, logs=None):
        self._rows, self._keys = self._read()
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self._rows = [r for r in self._rows if int(r["epoch"]) < epoch]
            self._started = True

    def on_epoch_end(self, epoch, logs=None):
        import csv
        import io

        logs = dict(logs or {})
        # Columns: those of the file so far plus any new key (validation
        # metrics appear only on validation epochs); a missing value is "NA".
        known = set(self._keys[1:]) if self._keys else set()
        self._keys = ["epoch"] + sorted(known | set(logs))
        row = {"epoch": str(epoch)}
        for key, value in logs.items():
            row[key] = str(float(ops.convert_to_numpy(value)))
        self._rows.append(row)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self._keys, restval="NA", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self._rows)

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                f.write(text.getvalue())

        run_dir.replace_file(self.path, write)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the model after each epoch (or each best one), atomically.

    `keras.callbacks.ModelCheckpoint` writes the `.keras` file in place, so a
    kill during the write leaves a truncated file. This writes a temporary
    file and renames it. With `monitor`, only epochs that improve on the best
    value so far are saved; the best value is kept in `path + ".json"` so a
    resumed run compares against the epochs before the kill too.

    Args:
        path: the `.keras` file.
        monitor: optional logged value to track (e.g. `"val_accuracy"`).
        mode: `"max"` or `"min"`.
    """

    def __init__(self, path, monitor=None, mode="max"):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min'. Received: {mode!r}")
        self.path = path
        self.monitor = monitor
        self.mode = mode

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            run_dir.save_model(self.model, self.path)
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(ops.convert_to_numpy(value))
        best = run_dir.read_json(self.path + ".json", default={})
        if best.get("epoch") is not None and best["epoch"] >= epoch:
            best = {}  # written by epochs this run repeats
        if "value" in best:
            better = value > best["value"] if self.mode == "max" else value < best["value"]
            if not better:
                return
        run_dir.save_model(self.model, self.path)
        run_dir.write_json(self.path + ".json", {"epoch": epoch, "value": value,
                                                 "monitor": self.monitor})


class KillPoints(keras.callbacks.Callback):
    """Visits `run_dir.kill_point(f"{prefix}.batch")` after every training batch (tests)."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def on_train_batch_end(self, batch, logs=None):
        run_dir.kill_point(f"{self.prefix}.batch")
