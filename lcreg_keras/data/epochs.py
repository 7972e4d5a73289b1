"""What the array and the image-file pipelines share: the epoch skeleton, its keys, mixup, the sampler.

`lcreg_keras.data.array_pipelines` (CIFAR, Fashion-MNIST) and
`lcreg_keras.data.file_pipelines` (ImageNet-LT, Places-LT, iNaturalist 2018)
build their training datasets on one skeleton, `keyed_epochs`: a pass over
the dataset is one epoch, the dataset counts its epochs itself (a CPU int64
`tf.Variable` incremented as each pass starts) and every batch is made by
`make_batch(epoch, step, batch)`, so each random draw can be keyed on
`(seed, epoch, step)` (`fold(base, stream, epoch, step)`, stateless TF
ops). Given `seed`, the n-th pass over a dataset object is then the same
on every run and does not depend on TF's global seed.

Also here: `PipelineState` (what a pipeline keeps beside its batches), the
stream tags folded into the seed, `mixup_batch` (per batch, stateless), the
sampler arguments (`check_sampler`) and the class-aware epoch order
(`class_aware_order`), and the argument checks both builders use.

State. A training pipeline counts its epochs (a CPU `tf.Variable`), a file
pipeline records the files that failed while reading; builders called with
`return_state=True` return `(dataset, PipelineState)`, and whoever needs
that state (resuming, the unreadable-file report) is handed it explicitly:
`lcreg_keras.training.resume.BackupAndRestore(..., data_state=state)`,
`state.evaluated_labels(labels)`, `state.failed_paths()`.

"""

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from lcreg_keras.data.balanced import SAMPLES_PER_CLASS
from lcreg_keras.data.balanced import class_aware_indices
from lcreg_keras.data.balanced import stage_two_epoch
from lcreg_keras.data.labels import check_labels

AUTOTUNE = tf.data.AUTOTUNE

# Stream tags folded into the seed, so the order, augmentation and mixup draw
# independent numbers (arrays 1-3, image files 11-15).
ORDER, AUGMENT, MIXUP = 1, 2, 3
FILE_CROP, FILE_FLIP, FILE_JITTER, FILE_ORDER, FILE_MIXUP = 11, 12, 13, 14, 15
# The second word of each builder's base seed, `[seed, word]`.
ARRAY_STREAMS = 0x4C435265  # "LCRe"
FILE_STREAMS = 0x494D4731  # "IMG1"


@dataclasses.dataclass
class PipelineState:
    """What a pipeline keeps beside its batches (`return_state=True`).

    Attributes:
        epoch: training pipelines: a CPU int64 `tf.Variable`, the epoch the
            next pass draws (incremented as each pass starts); else None.
        paths: file pipelines: the files read (after the header scan).
        check: file pipelines: the `ImageCheck` of the scan run at
            construction, or None.
        failures: file pipelines: a bool `tf.Variable` over `paths`, the
            files that failed while reading (training: so far; evaluation:
            in the latest pass).
        skips: file training pipelines: a `tf.Variable` counting failed reads.
    """

    epoch: Any = None
    paths: Optional[list] = None
    check: Optional[Any] = None
    failures: Any = None
    skips: Any = None

    def set_epoch(self, epoch):
        """Makes the next pass draw epoch `epoch`; False when there is no counter."""
        if self.epoch is None:
            return False
        self.epoch.assign(int(epoch))
        return True

    def failed_indices(self):
        """Sorted int64 indices into `paths` of the files that failed while reading."""
        if self.failures is None:
            return np.zeros([0], np.int64)
        return np.flatnonzero(self.failures.numpy()).astype(np.int64)

    def failed_paths(self):
        """The paths of `failed_indices` (empty for an array pipeline)."""
        if self.paths is None:
            return []
        return [self.paths[i] for i in self.failed_indices()]

    def evaluated_labels(self, labels):
        """`labels` (one per kept file) of the images the latest pass delivered."""
        labels = np.asarray(labels)
        keep = np.ones(len(labels), bool)
        keep[self.failed_indices()] = False
        return labels[keep]

    def skipped_images(self):
        """Files left out: at the scan plus, training, the failed reads so far."""
        count = self.check.num_bad if self.check is not None else 0
        if self.skips is not None:
            count += int(self.skips.numpy())
        return count


def returned(dataset, state, return_state):
    return (dataset, state) if return_state else dataset


def as_labels(labels, n, num_classes=None, per="image"):
    """`labels` as int32, checked: 1-D, one per `per` (n of them), in [0, num_classes).

    The value checks are `lcreg_keras.data.labels.check_labels`'s.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(
            f"`labels` must be a 1-D array with one label per {per} ({n}). "
            f"Received shape {labels.shape}."
        )
    return check_labels(labels, num_classes).astype(np.int32)


def per_channel(value, channels, name):
    value = np.asarray(value, np.float32).reshape(-1)
    if value.size == 1:
        value = np.repeat(value, channels)
    if value.size != channels:
        raise ValueError(
            f"`{name}` must be a scalar or have one entry per channel "
            f"({channels}). Received {value.size} entries."
        )
    if name == "std" and np.any(value <= 0):
        raise ValueError(f"`std` must be positive. Received {value.tolist()}.")
    if np.any(value > 2.0) or (name == "mean" and np.any(value < 0)):
        raise ValueError(
            f"`{name}` must be in the [0, 1] pixel scale (e.g. 0.4914, not "
            f"125.3). Received {value.tolist()}."
        )
    return value


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    return int(value)


def seed_pair(seed):
    """A shape-(2,) int64 stateless seed from an int or a pair."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return seed


def fold(seed, *data):
    """`seed` (shape (2,)) with each of `data` folded in, in order: one stream's key."""
    for value in data:
        seed = tf.random.experimental.stateless_fold_in(
            seed, tf.cast(value, tf.int64)
        )
    return seed


def normalize(images, mean, std):
    """`(x / 255 - mean) / std` in float32, per channel."""
    images = tf.cast(images, tf.float32) / 255.0
    return (images - mean) / std


def mixup_batch(images, labels_onehot, alpha, seed, return_lam=False):
    """Mixup of one batch (Zhang et al. 2018), as in MiSLAS stage 1.

    `lam ~ Beta(alpha, alpha)` is drawn once for the batch; sample `i` is mixed
    with sample `perm[i]` of a random permutation of the batch:
    `x = lam * x + (1 - lam) * x[perm]`, `y = lam * y + (1 - lam) * y[perm]`.
    Stateless, so it runs inside any `tf.data` map.

    Args:
        images: float tensor `(B, ...)`.
        labels_onehot: float tensor `(B, C)` of one-hot (or soft) labels.
        alpha: Beta concentration, > 0 (1.0 on CIFAR, 0.2 on the large sets).
        seed: int, or int tensor of shape `(2,)` (a stateless seed).
        return_lam: also return `lam` (scalar) and `perm` (`(B,)` int32).

    Returns:
        `(mixed_images, mixed_labels)` (float32), or
        `(mixed_images, mixed_labels, lam, perm)` with `return_lam=True`.

    Example:
        >>> x = tf.random.uniform((8, 32, 32, 3))
        >>> y = tf.one_hot(tf.range(8) % 10, 10)
        >>> xm, ym = mixup_batch(x, y, alpha=1.0, seed=0)
        >>> float(tf.reduce_max(tf.abs(tf.reduce_sum(ym, -1) - 1.0))) < 1e-6
        True
    """
    if isinstance(alpha, (int, float)) and not alpha > 0:
        raise ValueError(f"`alpha` must be > 0. Received: alpha={alpha!r}")
    seed = seed_pair(seed)
    images = tf.cast(images, tf.float32)
    labels_onehot = tf.cast(labels_onehot, tf.float32)
    alpha = tf.cast(alpha, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    g1 = tf.random.stateless_gamma([], seed=seeds[0], alpha=alpha)
    g2 = tf.random.stateless_gamma([], seed=seeds[1], alpha=alpha)
    lam = g1 / tf.maximum(g1 + g2, 1e-12)
    lam = tf.where(g1 + g2 > 0, lam, 0.5)
    batch = tf.shape(images)[0]
    perm = tf.argsort(tf.random.stateless_uniform([batch], seed=seeds[2]))
    perm = tf.cast(perm, tf.int32)
    mixed_images = lam * images + (1.0 - lam) * tf.gather(images, perm)
    mixed_labels = lam * labels_onehot + (1.0 - lam) * tf.gather(labels_onehot, perm)
    if return_lam:
        return mixed_images, mixed_labels, lam, perm
    return mixed_images, mixed_labels


def check_sampler(
    sampler, epoch_size, labels, num_classes, shuffle_buffer=None, batch_size=1,
    samples_per_class=None,
):
    """Validates the sampler arguments; returns `(sampler, epoch_size, samples_per_class)`.

    Shared by the small-image and the file-list pipelines. For
    `"class_aware"`, `epoch_size=None` becomes MiSLAS's stage-two epoch,
    `stage_two_epoch(len(labels), batch_size).examples`, and
    `samples_per_class=None` becomes 4; both stay `None` for `"random"`.
    """
    if sampler not in ("random", "class_aware"):
        raise ValueError(
            "`sampler` must be 'random' or 'class_aware'. "
            f"Received: sampler={sampler!r}"
        )
    if sampler == "random":
        for name, value in (("epoch_size", epoch_size), ("samples_per_class", samples_per_class)):
            if value is not None:
                raise ValueError(
                    f"`{name}` only applies to sampler='class_aware' (a random "
                    f"epoch is every sample once). Received: {name}={value!r}"
                )
        return sampler, None, None
    if shuffle_buffer is not None:
        raise ValueError(
            "`shuffle_buffer` does not apply to sampler='class_aware' (its "
            f"order is random already). Received: shuffle_buffer={shuffle_buffer!r}"
        )
    if epoch_size is None:
        epoch_size = stage_two_epoch(len(labels), batch_size).examples
    if samples_per_class is None:
        samples_per_class = SAMPLES_PER_CLASS
    return (
        sampler,
        check_positive_int(epoch_size, "epoch_size"),
        check_positive_int(samples_per_class, "samples_per_class"),
    )


def class_aware_order(labels, num_classes, epoch_size, seed, epoch, samples_per_class):
    """The class-aware indices of epoch `epoch` (a tensor) as an int64 tensor.

    Runs `class_aware_indices` through `tf.numpy_function` inside the
    dataset, so each pass draws its own epoch, keyed on `(seed, epoch)`.
    """
    labels = np.asarray(labels)

    def draw(epoch_value):
        return class_aware_indices(
            labels, num_classes, epoch_size, seed=seed, epoch=int(epoch_value),
            samples_per_class=samples_per_class,
        )

    order = tf.numpy_function(draw, [epoch], tf.int64, stateful=False)
    order.set_shape([epoch_size])
    return order


def deterministic(dataset):
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)



def keyed_epochs(one_epoch, make_batch, num_batches, regroup=None):
    """The training skeleton: one epoch a pass, each batch keyed on `(epoch, step)`.

    A CPU int64 `tf.Variable` counts the passes (the epoch the next pass
    draws, incremented as it starts). A pass is `one_epoch(epoch)`, each of
    its elements tagged `(epoch, element)`; `regroup` (optional) turns that
    stream into batches of `(epoch, batch)` (a buffered shuffle before
    batching), else each element already is a batch. The batches are
    numbered from 0 (`step`) and mapped by `make_batch(epoch, step, batch)`
    in parallel; the dataset has `num_batches` batches a pass, prefetches,
    and is deterministic.

    Args:
        one_epoch: `epoch (int64 tensor) -> tf.data.Dataset` of the epoch's
            batches (or, with `regroup`, its elements).
        make_batch: `(epoch, step, batch) -> (x, y)`.
        num_batches: batches a pass (asserted as the cardinality).
        regroup: optional `dataset of (epoch, element) -> dataset of
            (epoch, batch)`.

    Returns:
        `(dataset, epoch_counter)`.
    """
    with tf.device("/CPU:0"):  # tf.data runs on the host
        epoch_counter = tf.Variable(0, dtype=tf.int64, trainable=False)

    def next_epoch(_):
        return epoch_counter.assign_add(1) - 1

    def tagged(epoch):
        return one_epoch(epoch).map(lambda *element: (epoch, _one(element)))

    dataset = tf.data.Dataset.range(1).map(next_epoch).flat_map(tagged)
    if regroup is not None:
        dataset = regroup(dataset)
    dataset = dataset.enumerate().map(
        lambda step, pair: make_batch(pair[0], step, pair[1]), num_parallel_calls=AUTOTUNE
    )
    # A known length lets `fit` show progress and end epochs without a
    # "ran out of data" warning.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    return deterministic(dataset.prefetch(AUTOTUNE)), epoch_counter


def _one(element):
    return element[0] if len(element) == 1 else element
