"""lcreg_keras.data.transforms: decoding odd files, PIL's bilinear resize, the
random resized crop and colour jitter of torchvision."""

import os

import numpy as np
import pytest
import tensorflow as tf

from lcreg_keras import data
from lcreg_keras.data import transforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# Decoding odd files to RGB


def test_odd_files_decode_to_rgb(odd_files):
    files, image = odd_files
    names = ["good.jpg", "png_named.jpg", "grey.jpg", "trailing.jpg"]
    if "cmyk.jpg" in files:
        names.append("cmyk.jpg")
    ds = data.image_eval_dataset(
        [files[n] for n in names], np.zeros(len(names), int), len(names),
        image_size=40, resize_size=None, mean=0.0, std=1.0,
    )
    x, _ = next(iter(ds))
    x = np.rint(x.numpy() * 255)
    reference = tf.image.resize(image, [40, 40], antialias=True).numpy()
    assert x.shape == (len(names), 40, 40, 3)
    for name, decoded in zip(names, x):
        if name == "grey.jpg":  # one channel repeated: R = G = B
            np.testing.assert_array_equal(decoded[..., 0], decoded[..., 1])
            np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])
            continue
        tolerance = 0 if name == "png_named.jpg" else 12
        assert np.abs(decoded - reference).mean() <= max(tolerance, 1), name
    assert abs(np.abs(x[1] - np.rint(reference)).max()) <= 1  # PNG is lossless


@pytest.mark.parametrize("shape", [(37, 61), (150, 90), (224, 224), (400, 260), (180, 300), (900, 700)])
def test_resize_is_pils_bilinear(shape):
    """Enlarging, shrinking and mixed crops: PIL's BILINEAR to one grey level.

    PIL antialiases whenever it shrinks (torchvision's PIL transforms rely on
    it); `transforms.resize` takes the plain bilinear op when nothing shrinks, which
    must then agree with the antialiased op as well.
    """
    from PIL import Image

    rng = np.random.default_rng(sum(shape))
    small = rng.integers(0, 256, (shape[0] // 6 + 1, shape[1] // 6 + 1, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize(shape[::-1], Image.BILINEAR))
    for size in ([224, 224], [128, 300]):
        ours = transforms.resize(tf.constant(image, tf.float32), size).numpy()
        pil = np.asarray(Image.fromarray(image).resize(size[::-1], Image.BILINEAR), np.float32)
        assert ours.shape == tuple(size) + (3,)
        assert np.abs(np.rint(np.clip(ours, 0, 255)) - pil).max() <= 1, (shape, size)
        antialiased = tf.image.resize(image.astype(np.float32), size, antialias=True).numpy()
        np.testing.assert_allclose(ours, antialiased, atol=2e-3)


def test_cmyk_jpeg_decodes_to_rgb(odd_files):
    files, image = odd_files
    if "cmyk.jpg" not in files:
        pytest.skip("Pillow is needed to write a CMYK JPEG")
    from PIL import Image

    assert Image.open(files["cmyk.jpg"]).mode == "CMYK"
    ds = data.image_eval_dataset([files["cmyk.jpg"]], [0], 1, image_size=16, resize_size=None,
                                 mean=0.0, std=1.0)
    x = np.rint(next(iter(ds))[0].numpy()[0] * 255)
    # The flat left half is (200, 30, 60) in RGB, not inverted or CMY.
    np.testing.assert_allclose(x[:, :6].mean(axis=(0, 1)), (200, 30, 60), atol=6)


def test_random_resized_crop_window_matches_torchvision_rules():
    areas, ratios = [], []
    for i in range(300):
        top, left, h, w = transforms.random_resized_crop_window(120, 200, tf.constant([i, 7])).numpy()
        assert 0 <= top and top + h <= 120 and 0 <= left and left + w <= 200
        areas.append(h * w / (120 * 200))
        ratios.append(w / h)
    assert min(areas) >= 0.08 - 0.02 and max(areas) <= 1.0
    assert min(ratios) >= 3 / 4 - 0.05 and max(ratios) <= 4 / 3 + 0.05
    # The same distribution as torchvision's rule, simulated in NumPy: ten
    # tries, area uniform, ratio log-uniform, the first that fits.
    rng = np.random.default_rng(0)
    reference = []
    for _ in range(4000):
        for _ in range(10):
            area = 120 * 200 * rng.uniform(0.08, 1.0)
            ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w, h = round(np.sqrt(area * ratio)), round(np.sqrt(area / ratio))
            if 0 < w <= 200 and 0 < h <= 120:
                reference.append(w * h / (120 * 200))
                break
    assert np.mean(areas) == pytest.approx(np.mean(reference), abs=0.04)
    # No try fits a 10 x 1000 strip: centre crop, ratio clamped to 4/3.
    window = transforms.random_resized_crop_window(10, 1000, tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(window, [0, (1000 - 13) // 2, 10, 13])
    window = transforms.random_resized_crop_window(1000, 10, tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(window, [(1000 - 13) // 2, 0, 13, 10])


def test_color_jitter_zero_is_identity_and_stays_in_range():
    x = tf.random.stateless_uniform([6, 6, 3], [0, 1], maxval=255.0)
    np.testing.assert_allclose(transforms.random_color_jitter(x, 0.0, tf.constant([1, 2])), x, atol=1e-4)
    y = transforms.random_color_jitter(x, 0.4, tf.constant([1, 2])).numpy()
    assert y.min() >= 0 and y.max() <= 255 and not np.allclose(y, x.numpy())
    grey = tf.fill([4, 4, 3], 90.0)  # saturation and contrast leave grey alone
    out = transforms.random_color_jitter(grey, 0.4, tf.constant([3, 4])).numpy()
    assert np.ptp(out) < 1e-3


def _smooth_jpeg(height, width, seed=0):
    """JPEG bytes of a smooth random photo-like image (upsampled noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3)).astype("float32")
    image = tf.image.resize(small[None], [height, width], "bilinear")[0]
    return tf.io.encode_jpeg(tf.cast(tf.round(image), tf.uint8), quality=90)


def test_dct_ratio_is_the_largest_scaling_that_keeps_the_output_side():
    for side_h, side_w in [(100, 900), (447, 500), (448, 448), (900, 1000), (1792, 2000), (4000, 3000)]:
        expected = max(i for i, r in enumerate(transforms.DCT_RATIOS)
                       if i == 0 or min(side_h, side_w) >= r * 224)
        assert int(transforms.dct_ratio(tf.constant(side_h), tf.constant(side_w), 224)) == expected


def test_dct_scaled_decode_keeps_small_crops_and_approximates_large_ones():
    contents = _smooth_jpeg(960, 1100)
    image = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    counts = {1: 0, 2: 0, 4: 0}
    for i in range(24):
        seed = tf.constant([i, 7])
        full = transforms.decode_random_crop(contents, seed, scale, ratio)
        fast = transforms.decode_random_crop(contents, seed, scale, ratio, dct_min_size=224)
        r = transforms.DCT_RATIOS[int(transforms.dct_ratio(full.shape[0], full.shape[1], 224))]
        counts[r] += 1
        if r == 1:  # too small to scale: the very same pixels
            np.testing.assert_array_equal(fast.numpy(), full.numpy())
            continue
        # The same window at 1/r size, corners rounded down to a multiple of r.
        top, left, h, w = (int(v) // r for v in
                           transforms.random_resized_crop_window(960, 1100, seed, scale, ratio))
        assert fast.shape[:2] == (h, w) and min(h, w) >= 224
        aligned = image[top * r:(top + h) * r, left * r:(left + w) * r]
        a = transforms.resize(tf.cast(aligned, tf.float32), [224, 224]).numpy()
        b = transforms.resize(tf.cast(fast, tf.float32), [224, 224]).numpy()
        # libjpeg's scaled inverse DCT against a full decode plus a shrinking
        # bilinear resize: 0.3 grey levels at 1/2 on this image's whole frame,
        # about 1 at 1/4 (its std is about 50 grey levels).
        assert np.abs(a - b).mean() < 1.5, (r, np.abs(a - b).mean())
    assert counts[1] and counts[2]  # both paths were exercised


def test_image_train_dataset_dct_scaling_flag(tmp_path):
    paths = []
    for i, (h, w) in enumerate([(300, 260), (900, 1000)]):
        path = str(tmp_path / f"{i}.jpg")
        tf.io.write_file(path, _smooth_jpeg(h, w, seed=i))
        paths.append(path)
    # 160 px crops: no crop of the small image reaches 320 px, most of the large one's do.
    kwargs = dict(num_classes=2, batch_size=2, image_size=160, color_jitter=0.0, seed=3,
                  flip=False, scale=(0.5, 1.0))
    batches = [
        {int(y): x for x, y in zip(*next(iter(data.image_train_dataset(paths, [0, 1], **kwargs,
                                                                          dct_scaling=dct))))}
        for dct in (False, True)
    ]
    full, fast = [{k: v.numpy() for k, v in b.items()} for b in batches]
    np.testing.assert_array_equal(fast[0], full[0])  # small image: full decode
    assert not np.array_equal(fast[1], full[1])  # large image: the scaled decode
    # Normalised units (ImageNet std about 0.225). Nearly all of the
    # difference is the window's corners moved by up to r - 1 pixels on this
    # image's fine texture (the decode alone is about 1 grey level, above);
    # another crop altogether would differ by about 1.0.
    assert np.abs(full[1] - fast[1]).mean() < 0.5
