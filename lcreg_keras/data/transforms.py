"""Image transforms: the one copy of each image op (TensorFlow ops).

Training (`pipelines.image_train_dataset`), evaluation
(`pipelines.image_eval_dataset`), the latent-usage pictures and the exported
SavedModel (`lcreg_keras.serving.export`) all call these functions, so an
image is resized and cropped the same way wherever it goes.

- decoding: `decode_any` (JPEG incl. CMYK / grey, PNG, GIF, BMP, found by
  their magic bytes), `decode_random_crop` (the random resized crop fused
  into the JPEG decode, optionally at a reduced DCT scale: `dct_ratio`);
- training augmentation: `random_resized_crop_window` (torchvision's
  `RandomResizedCrop`), `random_color_jitter` (torchvision's
  `ColorJitter(s, s, s, 0)`);
- test-time geometry: `resize` (bilinear, antialiased where it shrinks, as
  Pillow's `BILINEAR`), `resize_shorter_side` (torchvision's `Resize(R)`),
  `center_crop` (`CenterCrop`), and `eval_geometry`, the two together as
  the evaluation batches and the SavedModel apply them;
- `preprocessing.json`: `check_preprocessing` validates the dict a recipe
  run writes (`input_shape`, `mean`, `std`, `resize`), `preprocess` applies
  it to raw uint8 images (resize / crop, round back to 0..255, then
  `(x / 255 - mean) / std`).

The geometric ops take one image `(H, W, C)` or a batch `(B, H, W, C)`.
"""

import json
import math
import os

import tensorflow as tf

from lcreg_keras.data.image_files import JPEG_MAGIC

def _is_jpeg(contents):
    return tf.equal(tf.strings.substr(contents, 0, 3), JPEG_MAGIC)


def decode_any(contents):
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


DCT_RATIOS = (1, 2, 4, 8)  # the scalings libjpeg's decoder offers through TensorFlow


def dct_ratio(crop_height, crop_width, min_size):
    """The largest JPEG decode scaling `1 / r` that keeps a crop >= `min_size` a side.

    libjpeg can decode at 1/2, 1/4 or 1/8 of the size by inverse-transforming
    only the low frequencies of each 8x8 block, which is much cheaper than a
    full decode followed by a shrinking resize. `r` is the largest of
    `DCT_RATIOS` with `min(crop_height, crop_width) >= r * min_size`, so the
    resize that follows still shrinks (or keeps) the crop, never enlarges it.

    Args:
        crop_height: int scalar tensor, the crop's height at full size.
        crop_width: int scalar tensor.
        min_size: Python int, the output side (224).

    Returns:
        int32 scalar tensor, the index of `r` in `DCT_RATIOS`.

    Example:
        >>> int(dct_ratio(tf.constant(500), tf.constant(460), 224))
        1
    """
    side = tf.minimum(tf.cast(crop_height, tf.int32), tf.cast(crop_width, tf.int32))
    return tf.add_n([tf.cast(side >= r * min_size, tf.int32) for r in DCT_RATIOS[1:]])


def decode_random_crop(contents, seed, scale, ratio, dct_min_size=None):
    """Decode + random resized crop window, fused for JPEG.

    Args:
        contents: a scalar string tensor, the file's bytes.
        seed: shape-(2,) stateless seed of the crop window.
        scale: crop area range, fraction of the image.
        ratio: crop width / height range.
        dct_min_size: `None` (default) decodes the crop at full size. An int
            (the output side) decodes a JPEG crop at the reduced DCT scale of
            `dct_ratio`, when the crop is at least twice that size: the same
            window, in 1/r-size coordinates (its corners rounded down to a
            multiple of r), with libjpeg's block-wise downscale in place of
            the first factor r of the resize. The pixels then differ from a
            full decode plus resize by a few grey levels (measured in
            `docs/results.md`), so it is a speed option, not the default.

    Returns:
        The uint8 crop `(h, w, 3)`.
    """

    def jpeg():
        shape = tf.image.extract_jpeg_shape(contents)
        window = random_resized_crop_window(shape[0], shape[1], seed, scale, ratio)
        if dct_min_size is None:
            return tf.image.decode_and_crop_jpeg(
                contents, window, channels=3, dct_method="INTEGER_ACCURATE"
            )

        def scaled(r):
            return lambda: tf.image.decode_and_crop_jpeg(
                contents, window // r, channels=3, ratio=r, dct_method="INTEGER_ACCURATE"
            )

        index = dct_ratio(window[2], window[3], dct_min_size)
        return tf.switch_case(index, [scaled(r) for r in DCT_RATIOS])

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


def to_uint8(image):
    """Rounds a float image in [0, 255] back to uint8 pixels (clipped)."""
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _hw(image):
    shape = tf.shape(image)
    return shape[-3], shape[-2]


def resize(image, size):
    """Bilinear resize to `size` (h, w), antialiased where it shrinks: PIL's `BILINEAR`.

    An image already of that size passes unchanged. When neither side
    shrinks the antialiasing kernel is plain bilinear, so the much faster
    `ResizeBilinear` op gives the same pixels (to float rounding) as the
    antialiased `ScaleAndTranslate`, which costs about five times as much on
    a 224x224 output here. Returns float32.

    Example:
        >>> resize(tf.zeros([2, 30, 40, 1]), [28, 28]).shape
        TensorShape([2, 28, 28, 1])
    """
    image = tf.cast(image, tf.float32)
    size = tf.convert_to_tensor(size, tf.int32)
    h, w = _hw(image)
    same = tf.logical_and(tf.equal(h, size[0]), tf.equal(w, size[1]))
    shrinks = tf.logical_or(h > size[0], w > size[1])

    def scaled():
        return tf.cond(
            shrinks,
            lambda: tf.image.resize(image, size, method="bilinear", antialias=True),
            lambda: tf.image.resize(image, size, method="bilinear"),
        )

    out = tf.cond(same, lambda: image, scaled)
    out.set_shape(image.shape[:-3].concatenate([None, None]).concatenate(image.shape[-1:]))
    return out


def resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, as torchvision's `Resize(size)`.

    The longer side becomes `int(size * long / short)`; bilinear with
    antialiasing where it shrinks (as Pillow's). Returns float32.

    Example:
        >>> resize_shorter_side(tf.zeros([300, 400, 3]), 256).shape
        TensorShape([256, 341, 3])
    """
    h, w = _hw(image)
    short = tf.cast(tf.minimum(h, w), tf.int64)
    long = tf.cast(tf.maximum(h, w), tf.int64)
    new_long = tf.cast(tf.cast(size, tf.int64) * long // short, tf.int32)
    new_h = tf.where(h <= w, size, new_long)
    new_w = tf.where(h <= w, new_long, size)
    return resize(image, tf.stack([new_h, new_w]))


def center_crop(image, size):
    """torchvision's `CenterCrop(size)` of an image at least `size` each way.

    `size`: an int (a square) or `(height, width)`.

    Example:
        >>> center_crop(tf.zeros([36, 40, 1]), 32).shape
        TensorShape([32, 32, 1])
    """
    height, width = (size, size) if isinstance(size, int) else size
    h, w = _hw(image)
    top = tf.cast(tf.round(tf.cast(h - height, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(w - width, tf.float32) / 2.0), tf.int32)
    return image[..., top : top + height, left : left + width, :]


def eval_geometry(image, size, resize_size=None):
    """The test-time geometry: resize the shorter side, then crop the centre.

    Args:
        image: `(H, W, C)` or `(B, H, W, C)`, any numeric dtype.
        size: `(height, width)` of the model input (or an int: a square).
        resize_size: shorter side before the centre crop (torchvision's
            `Resize(R)` + `CenterCrop`), or None: resize straight to `size`.

    Returns:
        float32 pixels in the input's scale, rounded to whole values in
        [0, 255] (what a uint8 image of the evaluation batches holds).

    Example:
        >>> eval_geometry(tf.zeros([300, 400, 3]), 224, 256).shape
        TensorShape([224, 224, 3])
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if resize_size is None:
        image = resize(image, [height, width])
    else:
        image = center_crop(resize_shorter_side(image, resize_size), (height, width))
    return tf.clip_by_value(tf.round(image), 0.0, 255.0)


# ----------------------------------------------------------------------------
# preprocessing.json: the test-time preprocessing of a trained run.


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_preprocessing(preprocessing):
    """Validates a preprocessing dict (or reads a `preprocessing.json` path).

    Args:
        preprocessing: dict with `input_shape`, `mean`, `std` and `resize`,
            or the path of a JSON file holding one.

    Returns:
        A normalised dict: `input_shape` (3 ints), `mean` and `std` (lists of
        `C` floats), `resize` (None or an int).

    Raises:
        ValueError: on a missing key or an inconsistent value.

    Example:
        >>> check_preprocessing({"input_shape": [28, 28, 1], "mean": [0.3],
        ...                      "std": [0.35], "resize": None})["resize"] is None
        True
    """
    if isinstance(preprocessing, (str, os.PathLike)):
        with open(preprocessing) as f:
            preprocessing = json.load(f)
    if not isinstance(preprocessing, dict):
        raise ValueError(
            "`preprocessing` must be a dict or the path of preprocessing.json. "
            f"Received: {type(preprocessing).__name__}"
        )
    missing = [k for k in ("input_shape", "mean", "std") if k not in preprocessing]
    if missing:
        raise ValueError(
            f"`preprocessing` lacks {missing}; expected the keys input_shape, "
            "mean, std and resize (the preprocessing.json a recipe run writes)."
        )
    shape = [int(d) for d in preprocessing["input_shape"]]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"`input_shape` must be [H, W, C] of positive ints. Received: {shape}"
        )
    channels = shape[-1]

    def per_channel(name):
        values = [float(v) for v in _as_list(preprocessing[name])]
        if len(values) == 1:
            values = values * channels
        if len(values) != channels:
            raise ValueError(
                f"`{name}` has {len(values)} entries for {channels} channels."
            )
        if any(v > 2.0 for v in values) or (name == "mean" and any(v < 0 for v in values)):
            raise ValueError(
                f"`{name}` must be in the [0, 1] pixel scale. Received: {values}"
            )
        return values

    mean, std = per_channel("mean"), per_channel("std")
    if any(s <= 0 for s in std):
        raise ValueError(f"`std` must be positive. Received: {std}")
    resize = preprocessing.get("resize")
    if resize is not None:
        resize = int(resize)
        if resize < max(shape[0], shape[1]):
            raise ValueError(
                f"`resize` ({resize}) must be at least the crop size {shape[:2]}: the "
                "shorter side is resized to it, then the centre is cropped."
            )
    return {"input_shape": shape, "mean": mean, "std": std, "resize": resize}


def preprocess(images, preprocessing):
    """Raw uint8 images to model inputs, with TensorFlow ops.

    The function the SavedModel runs; usable eagerly too (returns a tf
    tensor). The steps: `eval_geometry`, then
    `(x / 255 - mean) / std`.

    Args:
        images: `(B, h, w, C)` uint8 tensor or array.
        preprocessing: a dict accepted by `check_preprocessing`.

    Returns:
        A float32 `(B, H, W, C)` tensor.

    Example:
        >>> x = preprocess(np.zeros((2, 40, 30, 1), np.uint8),
        ...                {"input_shape": [28, 28, 1], "mean": [0.5],
        ...                 "std": [0.5], "resize": 32})
        >>> x.shape
        TensorShape([2, 28, 28, 1])
    """
    prep = check_preprocessing(preprocessing)
    height, width, channels = prep["input_shape"]
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise ValueError(f"`images` must be uint8. Received dtype {images.dtype.name}.")
    if images.shape.rank != 4 or (
        images.shape[-1] is not None and images.shape[-1] != channels
    ):
        raise ValueError(
            f"`images` must have shape (B, h, w, {channels}). Received {images.shape}."
        )
    x = eval_geometry(images, (height, width), prep["resize"])
    x = tf.ensure_shape(x, (None, height, width, channels))
    mean = tf.constant(prep["mean"], tf.float32)
    std = tf.constant(prep["std"], tf.float32)
    return (x / 255.0 - mean) / std
