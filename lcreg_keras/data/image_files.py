"""Image files before decoding: a fast header scan that finds unreadable files.

ImageNet, Places and iNaturalist copies hold missing, empty, truncated and
mislabelled-format files (PNG data named `.jpg`, CMYK JPEGs). `check_images`
opens every listed file's header on a thread pool (no TensorFlow, no Pillow)
and reports what cannot be decoded, so a long run fails in seconds with the
file named, or skips and counts the bad files (`skip_bad_images`).
Damage inside JPEG entropy-coded data passes this scan; only a full decode
finds it (`tools/check_dataset.py --decode`).
"""

import concurrent.futures
import dataclasses
import os
from typing import List, Tuple

import numpy as np

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GIF_MAGICS = (b"GIF87a", b"GIF89a")
_BMP_MAGIC = b"BM"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_TAIL_BYTES = 4096

_READ_ERROR = "Could not read or decode the image file"


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

    def describe(self, limit=20):
        """A message listing the first `limit` bad files and the count."""
        if not self.bad:
            return f"All {self.num_files:,} image files look readable."
        lines = [
            f"{self.num_bad:,} of {self.num_files:,} image files cannot be read:"
        ]
        lines += [f"  {path}: {reason}" for _, path, reason in self.bad[:limit]]
        if self.num_bad > limit:
            lines.append(f"  ... and {self.num_bad - limit:,} more")
        return "\n".join(lines)


class UnreadableImagesError(ValueError):
    """Raised for image files that cannot be decoded; `check` lists them."""

    def __init__(self, message, check):
        super().__init__(message)
        self.check = check


def check_images(paths, num_threads=None, progress=None):
    """Checks that every file exists and has a decodable image header.

    Reads each file's first bytes, its JPEG segment headers and its last
    few KiB (`image_file_problem`), from a thread pool (the work is I/O).

    Args:
        paths: sequence of file paths.
        num_threads: threads reading files; defaults to
            `min(32, 4 * cpu_count)`.
        progress: optional callable `progress(done, total)`, called every
            few thousand files and at the end.

    Returns:
        An `ImageCheck`: `bad` lists `(index, path, reason)`, `ok` is a mask.

    Example:
        >>> check = check_images(["/no/such/a.jpg"])
        >>> check.num_bad, check.bad[0][2]
        (1, 'missing')
    """
    paths = [os.fspath(p) for p in paths]
    total = len(paths)
    if num_threads is None:
        num_threads = min(32, 4 * (os.cpu_count() or 1))
    num_threads = max(1, int(num_threads))
    bad = []
    chunk = 2048
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        for start in range(0, total, chunk):
            block = paths[start : start + chunk]
            for offset, reason in enumerate(pool.map(image_file_problem, block)):
                if reason is not None:
                    bad.append((start + offset, block[offset], reason))
            if progress is not None:
                progress(min(start + chunk, total), total)
    if progress is not None and total == 0:
        progress(0, 0)
    return ImageCheck(num_files=total, bad=bad)


# ----------------------------------------------------------------------------
# Decoding and augmentation, per image (inside `Dataset.map`).
