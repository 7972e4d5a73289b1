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
import os
import time
from typing import Any, Optional, Sequence

import numpy as np


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


def stage_two_sizes(config, labels):
    """The stage-two epoch of a config: a `StageTwoEpoch(examples, batch_size, steps)`.

    MiSLAS's `ceil(N / B) + 1` batches of `B = stage2_batch_size or
    batch_size` (N: training examples), or `stage2_epoch_size` examples in
    whole batches when the config sets it. Computed here once; the pipeline
    draws `examples` indices and `Data.stage_two_steps` is `steps`.
    """
    from lcreg_keras.data import stage_two_epoch

    return stage_two_epoch(
        len(labels), config.stage2_batch_size or config.batch_size, config.stage2_epoch_size
    )


def capped_long_tail(images, labels, config, n_max, num_classes):
    """The long-tailed subset, shrunk (same shape of tail) to `max_train_examples`."""
    from lcreg_keras.data import long_tailed_counts
    from lcreg_keras.data import long_tailed_subset

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
    from lcreg_keras.data.heldout import heldout_split
    from lcreg_keras.recipes import baselines

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
    class_names=None,
):
    """CIFAR-style pipelines for an array dataset made long-tailed.

    `mean` / `std` default to the statistics of the long-tailed training
    subset.
    """
    from lcreg_keras.data import channel_stats
    from lcreg_keras.data import class_counts
    from lcreg_keras.data import small_image_eval_dataset
    from lcreg_keras.data import small_image_train_dataset

    x_train, y_train = capped_long_tail(*train, config, n_max, num_classes)
    x_test, y_test = capped_test(*test, config)
    split = carve_heldout(y_train, config)
    if split is not None:
        x_held, y_held = x_train[split[1]], y_train[split[1]]
        x_train, y_train = x_train[split[0]], y_train[split[0]]
    if mean is None or std is None:
        mean, std = channel_stats(x_train)
    if len(y_train) < config.batch_size:
        raise ValueError(
            f"`batch_size` {config.batch_size} exceeds the {len(y_train)} training "
            "examples: stage one drops the last partial batch, so no step would run."
        )
    train_ds = small_image_train_dataset(
        x_train, y_train, num_classes, config.batch_size, mean, std,
        mixup_alpha=config.mixup_alpha, seed=config.seed,
    )
    test_ds = small_image_eval_dataset(x_test, y_test, config.eval_batch_size, mean, std)
    held_ds = None
    if split is not None:
        held_ds = small_image_eval_dataset(x_held, y_held, config.eval_batch_size, mean, std)
    # Stage two: class-aware balanced batches, same augmentation, no mixup.
    epoch = stage_two_sizes(config, y_train)
    stage_two = small_image_train_dataset(
        x_train, y_train, num_classes, epoch.batch_size, mean, std, mixup_alpha=0.0,
        seed=config.seed, sampler="class_aware", epoch_size=epoch.examples,
        samples_per_class=config.stage2_samples_per_class,
    )
    shape = x_train.shape[1:] if x_train.ndim == 4 else x_train.shape[1:] + (1,)
    return Data(
        name=name,
        train=train_ds,
        test=test_ds,
        test_labels=np.asarray(y_test, np.int64),
        train_counts=class_counts(y_train, num_classes),
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
    )


def _fashion_mnist_lt(config):
    from lcreg_keras.data import FASHION_MNIST_CLASSES
    from lcreg_keras.data import load_fashion_mnist

    train, test, source = load_fashion_mnist(config.data_dir, return_source=True)
    return small_image_data(
        "fashion_mnist_lt", train, test, 10, 6000, config, source,
        class_names=list(FASHION_MNIST_CLASSES),
    )


def _cifar_lt(num_classes, n_max):
    def load_cifar_lt(config):
        from lcreg_keras.data import cifar

        train, test, source = cifar.load_cifar(
            num_classes, config.data_dir, return_source=True
        )
        return small_image_data(
            f"cifar{num_classes}_lt", train, test, num_classes, n_max, config, source,
            mean=cifar.CIFAR_MEAN, std=cifar.CIFAR_STD,
            class_names=list(cifar.CIFAR10_CLASSES) if num_classes == 10 else None,
        )

    return load_cifar_lt


# ----------------------------------------------------------------------------
# Datasets given as lists of image files.

# name: (number of classes, the default list names in image_lists, the
# prefix of the mean / std constants in image_pipeline)
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
    from lcreg_keras.data.image_lists import resolve_list

    if split == "train":
        return resolve_list(config.train_list or names["train"], config.data_dir)
    given = config.test_list or config.val_list
    if given:
        return resolve_list(given, config.data_dir)
    defaults = [names[k] for k in ("test", "val") if k in names]
    errors = []
    for name in defaults:
        try:
            return resolve_list(name, config.data_dir)
        except FileNotFoundError as error:
            errors.append(str(error))
    tried = [n for name in defaults for n in ((name,) if isinstance(name, str) else name)]
    raise FileNotFoundError(
        "No test list found (tried " + " and ".join(tried) + "):\n" + "\n".join(errors)
    )


def _check_split(paths, labels, config, split):
    """The header scan of one split: drop (skip mode) or refuse bad files."""
    from lcreg_keras.data.image_files import UnreadableImagesError
    from lcreg_keras.data.image_pipeline import check_images

    if not config.check_images:
        print(f"data: {split} header scan skipped (--check_images=false); a bad file is "
              f"{'skipped' if config.skip_bad_images else 'an error'} when it is read", flush=True)
        return paths, labels, 0
    start = time.time()
    check = check_images(paths)
    seconds = time.time() - start
    if check.num_bad and not config.skip_bad_images:
        raise UnreadableImagesError(
            f"The {split} list names unreadable image files.\n{check.describe()}\n"
            "Fix them, or run with --skip_bad_images to leave them out "
            "(python tools/check_dataset.py lists them all).",
            check,
        )
    if check.num_bad:
        keep = check.ok
        paths = [p for p, k in zip(paths, keep) if k]
        labels = labels[keep]
        print(
            f"data: skipping {check.num_bad:,} unreadable {split} image files "
            f"(checked {check.num_files:,} in {seconds:.0f} s):\n{check.describe(5)}",
            flush=True,
        )
    if not paths:
        raise ValueError(f"No readable {split} image is left.")
    return paths, labels, check.num_bad


def image_list_data(name, config):
    """The `Data` of ImageNet-LT, Places-LT or iNaturalist 2018 from list files."""
    from lcreg_keras.data import class_counts
    from lcreg_keras.data import image_lists
    from lcreg_keras.data import image_pipeline

    num_classes, lists_name, stats = LIST_DATASETS[name]
    names = getattr(image_lists, lists_name)
    mean = getattr(image_pipeline, f"{stats}_MEAN")
    std = getattr(image_pipeline, f"{stats}_STD")
    if not config.data_dir:
        raise ValueError(
            f"{name} needs --data_dir: the folder the listed image paths are "
            "relative to (and where the list files are looked for)."
        )
    splits = {}
    skipped = 0
    for split, cap in (("train", config.max_train_examples), ("test", config.max_test_examples)):
        list_path = _find_list(config, names, split)
        paths, labels = image_lists.read_any_list(
            list_path, config.data_dir, config.path_prefix, num_classes
        )
        keep = cap_per_class(labels, cap, seed=config.subset_seed)
        if len(keep) < len(labels):
            paths = [paths[i] for i in keep]
            labels = labels[keep]
        paths, labels, bad = _check_split(paths, labels, config, split)
        skipped += bad
        splits[split] = (list_path, paths, labels)

    _, train_paths, train_labels = splits["train"]
    _, test_paths, test_labels = splits["test"]
    held = carve_heldout(train_labels, config)
    if held is not None:
        held_paths = [train_paths[i] for i in held[1]]
        held_labels = np.asarray(train_labels)[held[1]]
        train_paths = [train_paths[i] for i in held[0]]
        train_labels = np.asarray(train_labels)[held[0]]
    batch_size = config.batch_size
    if len(train_labels) < batch_size:
        raise ValueError(
            f"`batch_size` {batch_size} exceeds the {len(train_labels)} training "
            "images: stage one drops the last partial batch, so no step would run."
        )
    common = dict(
        image_size=config.image_size, color_jitter=config.color_jitter,
        seed=config.seed, skip_bad_images=config.skip_bad_images, mean=mean, std=std,
        check_files=False,
    )
    train = image_pipeline.image_train_dataset(
        train_paths, train_labels, num_classes, batch_size,
        mixup_alpha=config.mixup_alpha, **common,
    )
    epoch = stage_two_sizes(config, train_labels)
    stage_two = image_pipeline.image_train_dataset(
        train_paths, train_labels, num_classes, epoch.batch_size,
        mixup_alpha=0.0, sampler="class_aware", epoch_size=epoch.examples,
        samples_per_class=config.stage2_samples_per_class, **common,
    )
    test = image_pipeline.image_eval_dataset(
        test_paths, test_labels, config.eval_batch_size, image_size=config.image_size,
        resize_size=config.resize_size, mean=mean, std=std, check_files=False,
    )
    held_ds = None
    if held is not None:
        held_ds = image_pipeline.image_eval_dataset(
            held_paths, held_labels, config.eval_batch_size, image_size=config.image_size,
            resize_size=config.resize_size, mean=mean, std=std, check_files=False,
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
    )


def _list_loader(name):
    def load_list_dataset(config):
        return image_list_data(name, config)

    return load_list_dataset


LOADERS = {
    "fashion_mnist_lt": _fashion_mnist_lt,
    "cifar10_lt": _cifar_lt(10, 5000),
    "cifar100_lt": _cifar_lt(100, 500),
    "imagenet_lt": _list_loader("imagenet_lt"),
    "places_lt": _list_loader("places_lt"),
    "inaturalist2018": _list_loader("inaturalist2018"),
}


def load(config):
    """The `Data` of `config.dataset`."""
    if config.dataset not in LOADERS:
        raise ValueError(
            f"Unknown dataset {config.dataset!r}; known: {sorted(LOADERS)}."
        )
    return LOADERS[config.dataset](config)
