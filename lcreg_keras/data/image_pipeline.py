"""tf.data pipelines for image files: ImageNet-LT, Places-LT, iNaturalist 2018.

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
   they are dropped and counted (`skipped_images(dataset)`).
2. While reading, a file that still fails to decode (one damaged in a way
   the header scan cannot see) stops the run with an error naming the file;
   with `skip_bad_images=True` it is skipped and recorded instead
   (`read_failures(ds)`). In training the epoch keeps its length (a few
   images are taken from the start of the epoch's order to fill the gap);
   in evaluation the pass is shorter and `evaluated_labels(ds, labels)`
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

import math
import os
import sys
from typing import Optional

import tensorflow as tf

from lcreg_keras.data.image_files import _JPEG_MAGIC
from lcreg_keras.data.image_files import _READ_ERROR
from lcreg_keras.data.image_files import ImageCheck
from lcreg_keras.data.image_files import UnreadableImagesError
from lcreg_keras.data.image_files import check_images
from lcreg_keras.data.normalization import IMAGENET_MEAN
from lcreg_keras.data.normalization import IMAGENET_STD
from lcreg_keras.data.normalization import INATURALIST_MEAN  # noqa: F401  (public name)
from lcreg_keras.data.normalization import INATURALIST_STD  # noqa: F401  (public name)
from lcreg_keras.data.pipeline import _as_labels
from lcreg_keras.data.pipeline import _check_positive_int
from lcreg_keras.data.pipeline import _deterministic
from lcreg_keras.data.pipeline import _fold
from lcreg_keras.data.pipeline import _per_channel
from lcreg_keras.data.pipeline import check_sampler
from lcreg_keras.data.pipeline import class_aware_order
from lcreg_keras.data.pipeline import mixup_batch

AUTOTUNE = tf.data.AUTOTUNE


# Stream tags folded into the seed (differ from pipeline.py's 1-3 on purpose).
_CROP, _FLIP, _JITTER, _ORDER, _MIXUP = 11, 12, 13, 14, 15

def _is_jpeg(contents):
    return tf.equal(tf.strings.substr(contents, 0, 3), _JPEG_MAGIC)


def _decode_any(contents):
    """A uint8 `(H, W, 3)` image from JPEG (incl. CMYK, grey), PNG, GIF, BMP."""

    def jpeg():
        return tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")

    def other():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        return tf.cast(image, tf.uint8)

    image = tf.cond(_is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def random_resized_crop_window(height, width, seed, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's `RandomResizedCrop` window, drawn statelessly.

    Args:
        height: image height (int scalar tensor).
        width: image width.
        seed: shape-(2,) int stateless seed.
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop's width / height (sampled log-uniformly).

    Returns:
        int32 tensor `[top, left, crop_height, crop_width]`.

    Example:
        >>> w = random_resized_crop_window(375, 500, tf.constant([1, 2]))
        >>> w.shape
        TensorShape([4])
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    area = h * w
    target = area * tf.random.stateless_uniform(
        [10], seeds[0], minval=scale[0], maxval=scale[1], dtype=tf.float64
    )
    log_ratio = tf.random.stateless_uniform(
        [10], seeds[1], minval=math.log(ratio[0]), maxval=math.log(ratio[1]),
        dtype=tf.float64,
    )
    aspect = tf.exp(log_ratio)
    crop_w = tf.round(tf.sqrt(target * aspect))
    crop_h = tf.round(tf.sqrt(target / aspect))
    fits = (crop_w > 0) & (crop_w <= w) & (crop_h > 0) & (crop_h <= h)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    any_fit = tf.reduce_any(fits)
    # Fallback: a centre crop with the ratio clamped into `ratio`.
    in_ratio = w / h
    fallback_w = tf.where(in_ratio > ratio[1], tf.round(h * ratio[1]), w)
    fallback_h = tf.where(in_ratio < ratio[0], tf.round(w / ratio[0]), h)
    crop_h = tf.where(any_fit, crop_h[first], fallback_h)
    crop_w = tf.where(any_fit, crop_w[first], fallback_w)
    u = tf.random.stateless_uniform([2], seeds[2], dtype=tf.float64)
    top = tf.where(any_fit, tf.floor(u[0] * (h - crop_h + 1)), tf.floor((h - crop_h) / 2))
    left = tf.where(any_fit, tf.floor(u[1] * (w - crop_w + 1)), tf.floor((w - crop_w) / 2))
    return tf.cast(tf.stack([top, left, crop_h, crop_w]), tf.int32)


def _decode_random_crop(contents, seed, scale, ratio):
    """Decode + random resized crop window, fused for JPEG."""

    def jpeg():
        shape = tf.image.extract_jpeg_shape(contents)
        window = random_resized_crop_window(shape[0], shape[1], seed, scale, ratio)
        return tf.image.decode_and_crop_jpeg(
            contents, window, channels=3, dct_method="INTEGER_ACCURATE"
        )

    def other():
        image = tf.cast(
            tf.io.decode_image(contents, channels=3, expand_animations=False), tf.uint8
        )
        shape = tf.shape(image)
        window = random_resized_crop_window(shape[0], shape[1], seed, scale, ratio)
        return image[
            window[0] : window[0] + window[2], window[1] : window[1] + window[3]
        ]

    image = tf.cond(_is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def _grey(image):
    """ITU-R 601 luma (torchvision's `rgb_to_grayscale`), keeps a channel axis."""
    weights = tf.constant([0.299, 0.587, 0.114], image.dtype)
    return tf.reduce_sum(image * weights, axis=-1, keepdims=True)


def random_color_jitter(image, strength, seed):
    """torchvision's `ColorJitter(s, s, s, 0)` on a float image in [0, 255].

    Brightness (`x * f`), contrast (blend with the mean grey level) and
    saturation (blend with the grey image), each factor uniform in
    `[max(0, 1 - s), 1 + s]`, applied in a random order, each clipped to
    [0, 255].

    Args:
        image: float32 `(H, W, 3)` in [0, 255].
        strength: `s`, a Python float >= 0.
        seed: shape-(2,) stateless seed.

    Returns:
        The jittered float32 image, same shape.

    Example:
        >>> x = tf.fill([4, 4, 3], 100.0)
        >>> y = random_color_jitter(x, 0.4, tf.constant([0, 1]))
        >>> bool(tf.reduce_all((y >= 0) & (y <= 255)))
        True
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    factors = tf.random.stateless_uniform(
        [3], seeds[0], minval=max(0.0, 1.0 - strength), maxval=1.0 + strength
    )
    order = tf.cast(tf.argsort(tf.random.stateless_uniform([3], seeds[1])), tf.int32)

    def clip(x):
        return tf.clip_by_value(x, 0.0, 255.0)

    def brightness(x):
        return clip(x * factors[0])

    def contrast(x):
        mean = tf.reduce_mean(_grey(x))
        return clip(factors[1] * x + (1.0 - factors[1]) * mean)

    def saturation(x):
        return clip(factors[2] * x + (1.0 - factors[2]) * _grey(x))

    # One op per slot, picked by `tf.switch_case` (measured faster in a
    # tf.data map than computing the three blends and selecting).
    for slot in range(3):
        current = image
        branches = [
            lambda x=current: brightness(x),
            lambda x=current: contrast(x),
            lambda x=current: saturation(x),
        ]
        image = tf.switch_case(order[slot], branches)
        image.set_shape(current.shape)
    return image


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _resize(image, size):
    """Bilinear resize, antialiased where it shrinks: PIL's `BILINEAR`.

    When neither side shrinks the antialiasing kernel is plain bilinear, so
    the much faster `ResizeBilinear` op gives the same pixels (to float
    rounding) as the antialiased `ScaleAndTranslate`, which costs about five
    times as much on a 224x224 output here.
    """
    size = tf.convert_to_tensor(size, tf.int32)
    shrinks = tf.reduce_any(tf.shape(image)[:2] > size)
    return tf.cond(
        shrinks,
        lambda: tf.image.resize(image, size, method="bilinear", antialias=True),
        lambda: tf.image.resize(image, size, method="bilinear"),
    )


def resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, as torchvision's `Resize(size)`.

    The longer side becomes `int(size * long / short)`; bilinear with
    antialiasing (as Pillow's). Returns float32.

    Example:
        >>> resize_shorter_side(tf.zeros([300, 400, 3]), 256).shape
        TensorShape([256, 341, 3])
    """
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    short = tf.cast(tf.minimum(h, w), tf.int64)
    long = tf.cast(tf.maximum(h, w), tf.int64)
    new_long = tf.cast(tf.cast(size, tf.int64) * long // short, tf.int32)
    new_h = tf.where(h <= w, size, new_long)
    new_w = tf.where(h <= w, new_long, size)
    return _resize(image, tf.stack([new_h, new_w]))


def center_crop(image, size):
    """torchvision's `CenterCrop(size)` of an image at least `size` each way."""
    shape = tf.shape(image)
    top = tf.cast(tf.round(tf.cast(shape[0] - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(shape[1] - size, tf.float32) / 2.0), tf.int32)
    return image[top : top + size, left : left + size]


# ----------------------------------------------------------------------------
# Dataset construction.


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
    """Runs the header scan; drops or refuses bad files. Returns the check."""
    if not check_files:
        return paths, labels, None
    check = check_images(paths, num_threads=num_threads)
    if check.num_bad and not skip_bad_images:
        raise UnreadableImagesError(
            check.describe()
            + "\nFix or remove them, or pass skip_bad_images=True "
            "(--skip_bad_images) to leave them out.",
            check,
        )
    if check.num_bad:
        keep = check.ok
        paths = [p for p, k in zip(paths, keep) if k]
        labels = labels[keep]
        if not paths:
            raise UnreadableImagesError(
                "No readable image is left.\n" + check.describe(), check
            )
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
                    _READ_ERROR,
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

    Returns:
        A `tf.data.Dataset` of `(x, y)`: `x` float32
        `(B, image_size, image_size, 3)`, `y` int32 `(B,)`, or float32
        `(B, num_classes)` soft labels with mixup. `skipped_images(ds)` is
        the number of files left out so far.

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
                tf.argsort(tf.random.stateless_uniform([n], seed=_fold(base, _ORDER, epoch))),
                tf.int64,
            )
        if extra:
            order = tf.concat([order, order[: min(extra, n)]], axis=0)
        size = n + (min(extra, n) if extra else 0)

        def load(position):
            index = order[position]
            contents = tf.io.read_file(paths_t[index])
            image = _decode_random_crop(
                contents, _fold(base, _CROP, epoch, position), scale, ratio
            )
            image = _resize(image, [image_size, image_size])
            if flip:
                u = tf.random.stateless_uniform([], _fold(base, _FLIP, epoch, position))
                image = tf.cond(u < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
            if color_jitter > 0:
                image = random_color_jitter(
                    image, color_jitter, _fold(base, _JITTER, epoch, position)
                )
            image = _to_uint8(image)
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
            x, y = mixup_batch(x, y, mixup_alpha, _fold(base, _MIXUP, epoch, step))
        return x, y

    dataset = tf.data.Dataset.range(1).map(next_epoch).flat_map(one_epoch)
    dataset = dataset.map(make_batch, num_parallel_calls=AUTOTUNE)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    dataset = _deterministic(dataset.prefetch(AUTOTUNE))
    dataset._lcreg_epoch_counter = epoch_counter
    dataset._lcreg_skip_counter = skip_counter
    dataset._lcreg_read_failures = read_failures
    dataset._lcreg_image_check = check
    dataset._lcreg_paths = paths
    return dataset


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
            `image_check(ds)`) and the files that fail while reading; the
            labels of the images a pass delivered are
            `evaluated_labels(ds, labels[check.ok])` (`read_failures(ds)`
            says which were left out of the last pass). Without it a file
            failing while reading stops the pass with an error naming it.
        check_files: run `check_images` first.
        num_threads: threads of that scan.

    Returns:
        A `tf.data.Dataset` of `(x, y)`: `x` float32
        `(B, image_size, image_size, 3)`, `y` int32 `(B,)`, every kept image
        once, in the given order.

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
        image = _decode_any(tf.io.read_file(paths_t[position]))
        image = tf.cast(image, tf.float32)
        if resize_size is None:
            image = _resize(image, [image_size, image_size])
        else:
            image = center_crop(resize_shorter_side(image, resize_size), image_size)
        image = _to_uint8(image)
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
    dataset._lcreg_image_check = check
    dataset._lcreg_read_failures = read_failures
    dataset._lcreg_paths = paths
    return dataset


def image_check(dataset) -> Optional[ImageCheck]:
    """The `ImageCheck` a dataset of this module ran at construction, or None."""
    return getattr(dataset, "_lcreg_image_check", None)


def read_failures(dataset):
    """Indices (into the dataset's kept files) that failed while reading.

    For a training set: every file that failed so far (each once). For an
    evaluation set: the files left out of its latest pass.

    Args:
        dataset: a dataset from `image_train_dataset` / `image_eval_dataset`.

    Returns:
        A sorted int64 NumPy array.
    """
    import numpy as np

    mask = getattr(dataset, "_lcreg_read_failures", None)
    if mask is None:
        return np.zeros([0], np.int64)
    return np.flatnonzero(mask.numpy()).astype(np.int64)


def dataset_paths(dataset):
    """The files a dataset of this module reads (after the header scan), or None."""
    return getattr(dataset, "_lcreg_paths", None)


def evaluated_labels(dataset, labels):
    """`labels` (one per kept file) of the images the latest pass delivered.

    Example:
        >>> logits = model.predict(ds)  # doctest: +SKIP
        >>> y = evaluated_labels(ds, labels)  # doctest: +SKIP
    """
    import numpy as np

    labels = np.asarray(labels)
    keep = np.ones(len(labels), bool)
    keep[read_failures(dataset)] = False
    return labels[keep]


def skipped_images(dataset):
    """Images a dataset of this module left out: at the scan plus while reading.

    Args:
        dataset: a dataset from `image_train_dataset` / `image_eval_dataset`.

    Returns:
        An int: the files the header scan dropped plus, for a training set
        with `skip_bad_images=True`, the reads that failed so far (counted
        each time they are met, so once per epoch).

    Example:
        >>> skipped_images(ds)  # doctest: +SKIP
        0
    """
    check = image_check(dataset)
    count = check.num_bad if check is not None else 0
    counter = getattr(dataset, "_lcreg_skip_counter", None)
    if counter is not None:
        count += int(counter.numpy())
    return count
