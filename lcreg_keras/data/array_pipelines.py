"""tf.data pipelines of small images held in arrays (CIFAR, Fashion-MNIST).

`small_image_train_dataset`, `small_image_eval_dataset`, `channel_stats`.
The epoch skeleton, the seeds, mixup and the class-aware sampler are shared
with the image-file pipelines (`lcreg_keras.data.epochs`).

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
"""

import numpy as np
import tensorflow as tf

from lcreg_keras.data.epochs import ARRAY_STREAMS
from lcreg_keras.data.epochs import AUGMENT
from lcreg_keras.data.epochs import AUTOTUNE
from lcreg_keras.data.epochs import MIXUP
from lcreg_keras.data.epochs import ORDER
from lcreg_keras.data.epochs import PipelineState
from lcreg_keras.data.epochs import as_labels
from lcreg_keras.data.epochs import check_positive_int
from lcreg_keras.data.epochs import check_sampler
from lcreg_keras.data.epochs import class_aware_order
from lcreg_keras.data.epochs import deterministic
from lcreg_keras.data.epochs import fold
from lcreg_keras.data.epochs import keyed_epochs
from lcreg_keras.data.epochs import mixup_batch
from lcreg_keras.data.epochs import normalize
from lcreg_keras.data.epochs import per_channel
from lcreg_keras.data.epochs import returned


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
        `state.epoch` is the epoch counter (`lcreg_keras.training.resume` sets it).

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
    num_classes = check_positive_int(num_classes, "num_classes")
    labels = as_labels(labels, n, num_classes)
    batch_size = check_positive_int(batch_size, "batch_size")
    if n == 0:
        raise ValueError("`images` is empty.")
    if drop_remainder and n < batch_size:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the dataset ({n}) and "
            "`drop_remainder=True`: no batch would be produced."
        )
    channels = images.shape[-1]
    mean = tf.constant(per_channel(mean, channels, "mean"))
    std = tf.constant(per_channel(std, channels, "std"))
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
    base = tf.constant([seed, ARRAY_STREAMS], tf.int64)

    with tf.device("/CPU:0"):  # tf.data runs on the host
        images_t = tf.constant(images)
        labels_t = tf.constant(labels)

    buffered = shuffle_buffer is not None and 0 < shuffle_buffer < n

    def one_epoch(epoch):
        if buffered:  # samples go through the buffered shuffle of `regroup`
            return tf.data.Dataset.range(n)
        if sampler == "class_aware":
            order = class_aware_order(labels, num_classes, n, seed, epoch, samples_per_class)
            indices = tf.data.Dataset.from_tensor_slices(order)
        elif shuffle_buffer == 0:
            indices = tf.data.Dataset.range(n)
        else:  # an exact permutation of the whole set, keyed on the epoch
            order = tf.argsort(
                tf.random.stateless_uniform([n], seed=fold(base, ORDER, epoch))
            )
            indices = tf.data.Dataset.from_tensor_slices(tf.cast(order, tf.int64))
        return indices.batch(batch_size, drop_remainder=drop_remainder)

    def regroup(samples):
        # tf.data reshuffles on every pass; its order also depends on TF's
        # global seed (documented above).
        batches = samples.shuffle(shuffle_buffer, seed=seed).batch(
            batch_size, drop_remainder=drop_remainder
        )
        return batches.map(lambda epochs, idx: (epochs[0], idx))

    def make_batch(epoch, step, idx):
        x = tf.gather(images_t, idx)
        y = tf.gather(labels_t, idx)
        if pad > 0 or flip:
            augment_seed = fold(base, AUGMENT, epoch, step)
            x = _augment_batch(x, augment_seed, pad, flip, pad_mode)
        x = normalize(x, mean, std)
        if mixup_alpha > 0:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
            x, y = mixup_batch(x, y, mixup_alpha, fold(base, MIXUP, epoch, step))
        return x, y

    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
    dataset, epoch_counter = keyed_epochs(
        one_epoch, make_batch, num_batches, regroup=regroup if buffered else None
    )
    return returned(dataset, PipelineState(epoch=epoch_counter), return_state)


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
    labels = as_labels(labels, len(images))
    batch_size = check_positive_int(batch_size, "batch_size")
    channels = images.shape[-1]
    mean = tf.constant(per_channel(mean, channels, "mean"))
    std = tf.constant(per_channel(std, channels, "std"))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.batch(batch_size, drop_remainder=False)
    dataset = dataset.map(
        lambda x, y: (normalize(x, mean, std), y), num_parallel_calls=AUTOTUNE
    )
    return returned(deterministic(dataset.prefetch(AUTOTUNE)), PipelineState(), return_state)

