"""Tests of the image-file datasets: lists, the ImageNet-style pipeline, CIFAR,
the recipe loaders and tools/check_dataset.py. All data is generated here."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lcreg_keras import data
from lcreg_keras.data import cifar
from lcreg_keras.data import image_pipeline as ip
from lcreg_keras.recipes import datasets
from lcreg_keras.recipes.config import Config
from tests import fakes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTS = [12, 6, 3, 2, 1]  # a miniature long tail, 5 classes
SMALL = dict(image_size=32)


def _denormalise(x, mean=ip.IMAGENET_MEAN, std=ip.IMAGENET_STD):
    return (np.asarray(x) * np.asarray(std) + np.asarray(mean)) * 255.0


def _assert_colour(image, label):
    """A flat image of class `label` has the class colour (within JPEG error)."""
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), fakes.class_colour(label), atol=3)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A miniature ImageNet-LT: images, ImageNet_LT_train.txt / _test.txt."""
    root = str(tmp_path_factory.mktemp("imagenet_lt"))
    train_rel, train_y = fakes.fake_image_tree(root, COUNTS, "train", "ImageNet_LT_train.txt")
    test_rel, test_y = fakes.fake_image_tree(root, [2] * 5, "val", "ImageNet_LT_test.txt")
    return {
        "root": root,
        "train": ([os.path.join(root, p) for p in train_rel], train_y),
        "test": ([os.path.join(root, p) for p in test_rel], test_y),
    }


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    """The files ImageNet is known for, plus broken ones."""
    folder = tmp_path_factory.mktemp("odd")
    rows, cols = np.mgrid[0:40, 0:52]
    image = np.stack([rows * 5, cols * 4, 255 - rows * 3], axis=-1).astype(np.uint8)
    image[:, :26] = (200, 30, 60)  # a flat half with a known colour
    files = {}

    def put(name, content):
        path = str(folder / name)
        with open(path, "wb") as f:
            f.write(content)
        files[name] = path

    jpeg = tf.io.encode_jpeg(image, quality=95).numpy()
    put("good.jpg", jpeg)
    put("png_named.jpg", tf.io.encode_png(image).numpy())
    put("grey.jpg", tf.io.encode_jpeg(image[..., :1], quality=95).numpy())
    put("trailing.jpg", jpeg + b"\0" * 6000)  # data after the end marker
    put("truncated.jpg", jpeg[: len(jpeg) // 2])
    put("no_end.jpg", jpeg[:-2])
    put("text.jpg", b"<html>not found</html>")
    put("empty.jpg", b"")
    try:
        from PIL import Image
    except ImportError:
        pass
    else:
        Image.fromarray(image).convert("CMYK").save(str(folder / "cmyk.jpg"), quality=95)
        files["cmyk.jpg"] = str(folder / "cmyk.jpg")
    files["missing.jpg"] = str(folder / "missing.jpg")
    return files, image


# ---------------------------------------------------------------------------
# List files


def test_read_image_list_paths_labels_blank_lines(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(
        "train/a/1.JPEG 3\n\n  train/b/2.JPEG\t0  \n/data_256/c/3.jpg 1\nmy dir/x.jpg 2\n\n"
    )
    paths, labels = data.read_image_list(str(lst), "/root", path_prefix="pre", num_classes=4)
    assert paths == [
        "/root/pre/train/a/1.JPEG",
        "/root/pre/train/b/2.JPEG",
        "/root/pre/data_256/c/3.jpg",  # a leading slash does not discard the root
        "/root/pre/my dir/x.jpg",  # spaces in a path are fine
    ]
    assert labels.dtype == np.int64 and labels.tolist() == [3, 0, 1, 2]
    paths, _ = data.read_image_list(str(lst), None)
    assert paths[0] == "train/a/1.JPEG"


@pytest.mark.parametrize(
    "content, line, what",
    [
        ("a.jpg 0\nb.jpg\n", 2, "no label"),
        ("a.jpg 0\n\nb.jpg x1\n", 3, "not a non-negative integer"),
        ("a.jpg 7\n", 1, r"outside \[0, 5\)"),
        ("a.jpg -1\n", 1, "digits 0-9"),
        # Python's int() takes these; a typo must not silently relabel an image.
        ("a.jpg 0\nb.jpg 1_0\n", 2, "'1_0' is not a non-negative integer"),
        ("a.jpg \u0663\n", 1, "digits 0-9"),  # ARABIC-INDIC DIGIT THREE
        ("a.jpg +3\n", 1, "digits 0-9"),
    ],
)
def test_read_image_list_errors_name_file_and_line(tmp_path, content, line, what):
    lst = tmp_path / "bad_list.txt"
    lst.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bad_list\.txt:{line}: .*{what}"):
        data.read_image_list(str(lst), "/root", num_classes=5)


def test_read_image_list_encoding_bom_and_lines(tmp_path):
    from lcreg_keras.errors import UserError

    lst = tmp_path / "latin1.txt"
    lst.write_bytes("a.jpg 0\ncaf\u00e9/b.jpg 1\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.txt:2: not UTF-8 text.*must be UTF-8"):
        data.read_image_list(str(lst), "/root")
    # A UTF-8 byte-order mark (Notepad) is not part of the first path.
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + "caf\u00e9/a.jpg 0\n\nb.jpg 1\n".encode("utf-8"))
    paths, labels, lines = data.read_image_list(str(bom), "/root", return_lines=True)
    assert paths == ["/root/caf\u00e9/a.jpg", "/root/b.jpg"] and lines.tolist() == [1, 3]
    jpath = tmp_path / "val2018.json"
    jpath.write_bytes(b"\xef\xbb\xbf" + json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"image_id": 1, "category_id": "1_0"}]}).encode())
    with pytest.raises(UserError, match="lacks an integer"):
        data.read_inaturalist_json(str(jpath), "/r")
    jpath.write_bytes('{"images": [{"file_name": "\u00e9"}]}'.encode("latin-1"))
    with pytest.raises(UserError, match="val2018.json: not UTF-8 text"):
        data.read_inaturalist_json(str(jpath), "/r")


def test_read_image_list_missing_or_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        data.read_image_list(str(tmp_path / "nope.txt"), "/root")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt has no entries"):
        data.read_image_list(str(tmp_path / "empty.txt"), "/root")


def test_read_inaturalist_json_matches_by_id(tmp_path):
    rel, labels = fakes.fake_inaturalist(str(tmp_path), [3, 1, 2])
    paths, got = data.read_inaturalist_json(str(tmp_path / "train2018.json"), str(tmp_path))
    assert paths == [os.path.join(str(tmp_path), r) for r in rel]
    np.testing.assert_array_equal(got, labels)
    assert got.dtype == np.int64
    # read_any_list picks the JSON reader by extension.
    paths2, _ = data.read_any_list(str(tmp_path / "train2018.json"), str(tmp_path))
    assert paths2 == paths


def test_read_inaturalist_json_errors_name_the_file(tmp_path):
    path = tmp_path / "val2018.json"
    content = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 1, "category_id": 0}],
    }
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"val2018\.json.*b\.jpg.*no annotation"):
        data.read_inaturalist_json(str(path), "/r")
    content["annotations"].append({"image_id": 2, "category_id": 9})
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"val2018\.json.*category_id 9"):
        data.read_inaturalist_json(str(path), "/r", num_classes=5)
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a"}], "annotations": []}))
    with pytest.raises(ValueError, match="val2018.json has no 'annotations'"):
        data.read_inaturalist_json(str(path), "/r")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="val2018.json:1: not valid JSON"):
        data.read_inaturalist_json(str(path), "/r")


def test_resolve_list(tmp_path):
    (tmp_path / "ImageNet_LT_train.txt").write_text("a 0\n")
    found = data.resolve_list("ImageNet_LT_train.txt", str(tmp_path))
    assert found == str(tmp_path / "ImageNet_LT_train.txt")
    assert data.resolve_list(found, None) == found
    with pytest.raises(FileNotFoundError) as error:
        data.resolve_list("Places_LT_train.txt", str(tmp_path))
    message = str(error.value)
    assert "Places_LT_train.txt" in message and str(tmp_path) in message
    # Candidates, in order: the first that exists.
    assert data.resolve_list(("missing.json", "ImageNet_LT_train.txt"), str(tmp_path)) == found
    with pytest.raises(FileNotFoundError, match="'a.json' / 'b.txt'"):
        data.resolve_list(("a.json", "b.txt"), str(tmp_path))


# ---------------------------------------------------------------------------
# The header scan


def test_check_images_finds_each_kind_of_bad_file(odd_files):
    files, _ = odd_files
    names = sorted(files)
    check = data.check_images([files[n] for n in names], num_threads=3)
    reasons = {os.path.basename(path): reason for _, path, reason in check.bad}
    assert set(reasons) == {"truncated.jpg", "no_end.jpg", "text.jpg", "empty.jpg", "missing.jpg"}
    assert reasons["missing.jpg"] == "missing"
    assert reasons["empty.jpg"] == "empty file"
    assert "end-of-image" in reasons["no_end.jpg"]
    assert "not a JPEG, PNG, GIF or BMP" in reasons["text.jpg"]
    assert check.ok.tolist() == [n not in reasons for n in names]
    assert "missing.jpg: missing" in check.describe()


def test_strict_decode_finds_damage_inside_jpeg_data(odd_files, tmp_path, capfd):
    """The issue's case: TensorFlow decodes these with a bare libjpeg warning; the scan passes."""
    files, image = odd_files
    jpeg = tf.io.encode_jpeg(image, quality=95).numpy()
    paths = [files["good.jpg"], files["png_named.jpg"], files["grey.jpg"],
             files["trailing.jpg"]] + ([files["cmyk.jpg"]] if "cmyk.jpg" in files else [])
    for name, content in fakes.damaged_jpegs(jpeg).items():
        path = str(tmp_path / f"{name}.jpg")
        with open(path, "wb") as f:
            f.write(content)
        paths.append(path)
    # No error from TensorFlow: training would go on with grey blocks, after a
    # warning on stderr that names no file.
    capfd.readouterr()
    assert tf.io.decode_jpeg(fakes.damaged_jpegs(jpeg)["extraneous"]).shape == image.shape
    assert "Corrupt JPEG data: 49 extraneous bytes before marker 0xd9" in capfd.readouterr().err
    paths.append(files["truncated.jpg"])
    assert [os.path.basename(p) for _, p, _ in data.check_images(paths).bad] == ["truncated.jpg"]
    check = data.check_images(paths, decode=True, num_threads=2)
    reasons = {os.path.basename(path): reason for _, path, reason in check.bad}
    assert set(reasons) == {"extraneous.jpg", "cut_scan.jpg", "truncated.jpg"}
    assert reasons["extraneous.jpg"] == (
        "damaged JPEG data (Corrupt JPEG data: 49 extraneous bytes before marker 0xd9)")
    assert "premature end of data segment" in reasons["cut_scan.jpg"]
    # Pillow does not see it either (LOAD_TRUNCATED_IMAGES is False by default).
    from PIL import Image

    with Image.open(paths[-3]) as im:
        im.load()


def test_strict_decoder_missing_says_how_to_install(monkeypatch):
    import builtins

    from lcreg_keras.data import image_files
    from lcreg_keras.errors import UserError

    real_import = builtins.__import__

    def no_simplejpeg(name, *args, **kwargs):
        if name == "simplejpeg":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_simplejpeg)
    assert "pip install 'simplejpeg" in image_files.strict_decoder_missing()
    with pytest.raises(UserError, match="pip install 'simplejpeg"):
        data.check_images(["/no/file.jpg"], decode=True)


def test_check_images_progress_and_limit():
    calls = []
    check = data.check_images(
        [f"/no/{i}.jpg" for i in range(5)], progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (5, 5) and check.num_bad == 5
    assert "... and 3 more" in check.describe(limit=2)


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
    it); `_resize` takes the plain bilinear op when nothing shrinks, which
    must then agree with the antialiased op as well.
    """
    from PIL import Image

    rng = np.random.default_rng(sum(shape))
    small = rng.integers(0, 256, (shape[0] // 6 + 1, shape[1] // 6 + 1, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize(shape[::-1], Image.BILINEAR))
    for size in ([224, 224], [128, 300]):
        ours = ip._resize(tf.constant(image, tf.float32), size).numpy()
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


# ---------------------------------------------------------------------------
# The training pipeline


def test_train_batches_shape_dtype_normalisation_and_labels(tree):
    paths, labels = tree["train"]
    ds = data.image_train_dataset(paths, labels, 5, 8, color_jitter=0.0, seed=1, **SMALL)
    assert int(ds.cardinality()) == len(paths) // 8
    batches = list(ds)
    assert len(batches) == len(paths) // 8
    seen = []
    for x, y in batches:
        assert x.dtype == tf.float32 and x.shape == (8, 32, 32, 3)
        assert y.dtype == tf.int32 and y.shape == (8,)
        pixels = _denormalise(x.numpy())
        for image, label in zip(pixels, y.numpy()):
            # Flat images: every crop keeps the class colour, so each image
            # came with its own label.
            _assert_colour(image, label)
        seen += y.numpy().tolist()
    # Each image at most once per epoch (the last partial batch is dropped).
    assert len(seen) == len(paths) // 8 * 8
    assert np.all(np.bincount(seen, minlength=5) <= COUNTS)


def test_train_colour_jitter_and_mixup(tree):
    paths, labels = tree["train"]
    ds = data.image_train_dataset(paths, labels, 5, 8, mixup_alpha=0.2, seed=0, **SMALL)
    x, y = next(iter(ds))
    assert y.shape == (8, 5) and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, atol=1e-5)
    pixels = _denormalise(x.numpy())
    assert pixels.min() >= -0.5 and pixels.max() <= 255.5


def test_train_same_seed_same_batches_epochs_differ(tree):
    paths, labels = tree["train"]

    def epochs(seed, n=2):
        ds = data.image_train_dataset(paths, labels, 5, 8, seed=seed, **SMALL)
        return [[(a.numpy(), b.numpy()) for a, b in ds] for _ in range(n)]

    first, again, other = epochs(3), epochs(3), epochs(4, n=1)
    for ep_a, ep_b in zip(first, again):
        for (xa, ya), (xb, yb) in zip(ep_a, ep_b):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(first[0][0][0], first[1][0][0])  # epoch 2 differs
    assert not np.array_equal(first[0][0][0], other[0][0][0])


def test_train_independent_of_global_seed(tree):
    paths, labels = tree["train"]
    tf.random.set_seed(1)
    a = next(iter(data.image_train_dataset(paths, labels, 5, 4, **SMALL)))[0].numpy()
    tf.random.set_seed(2)
    b = next(iter(data.image_train_dataset(paths, labels, 5, 4, **SMALL)))[0].numpy()
    np.testing.assert_array_equal(a, b)


def test_train_class_aware_sampler(tree):
    paths, labels = tree["train"]
    ds = data.image_train_dataset(paths, labels, 5, 10, sampler="class_aware",
                                  color_jitter=0.0, **SMALL)
    # MiSLAS's epoch: ceil(24 / 10) + 1 = 4 batches, 10 runs of 4, 2 class cycles.
    assert int(ds.cardinality()) == 4 == data.stage_two_epoch(24, 10).steps
    ys = np.concatenate([y.numpy() for _, y in ds])
    np.testing.assert_array_equal(np.bincount(ys, minlength=5), [8] * 5)
    assert (ys.reshape(-1, 4) == ys.reshape(-1, 4)[:, :1]).all()


def test_random_resized_crop_window_matches_torchvision_rules():
    areas, ratios = [], []
    for i in range(300):
        top, left, h, w = ip.random_resized_crop_window(120, 200, tf.constant([i, 7])).numpy()
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
    window = ip.random_resized_crop_window(10, 1000, tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(window, [0, (1000 - 13) // 2, 10, 13])
    window = ip.random_resized_crop_window(1000, 10, tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(window, [(1000 - 13) // 2, 0, 13, 10])


def test_color_jitter_zero_is_identity_and_stays_in_range():
    x = tf.random.stateless_uniform([6, 6, 3], [0, 1], maxval=255.0)
    np.testing.assert_allclose(ip.random_color_jitter(x, 0.0, tf.constant([1, 2])), x, atol=1e-4)
    y = ip.random_color_jitter(x, 0.4, tf.constant([1, 2])).numpy()
    assert y.min() >= 0 and y.max() <= 255 and not np.allclose(y, x.numpy())
    grey = tf.fill([4, 4, 3], 90.0)  # saturation and contrast leave grey alone
    out = ip.random_color_jitter(grey, 0.4, tf.constant([3, 4])).numpy()
    assert np.ptp(out) < 1e-3


# ---------------------------------------------------------------------------
# The evaluation pipeline


def test_eval_resize_centre_crop_exact(tmp_path):
    image = (np.arange(36 * 48 * 3) % 251).astype(np.uint8).reshape(36, 48, 3)
    path = str(tmp_path / "pattern.png")
    fakes.write_image(path, image, fmt="png")
    # Shorter side 36 already: the resize is the identity, then the centre
    # 32 x 32 crop starts at row round(4 / 2) = 2 and column 8.
    ds = data.image_eval_dataset([path], [0], 1, image_size=32, resize_size=36)
    x = next(iter(ds))[0].numpy()[0]
    np.testing.assert_allclose(_denormalise(x), image[2:34, 8:40], atol=1e-3)
    shape = ip.resize_shorter_side(tf.zeros([300, 400, 3]), 256).shape
    assert tuple(shape) == (256, 341, 3)


def test_eval_keeps_order_and_last_batch(tree):
    paths, labels = tree["test"]
    ds = data.image_eval_dataset(paths, labels, 4, image_size=24, resize_size=28)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert [len(y) for _, y in batches] == [4, 4, 2]
    ys = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(ys, labels)
    for x, y in batches:
        for image, label in zip(_denormalise(x), y):
            _assert_colour(image, label)


# ---------------------------------------------------------------------------
# Unreadable files: named, or skipped and counted


def test_bad_file_is_an_error_naming_it(tree, odd_files):
    files, _ = odd_files
    paths, labels = tree["train"]
    bad = paths[:5] + [files["truncated.jpg"]] + paths[5:]
    with pytest.raises(data.UnreadableImagesError, match="truncated.jpg: truncated JPEG"):
        data.image_train_dataset(bad, np.zeros(len(bad), int), 5, 4, **SMALL)
    with pytest.raises(ValueError, match="missing.jpg: missing"):
        data.image_eval_dataset([files["missing.jpg"]], [0], 1)


def test_bad_file_found_while_reading_names_it(tree, odd_files):
    """Without the header scan, the failing read itself names the file."""
    files, _ = odd_files
    paths, _ = tree["train"]
    for bad_name in ("truncated.jpg", "missing.jpg"):
        bad = paths[:6] + [files[bad_name]]
        ds = data.image_train_dataset(bad, np.zeros(7, int), 5, 7, check_files=False, **SMALL)
        with pytest.raises(tf.errors.InvalidArgumentError, match=bad_name):
            list(ds)
        ev = data.image_eval_dataset(bad, np.zeros(7, int), 3, check_files=False, **SMALL)
        with pytest.raises(tf.errors.InvalidArgumentError, match=bad_name):
            list(ev)


def test_skip_bad_images_counts_them(tree, odd_files):
    files, _ = odd_files
    paths, labels = tree["train"]
    bad = [files["truncated.jpg"], files["text.jpg"], files["missing.jpg"]]
    all_paths = paths + bad
    all_labels = np.concatenate([labels, [0, 1, 2]])
    ds, state = data.image_train_dataset(all_paths, all_labels, 5, 8, skip_bad_images=True,
                                         color_jitter=0.0, return_state=True, **SMALL)
    assert data.skipped_images(state) == 3
    assert ip.image_check(state).num_bad == 3
    assert len(list(ds)) == len(paths) // 8
    # Failing while reading (scan off): skipped, counted, epoch length kept.
    ds, state = data.image_train_dataset(all_paths, all_labels, 5, 8, skip_bad_images=True,
                                         check_files=False, color_jitter=0.0, return_state=True,
                                         **SMALL)
    batches = list(ds)
    assert len(batches) == len(all_paths) // 8 and all(int(y.shape[0]) == 8 for _, y in batches)
    assert data.skipped_images(state) == 3
    for x, y in batches:  # still no image with another's label
        for image, label in zip(_denormalise(x.numpy()), y.numpy()):
            _assert_colour(image, label)
    # Evaluation leaves out what the scan finds; the kept labels follow.
    ev, state = data.image_eval_dataset(all_paths, all_labels, 16, skip_bad_images=True,
                                        return_state=True, **SMALL)
    check = ip.image_check(state)
    ys = np.concatenate([y.numpy() for _, y in ev])
    np.testing.assert_array_equal(ys, all_labels[check.ok])


def test_skip_bad_images_while_reading_evaluation_and_training(tree, odd_files):
    """Failed reads are skipped in the test split too; labels follow; each file counted once."""
    files, _ = odd_files
    paths, labels = tree["test"]
    bad_paths = paths[:3] + [files["truncated.jpg"]] + paths[3:] + [files["missing.jpg"]]
    bad_labels = np.concatenate([labels[:3], [4], labels[3:], [0]])
    ev, state = data.image_eval_dataset(bad_paths, bad_labels, 4, skip_bad_images=True,
                                        check_files=False, return_state=True, **SMALL)
    for _ in range(2):  # each pass starts its record afresh
        ys = np.concatenate([y.numpy() for _, y in ev])
        assert ip.read_failures(state).tolist() == [3, len(bad_paths) - 1]
        np.testing.assert_array_equal(ys, labels)
        np.testing.assert_array_equal(ip.evaluated_labels(state, bad_labels), labels)
    train_paths, train_labels = tree["train"]
    all_paths = train_paths + [files["truncated.jpg"]]
    ds, state = data.image_train_dataset(all_paths, np.append(train_labels, 1), 5, 8,
                                         skip_bad_images=True, check_files=False,
                                         return_state=True, **SMALL)
    for _ in range(2):
        list(ds)
    assert ip.read_failures(state).tolist() == [len(train_paths)]  # once, over two epochs
    assert data.skipped_images(state) >= 2  # the event counter counts each failed read


def test_pipeline_bad_arguments(tree):
    paths, labels = tree["train"]
    for kwargs, name in [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=100), "batch_size"),
        (dict(num_classes=3), "labels"),
        (dict(image_size=0), "image_size"),
        (dict(color_jitter=-0.1), "color_jitter"),
        (dict(mixup_alpha=-1.0), "mixup_alpha"),
        (dict(sampler="uniform"), "sampler"),
        (dict(mean=(0.5, 0.5)), "mean"),
        (dict(scale=(0.5, 2.0)), "scale"),
        (dict(paths="one/path.jpg"), "paths"),
    ]:
        args = dict(paths=paths, labels=labels, num_classes=5, batch_size=4, check_files=False)
        args.update(kwargs)
        with pytest.raises(ValueError, match=name):
            data.image_train_dataset(**args)
    with pytest.raises(ValueError, match="resize_size"):
        data.image_eval_dataset(paths, labels, 4, image_size=224, resize_size=200)


@pytest.mark.multibackend
def test_image_pipeline_feeds_fit_on_current_backend(tree):
    import keras

    paths, labels = tree["train"]
    train = data.image_train_dataset(paths, labels, 5, 8, mixup_alpha=0.2, image_size=16)
    test = data.image_eval_dataset(*tree["test"], 4, image_size=16, resize_size=18)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5),
    ])
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(train, epochs=2, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.predict(test, verbose=0).shape == (10, 5)
    # Stage two: class-aware batches with integer labels.
    balanced, state = data.image_train_dataset(paths, labels, 5, 10, sampler="class_aware",
                                               image_size=16, return_state=True)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(balanced, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2
    assert int(state.epoch.numpy()) >= 2


# ---------------------------------------------------------------------------
# CIFAR


@pytest.fixture
def cifar_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(cifar, "SEARCH_PATHS", lambda: [str(tmp_path / "keras-cache")])
    monkeypatch.setattr(cifar, "ALLOW_DOWNLOAD", False)

    def no_download(num_classes):
        raise AssertionError("tests must never download")

    monkeypatch.setattr(cifar, "_download", no_download)
    return tmp_path / "keras-cache"


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("archive", [True, False])
def test_cifar_round_trip(tmp_path, cifar_offline, num_classes, archive):
    folder = str(tmp_path / "cifar")
    (x, y), (xt, yt) = fakes.fake_cifar(folder, num_classes, n_train=30, n_test=12, archive=archive)
    (x2, y2), (xt2, yt2), source = data.load_cifar(num_classes, folder, return_source=True)
    assert x2.dtype == np.uint8 and x2.shape == (30, 32, 32, 3) and xt2.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(xt2, xt)
    np.testing.assert_array_equal(yt2, yt)
    assert source.startswith(folder)
    assert source.endswith(".tar.gz") == archive


def test_cifar_extracted_folder_as_data_dir_and_keras_cache(tmp_path, cifar_offline):
    fakes.fake_cifar(str(tmp_path / "c"), 10, archive=False)
    inner = str(tmp_path / "c" / "cifar-10-batches-py")
    (x, _), _, source = data.load_cifar(10, inner, return_source=True)
    assert source == inner and len(x) == 60
    # Keras 3 extracts its download into cifar-100-python-target/.
    fakes.fake_cifar(str(cifar_offline / "cifar-100-python-target"), 100, archive=False)
    (_, y), _, source = data.load_cifar(100, return_source=True)
    assert "cifar-100-python-target" in source and y.max() <= 99


def test_cifar_missing_everywhere_lists_places(tmp_path, cifar_offline):
    with pytest.raises(FileNotFoundError) as error:
        data.load_cifar(10, str(tmp_path / "nothing"))
    message = str(error.value)
    assert str(tmp_path / "nothing") in message and str(cifar_offline) in message
    assert "cifar-10-python.tar.gz" in message and "allow_download=False" in message
    with pytest.raises(ValueError, match="num_classes"):
        data.load_cifar(20)


def test_cifar_corrupt_archive_and_foreign_pickle(tmp_path, cifar_offline):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08 this is not gzip")
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        data.load_cifar(10, str(folder))
    # A pickle that would run code is refused, naming the file.
    evil = tmp_path / "evil" / "cifar-100-python"
    evil.mkdir(parents=True)
    for name in ("train", "test"):
        with open(evil / name, "wb") as f:
            pickle.dump({b"data": os.system}, f, protocol=2)
    with pytest.raises(ValueError, match=r"cifar-100-python/train.*refusing"):
        data.load_cifar(100, str(tmp_path / "evil"))


# ---------------------------------------------------------------------------
# The recipe loaders build a whole Data bundle


def _check_bundle(bundle, num_classes, input_shape, batch_size):
    assert bundle.num_classes == num_classes
    assert tuple(bundle.input_shape) == tuple(input_shape)
    assert bundle.train_counts.shape == (num_classes,)
    assert bundle.steps_per_epoch == int(bundle.train_counts.sum()) // batch_size > 0
    x, y = next(iter(bundle.train))
    assert tuple(x.shape) == (batch_size,) + tuple(input_shape)
    preprocessing = bundle.preprocessing
    assert set(preprocessing) >= {"input_shape", "mean", "std", "resize"}
    assert preprocessing["input_shape"] == list(input_shape)
    json.dumps(preprocessing)  # written to preprocessing.json
    test_y = np.concatenate([b.numpy() for _, b in bundle.test])
    np.testing.assert_array_equal(test_y, bundle.test_labels)
    assert bundle.stage_two_steps == int(bundle.stage_two_train.cardinality()) > 0
    ys = np.concatenate([b.numpy() for _, b in bundle.stage_two_train])
    assert ys.ndim == 1  # no mixup in stage two
    assert len(ys) == bundle.stage_two_steps * (len(ys) // bundle.stage_two_steps)
    present = np.flatnonzero(bundle.train_counts)
    seen = np.bincount(ys, minlength=num_classes)[present]
    # Balanced: every class visited as often as any other, give or take one
    # visit of 4 samples.
    assert seen.min() > 0 and seen.max() - seen.min() <= data.SAMPLES_PER_CLASS
    assert bundle.name in bundle.describe()


@pytest.mark.parametrize("num_classes", [10, 100])
def test_cifar_lt_loaders(tmp_path, cifar_offline, num_classes):
    per_class = 40 if num_classes == 10 else 12
    folder = str(tmp_path / "cifar")
    fakes.fake_cifar(folder, num_classes, n_train=per_class * num_classes, n_test=30)
    # The cap shrinks n_max (5000 / 500) below the fake's images per class.
    cap = 150 if num_classes == 10 else 450
    config = Config(
        dataset=f"cifar{num_classes}_lt", data_dir=folder, imbalance_factor=10,
        batch_size=16, eval_batch_size=16, mixup_alpha=1.0, max_train_examples=cap,
    )
    bundle = datasets.load(config)
    _check_bundle(bundle, num_classes, (32, 32, 3), 16)
    assert bundle.preprocessing["mean"] == pytest.approx(list(cifar.CIFAR_MEAN))
    assert bundle.preprocessing["std"] == pytest.approx(list(cifar.CIFAR_STD))
    counts = bundle.train_counts
    assert counts.sum() <= cap and np.all(np.diff(counts) <= 0) and counts[-1] >= 1
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.35)
    assert len(bundle.test_labels) == 30


def test_fashion_mnist_lt_has_stage_two(tmp_path, monkeypatch):
    from lcreg_keras.data import fashion_mnist as fm

    monkeypatch.setattr(fm, "SEARCH_PATHS", lambda: [])
    monkeypatch.setattr(fm, "ALLOW_DOWNLOAD", False)
    fakes.fake_fashion_mnist(str(tmp_path / "fm"), n_train=600, n_test=40)
    config = Config(dataset="fashion_mnist_lt", data_dir=str(tmp_path / "fm"),
                    imbalance_factor=10, batch_size=16, eval_batch_size=16,
                    max_train_examples=200)
    _check_bundle(datasets.load(config), 10, (28, 28, 1), 16)


def _list_config(name, root, **changes):
    values = dict(dataset=name, data_dir=root, batch_size=4, eval_batch_size=4,
                  image_size=24, resize_size=28, mixup_alpha=0.2, seed=0)
    values.update(changes)
    return Config(**values)


def test_imagenet_lt_loader(tree):
    bundle = datasets.load(_list_config("imagenet_lt", tree["root"]))
    _check_bundle(bundle, 1000, (24, 24, 3), 4)
    assert bundle.train_counts[:5].tolist() == COUNTS and bundle.train_counts.sum() == 24
    assert bundle.preprocessing == {
        "input_shape": [24, 24, 3], "mean": list(ip.IMAGENET_MEAN),
        "std": list(ip.IMAGENET_STD), "resize": 28,
    }
    _, y = next(iter(bundle.train))
    assert y.shape == (4, 1000)  # mixup: soft labels
    assert "ImageNet_LT_train.txt" in bundle.source and bundle.skipped_images == 0


def test_imagenet_lt_loader_falls_back_to_val_list_and_caps(tmp_path):
    root = str(tmp_path)
    fakes.fake_image_tree(root, [20, 10, 5, 1], "train", "ImageNet_LT_train.txt")
    fakes.fake_image_tree(root, [3, 3, 3, 3], "val", "ImageNet_LT_val.txt")
    config = _list_config("imagenet_lt", root, max_train_examples=12, max_test_examples=8,
                          mixup_alpha=0.0)
    bundle = datasets.load(config)
    assert "ImageNet_LT_val.txt" in bundle.source
    counts = bundle.train_counts[:4]
    assert counts.sum() <= 12 and counts.min() >= 1  # every class keeps one
    assert counts[0] > counts[1] > counts[3]  # proportional
    assert len(bundle.test_labels) <= 8 and set(bundle.test_labels.tolist()) == {0, 1, 2, 3}


def test_cap_per_class():
    labels = np.repeat([0, 1, 2, 3], [100, 30, 5, 1])
    keep = datasets.cap_per_class(labels, 40, seed=0)
    counts = np.bincount(labels[keep], minlength=4)
    assert counts.sum() <= 40 and counts.min() >= 1 and counts[0] >= counts[1] >= counts[2]
    np.testing.assert_array_equal(keep, np.sort(keep))
    np.testing.assert_array_equal(datasets.cap_per_class(labels, 40, seed=0), keep)
    keep = datasets.cap_per_class(labels, 3, seed=1)  # fewer slots than classes
    assert len(keep) == 3 and len(set(labels[keep])) == 3
    assert len(datasets.cap_per_class(labels, None)) == len(labels)


def test_places_lt_loader_with_prefix_and_leading_slash(tmp_path):
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [6, 3, 1], "train", prefix="data_256")
    fakes.write_list(os.path.join(root, "Places_LT_train.txt"), ["/" + r for r in rel], labels)
    rel, labels = fakes.fake_image_tree(root, [2, 2, 2], "val", prefix="data_256")
    fakes.write_list(os.path.join(root, "Places_LT_test.txt"), rel, labels)
    bundle = datasets.load(_list_config("places_lt", root, path_prefix="data_256"))
    _check_bundle(bundle, 365, (24, 24, 3), 4)
    assert bundle.train_counts[:3].tolist() == [6, 3, 1]


def test_inaturalist_loader(tmp_path):
    root = str(tmp_path)
    fakes.fake_inaturalist(root, [8, 4, 2, 2], "train2018.json")
    fakes.fake_inaturalist(root, [1, 1, 1, 1], "val2018.json")
    bundle = datasets.load(_list_config("inaturalist2018", root, mixup_alpha=0.0))
    _check_bundle(bundle, 8142, (24, 24, 3), 4)
    assert bundle.preprocessing["mean"] == list(ip.INATURALIST_MEAN)


def test_inaturalist_loader_reads_mislas_text_lists(tmp_path):
    """MiSLAS's iNaturalist18_train.txt / _val.txt ("path label" lines), found
    by the default lookup when the JSON files are absent."""
    root = str(tmp_path)
    train_rel, train_y = fakes.fake_inaturalist(root, [8, 4, 2, 2], "train2018.json")
    val_rel, val_y = fakes.fake_inaturalist(root, [1, 1, 1, 1], "val2018.json")
    fakes.write_list(os.path.join(root, "iNaturalist18_train.txt"), train_rel, train_y)
    fakes.write_list(os.path.join(root, "iNaturalist18_val.txt"), val_rel, val_y)
    config = _list_config("inaturalist2018", root, mixup_alpha=0.0)
    names = data.image_lists.INATURALIST_2018_LISTS
    # Both present: the official JSON first; the two formats agree.
    json_train = datasets._find_list(config, names, "train")
    assert json_train == os.path.join(root, "train2018.json")
    from_json = data.read_any_list(json_train, root, num_classes=8142)
    from_text = data.read_any_list(os.path.join(root, "iNaturalist18_train.txt"), root,
                                   num_classes=8142)
    assert from_json[0] == from_text[0]
    np.testing.assert_array_equal(from_json[1], from_text[1])
    # Only MiSLAS's lists: the same lookup finds them.
    os.remove(os.path.join(root, "train2018.json"))
    os.remove(os.path.join(root, "val2018.json"))
    bundle = datasets.load(config)
    assert "iNaturalist18_train.txt" in bundle.source and "iNaturalist18_val.txt" in bundle.source
    assert bundle.train_counts[:4].tolist() == [8, 4, 2, 2]
    np.testing.assert_array_equal(bundle.test_labels, val_y)
    _check_bundle(bundle, 8142, (24, 24, 3), 4)
    # Neither: the error names both candidates.
    os.remove(os.path.join(root, "iNaturalist18_train.txt"))
    with pytest.raises(FileNotFoundError, match="train2018.json.*iNaturalist18_train.txt"):
        datasets.load(config)


def test_list_loader_bad_images(tmp_path, odd_files):
    files, _ = odd_files
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [6, 3, 2], "train")
    with open(files["truncated.jpg"], "rb") as f:
        broken = f.read()
    with open(os.path.join(root, "broken.JPEG"), "wb") as f:
        f.write(broken)
    fakes.write_list(os.path.join(root, "ImageNet_LT_train.txt"), rel + ["broken.JPEG"],
                     np.concatenate([labels, [1]]))
    fakes.fake_image_tree(root, [1, 1, 1], "val", "ImageNet_LT_test.txt")
    # The message gives the list file and line of the bad entry.
    with pytest.raises(ValueError, match=r"ImageNet_LT_train\.txt:12: .*broken.JPEG: truncated JPEG"):
        datasets.load(_list_config("imagenet_lt", root))
    bundle = datasets.load(_list_config("imagenet_lt", root, skip_bad_images=True))
    assert bundle.skipped_images == 1
    assert bundle.train_counts[:3].tolist() == [6, 3, 2]
    assert bundle.images["train"] == {"listed": 12, "skipped_at_scan": 1, "scan": "header"}
    assert bundle.images["test"]["skipped_at_scan"] == 0
    assert "1 unreadable image files skipped" in bundle.describe()
    train_list = os.path.join(root, "ImageNet_LT_train.txt")
    assert bundle.where("train", os.path.join(root, rel[0])) == (
        f"{train_list}:1: {os.path.join(root, rel[0])}")
    assert set(bundle.fingerprint) == {"train", "test"}
    assert bundle.fingerprint["train"]["counts"][:3] == [6, 4, 2]  # as listed, before the scan
    # Without the header scan the list loads whole; reading the file names it.
    bundle = datasets.load(_list_config("imagenet_lt", root, check_images=False))
    assert bundle.train_counts[:3].tolist() == [6, 4, 2] and bundle.skipped_images == 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.JPEG"):
        list(bundle.train.take(bundle.steps_per_epoch))


def test_list_loader_decode_scan_and_cache(tmp_path, odd_files):
    files, image = odd_files
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [6, 3, 2], "train")
    damaged = fakes.damaged_jpegs(tf.io.encode_jpeg(image, quality=95).numpy())["extraneous"]
    with open(os.path.join(root, "damaged.JPEG"), "wb") as f:
        f.write(damaged)
    fakes.write_list(os.path.join(root, "ImageNet_LT_train.txt"), rel + ["damaged.JPEG"],
                     np.concatenate([labels, [1]]))
    fakes.fake_image_tree(root, [1, 1, 1], "val", "ImageNet_LT_test.txt")
    # The header scan passes the file; the strict decode does not.
    assert datasets.load(_list_config("imagenet_lt", root)).skipped_images == 0
    with pytest.raises(ValueError, match=r"ImageNet_LT_train\.txt:12: .*damaged.JPEG: damaged "
                                         r"JPEG data \(Corrupt JPEG data: 49 extraneous bytes"):
        datasets.load(_list_config("imagenet_lt", root, check_images="decode"))

    class Cache(datasets.LoadHooks):
        def __init__(self):
            self.kept, self.scans = {}, 0

        def cached_check(self, split, paths, mode):
            return self.kept.get((split, mode))

        def store_check(self, split, paths, mode, check):
            self.scans += 1
            self.kept[(split, mode)] = check

    cache = Cache()
    config = _list_config("imagenet_lt", root, check_images="decode", skip_bad_images=True)
    for _ in range(2):
        bundle = datasets.load(config, hooks=cache)
        assert bundle.skipped_images == 1
    assert cache.scans == 2  # train and test once; the second load used the cache
    assert bundle.images["train"]["scan"] == "decode (cached)"
    with pytest.raises(ValueError, match="--check_images must be true"):
        datasets.load(_list_config("imagenet_lt", root, check_images="yes"))


def test_explicit_data_dir_must_hold_the_data(tmp_path, monkeypatch):
    """No silent fallback to another copy (issue 11: --data_dir=/nonexistent was ignored)."""
    from lcreg_keras.data import fashion_mnist as fm

    elsewhere = tmp_path / "elsewhere"
    fakes.fake_fashion_mnist(str(elsewhere), n_train=600, n_test=40)
    monkeypatch.setattr(fm, "SEARCH_PATHS", lambda: [str(elsewhere)])
    empty = tmp_path / "empty"
    empty.mkdir()
    config = Config(dataset="fashion_mnist_lt", data_dir=str(empty), imbalance_factor=10,
                    batch_size=16, max_train_examples=200)
    with pytest.raises(FileNotFoundError, match=rf"{empty} \(missing train-images-idx3-ubyte.gz"):
        datasets.load(config)
    assert datasets.load(config.replace(data_dir=None)).source == str(elsewhere)


def test_list_loader_missing_list_or_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageNet_LT_train.txt"):
        datasets.load(_list_config("imagenet_lt", str(tmp_path)))
    with pytest.raises(ValueError, match="data_dir"):
        datasets.load(_list_config("places_lt", None))


# ---------------------------------------------------------------------------
# tools/check_dataset.py


def _run_tool(*args):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "check_dataset.py"), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_check_dataset_tool(tmp_path, tree):
    plot = str(tmp_path / "counts.png")
    proc = _run_tool("--dataset=imagenet_lt", f"--data_dir={tree['root']}", f"--plot={plot}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 1000 classes (5 with images) are grouped into 40 rows of 25 ranks.
    assert "1000 classes (5 with images)" in proc.stdout
    assert "ranks 0-24       |     12 .. 0      | " + "#" * 50 in proc.stdout
    assert "995 classes have no training image" in proc.stdout
    assert "count rule (many > 100, few < 20)" in proc.stdout
    assert "all 34 listed files look readable" in proc.stdout
    assert os.path.getsize(plot) > 1000

    root = str(tmp_path / "broken")
    rel, labels = fakes.fake_image_tree(root, [3, 2], "train")
    fakes.write_list(os.path.join(root, "lst.txt"), rel + ["gone.jpg"], np.append(labels, 0))
    proc = _run_tool("--dataset=places_lt", f"--data_dir={root}", "--train_list=lst.txt",
                     "--split=train")
    assert proc.returncode == 1
    assert "gone.jpg: missing" in proc.stdout and "1 of 6 listed files" in proc.stdout


def _check_dataset_module():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import check_dataset
    finally:
        sys.path.pop(0)
    return check_dataset


def test_check_dataset_decode_finds_damaged_jpeg(tmp_path, odd_files, capsys):
    """Issue 11: `--decode` said 'all 86 listed files look readable' for entropy damage."""
    _, image = odd_files
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [3, 2], "train")
    damaged = fakes.damaged_jpegs(tf.io.encode_jpeg(image, quality=95).numpy())["extraneous"]
    with open(os.path.join(root, "damaged.jpg"), "wb") as f:
        f.write(damaged)
    fakes.write_list(os.path.join(root, "lst.txt"), rel + ["damaged.jpg"], np.append(labels, 0))
    args = ["--dataset=places_lt", f"--data_dir={root}", "--train_list=lst.txt", "--split=train"]
    tool = _check_dataset_module()
    assert tool.main(args) == 0
    assert "all 6 listed files look readable (header scan" in capsys.readouterr().out
    assert tool.main(args + ["--decode"]) == 1
    out = capsys.readouterr().out
    assert "1 of 6 listed files cannot be read" in out
    assert (f"lst.txt:6: {os.path.join(root, 'damaged.jpg')}: damaged JPEG data (Corrupt JPEG "
            "data: 49 extraneous bytes before marker 0xd9)") in out


def test_histogram_lines_groups_many_classes():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import check_dataset
    finally:
        sys.path.pop(0)
    lines = check_dataset.histogram_lines(np.arange(1, 101)[::-1], max_rows=10, width=10)
    assert len(lines) == 10
    assert lines[0].startswith("ranks 0-9") and lines[0].endswith("#" * 10)
    assert check_dataset.histogram_lines([4, 1, 2], width=4)[1].startswith("class 2")
