"""Image files before decoding: a fast header scan that finds unreadable files.

ImageNet, Places and iNaturalist copies hold missing, empty, truncated and
mislabelled-format files (PNG data named `.jpg`, CMYK JPEGs). `check_images`
opens every listed file's header on a thread pool (no TensorFlow, no Pillow)
and reports what cannot be decoded, so a long run fails in seconds with the
file named, or skips and counts the bad files (`skip_bad_images`).
Damage inside JPEG entropy-coded data passes this scan; only a full decode
finds it: `check_images(paths, decode=True)` (`--check_images=decode`,
`tools/check_dataset.py --decode`) decodes every JPEG with libjpeg-turbo
through `simplejpeg` in strict mode, where libjpeg's corrupt-data warnings
("Corrupt JPEG data: 50 extraneous bytes before marker 0xd9", "premature end
of data segment", ...) are errors; TensorFlow's and Pillow's decoders only
print or ignore them and return an image with grey blocks. Other formats
are decoded with TensorFlow.
"""

import concurrent.futures
import dataclasses
import hashlib
import os
from typing import List, Tuple

import numpy as np

from lcreg_keras.errors import UserError

JPEG_MAGIC = _JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GIF_MAGICS = (b"GIF87a", b"GIF89a")
_BMP_MAGIC = b"BM"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_TAIL_BYTES = 4096

READ_ERROR = _READ_ERROR = "Could not read or decode the image file"


# ----------------------------------------------------------------------------
# The header scan.


def _find_marker(f, marker, start, size, chunk=1 << 20):
    """Whether `marker` occurs in the file between `start` and the end."""
    position = max(start, 0)
    carry = b""
    while position < size:
        f.seek(position)
        block = f.read(min(chunk, size - position))
        if not block:
            return False
        if marker in carry + block:
            return True
        carry = block[-(len(marker) - 1):]
        position += len(block)
    return False


def _check_jpeg(f, size):
    position = 2
    found_frame = False
    for _ in range(10_000):
        f.seek(position)
        head = f.read(4)
        if len(head) < 2 or head[0] != 0xFF:
            return "corrupt or truncated JPEG header"
        marker = head[1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        if marker == 0xD9:
            return "JPEG ends before its image data"
        if len(head) < 4:
            return "truncated JPEG header"
        length = int.from_bytes(head[2:4], "big")
        if length < 2:
            return "corrupt JPEG header (bad segment length)"
        if marker in _SOF_MARKERS:
            frame = f.read(6)
            if len(frame) < 6:
                return "truncated JPEG frame header"
            width = int.from_bytes(frame[3:5], "big")
            components = frame[5]
            if width == 0 or components not in (1, 3, 4):
                return (
                    f"corrupt JPEG frame header (width {width}, "
                    f"{components} colour components)"
                )
            found_frame = True
        if marker == 0xDA:  # start of scan: the header is complete
            if not found_frame:
                return "corrupt JPEG (image data before any frame header)"
            scan_start = position
            break
        position += 2 + length
        if position > size:
            return "truncated JPEG header"
    else:
        return "corrupt JPEG header (too many segments)"
    # libjpeg (and so TensorFlow) fails on a file without its end-of-image
    # marker. The marker cannot occur inside the compressed data (0xFF is
    # escaped there), so finding it after the scan start is enough; data
    # after it (some cameras add some) is ignored by the decoder.
    tail_start = max(scan_start, size - _TAIL_BYTES)
    if _find_marker(f, b"\xff\xd9", tail_start, size):
        return None
    if tail_start > scan_start and _find_marker(f, b"\xff\xd9", scan_start, size):
        return None
    return "truncated JPEG (no end-of-image marker)"


def _check_png(f, size):
    f.seek(8)
    ihdr = f.read(25)
    if len(ihdr) < 25 or ihdr[4:8] != b"IHDR":
        return "corrupt or truncated PNG header"
    width = int.from_bytes(ihdr[8:12], "big")
    height = int.from_bytes(ihdr[12:16], "big")
    if width == 0 or height == 0:
        return f"corrupt PNG header (size {width}x{height})"
    if _find_marker(f, b"IEND", max(33, size - _TAIL_BYTES), size):
        return None
    return "truncated PNG (no IEND chunk)"


def image_file_problem(path):
    """Why an image file cannot be decoded, from its header and tail; or None.

    Recognises JPEG, PNG, GIF and BMP by their magic bytes (not by the file
    name). Checks JPEGs for a frame header and the end-of-image marker and
    PNGs for the IHDR and IEND chunks; damage inside the compressed data is
    not seen (a full decode would be needed).

    Args:
        path: the file's path.

    Returns:
        `None` for a file that looks decodable, else a short reason such as
        `"missing"`, `"empty file"` or
        `"truncated JPEG (no end-of-image marker)"`.

    Example:
        >>> image_file_problem("/no/such/file.jpg")
        'missing'
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "a folder, not a file"
    except OSError as error:
        return f"cannot be opened ({error.strerror or error})"
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return "empty file"
            head = f.read(16)
            if head.startswith(_JPEG_MAGIC):
                return _check_jpeg(f, size)
            if head.startswith(_PNG_MAGIC):
                return _check_png(f, size)
            if head[:6] in _GIF_MAGICS or head.startswith(_BMP_MAGIC):
                return None
        except OSError as error:
            return f"read error ({error.strerror or error})"
    shown = head[:8].hex(" ")
    return f"not a JPEG, PNG, GIF or BMP image (starts with {shown})"


@dataclasses.dataclass
class ImageCheck:
    """The result of `check_images`.

    Attributes:
        num_files: number of files checked.
        bad: `(index, path, reason)` of each file that cannot be decoded, in
            index order.
    """

    num_files: int
    bad: List[Tuple[int, str, str]] = dataclasses.field(default_factory=list)

    @property
    def num_bad(self):
        return len(self.bad)

    @property
    def ok(self):
        """Boolean mask of the decodable files."""
        mask = np.ones(self.num_files, bool)
        mask[[index for index, _, _ in self.bad]] = False
        return mask

    def describe(self, limit=20, split=None, locate=None):
        """A message listing the first `limit` bad files and the count.

        Args:
            limit: how many bad files to name.
            split: optional split name (`"train"`), said in the count line.
            locate: optional `index -> str` placing a file (e.g. its list
                file and line); each named file is then `"where: path"`.
        """
        if not self.bad:
            return f"All {self.num_files:,} image files look readable."
        what = f"{split} image files" if split else "image files"
        lines = [
            f"{self.num_bad:,} of {self.num_files:,} {what} cannot be read:"
        ]
        lines += [f"  {locate(index) + ': ' if locate else ''}{path}: {reason}"
                  for index, path, reason in self.bad[:limit]]
        if self.num_bad > limit:
            lines.append(f"  ... and {self.num_bad - limit:,} more")
        return "\n".join(lines)


class UnreadableImagesError(UserError):
    """Raised for image files that cannot be decoded; `check` lists them."""

    def __init__(self, message, check):
        super().__init__(message)
        self.check = check


def keep_readable(check, paths, *columns, skip_bad_images=False, split=None, locate=None,
                  fix="Fix or remove them, or pass skip_bad_images=True (--skip_bad_images) "
                      "to leave them out."):
    """What is left of a file list after a scan: the readable files, or an error.

    The one place where a scan's bad files are refused or dropped (the
    pipelines' own scan and the recipes' scan both come here).

    Args:
        check: the `ImageCheck` of `paths`.
        paths: the scanned file paths.
        *columns: arrays with one entry per path (labels, list lines), kept
            alongside.
        skip_bad_images: drop the bad files instead of raising.
        split: optional split name for the messages.
        locate: optional `index -> str` for the messages (`ImageCheck.describe`).
        fix: the sentence telling the user what to do, after the listing.

    Returns:
        `(paths, *columns)` of the readable files (unchanged without bad ones).

    Raises:
        UnreadableImagesError: bad files without `skip_bad_images`, or no
            readable file left.

    Example:
        >>> keep_readable(ImageCheck(2, [(1, "b.jpg", "empty file")]),
        ...               ["a.jpg", "b.jpg"], np.array([3, 4]), skip_bad_images=True)
        (['a.jpg'], array([3]))
    """
    if not check.num_bad:
        return (list(paths), *columns)
    listing = check.describe(split=split, locate=locate)
    if not skip_bad_images:
        where = f"The {split} list names" if split else "There are"
        raise UnreadableImagesError(f"{where} unreadable image files.\n{listing}\n{fix}", check)
    keep = check.ok
    paths = [p for p, k in zip(paths, keep) if k]
    columns = tuple(np.asarray(c)[keep] for c in columns)
    if not paths:
        what = f"{split} image" if split else "image"
        raise UnreadableImagesError(
            f"No readable {what} is left (all {check.num_files:,} are bad).\n{listing}", check)
    return (paths, *columns)


STRICT_DECODER_HINT = (
    "--check_images=decode (and tools/check_dataset.py --decode) decodes with "
    "libjpeg-turbo through the simplejpeg package, which is not installed: "
    "pip install 'simplejpeg>=1.7' (a dependency of lcreg-keras; a --no-deps "
    "install leaves it out)."
)


def strict_decoder_missing():
    """None when the strict decoder (simplejpeg) imports, else how to install it."""
    try:
        import simplejpeg  # noqa: F401
    except ImportError:
        return STRICT_DECODER_HINT
    return None


def _decode_other(data):
    import tensorflow as tf

    tf.io.decode_image(data, channels=3, expand_animations=False)


def decode_problem(path):
    """Why `path` does not decode cleanly, from a full strict decode; or None.

    First `image_file_problem` (the header scan); then JPEGs are decoded by
    libjpeg-turbo (`simplejpeg.decode_jpeg(..., strict=True)`), which
    treats libjpeg's corrupt-data warnings as errors, and other formats by
    `tf.io.decode_image`.

    Args:
        path: the file's path.

    Returns:
        `None`, or a reason such as
        `"damaged JPEG data (Corrupt JPEG data: 49 extraneous bytes before marker 0xd9)"`.

    Raises:
        UserError: when `simplejpeg` is not installed (says how to install it).

    Example:
        >>> decode_problem("/no/such/file.jpg")
        'missing'
    """
    problem = image_file_problem(path)
    if problem is not None:
        return problem
    try:
        import simplejpeg
    except ImportError:
        raise UserError(STRICT_DECODER_HINT) from None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return f"read error ({error.strerror or error})"
    if data.startswith(_JPEG_MAGIC):
        try:
            simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
        except ValueError as error:
            return f"damaged JPEG data ({str(error).strip()})"
        return None
    try:
        _decode_other(data)
    except Exception as error:  # tf.errors.InvalidArgumentError and kin
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"cannot be decoded ({message[:120]})"
    return None


def files_digest(paths, num_threads=None):
    """SHA-256 of every file's path, size and modification time (a cache key).

    Files that cannot be `stat`ed count with size and time -1. Two digests
    agree when no listed file was added, removed, replaced or touched.
    """
    paths = [os.fspath(p) for p in paths]
    if num_threads is None:
        num_threads = min(32, 4 * (os.cpu_count() or 1))

    def stat(path):
        try:
            info = os.stat(path)
            return f"{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            return "-1:-1"

    digest = hashlib.sha256()
    with concurrent.futures.ThreadPoolExecutor(max(1, int(num_threads))) as pool:
        for path, stamp in zip(paths, pool.map(stat, paths, chunksize=256)):
            digest.update(f"{path}\0{stamp}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def check_images(paths, num_threads=None, progress=None, decode=False):
    """Checks that every file exists and has a decodable image header.

    Reads each file's first bytes, its JPEG segment headers and its last
    few KiB (`image_file_problem`), from a thread pool (the work is I/O).
    With `decode=True` every file is also fully decoded, strictly
    (`decode_problem`): that finds damage inside the compressed data too,
    at the cost of a decode (a few ms a file, on the same threads).

    Args:
        paths: sequence of file paths.
        num_threads: threads reading files; defaults to
            `min(32, 4 * cpu_count)`.
        progress: optional callable `progress(done, total)`, called every
            few thousand files and at the end.
        decode: also decode every file strictly (needs `simplejpeg`).

    Returns:
        An `ImageCheck`: `bad` lists `(index, path, reason)`, `ok` is a mask.

    Example:
        >>> check = check_images(["/no/such/a.jpg"])
        >>> check.num_bad, check.bad[0][2]
        (1, 'missing')
    """
    paths = [os.fspath(p) for p in paths]
    total = len(paths)
    if decode and strict_decoder_missing():
        raise UserError(STRICT_DECODER_HINT)
    problem_of = decode_problem if decode else image_file_problem
    if num_threads is None:
        num_threads = min(32, 4 * (os.cpu_count() or 1))
    num_threads = max(1, int(num_threads))
    bad = []
    chunk = 2048
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        for start in range(0, total, chunk):
            block = paths[start : start + chunk]
            for offset, reason in enumerate(pool.map(problem_of, block)):
                if reason is not None:
                    bad.append((start + offset, block[offset], reason))
            if progress is not None:
                progress(min(start + chunk, total), total)
    if progress is not None and total == 0:
        progress(0, 0)
    return ImageCheck(num_files=total, bad=bad)


# ----------------------------------------------------------------------------
# Decoding and augmentation, per image (inside `Dataset.map`).
