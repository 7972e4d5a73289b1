"""lcreg_keras.data.image_files: the header scan, the strict decode, keep_readable."""

import os

import numpy as np
import pytest
import tensorflow as tf

from lcreg_keras import data
from tests import fakes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_keep_readable_drops_or_refuses_and_keeps_columns_aligned():
    from lcreg_keras.data.image_files import ImageCheck
    from lcreg_keras.data.image_files import UnreadableImagesError
    from lcreg_keras.data.image_files import keep_readable

    paths = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    labels, lines = np.array([0, 1, 2, 3]), np.array([10, 11, 12, 13])
    check = ImageCheck(4, [(1, "b.jpg", "empty file"), (3, "d.jpg", "missing")])
    kept = keep_readable(check, paths, labels, lines, skip_bad_images=True)
    assert kept[0] == ["a.jpg", "c.jpg"]
    np.testing.assert_array_equal(kept[1], [0, 2])
    np.testing.assert_array_equal(kept[2], [10, 12])
    with pytest.raises(UnreadableImagesError, match=r"2 of 4 train image files") as error:
        keep_readable(check, paths, labels, split="train", locate=lambda i: f"list.txt:{i + 1}")
    assert "list.txt:2: b.jpg: empty file" in str(error.value) and error.value.check is check
    none_left = ImageCheck(1, [(0, "a.jpg", "missing")])
    with pytest.raises(UnreadableImagesError, match="No readable image is left"):
        keep_readable(none_left, ["a.jpg"], skip_bad_images=True)
    clean = ImageCheck(2)
    assert keep_readable(clean, ("x", "y"), labels[:2])[0] == ["x", "y"]
