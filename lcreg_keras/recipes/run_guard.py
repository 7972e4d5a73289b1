"""A run's folder guarded: one run at a time, and only the run that made it.

`RunGuard` compares a run with `model_dir/run.json` (config, data
fingerprint, version) and refuses, or with `--overwrite` discards what the
differences invalidate; it is also the run's `datasets.LoadHooks`, keeping
the image scans in the manifest. `lock_note` says when a run took over the
lock of a dead one. `finished` (a stage's `done.json` exists) and `plain`
(JSON-ready values) are what the runner, the guard and the report share.
"""

import dataclasses
import hashlib
import os
import shutil

import numpy as np

from lcreg_keras import __version__
from lcreg_keras.data.image_files import ImageCheck
from lcreg_keras.data.image_files import files_digest
from lcreg_keras.serving import run_folder


def plain(value):
    """JSON-ready Python values (NumPy scalars and arrays become floats, ints, lists)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def finished(stage_dir):
    """Whether a stage is finished: its `done.json` (written last) exists."""
    return os.path.exists(os.path.join(stage_dir, "done.json"))


def lock_note(holder):
    """The note printed when a run took over the lock of a dead run."""
    return (f"note: took over the lock of PID {holder.get('pid')} on {holder.get('host')} "
            "(that run is no longer running)")


class RunGuard:
    """Compares a run with `model_dir/run.json` and records it.

    Also the run's `datasets.LoadHooks`: it checks the data's fingerprint
    before any image is read, and keeps the image scans in the manifest.
    """
    def __init__(self, config, overwrite):
        self.config = config
        self.overwrite = overwrite
        self.manifest = run_folder.Manifest(config.model_dir)
        self.discard = set()  # "all" or "stage2"

    # The fields that do not change results: where things are, how a run is
    # split over devices, what is printed; `stage` may change between runs
    # (--stage=1, then --stage=2).
    IGNORED = ("model_dir", "data_dir", "path_prefix", "train_list", "val_list", "test_list",
               "stage", "check_images", "distribution", "paper_top1")
    STAGE_TWO = ("stage2_epochs", "stage2_lr", "stage2_lr_factor", "stage2_batch_size",
                 "stage2_epoch_size", "stage2_samples_per_class", "stage2", "eps_head",
                 "eps_tail", "shift_bn")

    def _progress(self, stage):
        folder = os.path.join(self.config.model_dir, stage)
        return finished(folder) or os.path.isdir(os.path.join(folder, "backup"))

    def _refuse_or_discard(self, what, lines, scope):
        if not lines:
            return
        touched = self._progress("stage2") if scope == "stage2" else (
            self._progress("stage1") or self._progress("stage2")
            or os.path.exists(os.path.join(self.config.model_dir, "metrics.json")))
        if not touched:
            return
        if self.overwrite:
            print(f"--overwrite: {self.config.model_dir} held a run made with {what}; "
                  f"discarding {'stage two' if scope == 'stage2' else 'its outputs'}:\n"
                  + "\n".join(lines[:12]), flush=True)
            self.discard.add(scope)
            return
        keeps = ("stage one is kept: only stage two's outputs are discarded"
                 if scope == "stage2" else "its outputs are discarded")
        raise run_folder.mismatch_error(
            self.config.model_dir, what, lines,
            f"Use another --model_dir, run with the settings recorded in "
            f"{self.manifest.path}, or pass --overwrite ({keeps}).",
        )

    def check_config(self):
        recorded = {k: v for k, v in plain(dataclasses.asdict(self.config)).items()
                    if k not in self.IGNORED}
        first = {k: v for k, v in recorded.items() if k not in self.STAGE_TWO}
        second = {k: v for k, v in recorded.items() if k in self.STAGE_TWO}
        if not self.manifest.existing and (self._progress("stage1") or self._progress("stage2")):
            print(f"note: {self.config.model_dir} has no {os.path.basename(self.manifest.path)} "
                  "(made by an older version): its config and data cannot be checked.",
                  flush=True)
        self._refuse_or_discard("another config", self.manifest.compare("config", first),
                                "all")
        self._refuse_or_discard("other stage-two settings",
                                self.manifest.compare("stage_two_config", second),
                                "stage2")
        self.manifest.content["version"] = __version__

    def fingerprint(self, fingerprint):
        self._refuse_or_discard("other data", self.manifest.compare("data", fingerprint),
                                "all")
        self._apply_discards()
        self.manifest.save()

    def _apply_discards(self):
        root = self.config.model_dir
        if "all" in self.discard:
            names = ("stage1", "stage2", "model.keras", "metrics.json", "preprocessing.json")
        elif "stage2" in self.discard:
            names = ("stage2", "model.keras", "metrics.json")
        else:
            return
        for name in names:
            path = os.path.join(root, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        self.discard.clear()

    def _key(self, split, paths):
        digest = hashlib.sha256("\n".join(paths).encode("utf-8", "surrogateescape"))
        return f"{split}:{digest.hexdigest()[:32]}"

    def cached_check(self, split, paths, mode):
        entry = self.manifest.image_check(self._key(split, paths))
        # A strict decode also answers a header scan (it found at least as much).
        if entry is None or (mode == "decode" and entry["mode"] != "decode"):
            return None
        if entry["files"] != files_digest(paths):
            return None  # a file was added, removed, replaced or touched since
        return ImageCheck(num_files=entry["num_files"],
                          bad=[tuple(b) for b in entry["bad"]])

    def store_check(self, split, paths, mode, check):
        key = self._key(split, paths)
        old = self.manifest.image_check(key)
        if old is not None and old["mode"] == "decode" and mode != "decode":
            return
        self.manifest.store_image_check(key, {
            "mode": mode, "num_files": check.num_files, "files": files_digest(paths),
            "bad": [list(b) for b in check.bad],
        })
