"""Datasets the recipes train on, each loaded into the same `Data` bundle.

`LOADERS` maps `config.dataset` to a loader:

- `fashion_mnist_lt`, `cifar10_lt`, `cifar100_lt`: array datasets made
  long-tailed with the CIFAR-LT rule (spec Sec. 7; n_max 6000 / 5000 / 500),
  the CIFAR pipeline (pad-4 crop, flip, normalise). Fashion-MNIST normalises
  with the statistics of its long-tailed training subset; CIFAR uses
  MiSLAS's constants `CIFAR_MEAN` / `CIFAR_STD`, what the paper trained with.
- `imagenet_lt`, `places_lt`, `inaturalist2018`: image files named by list
  files (`data_dir` is the image root; the lists are looked up in it unless
  given as paths), the ImageNet pipeline (random resized crop 224, flip,
  colour jitter 0.4; test: resize 256, centre crop 224). ImageNet-LT and
  Places-LT normalise with the ImageNet statistics, iNaturalist with MiSLAS's
  iNaturalist ones.

Every loader also builds `stage_two_train`: class-aware balanced batches
(no mixup) for the decoupled stage two, MiSLAS's: runs of
`stage2_samples_per_class` (4) images a class, `ceil(N / B) + 1` batches an
epoch unless `stage2_epoch_size` says otherwise (`stage_two_sizes`).
`max_train_examples` / `max_test_examples` shrink the data for smoke runs:
the long-tailed rule with a smaller n_max for the array datasets, a
per-class proportional cap (every class keeps an image where the cap
allows) for the list datasets. Every subset (the long-tailed draw and these
caps) is drawn with `config.subset_seed`, not the run's `seed`: as in MiSLAS
(`rand_number=0`), runs with different seeds train on the same images.
"""

import dataclasses
import hashlib
import os
import time
from typing import Any, Optional, Sequence

import numpy as np

from lcreg_keras.data import cifar
from lcreg_keras.data import image_lists
from lcreg_keras.data import normalization
from lcreg_keras.data import pipelines
from lcreg_keras.data.balanced import stage_two_epoch
from lcreg_keras.data.fashion_mnist import CLASS_NAMES as FASHION_MNIST_CLASSES
from lcreg_keras.data.fashion_mnist import load_fashion_mnist
from lcreg_keras.data.heldout import heldout_split
from lcreg_keras.data.image_files import check_images
from lcreg_keras.data.image_files import keep_readable
from lcreg_keras.data.long_tail import class_counts
from lcreg_keras.data.long_tail import long_tailed_counts
from lcreg_keras.data.long_tail import long_tailed_subset
from lcreg_keras.errors import UserError
from lcreg_keras.recipes import baselines
from lcreg_keras.serving.run_folder import file_sha256


@dataclasses.dataclass
class Data:
    """What the runner needs of a dataset.

    Attributes:
        name: dataset name.
        train: `tf.data.Dataset` of training batches (augmented, shuffled,
            mixed when the recipe mixes); each pass is one epoch.
        test: `tf.data.Dataset` of test batches, in the order of `test_labels`.
        test_labels: `(N_test,)` int array.
        train_counts: `(C,)` training examples per class (defines many /
            medium / few).
        num_classes: C.
        input_shape: `(H, W, C)` of the model's input.
        steps_per_epoch: training batches per epoch.
        preprocessing: how raw uint8 images become model inputs, written to
            `preprocessing.json` for evaluation and export: `input_shape`,
            per-channel `mean` and `std` in [0, 1] scale (x / 255 - mean) / std,
            and `resize` (the shorter side before a centre crop to
            `input_shape`, or None: resize straight to `input_shape`).
        stage_two_train: class-aware balanced training batches for stage two
            (no mixup), or None where not built.
        stage_two_steps: batches per stage-two epoch (`stage_two_sizes`).
        source: where the data was read from.
        class_names: optional list of names.
        skipped_images: image files left out as unreadable
            (`config.skip_bad_images`), training and test together.
        heldout: held-out training batches (test-time pipeline), carved from
            the training data before training (`config.heldout_fraction`), or
            None; post-hoc choices such as tau-normalisation's `tau` are made
            on it, never on the test set.
        heldout_labels: `(N_heldout,)` int array, in the order of `heldout`.
        skipped_images: image files the scan before training left out as
            unreadable (`config.skip_bad_images`), training and test
            together (`read_skips` adds those that failed while reading).
        images: per split (`"train"`, `"test"`): `listed` (entries after
            the caps), `skipped_at_scan`, `scan` (`"header"`, `"decode"`,
            `"none"`; `" (cached)"` when the manifest had the result).
        fingerprint: what identifies the data (list files' SHA-256 and
            per-class counts, or a hash of the arrays), for the run manifest.
        locations: per split, `(list_path, line_numbers)` of the kept
            entries (list datasets), for messages naming a file's line.
        states: the pipelines' `PipelineState`s, by name (`"train"`,
            `"stage_two"`, `"test"`, `"heldout"`): the epoch counters
            (`lcreg_keras.training.resume`) and the files that failed while reading.
    """

    name: str
    train: Any
    test: Any
    test_labels: np.ndarray
    train_counts: np.ndarray
    num_classes: int
    input_shape: Sequence[int]
    steps_per_epoch: int
    preprocessing: dict = dataclasses.field(default_factory=dict)
    stage_two_train: Any = None
    stage_two_steps: int = 0
    source: Optional[str] = None
    class_names: Optional[Sequence[str]] = None
    skipped_images: int = 0
    heldout: Any = None
    heldout_labels: Optional[np.ndarray] = None
    images: dict = dataclasses.field(default_factory=dict)
    fingerprint: dict = dataclasses.field(default_factory=dict)
    locations: dict = dataclasses.field(default_factory=dict)
    states: dict = dataclasses.field(default_factory=dict)

    def training_states(self):
        """The `PipelineState`s of stage one's and stage two's training pipelines."""
        return [self.states[k] for k in ("train", "stage_two") if k in self.states]

    def read_skips(self, split):
        """Files of `split` that failed while reading in this process, as paths.

        Training: every file the stage-one or stage-two pipeline failed to
        read so far. Test: the files left out of the latest pass over `test`.
        """
        names = ("train", "stage_two") if split == "train" else ("test",)
        failed = set()
        for name in names:
            if name in self.states:
                failed.update(self.states[name].failed_paths())
        return sorted(failed)

    def evaluated_test_labels(self):
        """`test_labels` of the images the latest pass over `test` delivered."""
        state = self.states.get("test")
        if state is None or state.paths is None:
            return self.test_labels
        return state.evaluated_labels(self.test_labels)

    def where(self, split, path):
        """`"list:line: path"` for a kept file of `split`, or the path alone."""
        located = self.locations.get(split)
        state = self.states.get("train" if split == "train" else "test")
        paths = state.paths if state is not None else None
        if not located or paths is None or path not in paths:
            return path
        list_path, lines = located
        return f"{_location(list_path, lines[paths.index(path)])}: {path}"

    def describe(self):
        counts = self.train_counts
        text = (
            f"data: {self.name} from {self.source}: {int(counts.sum()):,} training "
            f"examples in {self.num_classes} classes ({int(counts.max())} to "
            f"{int(counts.min())} per class), {len(self.test_labels):,} test examples"
        )
        if self.heldout_labels is not None:
            text += f"; {len(self.heldout_labels):,} training examples held out"
        if self.skipped_images:
            text += f"; {self.skipped_images:,} unreadable image files skipped"
        return text


class LoadHooks:
    """What a caller of `load` may do while the data is loaded (no-ops here).

    The runner's hooks compare the data with the run manifest before any
    image is read, and cache the image scans in it.
    """

    def fingerprint(self, fingerprint):
        """Called with `Data.fingerprint` as soon as it is known, before the scan."""

    def cached_check(self, split, paths, mode):
        """An `ImageCheck` of `paths` made earlier in `mode`, or None."""
        return None

    def store_check(self, split, paths, mode, check):
        """Keeps a fresh `ImageCheck` for `cached_check`."""


def _location(list_path, line):
    if str(list_path).lower().endswith(".json"):
        return f"{list_path} images[{int(line)}]"
    return f"{list_path}:{int(line)}"


def _sha256(*arrays):
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_mode(value):
    """`config.check_images` as `"header"`, `"decode"` or `"none"`.

    Accepts True / False / `"true"` / `"false"` / `"decode"` (and `"header"`,
    `"none"`); anything else is a `UserError`.
    """
    text = str(value).strip().lower()
    modes = {"true": "header", "1": "header", "header": "header", "false": "none",
             "0": "none", "none": "none", "decode": "decode"}
    if text not in modes:
        raise UserError(
            f"--check_images must be true (scan the headers), false (no scan) or "
            f"decode (a full strict decode). Received: {value!r}"
        )
    return modes[text]


def stage_two_sizes(config, labels):
    """The stage-two epoch of a config: a `StageTwoEpoch(examples, batch_size, steps)`.

    MiSLAS's `ceil(N / B) + 1` batches of `B = stage2_batch_size or
    batch_size` (N: training examples), or `stage2_epoch_size` examples in
    whole batches when the config sets it. Computed here once; the pipeline
    draws `examples` indices and `Data.stage_two_steps` is `steps`.
    """
    return stage_two_epoch(
        len(labels), config.stage2_batch_size or config.batch_size, config.stage2_epoch_size
    )


def capped_long_tail(images, labels, config, n_max, num_classes):
    """The long-tailed subset, shrunk (same shape of tail) to `max_train_examples`."""
    if config.max_train_examples:
        total = sum(long_tailed_counts(n_max, num_classes, config.imbalance_factor))
        while total > config.max_train_examples and n_max > 1:
            n_max = max(1, int(n_max * config.max_train_examples / total))
            total = sum(long_tailed_counts(n_max, num_classes, config.imbalance_factor))
    images, labels, _ = long_tailed_subset(
        images, labels, config.imbalance_factor, n_max=n_max, seed=config.subset_seed,
        num_classes=num_classes,
    )
    return images, labels


def carve_heldout(labels, config):
    """`(train, heldout)` indices: `config`'s held-out fraction of each class (none: None)."""
    fraction = baselines.heldout_fraction(config)
    if not fraction:
        return None
    return heldout_split(np.asarray(labels, np.int64), fraction, seed=config.seed)


def capped_test(images, labels, config):
    if config.max_test_examples and len(labels) > config.max_test_examples:
        keep = np.sort(
            np.random.default_rng(config.subset_seed).permutation(len(labels))[
                : config.max_test_examples
            ]
        )
        return images[keep], labels[keep]
    return images, labels


def small_image_data(
    name, train, test, num_classes, n_max, config, source, mean=None, std=None,
    class_names=None, hooks=None,
):
    """CIFAR-style pipelines for an array dataset made long-tailed.

    `mean` / `std` default to the statistics of the long-tailed training
    subset; `hooks` (a `LoadHooks`) sees the fingerprint.
    """
    x_train, y_train = capped_long_tail(*train, config, n_max, num_classes)
    x_test, y_test = capped_test(*test, config)
    split = carve_heldout(y_train, config)
    if split is not None:
        x_held, y_held = x_train[split[1]], y_train[split[1]]
        x_train, y_train = x_train[split[0]], y_train[split[0]]
    if mean is None or std is None:
        mean, std = pipelines.channel_stats(x_train)
    _check_batch_fits(config, len(y_train), "examples")
    states = {}
    train_ds, states["train"] = pipelines.small_image_train_dataset(
        x_train, y_train, num_classes, config.batch_size, mean, std,
        mixup_alpha=config.mixup_alpha, seed=config.seed, return_state=True,
    )
    test_ds = pipelines.small_image_eval_dataset(
        x_test, y_test, config.eval_batch_size, mean, std)
    held_ds = None
    if split is not None:
        held_ds = pipelines.small_image_eval_dataset(
            x_held, y_held, config.eval_batch_size, mean, std)
    # Stage two: class-aware balanced batches, same augmentation, no mixup.
    epoch = stage_two_sizes(config, y_train)
    stage_two, states["stage_two"] = pipelines.small_image_train_dataset(
        x_train, y_train, num_classes, epoch.batch_size, mean, std, mixup_alpha=0.0,
        seed=config.seed, sampler="class_aware", epoch_size=epoch.examples,
        samples_per_class=config.stage2_samples_per_class, return_state=True,
    )
    shape = x_train.shape[1:] if x_train.ndim == 4 else x_train.shape[1:] + (1,)
    counts = class_counts(y_train, num_classes)
    fingerprint = {
        "train": {"sha256": _sha256(x_train, y_train), "counts": counts.tolist()},
        "test": {"sha256": _sha256(x_test, y_test), "num_images": int(len(y_test))},
    }
    if hooks is not None:
        hooks.fingerprint(fingerprint)
    return Data(
        name=name,
        train=train_ds,
        test=test_ds,
        test_labels=np.asarray(y_test, np.int64),
        train_counts=counts,
        num_classes=num_classes,
        input_shape=tuple(int(d) for d in shape),
        steps_per_epoch=len(y_train) // config.batch_size,
        preprocessing={
            "input_shape": [int(d) for d in shape],
            "mean": [float(m) for m in np.atleast_1d(mean)],
            "std": [float(s) for s in np.atleast_1d(std)],
            "resize": None,
        },
        stage_two_train=stage_two,
        stage_two_steps=epoch.steps,
        source=source,
        class_names=class_names,
        heldout=held_ds,
        heldout_labels=None if split is None else np.asarray(y_held, np.int64),
        images={
            "train": {"listed": int(len(y_train)), "skipped_at_scan": 0, "scan": "none"},
            "test": {"listed": int(len(y_test)), "skipped_at_scan": 0, "scan": "none"},
        },
        fingerprint=fingerprint,
        states=states,
    )


def _check_batch_fits(config, num_train, what):
    if num_train < config.batch_size:
        raise UserError(
            f"`batch_size` {config.batch_size} exceeds the {num_train} training "
            f"{what}: stage one drops the last partial batch, so no step would run."
        )


def _fashion_mnist_lt(config, hooks=None):
    # An explicit --data_dir must hold the data: no silent fallback to another copy.
    train, test, source = load_fashion_mnist(
        config.data_dir, return_source=True, search_elsewhere=not config.data_dir
    )
    return small_image_data(
        "fashion_mnist_lt", train, test, 10, 6000, config, source,
        class_names=list(FASHION_MNIST_CLASSES), hooks=hooks,
    )


def _cifar_lt(num_classes, n_max):
    def load_cifar_lt(config, hooks=None):
        train, test, source = cifar.load_cifar(
            num_classes, config.data_dir, return_source=True,
            search_elsewhere=not config.data_dir,
        )
        return small_image_data(
            f"cifar{num_classes}_lt", train, test, num_classes, n_max, config, source,
            mean=cifar.CIFAR_MEAN, std=cifar.CIFAR_STD,
            class_names=list(cifar.CIFAR10_CLASSES) if num_classes == 10 else None,
            hooks=hooks,
        )

    return load_cifar_lt


# ----------------------------------------------------------------------------
# Datasets given as lists of image files.

# name: (number of classes, the default list names in image_lists, the
# prefix of the mean / std constants in data.normalization)
LIST_DATASETS = {
    "imagenet_lt": (1000, "IMAGENET_LT_LISTS", "IMAGENET"),
    "places_lt": (365, "PLACES_LT_LISTS", "IMAGENET"),
    "inaturalist2018": (8142, "INATURALIST_2018_LISTS", "INATURALIST"),
}


def cap_per_class(labels, max_examples, seed=0):
    """Indices of a per-class proportional subset of at most `max_examples`.

    Class `c` keeps `max(1, floor(N_c * max_examples / N))` of its `N_c`
    samples (chosen at random), trimmed from the largest classes until the
    total fits. When there are more classes than `max_examples`, a random
    `max_examples` of them keep one sample each.

    Args:
        labels: 1-D int array of class ids.
        max_examples: the cap, or None / 0 for no cap.
        seed: int seed of the choice.

    Returns:
        Sorted int64 indices into `labels` (all of them when under the cap).

    Example:
        >>> labels = np.repeat([0, 1, 2], [90, 9, 1])
        >>> np.bincount(labels[cap_per_class(labels, 20)]).tolist()
        [18, 1, 1]
    """
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    if not max_examples or n <= max_examples:
        return np.arange(n, dtype=np.int64)
    max_examples = int(max_examples)
    rng = np.random.default_rng(seed)
    num_classes = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=num_classes)
    present = np.flatnonzero(counts)
    quota = np.zeros(num_classes, np.int64)
    if len(present) >= max_examples:
        quota[rng.choice(present, max_examples, replace=False)] = 1
    else:
        quota[present] = np.maximum(1, counts[present] * max_examples // n)
        excess = int(quota.sum()) - max_examples
        while excess > 0:  # trim the largest quotas, one at a time
            largest = np.argsort(-quota, kind="stable")[: min(excess, len(present))]
            largest = largest[quota[largest] > 1]
            if len(largest) == 0:
                break
            quota[largest] -= 1
            excess -= len(largest)
    # A random order inside each class, then the first `quota` of each.
    order = rng.permutation(n)
    order = order[np.argsort(labels[order], kind="stable")]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - first[labels[order]]
    return np.sort(order[rank < quota[labels[order]]]).astype(np.int64)


def _find_list(config, names, split):
    """The list file of `split` ("train" or "test") and how it was chosen."""
    if split == "train":
        return image_lists.resolve_list(config.train_list or names["train"], config.data_dir)
    given = config.test_list or config.val_list
    if given:
        return image_lists.resolve_list(given, config.data_dir)
    defaults = [names[k] for k in ("test", "val") if k in names]
    errors = []
    for name in defaults:
        try:
            return image_lists.resolve_list(name, config.data_dir)
        except FileNotFoundError as error:
            errors.append(str(error))
    tried = [n for name in defaults for n in ((name,) if isinstance(name, str) else name)]
    raise FileNotFoundError(
        "No test list found (tried " + " and ".join(tried) + "):\n" + "\n".join(errors)
    )


def _scan(paths, config, split, mode, hooks):
    """The `ImageCheck` of one split in `mode`: cached, or made now."""
    cached = hooks.cached_check(split, paths, mode) if hooks is not None else None
    if cached is not None:
        return cached, True
    start = time.time()
    if mode == "decode":
        print(f"data: decoding the {len(paths):,} {split} images strictly "
              "(--check_images=decode; once, the result is kept in run.json) ...", flush=True)
    check = check_images(paths, decode=mode == "decode")
    check.seconds = time.time() - start
    if hooks is not None:
        hooks.store_check(split, paths, mode, check)
    return check, False


def _check_split(paths, labels, lines, list_path, config, split, hooks=None):
    """The scan of one split: drop (skip mode) or refuse bad files.

    Returns the kept `(paths, labels, lines)` and the split's `images` entry.
    """
    lines_before = lines
    mode = check_mode(config.check_images)
    info = {"listed": len(paths), "skipped_at_scan": 0, "scan": mode}
    if mode == "none":
        print(f"data: {split} scan skipped (--check_images=false); a bad file is "
              f"{'skipped' if config.skip_bad_images else 'an error'} when it is read", flush=True)
        return paths, labels, lines, info
    check, cached = _scan(paths, config, split, mode, hooks)
    if cached:
        info["scan"] += " (cached)"
    paths, labels, lines = keep_readable(
        check, paths, labels, lines, skip_bad_images=config.skip_bad_images, split=split,
        locate=lambda i: _location(list_path, lines_before[i]),
        fix="Fix them, or run with --skip_bad_images to leave them out "
            "(python tools/check_dataset.py lists them all).",
    )
    if check.num_bad:
        info["skipped_at_scan"] = check.num_bad
        took = "cached result" if cached else f"checked in {getattr(check, 'seconds', 0):.0f} s"
        listing = check.describe(split=split, locate=lambda i: _location(list_path, lines_before[i]))
        print(f"data: skipping {check.num_bad:,} unreadable {split} image files ({took}):\n"
              + "\n".join(listing.splitlines()[1:6]), flush=True)
    return paths, labels, lines, info


def image_list_data(name, config, hooks=None):
    """The `Data` of ImageNet-LT, Places-LT or iNaturalist 2018 from list files."""
    num_classes, lists_name, stats = LIST_DATASETS[name]
    names = getattr(image_lists, lists_name)
    mean = getattr(normalization, f"{stats}_MEAN")
    std = getattr(normalization, f"{stats}_STD")
    if not config.data_dir:
        raise UserError(
            f"{name} needs --data_dir: the folder the listed image paths are "
            "relative to (and where the list files are looked for)."
        )
    listed = {}
    fingerprint = {}
    for split, cap in (("train", config.max_train_examples), ("test", config.max_test_examples)):
        list_path = _find_list(config, names, split)
        paths, labels, lines = image_lists.read_any_list(
            list_path, config.data_dir, config.path_prefix, num_classes, return_lines=True
        )
        keep = cap_per_class(labels, cap, seed=config.subset_seed)
        if len(keep) < len(labels):
            paths = [paths[i] for i in keep]
            labels = labels[keep]
            lines = lines[keep]
        listed[split] = (list_path, paths, labels, lines)
        fingerprint[split] = {
            "list_sha256": file_sha256(list_path),
            "counts": class_counts(labels, num_classes).tolist(),
        }
    if hooks is not None:
        hooks.fingerprint(fingerprint)  # before any image is read
    splits, images = {}, {}
    for split, (list_path, paths, labels, lines) in listed.items():
        paths, labels, lines, images[split] = _check_split(
            paths, labels, lines, list_path, config, split, hooks
        )
        splits[split] = (list_path, paths, labels, lines)
    skipped = sum(info["skipped_at_scan"] for info in images.values())

    _, train_paths, train_labels, train_lines = splits["train"]
    _, test_paths, test_labels, _ = splits["test"]
    held = carve_heldout(train_labels, config)
    if held is not None:
        held_paths = [train_paths[i] for i in held[1]]
        held_labels = np.asarray(train_labels)[held[1]]
        train_paths = [train_paths[i] for i in held[0]]
        train_labels = np.asarray(train_labels)[held[0]]
        # Lines follow the kept paths, so messages still name the right line.
        splits["train"] = (splits["train"][0], train_paths, train_labels,
                           np.asarray(train_lines)[held[0]])
    batch_size = config.batch_size
    _check_batch_fits(config, len(train_labels), "images")
    common = dict(
        image_size=config.image_size, color_jitter=config.color_jitter,
        seed=config.seed, skip_bad_images=config.skip_bad_images, mean=mean, std=std,
        check_files=False, dct_scaling=config.dct_scaling,
    )
    states = {}
    train, states["train"] = pipelines.image_train_dataset(
        train_paths, train_labels, num_classes, batch_size,
        mixup_alpha=config.mixup_alpha, return_state=True, **common,
    )
    epoch = stage_two_sizes(config, train_labels)
    stage_two, states["stage_two"] = pipelines.image_train_dataset(
        train_paths, train_labels, num_classes, epoch.batch_size,
        mixup_alpha=0.0, sampler="class_aware", epoch_size=epoch.examples,
        samples_per_class=config.stage2_samples_per_class, return_state=True, **common,
    )
    test, states["test"] = pipelines.image_eval_dataset(
        test_paths, test_labels, config.eval_batch_size, image_size=config.image_size,
        resize_size=config.resize_size, mean=mean, std=std, check_files=False,
        skip_bad_images=config.skip_bad_images, return_state=True,
    )
    held_ds = None
    if held is not None:
        held_ds, states["heldout"] = pipelines.image_eval_dataset(
            held_paths, held_labels, config.eval_batch_size, image_size=config.image_size,
            resize_size=config.resize_size, mean=mean, std=std, check_files=False,
            return_state=True,
        )
    shape = (config.image_size, config.image_size, 3)
    return Data(
        name=name,
        train=train,
        test=test,
        test_labels=np.asarray(test_labels, np.int64),
        train_counts=class_counts(train_labels, num_classes),
        num_classes=num_classes,
        input_shape=shape,
        steps_per_epoch=len(train_labels) // batch_size,
        preprocessing={
            "input_shape": list(shape),
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
            "resize": config.resize_size,
        },
        stage_two_train=stage_two,
        stage_two_steps=epoch.steps,
        source=(
            f"{splits['train'][0]} + {splits['test'][0]} (images under "
            f"{os.path.join(config.data_dir, config.path_prefix or '')})"
        ),
        skipped_images=skipped,
        heldout=held_ds,
        heldout_labels=None if held is None else np.asarray(held_labels, np.int64),
        images=images,
        fingerprint=fingerprint,
        locations={split: (v[0], v[3]) for split, v in splits.items()},
        states=states,
    )


def _list_loader(name):
    def load_list_dataset(config, hooks=None):
        return image_list_data(name, config, hooks)

    return load_list_dataset


LOADERS = {
    "fashion_mnist_lt": _fashion_mnist_lt,
    "cifar10_lt": _cifar_lt(10, 5000),
    "cifar100_lt": _cifar_lt(100, 500),
    "imagenet_lt": _list_loader("imagenet_lt"),
    "places_lt": _list_loader("places_lt"),
    "inaturalist2018": _list_loader("inaturalist2018"),
}


def load(config, hooks=None):
    """The `Data` of `config.dataset`; `hooks`: an optional `LoadHooks`."""
    if config.dataset not in LOADERS:
        raise UserError(
            f"Unknown dataset {config.dataset!r}; known: {sorted(LOADERS)}."
        )
    return LOADERS[config.dataset](config, hooks)
