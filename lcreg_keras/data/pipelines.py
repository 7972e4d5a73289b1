"""tf.data pipelines: the dataset builders of arrays and of image files.

Arrays (CIFAR, Fashion-MNIST): `small_image_train_dataset`,
`small_image_eval_dataset`. Image files (ImageNet-LT, Places-LT, iNaturalist
2018): `image_train_dataset`, `image_eval_dataset`. The image ops they apply
live in `lcreg_keras.data.transforms` (one copy, shared with the export); the
header scan and the refusal or dropping of unreadable files in
`lcreg_keras.data.image_files`.

State. A training pipeline counts its epochs (a CPU `tf.Variable`), a file
pipeline records the files that failed while reading; builders called with
`return_state=True` return `(dataset, PipelineState)`, and whoever needs
that state (resuming, the unreadable-file report) is handed it explicitly:
`lcreg_keras.resume.BackupAndRestore(..., data_state=state)`,
`state.evaluated_labels(labels)`, `state.failed_paths()`.

## Arrays
The datasets feed `Model.fit` on every Keras backend (Keras accepts a
`tf.data.Dataset` on JAX and PyTorch too). Images are uint8 arrays of shape
`(N, H, W)` or `(N, H, W, C)`; batches are float32 `(B, H, W, C)` normalised
per channel as `(x / 255 - mean) / std`.

Training augmentation is the CIFAR one of MiSLAS (spec Sec. 6): pad 4 pixels
with zeros (as torchvision's `RandomCrop(32, padding=4)`; reflect padding is
offered), crop a random `H x W` window back, flip horizontally with
probability 1/2, then normalise. Padding happens before normalisation, so a
zero pad is a black pixel.

Determinism: every random choice is a stateless TF op keyed on
`(seed, epoch, batch)`, and the epoch number is counted by the dataset itself
(a CPU `tf.Variable` incremented each time an iterator over it starts, e.g.
once per `fit` epoch). Given `seed`, the n-th pass over a dataset object is
the same on every run: the order, the crops, the flips and the mixup
coefficients do not depend on TF's global seed. Each new dataset object
starts again at epoch 0. The shuffle is an exact per-epoch permutation of
the whole set (like PyTorch's `RandomSampler`) unless `shuffle_buffer` asks
for tf.data's buffered shuffle.

Stage two (spec Sec. 5) samples class-aware instead: `sampler="class_aware"`
draws each epoch's indices with `balanced.class_aware_indices(seed, epoch)`
(NumPy, run inside the dataset through `tf.numpy_function`), so every pass
is a fresh, reproducible balanced epoch: runs of `samples_per_class` (4)
samples a class, `ceil(N / B) + 1` batches by default, as MiSLAS's stage two
(`balanced.stage_two_epoch`).

## Image files
Training batches follow MiSLAS's torchvision transforms (spec Sec. 6):
`RandomResizedCrop(224)` (scale (0.08, 1), aspect ratio (3/4, 4/3)),
`RandomHorizontalFlip()`, `ColorJitter(0.4, 0.4, 0.4, 0)`, then
`(x / 255 - mean) / std` with the ImageNet mean and std, and mixup per batch
when asked. Evaluation batches: shorter side resized to 256 (aspect kept),
centre crop 224, same normalisation, in the order given, last batch kept.

The random resized crop is torchvision's algorithm, written with TF ops:
ten tries of an area uniform in `scale` times the image area and an aspect
ratio log-uniform in `ratio`, the first crop that fits wins, at a uniform
position; when none fits, a centre crop with the ratio clamped to `ratio`.
(`tf.image.sample_distorted_bounding_box` draws the ratio uniformly, the
height rather than the area, and falls back to the whole image, so it is not
used.) Colour jitter is torchvision's too: brightness, contrast (blend with
the mean grey level) and saturation (blend with the grey image), each with a
factor uniform in `[1 - s, 1 + s]`, in a random order per image.

Performance choices:

- JPEGs are decoded with the crop fused into the decode
  (`tf.image.extract_jpeg_shape` reads only the header, then
  `tf.image.decode_and_crop_jpeg` skips the inverse DCT and colour
  conversion outside the crop). On 500x375 ImageNet-sized JPEGs that saved
  about 10 % of the per-image time here (2.1 vs 2.3 ms on one core); the
  antialiased resize to 224 costs about as much as the decode, so crops
  that are only enlarged skip the antialiasing kernel (same pixels).
- Everything per image runs in one parallel `map` (AUTOTUNE threads, no
  Python), files are read with `tf.io.read_file`, images are batched as
  uint8 (a quarter of the memory and copying of float32), and the
  normalisation and mixup run once per batch, vectorised.
- `deterministic=True`: batches come in the same order on every run. A slow
  file can then hold back the files behind it for a moment; the prefetch
  buffer hides most of that.
- JPEGs decode with `dct_method="INTEGER_ACCURATE"` (libjpeg's ISLOW, what
  Pillow uses), slightly slower than the fast integer DCT but the same
  pixels torchvision sees.

Determinism: every random number is a stateless TF draw keyed on
`(seed, epoch, position in the epoch)` for an image and
`(seed, epoch, batch)` for mixup; the epoch is counted by the dataset (as in
`pipeline.py`). The class-aware sampler draws each epoch from
`(seed, epoch)`.

Unreadable images. ImageNet holds some files that are not what their name
says: PNGs named `.jpg`, CMYK JPEGs, greyscale JPEGs. Those decode to RGB
here (PNG, GIF and BMP are found by their magic bytes and decoded with
`tf.io.decode_image`; CMYK and greyscale JPEGs become RGB in libjpeg).
Files that cannot be decoded (missing, empty, truncated, not an image) are
handled twice:

1. Before the pipeline is built, `check_images` reads each file's header
   and tail (threaded; about a minute for a million files on a local disk):
   a missing or empty file, an unknown format, a JPEG without its frame
   header or end-of-image marker, a PNG without its IEND chunk. By default
   the bad files are an error listing them; with `skip_bad_images=True`
   they are dropped and counted (`state.skipped_images()`).
2. While reading, a file that still fails to decode (one damaged in a way
   the header scan cannot see) stops the run with an error naming the file;
   with `skip_bad_images=True` it is skipped and recorded instead
   (`state.failed_indices()`). In training the epoch keeps its length (a few
   images are taken from the start of the epoch's order to fill the gap);
   in evaluation the pass is shorter and `state.evaluated_labels(labels)`
   gives the labels of the images it delivered, so predictions stay
   aligned with the labels.

A full, strict decode before training (`check_images(paths, decode=True)`,
the recipes' `--check_images=decode`) also finds JPEGs damaged inside their
compressed data, which TensorFlow decodes without an error (libjpeg only
prints a warning such as "Corrupt JPEG data: 50 extraneous bytes before
marker 0xd9", naming no file, and fills the damaged blocks with grey).

EXIF orientation is ignored: images are used as stored, as torchvision's
Pillow loader and MiSLAS do (a camera's rotated photo stays rotated).

No image is ever paired with another image's label.
"""

import dataclasses
import os
import sys
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from lcreg_keras.data import transforms
from lcreg_keras.data.balanced import SAMPLES_PER_CLASS
from lcreg_keras.data.balanced import class_aware_indices
from lcreg_keras.data.balanced import stage_two_epoch
from lcreg_keras.data.image_files import READ_ERROR
from lcreg_keras.data.image_files import ImageCheck
from lcreg_keras.data.image_files import check_images
from lcreg_keras.data.image_files import keep_readable
from lcreg_keras.data.normalization import IMAGENET_MEAN
from lcreg_keras.data.normalization import IMAGENET_STD

AUTOTUNE = tf.data.AUTOTUNE

# Stream tags folded into the seed, so the order, augmentation and mixup draw
# independent numbers (arrays 1-3, image files 11-15).
_ORDER, _AUGMENT, _MIXUP = 1, 2, 3
_FILE_CROP, _FILE_FLIP, _FILE_JITTER, _FILE_ORDER, _FILE_MIXUP = 11, 12, 13, 14, 15


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
    check: Optional[ImageCheck] = None
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


def _returned(dataset, state, return_state):
    return (dataset, state) if return_state else dataset


def _as_nhwc(images, name="images"):
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"`{name}` must be a uint8 array of shape (N, H, W) or (N, H, W, C). "
            f"Received dtype {images.dtype}."
        )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"`{name}` must have shape (N, H, W) or (N, H, W, C). "
            f"Received shape {images.shape}."
        )
    return images


def _as_labels(labels, n, num_classes=None, per="image"):
    """`labels` as int32, checked: 1-D, one per `per` (n of them), in [0, num_classes)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(
            f"`labels` must be a 1-D array with one label per {per} ({n}). "
            f"Received shape {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`labels` must hold integer class ids. Received dtype {labels.dtype}."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"`labels` must lie in [0, num_classes). Found {labels.min()}."
        )
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"`labels` must lie in [0, num_classes) = [0, {num_classes}). "
            f"Found {labels.max()}."
        )
    return labels.astype(np.int32)


def _per_channel(value, channels, name):
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


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    return int(value)


def _seed_pair(seed):
    """A shape-(2,) int64 stateless seed from an int or a pair."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return seed


def _fold(seed, *data):
    for value in data:
        seed = tf.random.experimental.stateless_fold_in(
            seed, tf.cast(value, tf.int64)
        )
    return seed


def _normalize(images, mean, std):
    images = tf.cast(images, tf.float32) / 255.0
    return (images - mean) / std


def channel_stats(images):
    """Per-channel mean and standard deviation in the [0, 1] pixel scale.

    Accumulated in float64 over chunks, so CIFAR-sized sets need little
    memory.

    Args:
        images: uint8 array `(N, H, W)` or `(N, H, W, C)`.

    Returns:
        `(mean, std)`, two float32 arrays of shape `(C,)` (`C = 1` for
        `(N, H, W)` input); `std` is the population standard deviation.

    Example:
        >>> images = np.full((4, 8, 8, 3), 255, np.uint8)
        >>> mean, std = channel_stats(images)
        >>> mean.tolist(), std.tolist()
        ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """
    images = _as_nhwc(images)
    channels = images.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for start in range(0, len(images), 4096):
        chunk = images[start : start + 4096].reshape(-1, channels).astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
        count += chunk.shape[0]
    if count == 0:
        raise ValueError("`images` is empty: no statistics to compute.")
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    return (mean / 255.0).astype(np.float32), (np.sqrt(var) / 255.0).astype(
        np.float32
    )


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
    seed = _seed_pair(seed)
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


def _augment_batch(images, seed, pad, flip, pad_mode):
    """Pad + random crop + random flip of a uint8 batch `(B, H, W, C)`.

    Vectorised: the crop offsets and flips of the whole batch are drawn at
    once and applied with two batched gathers (rows, then columns with the
    flip folded in).
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    if pad > 0:
        paddings = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
        if pad_mode == "constant":
            images = tf.pad(images, paddings)
        else:
            images = tf.pad(images, paddings, mode=pad_mode.upper())
        top = tf.random.stateless_uniform(
            [batch], seed=seeds[0], minval=0, maxval=2 * pad + 1, dtype=tf.int32
        )
        left = tf.random.stateless_uniform(
            [batch], seed=seeds[1], minval=0, maxval=2 * pad + 1, dtype=tf.int32
        )
    else:
        top = tf.zeros([batch], tf.int32)
        left = tf.zeros([batch], tf.int32)
    rows = top[:, None] + tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    if flip:
        flipped = tf.random.stateless_uniform([batch], seed=seeds[2]) < 0.5
        cols = tf.where(flipped[:, None], width - 1 - cols, cols)
    cols = left[:, None] + cols
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, cols, axis=2, batch_dims=1)


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
        _check_positive_int(epoch_size, "epoch_size"),
        _check_positive_int(samples_per_class, "samples_per_class"),
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


def _deterministic(dataset):
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)


def small_image_train_dataset(
    images,
    labels,
    num_classes,
    batch_size,
    mean,
    std,
    pad=4,
    flip=True,
    mixup_alpha=0.0,
    seed=0,
    drop_remainder=True,
    shuffle_buffer=None,
    pad_mode="constant",
    sampler="random",
    epoch_size=None,
    samples_per_class=None,
    return_state=False,
):
    """Shuffled, augmented, normalised training batches of small images.

    Each pass over the dataset is one epoch: a new permutation of the samples
    (keyed on `(seed, epoch)`), pad + random crop + random flip per image,
    normalisation, and optionally mixup per batch (keyed on
    `(seed, epoch, batch)`). With `sampler="class_aware"` an epoch is instead
    a class-balanced draw (`lcreg_keras.data.balanced.class_aware_indices`,
    stage two of MiSLAS), again fresh and reproducible for each epoch.

    Args:
        images: uint8 array `(N, H, W)` or `(N, H, W, C)`; `(N, H, W)` gets a
            channel axis.
        labels: 1-D int array of `N` class ids in `[0, num_classes)`.
        num_classes: number of classes (size of the one-hot with mixup).
        batch_size: int >= 1.
        mean: per-channel mean in [0, 1] scale (scalar or `C` values), e.g.
            from `channel_stats`.
        std: per-channel std in [0, 1] scale (scalar or `C` values).
        pad: pixels of padding before the random crop; 0 turns cropping off.
        flip: random horizontal flip with probability 1/2.
        mixup_alpha: mixup Beta concentration; 0 turns mixup off.
        seed: int; the same seed gives the same batches, epoch by epoch.
        drop_remainder: drop the last partial batch (MiSLAS stage 1 does).
        shuffle_buffer: `None` (default) shuffles with an exact permutation
            of all `N` samples each epoch (same as any value >= `N`); `0`
            keeps the given order; `0 < shuffle_buffer < N` uses `tf.data`'s
            buffered shuffle of that size (seeded from `seed`; its order then
            also depends on TF's global seed, `keras.utils.set_random_seed`).
        pad_mode: `"constant"` (zeros, CIFAR's choice) or `"reflect"`.
        sampler: `"random"` (each sample once per epoch, shuffled) or
            `"class_aware"` (each draw picks a class uniformly; stage two).
        epoch_size: samples per epoch with `sampler="class_aware"`; `None`
            gives MiSLAS's stage-two epoch, `ceil(N / batch_size) + 1`
            batches (`balanced.stage_two_epoch`). Must be `None` with
            `sampler="random"`.
        samples_per_class: with `sampler="class_aware"`, consecutive
            samples a class visit takes; `None` gives 4 (MiSLAS's
            `num_samples_cls`). Must be `None` with `sampler="random"`.
        return_state: also return the `PipelineState` (the epoch counter).

    Returns:
        A `tf.data.Dataset` of `(x, y)`: `x` float32 `(B, H, W, C)`; `y` int32
        `(B,)`, or with `mixup_alpha > 0` float32 soft labels `(B, C)` that
        sum to 1. With `return_state=True`, `(dataset, state)`:
        `state.epoch` is the epoch counter (`lcreg_keras.resume` sets it).

    Example:
        >>> x = np.random.randint(0, 256, (100, 32, 32, 3), np.uint8)
        >>> y = np.arange(100) % 10
        >>> mean, std = channel_stats(x)
        >>> ds = small_image_train_dataset(x, y, 10, 32, mean, std)
        >>> [tuple(t.shape) for t in next(iter(ds))]
        [(32, 32, 32, 3), (32,)]
    """
    images = _as_nhwc(images)
    n = len(images)
    num_classes = _check_positive_int(num_classes, "num_classes")
    labels = _as_labels(labels, n, num_classes)
    batch_size = _check_positive_int(batch_size, "batch_size")
    if n == 0:
        raise ValueError("`images` is empty.")
    if drop_remainder and n < batch_size:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the dataset ({n}) and "
            "`drop_remainder=True`: no batch would be produced."
        )
    channels = images.shape[-1]
    mean = tf.constant(_per_channel(mean, channels, "mean"))
    std = tf.constant(_per_channel(std, channels, "std"))
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"`pad` must be an int >= 0. Received: pad={pad!r}")
    pad = int(pad)
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(
            f"`pad_mode` must be 'constant' or 'reflect'. Received: {pad_mode!r}"
        )
    if pad_mode == "reflect" and pad >= min(images.shape[1:3]):
        raise ValueError(
            f"`pad` ({pad}) must be smaller than the image size for reflect padding."
        )
    if not mixup_alpha >= 0:
        raise ValueError(
            f"`mixup_alpha` must be >= 0 (0 turns mixup off). "
            f"Received: mixup_alpha={mixup_alpha!r}"
        )
    if shuffle_buffer is not None and (
        isinstance(shuffle_buffer, bool)
        or not isinstance(shuffle_buffer, (int, np.integer))
        or shuffle_buffer < 0
    ):
        raise ValueError(
            "`shuffle_buffer` must be None (full permutation), 0 (no shuffle) "
            f"or a positive int. Received: shuffle_buffer={shuffle_buffer!r}"
        )
    sampler, epoch_size, samples_per_class = check_sampler(
        sampler, epoch_size, labels, num_classes, shuffle_buffer, batch_size, samples_per_class
    )
    if sampler == "class_aware":
        n = epoch_size
        if drop_remainder and n < batch_size:
            raise ValueError(
                f"`batch_size` ({batch_size}) is larger than the class-aware "
                f"epoch ({n}) and `drop_remainder=True`."
            )
    seed = int(seed)
    base = tf.constant([seed, 0x4C435265], tf.int64)  # "LCRe"

    with tf.device("/CPU:0"):  # tf.data runs on the host
        images_t = tf.constant(images)
        labels_t = tf.constant(labels)
        epoch_counter = tf.Variable(0, dtype=tf.int64, trainable=False)

    def next_epoch(_):
        return epoch_counter.assign_add(1) - 1

    buffered = shuffle_buffer is not None and 0 < shuffle_buffer < n

    def one_epoch(epoch):
        if buffered:  # samples go through the outer buffered shuffle
            return tf.data.Dataset.range(n).map(lambda i: (epoch, i))
        if sampler == "class_aware":
            order = class_aware_order(labels, num_classes, n, seed, epoch, samples_per_class)
            indices = tf.data.Dataset.from_tensor_slices(order)
        elif shuffle_buffer == 0:
            indices = tf.data.Dataset.range(n)
        else:  # an exact permutation of the whole set, keyed on the epoch
            order = tf.argsort(
                tf.random.stateless_uniform([n], seed=_fold(base, _ORDER, epoch))
            )
            indices = tf.data.Dataset.from_tensor_slices(tf.cast(order, tf.int64))
        batches = indices.batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(lambda step, idx: (epoch, step, idx))

    def make_batch(epoch, step, idx):
        x = tf.gather(images_t, idx)
        y = tf.gather(labels_t, idx)
        if pad > 0 or flip:
            augment_seed = _fold(base, _AUGMENT, epoch, step)
            x = _augment_batch(x, augment_seed, pad, flip, pad_mode)
        x = _normalize(x, mean, std)
        if mixup_alpha > 0:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
            x, y = mixup_batch(x, y, mixup_alpha, _fold(base, _MIXUP, epoch, step))
        return x, y

    dataset = tf.data.Dataset.range(1).map(next_epoch).flat_map(one_epoch)
    if buffered:
        # tf.data reshuffles on every pass; its order also depends on TF's
        # global seed (documented above).
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        dataset = dataset.enumerate().map(
            lambda step, pair: (pair[0][0], step, pair[1])
        )
    dataset = dataset.map(make_batch, num_parallel_calls=AUTOTUNE)
    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
    # A known length lets `fit` show progress and end epochs without a
    # "ran out of data" warning.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    dataset = dataset.prefetch(AUTOTUNE)
    dataset = _deterministic(dataset)
    return _returned(dataset, PipelineState(epoch=epoch_counter), return_state)


def small_image_eval_dataset(images, labels, batch_size, mean, std, return_state=False):
    """Normalised evaluation batches, in order, no augmentation.

    Args:
        images: uint8 array `(N, H, W)` or `(N, H, W, C)`.
        labels: 1-D int array of `N` class ids.
        batch_size: int >= 1; the last partial batch is kept.
        mean: per-channel mean in [0, 1] scale (scalar or `C` values).
        std: per-channel std in [0, 1] scale (scalar or `C` values).

    Returns:
        A `tf.data.Dataset` of `(x, y)`: `x` float32 `(B, H, W, C)`, `y` int32
        `(B,)`; every sample appears once, in the given order.

    Example:
        >>> x = np.zeros((10, 28, 28), np.uint8)
        >>> ds = small_image_eval_dataset(x, np.zeros(10, int), 4, 0.5, 0.5)
        >>> [int(b[0].shape[0]) for b in ds]
        [4, 4, 2]
    """
    images = _as_nhwc(images)
    labels = _as_labels(labels, len(images))
    batch_size = _check_positive_int(batch_size, "batch_size")
    channels = images.shape[-1]
    mean = tf.constant(_per_channel(mean, channels, "mean"))
    std = tf.constant(_per_channel(std, channels, "std"))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.batch(batch_size, drop_remainder=False)
    dataset = dataset.map(
        lambda x, y: (_normalize(x, mean, std), y), num_parallel_calls=AUTOTUNE
    )
    return _returned(_deterministic(dataset.prefetch(AUTOTUNE)), PipelineState(), return_state)


# ----------------------------------------------------------------------------
# Image files.


def _as_paths(paths):
    if isinstance(paths, (str, bytes)):
        raise ValueError("`paths` must be a sequence of file paths, not one string.")
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("`paths` is empty: there are no images.")
    return paths


def _check_range(value, name):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (low, high). Received: {value!r}") from None
    if not 0 < low <= high:
        raise ValueError(f"`{name}` must satisfy 0 < low <= high. Received: {value!r}")
    return low, high


def _validate_files(paths, labels, skip_bad_images, check_files, num_threads):
    """Runs the header scan; drops or refuses bad files (`keep_readable`)."""
    if not check_files:
        return paths, labels, None
    check = check_images(paths, num_threads=num_threads)
    paths, labels = keep_readable(check, paths, labels, skip_bad_images=skip_bad_images)
    return paths, labels, check


def _read_with_check(positions, load, path_of, size, skip, counter, index_of=None, mask=None):
    """`positions.map(load)`, dropping failed reads; names or counts them.

    `load(position)` returns `(position, image, label)`. A failed read is
    seen as a jump in `position` after `ignore_errors`; a sentinel at
    `size` catches a failure of the last element. With `skip`, `counter`
    (optional) counts the failed reads and `mask[index_of(position)]` is set
    for each of them.
    """
    elements = positions.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    elements = elements.ignore_errors()
    sample = elements.element_spec
    sentinel = tf.data.Dataset.from_tensors(
        (
            tf.constant(size, tf.int64),
            tf.zeros([d if d is not None else 1 for d in sample[1].shape], sample[1].dtype),
            tf.constant(-1, sample[2].dtype),
        )
    )
    elements = elements.concatenate(sentinel)

    def step(expected, element):
        position = element[0]
        if skip:
            missed = position - expected

            def report():
                # The first of the files skipped here (usually the only one).
                tf.print(
                    "skip_bad_images: skipping",
                    missed,
                    "unreadable image file(s), first:",
                    path_of(tf.minimum(expected, size - 1)),
                    output_stream=sys.stderr,
                )
                updates = []
                if mask is not None:
                    failed = index_of(tf.range(expected, position))
                    updates.append(mask.scatter_nd_update(
                        tf.reshape(failed, [-1, 1]), tf.ones([missed], tf.bool)
                    ))
                with tf.control_dependencies(updates):
                    if counter is None:
                        return tf.identity(missed)
                    return counter.assign_add(missed)

            def quiet():
                return tf.constant(0, tf.int64) if counter is None else counter.read_value()

            done = tf.cond(missed > 0, report, quiet)
        else:
            done = tf.debugging.Assert(
                tf.equal(position, expected),
                [
                    READ_ERROR,
                    path_of(tf.minimum(expected, size - 1)),
                    "(missing, unreadable, truncated or not an image; "
                    "python tools/check_dataset.py lists all such files, "
                    "skip_bad_images=True leaves them out).",
                ],
            )
        with tf.control_dependencies([done]):
            return position + 1, tuple(tf.identity(t) for t in element)

    elements = elements.scan(tf.constant(0, tf.int64), step)
    return elements.filter(lambda position, image, label: position < size)


def image_train_dataset(
    paths,
    labels,
    num_classes,
    batch_size,
    image_size=224,
    color_jitter=0.4,
    mixup_alpha=0.0,
    seed=0,
    sampler="random",
    skip_bad_images=False,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    epoch_size=None,
    flip=True,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    drop_remainder=True,
    check_files=True,
    num_threads=None,
    samples_per_class=None,
    return_state=False,
):
    """Augmented, normalised training batches read from image files.

    Each pass is one epoch: a fresh order (a permutation, or a class-aware
    draw), a random resized crop, flip and colour jitter per image, and
    optionally mixup per batch, all keyed on `(seed, epoch, ...)`.

    Args:
        paths: sequence of `N` image file paths (JPEG, PNG, GIF or BMP,
            whatever the extension).
        labels: 1-D int array of `N` class ids in `[0, num_classes)`.
        num_classes: number of classes (size of the one-hot with mixup).
        batch_size: int >= 1.
        image_size: side of the square crops (224).
        color_jitter: brightness / contrast / saturation strength (0.4, as
            MiSLAS); 0 turns it off.
        mixup_alpha: mixup Beta concentration (0.2 on the large sets); 0
            turns mixup off.
        seed: int; the same seed gives the same batches, epoch by epoch.
        sampler: `"random"` (every image once per epoch) or `"class_aware"`
            (class-balanced, stage two).
        skip_bad_images: leave unreadable files out (and count them) instead
            of stopping with an error naming them.
        mean: per-channel mean in [0, 1] scale (`IMAGENET_MEAN`).
        std: per-channel std in [0, 1] scale (`IMAGENET_STD`).
        epoch_size: class-aware epoch length in images (default: MiSLAS's
            stage-two epoch, `ceil(N / batch_size) + 1` batches).
        flip: random horizontal flip with probability 1/2.
        scale: random-resized-crop area range, fraction of the image.
        ratio: random-resized-crop aspect-ratio (width / height) range.
        drop_remainder: drop the last partial batch (stage one does).
        check_files: run `check_images` first (see the module docstring);
            turn off when the caller has checked the files already.
        num_threads: threads of that scan.
        samples_per_class: class-aware only: consecutive images a class
            visit takes (default 4, MiSLAS's `num_samples_cls`).
        return_state: also return the `PipelineState`.

    Returns:
        A `tf.data.Dataset` of `(x, y)`: `x` float32
        `(B, image_size, image_size, 3)`, `y` int32 `(B,)`, or float32
        `(B, num_classes)` soft labels with mixup; with `return_state`,
        `(dataset, state)`: `state.epoch` the epoch counter,
        `state.skipped_images()` the number of files left out so far.

    Raises:
        UnreadableImagesError (a ValueError): listing the files that cannot
            be read, unless `skip_bad_images`.
        ValueError: for bad arguments (named).

    Example:
        >>> ds = image_train_dataset(paths, labels, 1000, 256,
        ...                          mixup_alpha=0.2)  # doctest: +SKIP
        >>> x, y = next(iter(ds))  # doctest: +SKIP
        >>> x.shape, y.shape  # doctest: +SKIP
        (TensorShape([256, 224, 224, 3]), TensorShape([256, 1000]))
    """
    paths = _as_paths(paths)
    num_classes = _check_positive_int(num_classes, "num_classes")
    labels = _as_labels(labels, len(paths), num_classes, per="path")
    batch_size = _check_positive_int(batch_size, "batch_size")
    image_size = _check_positive_int(image_size, "image_size")
    if not color_jitter >= 0:
        raise ValueError(f"`color_jitter` must be >= 0. Received: color_jitter={color_jitter!r}")
    if not mixup_alpha >= 0:
        raise ValueError(
            f"`mixup_alpha` must be >= 0 (0 turns mixup off). Received: mixup_alpha={mixup_alpha!r}"
        )
    scale = _check_range(scale, "scale")
    ratio = _check_range(ratio, "ratio")
    if scale[1] > 1:
        raise ValueError(f"`scale` must lie in (0, 1]. Received: {scale!r}")
    mean = tf.constant(_per_channel(mean, 3, "mean"))
    std = tf.constant(_per_channel(std, 3, "std"))
    paths, labels, check = _validate_files(
        paths, labels, skip_bad_images, check_files, num_threads
    )
    sampler, epoch_size, samples_per_class = check_sampler(
        sampler, epoch_size, labels, num_classes, batch_size=batch_size,
        samples_per_class=samples_per_class,
    )
    n = epoch_size if sampler == "class_aware" else len(paths)
    if drop_remainder and n < batch_size:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than an epoch ({n} images) "
            "and `drop_remainder=True`: no batch would be produced."
        )
    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
    # With skipping, a few extra positions (the start of the order again)
    # fill in for images that fail while reading, so the epoch keeps its
    # length.
    extra = batch_size if skip_bad_images else 0
    seed = int(seed)
    base = tf.constant([seed, 0x494D4731], tf.int64)  # "IMG1"
    color_jitter = float(color_jitter)

    with tf.device("/CPU:0"):
        paths_t = tf.constant(paths)
        labels_t = tf.constant(labels)
        epoch_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
        skip_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
        # Which files failed while reading, in `paths` order (once each).
        read_failures = tf.Variable(tf.zeros([len(paths)], tf.bool), trainable=False)

    def next_epoch(_):
        return epoch_counter.assign_add(1) - 1

    def one_epoch(epoch):
        if sampler == "class_aware":
            order = class_aware_order(labels, num_classes, n, seed, epoch, samples_per_class)
        else:
            order = tf.cast(
                tf.argsort(tf.random.stateless_uniform([n], seed=_fold(base, _FILE_ORDER, epoch))),
                tf.int64,
            )
        if extra:
            order = tf.concat([order, order[: min(extra, n)]], axis=0)
        size = n + (min(extra, n) if extra else 0)

        def load(position):
            index = order[position]
            contents = tf.io.read_file(paths_t[index])
            image = transforms.decode_random_crop(
                contents, _fold(base, _FILE_CROP, epoch, position), scale, ratio
            )
            image = transforms.resize(image, [image_size, image_size])
            if flip:
                u = tf.random.stateless_uniform([], _fold(base, _FILE_FLIP, epoch, position))
                image = tf.cond(u < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
            if color_jitter > 0:
                image = transforms.random_color_jitter(
                    image, color_jitter, _fold(base, _FILE_JITTER, epoch, position)
                )
            image = transforms.to_uint8(image)
            image.set_shape([image_size, image_size, 3])
            return position, image, labels_t[index]

        elements = _read_with_check(
            tf.data.Dataset.range(size),
            load,
            lambda position: paths_t[order[position]],
            size,
            skip_bad_images,
            skip_counter,
            index_of=lambda position: tf.gather(order, position),
            mask=read_failures,
        )
        batches = elements.batch(batch_size, drop_remainder=drop_remainder)
        if extra:
            batches = batches.take(num_batches)
        return batches.enumerate().map(lambda step, b: (epoch, step, b[1], b[2]))

    def make_batch(epoch, step, images, batch_labels):
        x = (tf.cast(images, tf.float32) / 255.0 - mean) / std
        y = batch_labels
        if mixup_alpha > 0:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
            x, y = mixup_batch(x, y, mixup_alpha, _fold(base, _FILE_MIXUP, epoch, step))
        return x, y

    dataset = tf.data.Dataset.range(1).map(next_epoch).flat_map(one_epoch)
    dataset = dataset.map(make_batch, num_parallel_calls=AUTOTUNE)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    dataset = _deterministic(dataset.prefetch(AUTOTUNE))
    state = PipelineState(epoch=epoch_counter, paths=paths, check=check,
                          failures=read_failures, skips=skip_counter)
    return _returned(dataset, state, return_state)


def image_eval_dataset(
    paths,
    labels,
    batch_size,
    image_size=224,
    resize_size=256,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    skip_bad_images=False,
    check_files=True,
    num_threads=None,
    return_state=False,
):
    """Evaluation batches read from image files, in order, last batch kept.

    Each image: decode (any of JPEG incl. CMYK / grey, PNG, GIF, BMP), resize
    the shorter side to `resize_size` (aspect kept), centre crop
    `image_size`, normalise. With `resize_size=None` the image is resized
    straight to `image_size x image_size`.

    Args:
        paths: sequence of `N` image file paths.
        labels: 1-D int array of `N` class ids.
        batch_size: int >= 1.
        image_size: side of the centre crop (224).
        resize_size: shorter side before the crop (256), >= `image_size`,
            or None.
        mean: per-channel mean in [0, 1] scale.
        std: per-channel std in [0, 1] scale.
        skip_bad_images: leave out the files the header scan finds
            unreadable (then the batches follow `labels[check.ok]`, see
            `state.check`) and the files that fail while reading; the
            labels of the images a pass delivered are
            `state.evaluated_labels(labels[check.ok])` (`state.failed_indices()`
            says which were left out of the last pass). Without it a file
            failing while reading stops the pass with an error naming it.
        check_files: run `check_images` first.
        num_threads: threads of that scan.
        return_state: also return the `PipelineState` (the kept files, the
            scan, the read failures).

    Returns:
        A `tf.data.Dataset` of `(x, y)`: `x` float32
        `(B, image_size, image_size, 3)`, `y` int32 `(B,)`, every kept image
        once, in the given order; with `return_state`, `(dataset, state)`.

    Raises:
        UnreadableImagesError: listing unreadable files, unless
            `skip_bad_images`.

    Example:
        >>> ds = image_eval_dataset(paths, labels, 256)  # doctest: +SKIP
    """
    paths = _as_paths(paths)
    labels = _as_labels(labels, len(paths), per="path")
    batch_size = _check_positive_int(batch_size, "batch_size")
    image_size = _check_positive_int(image_size, "image_size")
    if resize_size is not None:
        resize_size = _check_positive_int(resize_size, "resize_size")
        if resize_size < image_size:
            raise ValueError(
                f"`resize_size` ({resize_size}) must be >= `image_size` "
                f"({image_size}): the centre crop is taken from the resized image."
            )
    mean = tf.constant(_per_channel(mean, 3, "mean"))
    std = tf.constant(_per_channel(std, 3, "std"))
    paths, labels, check = _validate_files(
        paths, labels, skip_bad_images, check_files, num_threads
    )
    n = len(paths)
    with tf.device("/CPU:0"):
        paths_t = tf.constant(paths)
        labels_t = tf.constant(labels)

    def load(position):
        image = transforms.decode_any(tf.io.read_file(paths_t[position]))
        image = transforms.eval_geometry(image, image_size, resize_size)
        image = tf.cast(image, tf.uint8)
        image.set_shape([image_size, image_size, 3])
        return position, image, labels_t[position]

    with tf.device("/CPU:0"):
        # The files that failed while reading, in the latest pass only.
        read_failures = tf.Variable(tf.zeros([n], tf.bool), trainable=False)

    def one_pass(_):
        return _read_with_check(
            tf.data.Dataset.range(n), load, lambda p: paths_t[p], n, skip_bad_images, None,
            index_of=lambda p: p, mask=read_failures,
        )

    def new_pass(_):
        with tf.control_dependencies([read_failures.assign(tf.zeros([n], tf.bool))]):
            return tf.constant(0, tf.int64)

    elements = tf.data.Dataset.range(1).map(new_pass).flat_map(one_pass)
    dataset = elements.batch(batch_size, drop_remainder=False)
    dataset = dataset.map(
        lambda _, images, y: ((tf.cast(images, tf.float32) / 255.0 - mean) / std, y),
        num_parallel_calls=AUTOTUNE,
    )
    if not skip_bad_images:  # skipping while reading may drop a last batch
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size)))
    dataset = _deterministic(dataset.prefetch(AUTOTUNE))
    state = PipelineState(paths=paths, check=check, failures=read_failures)
    return _returned(dataset, state, return_state)


def _state(state, what):
    if not isinstance(state, PipelineState):
        raise TypeError(
            f"`{what}` takes the `PipelineState` of a pipeline (build it with "
            f"`return_state=True`). Received: {type(state).__name__}"
        )
    return state


def image_check(state) -> Optional[ImageCheck]:
    """The `ImageCheck` a file pipeline ran at construction, or None."""
    return _state(state, "image_check").check


def read_failures(state):
    """Indices (into the pipeline's kept files) that failed while reading.

    For a training set: every file that failed so far (each once). For an
    evaluation set: the files left out of its latest pass.

    Args:
        state: the `PipelineState` of `image_train_dataset` /
            `image_eval_dataset` (`return_state=True`).

    Returns:
        A sorted int64 NumPy array.
    """
    return _state(state, "read_failures").failed_indices()


def dataset_paths(state):
    """The files a file pipeline reads (after the header scan), or None."""
    return _state(state, "dataset_paths").paths


def evaluated_labels(state, labels):
    """`labels` (one per kept file) of the images the latest pass delivered.

    Example:
        >>> ds, state = image_eval_dataset(paths, labels, 64, return_state=True)  # doctest: +SKIP
        >>> logits = model.predict(ds)  # doctest: +SKIP
        >>> y = evaluated_labels(state, labels)  # doctest: +SKIP
    """
    return _state(state, "evaluated_labels").evaluated_labels(labels)


def skipped_images(state):
    """Images a file pipeline left out: at the scan plus while reading.

    Args:
        state: the pipeline's `PipelineState`.

    Returns:
        An int: the files the header scan dropped plus, for a training set
        with `skip_bad_images=True`, the reads that failed so far (counted
        each time they are met, so once per epoch).
    """
    return _state(state, "skipped_images").skipped_images()
