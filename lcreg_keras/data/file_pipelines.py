"""tf.data pipelines of image files (ImageNet-LT, Places-LT, iNaturalist 2018).

`image_train_dataset`, `image_eval_dataset`, and the accessors of their
`PipelineState` (`image_check`, `read_failures`, `dataset_paths`,
`evaluated_labels`, `skipped_images`). The image ops they apply live in
`lcreg_keras.data.transforms` (one copy, shared with the export); the header
scan and the refusal or dropping of unreadable files in
`lcreg_keras.data.image_files`; the epoch skeleton, the seeds, mixup and the
class-aware sampler in `lcreg_keras.data.epochs` (shared with the array
pipelines).

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
`(seed, epoch, batch)` for mixup; the epoch is counted by the dataset (the
skeleton of `lcreg_keras.data.epochs`, as for arrays). The class-aware sampler draws each epoch from
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

import os
import sys
from typing import Optional

import tensorflow as tf

from lcreg_keras.data import transforms
from lcreg_keras.data.epochs import AUTOTUNE
from lcreg_keras.data.epochs import FILE_CROP
from lcreg_keras.data.epochs import FILE_FLIP
from lcreg_keras.data.epochs import FILE_JITTER
from lcreg_keras.data.epochs import FILE_MIXUP
from lcreg_keras.data.epochs import FILE_ORDER
from lcreg_keras.data.epochs import FILE_STREAMS
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
from lcreg_keras.data.image_files import READ_ERROR
from lcreg_keras.data.image_files import ImageCheck
from lcreg_keras.data.image_files import check_images
from lcreg_keras.data.image_files import keep_readable
from lcreg_keras.data.normalization import IMAGENET_MEAN
from lcreg_keras.data.normalization import IMAGENET_STD


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
    dct_scaling=False,
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
        dct_scaling: decode a JPEG crop at 1/2, 1/4 or 1/8 scale when it is
            at least twice `image_size` a side (`transforms.dct_ratio`):
            faster on large images (iNaturalist's 800 px), a few grey levels
            away from the full decode (`docs/results.md`); off by default.

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
    num_classes = check_positive_int(num_classes, "num_classes")
    labels = as_labels(labels, len(paths), num_classes, per="path")
    batch_size = check_positive_int(batch_size, "batch_size")
    image_size = check_positive_int(image_size, "image_size")
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
    mean = tf.constant(per_channel(mean, 3, "mean"))
    std = tf.constant(per_channel(std, 3, "std"))
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
    base = tf.constant([seed, FILE_STREAMS], tf.int64)
    color_jitter = float(color_jitter)

    with tf.device("/CPU:0"):
        paths_t = tf.constant(paths)
        labels_t = tf.constant(labels)
        skip_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
        # Which files failed while reading, in `paths` order (once each).
        read_failures = tf.Variable(tf.zeros([len(paths)], tf.bool), trainable=False)

    def one_epoch(epoch):
        if sampler == "class_aware":
            order = class_aware_order(labels, num_classes, n, seed, epoch, samples_per_class)
        else:
            order = tf.cast(
                tf.argsort(tf.random.stateless_uniform([n], seed=fold(base, FILE_ORDER, epoch))),
                tf.int64,
            )
        if extra:
            order = tf.concat([order, order[: min(extra, n)]], axis=0)
        size = n + (min(extra, n) if extra else 0)

        def load(position):
            index = order[position]
            contents = tf.io.read_file(paths_t[index])
            image = transforms.decode_random_crop(
                contents, fold(base, FILE_CROP, epoch, position), scale, ratio,
                dct_min_size=image_size if dct_scaling else None,
            )
            image = transforms.resize(image, [image_size, image_size])
            if flip:
                u = tf.random.stateless_uniform([], fold(base, FILE_FLIP, epoch, position))
                image = tf.cond(u < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
            if color_jitter > 0:
                image = transforms.random_color_jitter(
                    image, color_jitter, fold(base, FILE_JITTER, epoch, position)
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
        return batches

    def make_batch(epoch, step, batch):
        _, images, y = batch
        x = normalize(images, mean, std)
        if mixup_alpha > 0:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
            x, y = mixup_batch(x, y, mixup_alpha, fold(base, FILE_MIXUP, epoch, step))
        return x, y

    dataset, epoch_counter = keyed_epochs(one_epoch, make_batch, num_batches)
    state = PipelineState(epoch=epoch_counter, paths=paths, check=check,
                          failures=read_failures, skips=skip_counter)
    return returned(dataset, state, return_state)


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
    labels = as_labels(labels, len(paths), per="path")
    batch_size = check_positive_int(batch_size, "batch_size")
    image_size = check_positive_int(image_size, "image_size")
    if resize_size is not None:
        resize_size = check_positive_int(resize_size, "resize_size")
        if resize_size < image_size:
            raise ValueError(
                f"`resize_size` ({resize_size}) must be >= `image_size` "
                f"({image_size}): the centre crop is taken from the resized image."
            )
    mean = tf.constant(per_channel(mean, 3, "mean"))
    std = tf.constant(per_channel(std, 3, "std"))
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
        lambda _, images, y: (normalize(images, mean, std), y),
        num_parallel_calls=AUTOTUNE,
    )
    if not skip_bad_images:  # skipping while reading may drop a last batch
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size)))
    dataset = deterministic(dataset.prefetch(AUTOTUNE))
    state = PipelineState(paths=paths, check=check, failures=read_failures)
    return returned(dataset, state, return_state)


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
