"""Datasets the recipes train on, each loaded into the same `Data` bundle."""

import dataclasses
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
        stage_two_steps: batches per stage-two epoch.
        source: where the data was read from.
        class_names: optional list of names.
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

    def describe(self):
        counts = self.train_counts
        return (
            f"data: {self.name} from {self.source}: {int(counts.sum()):,} training "
            f"examples in {self.num_classes} classes ({int(counts.max())} to "
            f"{int(counts.min())} per class), {len(self.test_labels):,} test examples"
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
        images, labels, config.imbalance_factor, n_max=n_max, seed=config.seed,
        num_classes=num_classes,
    )
    return images, labels


def capped_test(images, labels, config):
    if config.max_test_examples and len(labels) > config.max_test_examples:
        keep = np.sort(
            np.random.default_rng(config.seed).permutation(len(labels))[: config.max_test_examples]
        )
        return images[keep], labels[keep]
    return images, labels


def small_image_data(name, train, test, num_classes, n_max, config, source):
    """CIFAR-style pipelines for an array dataset made long-tailed."""
    from lcreg_keras.data import channel_stats
    from lcreg_keras.data import class_counts
    from lcreg_keras.data import small_image_eval_dataset
    from lcreg_keras.data import small_image_train_dataset

    x_train, y_train = capped_long_tail(*train, config, n_max, num_classes)
    x_test, y_test = capped_test(*test, config)
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
        source=source,
    )


def _fashion_mnist_lt(config):
    from lcreg_keras.data import load_fashion_mnist

    train, test, source = load_fashion_mnist(config.data_dir, return_source=True)
    return small_image_data("fashion_mnist_lt", train, test, 10, 6000, config, source)


LOADERS = {"fashion_mnist_lt": _fashion_mnist_lt}


def load(config):
    """The `Data` of `config.dataset`."""
    if config.dataset not in LOADERS:
        raise ValueError(
            f"Unknown dataset {config.dataset!r}; known: {sorted(LOADERS)}."
        )
    return LOADERS[config.dataset](config)
