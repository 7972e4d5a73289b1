"""Datasets given as lists of image files: ImageNet-LT, Places-LT, iNaturalist.

Three list formats (spec Sec. 7):

- ImageNet-LT / Places-LT (OLTR's lists, also MiSLAS's iNaturalist lists):
  a text file with one `relative/path label` per line, e.g.
  `train/n01440764/n01440764_190.JPEG 0`. Blank lines are skipped. The label
  is the last whitespace-separated field, so a path may hold spaces.
- iNaturalist 2018 (`train2018.json`, `val2018.json`, COCO style):
  `images[i] = {"id", "file_name", ...}` and
  `annotations[j] = {"image_id", "category_id", ...}`, matched by image id.
  MiSLAS ships the same split as text lists, `iNaturalist18_train.txt` /
  `iNaturalist18_val.txt` (`train_val2018/Plantae/7291/....jpg 7291`: the
  label is the category id), read as the ImageNet-LT ones.

The default names of a split (`INATURALIST_2018_LISTS`, ...) may be several
candidates, tried in order by `resolve_list`: iNaturalist's JSON file first,
then MiSLAS's text list.

A listed path is joined to `image_root` and an optional `path_prefix`
(`image_root/path_prefix/relative/path`). Copies of the data are laid out
differently (the folder of the 256-pixel Places images, whether ImageNet's
`train/` is part of the listed path, ...), so both are configurable; a
leading `/` of a listed path is dropped before joining (otherwise
`os.path.join` would throw the root away).

Every parsing error names the file and, for text lists, the line number.
Nothing here reads the images; `lcreg_keras.data.image_files.check_images`
checks them.
"""

import json
import os
import re

import numpy as np

from lcreg_keras.errors import UserError

_LABEL = re.compile(r"[0-9]+")  # ASCII digits only: int() would take "1_0" and "٣"


class ListFileError(UserError):
    """A list or annotation file that cannot be read; the message names file and line."""


def _not_utf8(path, line_number, error):
    where = f"{path}:{line_number}" if line_number else path
    return ListFileError(
        f"{where}: not UTF-8 text ({error.reason} at byte {error.start} of the line: "
        f"{error.object[max(0, error.start - 10):error.start + 10]!r}). List files must be "
        f"UTF-8; convert it, e.g. iconv -f latin1 -t utf-8 {path} > fixed.txt."
    )

# Default list names, looked up in the data folder (see `resolve_list`).
IMAGENET_LT_LISTS = {
    "train": "ImageNet_LT_train.txt",
    "val": "ImageNet_LT_val.txt",
    "test": "ImageNet_LT_test.txt",
}
PLACES_LT_LISTS = {
    "train": "Places_LT_train.txt",
    "val": "Places_LT_val.txt",
    "test": "Places_LT_test.txt",
}
# Candidates in order: the official JSON, then MiSLAS's text list.
INATURALIST_2018_LISTS = {
    "train": ("train2018.json", "iNaturalist18_train.txt"),
    "val": ("val2018.json", "iNaturalist18_val.txt"),
}


def _join(image_root, path_prefix, relative):
    relative = relative.lstrip("/\\")
    parts = [p for p in (image_root, path_prefix) if p]
    parts.append(relative)
    return os.path.join(*parts)


def _check_num_classes(num_classes):
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(
            f"`num_classes` must be an int >= 1 or None. Received: {num_classes!r}"
        )
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1. Received: {num_classes!r}")
    return int(num_classes)


def read_image_list(list_path, image_root, path_prefix="", num_classes=None, return_lines=False):
    """Reads an ImageNet-LT / Places-LT style list file.

    Args:
        list_path: path of the text file, one `relative/path label` per line.
        image_root: folder the listed paths are relative to; `None` or `""`
            keeps the listed paths as they are (after `path_prefix`).
        path_prefix: optional folder inserted between `image_root` and each
            listed path.
        num_classes: optional number of classes `C`; labels must then lie in
            `[0, C)`.
        return_lines: also return each entry's line number.

    The file must be UTF-8 (a byte-order mark is dropped); a label is
    ASCII digits only (`[0-9]+`: no sign, underscore or other script's
    digits, which Python's `int` would accept).

    Returns:
        `(paths, labels)`: a list of full paths (str) and an int64 NumPy
        array of labels, in the order of the file; with `return_lines`, a
        third int64 array of 1-based line numbers.

    Raises:
        FileNotFoundError: if `list_path` does not exist.
        ListFileError (a ValueError): naming the file and line for text that
            is not UTF-8, a line without a label, a label that is not
            `[0-9]+`, or a label outside `[0, C)`; and for a file without
            any entry.

    Example:
        >>> paths, labels = read_image_list(
        ...     "ImageNet_LT_train.txt", "/data/imagenet", num_classes=1000
        ... )  # doctest: +SKIP
        >>> paths[0], labels[0]  # doctest: +SKIP
        ('/data/imagenet/train/n01440764/n01440764_10026.JPEG', 0)
    """
    list_path = os.fspath(list_path)
    num_classes = _check_num_classes(num_classes)
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"The image list {list_path} does not exist.")
    paths, labels, lines = [], [], []
    with open(list_path, "rb") as f:
        raw = f.read()
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows editors)
        raw = raw[3:]
    for line_number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _not_utf8(list_path, line_number, error) from None
        text = line.strip()
        if not text:
            continue
        fields = text.rsplit(None, 1)
        where = f"{list_path}:{line_number}"
        if len(fields) < 2:
            raise ListFileError(
                f"{where}: expected 'relative/path label', found no label "
                f"in {text!r}."
            )
        relative, label_text = fields
        if not _LABEL.fullmatch(label_text):
            raise ListFileError(
                f"{where}: the label {label_text!r} is not a non-negative integer "
                f"written with the digits 0-9 (line {text!r})."
            )
        label = int(label_text)
        if num_classes is not None and label >= num_classes:
            raise ListFileError(
                f"{where}: the label {label} is outside [0, {num_classes}) "
                f"(line {text!r})."
            )
        paths.append(_join(image_root, path_prefix, relative))
        labels.append(label)
        lines.append(line_number)
    if not paths:
        raise ListFileError(f"The image list {list_path} has no entries.")
    if return_lines:
        return paths, np.asarray(labels, np.int64), np.asarray(lines, np.int64)
    return paths, np.asarray(labels, np.int64)


def _category(value):
    """A category id: a JSON integer, or a string of ASCII digits."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _LABEL.fullmatch(value):
        return int(value)
    raise ValueError(value)


def read_inaturalist_json(json_path, image_root, path_prefix="", num_classes=None,
                          return_lines=False):
    """Reads an iNaturalist 2018 annotation file (`train2018.json`, ...).

    Args:
        json_path: path of the COCO-style JSON file.
        image_root: folder the `file_name`s are relative to (the one holding
            `train_val2018/`); `None` or `""` keeps them as they are.
        path_prefix: optional folder inserted between `image_root` and each
            file name.
        num_classes: optional number of classes; category ids must then lie
            in `[0, num_classes)` (8,142 for iNaturalist 2018).
        return_lines: also return each image's index in `images`.

    Category ids must be JSON integers (or strings of ASCII digits).

    Returns:
        `(paths, labels)`: a list of full paths, in the order of `images`,
        and their `category_id`s as an int64 NumPy array.

    Raises:
        FileNotFoundError: if `json_path` does not exist.
        ValueError: naming the file for invalid JSON, missing `images` /
            `annotations`, an image without an annotation (or with two that
            disagree), or a category id outside `[0, num_classes)`.

    Example:
        >>> paths, labels = read_inaturalist_json(
        ...     "train2018.json", "/data/inat2018")  # doctest: +SKIP
        >>> len(paths), int(labels.max()) + 1  # doctest: +SKIP
        (437513, 8142)
    """
    json_path = os.fspath(json_path)
    num_classes = _check_num_classes(num_classes)
    if not os.path.isfile(json_path):
        raise FileNotFoundError(f"The annotation file {json_path} does not exist.")
    try:
        with open(json_path, encoding="utf-8-sig") as f:
            content = json.load(f)
    except UnicodeDecodeError as error:
        raise _not_utf8(json_path, None, error) from None
    except json.JSONDecodeError as error:
        raise ListFileError(
            f"{json_path}:{error.lineno}: not valid JSON ({error.msg}, column {error.colno})."
        ) from error
    if not isinstance(content, dict) or "images" not in content:
        raise ListFileError(
            f"{json_path} has no 'images' list: not an iNaturalist / COCO-style "
            "annotation file."
        )
    annotations = content.get("annotations")
    if not annotations:
        raise ListFileError(
            f"{json_path} has no 'annotations' (iNaturalist's test2018.json is "
            "unlabelled; use val2018.json for evaluation)."
        )
    category_of = {}
    for number, annotation in enumerate(annotations):
        try:
            image_id, category = annotation["image_id"], _category(annotation["category_id"])
        except (KeyError, TypeError, ValueError):
            raise ListFileError(
                f"{json_path}: annotations[{number}] lacks an integer "
                f"'image_id' / 'category_id': {annotation!r}"
            ) from None
        previous = category_of.setdefault(image_id, category)
        if previous != category:
            raise ListFileError(
                f"{json_path}: image id {image_id!r} has two annotations with "
                f"different categories ({previous} and {category})."
            )
    paths, labels = [], []
    for number, image in enumerate(content["images"]):
        try:
            image_id, file_name = image["id"], image["file_name"]
        except (KeyError, TypeError):
            raise ListFileError(
                f"{json_path}: images[{number}] lacks 'id' / 'file_name': {image!r}"
            ) from None
        if image_id not in category_of:
            raise ListFileError(
                f"{json_path}: image id {image_id!r} ({file_name}) has no "
                "annotation, so it has no label."
            )
        label = category_of[image_id]
        if label < 0 or (num_classes is not None and label >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise ListFileError(
                f"{json_path}: image id {image_id!r} ({file_name}) has the "
                f"category_id {label}, outside {bound}."
            )
        paths.append(_join(image_root, path_prefix, file_name))
        labels.append(label)
    if not paths:
        raise ListFileError(f"{json_path} lists no images.")
    if return_lines:  # the position in `images`, as a list file's line
        return paths, np.asarray(labels, np.int64), np.arange(len(paths), dtype=np.int64)
    return paths, np.asarray(labels, np.int64)


def read_any_list(list_path, image_root, path_prefix="", num_classes=None, return_lines=False):
    """`read_inaturalist_json` for a `.json` file, else `read_image_list`.

    Args:
        list_path: a `.json` annotation file or a text list.
        image_root, path_prefix, num_classes, return_lines: as in
            `read_image_list` (for a JSON file the "line" is the index in
            `images`).

    Returns:
        `(paths, labels)` (and the lines) as the two readers return them.

    Example:
        >>> read_any_list("val2018.json", "/data/inat")  # doctest: +SKIP
    """
    if os.fspath(list_path).lower().endswith(".json"):
        return read_inaturalist_json(
            list_path, image_root, path_prefix, num_classes, return_lines=return_lines
        )
    return read_image_list(
        list_path, image_root, path_prefix, num_classes, return_lines=return_lines
    )


def resolve_list(name_or_path, data_dir):
    """Finds a list file given as a path or as a name inside `data_dir`.

    Args:
        name_or_path: an existing file path, or a file name (or a path
            relative to `data_dir`) such as `"ImageNet_LT_train.txt"`; or a
            tuple of such candidates, tried in order (the first that exists
            wins), e.g. `("train2018.json", "iNaturalist18_train.txt")`.
        data_dir: folder to look in when `name_or_path` is not an existing
            file; may be None.

    Returns:
        The path of the existing file.

    Raises:
        FileNotFoundError: naming every place looked at.

    Example:
        >>> resolve_list("ImageNet_LT_train.txt", "/data/imagenet")  # doctest: +SKIP
        '/data/imagenet/ImageNet_LT_train.txt'
        >>> resolve_list(INATURALIST_2018_LISTS["train"], "/data/inat")  # doctest: +SKIP
        '/data/inat/iNaturalist18_train.txt'
    """
    if isinstance(name_or_path, (tuple, list)):
        if not name_or_path:
            raise ValueError("A list file name is needed. Received no candidates.")
        errors = []
        for candidate in name_or_path:
            try:
                return resolve_list(candidate, data_dir)
            except FileNotFoundError as error:
                errors.append(str(error))
        raise FileNotFoundError(
            "None of the list files " + " / ".join(repr(os.path.basename(os.fspath(c)))
                                                  for c in name_or_path)
            + " was found:\n" + "\n".join(errors)
        )
    if not name_or_path:
        raise ValueError(f"A list file name is needed. Received: {name_or_path!r}")
    name_or_path = os.path.expanduser(os.fspath(name_or_path))
    looked = [name_or_path]
    if os.path.isfile(name_or_path):
        return name_or_path
    if data_dir:
        candidate = os.path.join(os.path.expanduser(os.fspath(data_dir)), name_or_path)
        looked.append(candidate)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"The list file {os.path.basename(name_or_path)!r} was not found. Looked at: "
        + ", ".join(looked)
        + ("" if data_dir else " (no data_dir given)")
        + ". Pass --data_dir=<folder holding it> or give the list as a path."
    )
