"""lcreg_keras.data.image_lists: list files (MiSLAS text lists, iNaturalist JSON)."""

import json
import os

import numpy as np
import pytest

from lcreg_keras import data
from tests import fakes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
