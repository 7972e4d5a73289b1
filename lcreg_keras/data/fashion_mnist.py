"""Fashion-MNIST from the four original idx `.gz` files, offline first.

The loader reads the files with `gzip` and NumPy (it parses and checks the idx
headers) and looks for them, in order, in:

1. the `data_dir` argument;
2. the Keras cache, `$KERAS_HOME/datasets/fashion-mnist` or
   `~/.keras/datasets/fashion-mnist` (where `keras.datasets.fashion_mnist`
   puts its download; `/tmp/.keras/...` when the home is not writable);
3. Debian's `/usr/share/datasets/fashion-mnist`
   (`apt-get install dataset-fashion-mnist`);
4. `keras.datasets.fashion_mnist.load_data()`, which downloads.

A folder counts when it holds all four files (`.gz`, or already unzipped
without the suffix). When every place fails, `FileNotFoundError` lists them all
and says what to install.

Tests replace `SEARCH_PATHS` (a function returning the folders of steps 2-3)
and pass `allow_download=False` (or set `ALLOW_DOWNLOAD`), so they never touch
the network.
"""

import gzip
import os
import struct
import zlib

import numpy as np

from lcreg_keras.data.keras_cache import keras_cache_dirs as keras_dataset_dirs
from lcreg_keras.data.labels import check_labels

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DOWNLOAD_SOURCE = "keras.datasets.fashion_mnist.load_data() (download)"
NUM_CLASSES = 10
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Whether step 4 (download through Keras) may run; tests set it to False.
ALLOW_DOWNLOAD = True

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def keras_cache_dirs():
    """Folders where `keras.datasets.fashion_mnist` caches its download.

    Returns:
        A list of paths, most likely first, without duplicates:
        `$KERAS_HOME/datasets/fashion-mnist` when `KERAS_HOME` is set,
        `~/.keras/datasets/fashion-mnist` and the `/tmp/.keras` fallback that
        Keras uses when the home folder is not writable.

    Example:
        >>> keras_cache_dirs()[0].endswith("fashion-mnist")
        True
    """
    return [os.path.join(folder, "fashion-mnist") for folder in keras_dataset_dirs()]


def default_search_paths():
    """The folders searched after `data_dir`: Keras cache, then Debian's.

    Returns:
        A list of folder paths.

    Example:
        >>> default_search_paths()[-1]
        '/usr/share/datasets/fashion-mnist'
    """
    return keras_cache_dirs() + [DEBIAN_DIR]


# Replaceable in tests: a callable returning the folders searched after
# `data_dir`.
SEARCH_PATHS = default_search_paths


def _download():
    import keras

    return keras.datasets.fashion_mnist.load_data()


def _corrupt(path, why):
    return ValueError(f"Corrupt or truncated Fashion-MNIST file {path}: {why}")


def _read_bytes(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (EOFError, OSError, zlib.error) as error:
        raise _corrupt(path, f"cannot decompress it ({error}).") from error


def read_idx(path, expected_magic=None):
    """Reads one idx file (`.gz` or plain) into a uint8 NumPy array.

    The idx format: two zero bytes, a type byte (0x08 = unsigned byte), the
    number of dimensions `d`, then `d` big-endian uint32 sizes and the data.

    Args:
        path: path of the file.
        expected_magic: optional int the 4-byte magic number must equal
            (0x803 for image files, 0x801 for label files).

    Returns:
        A uint8 array with the shape given in the header.

    Raises:
        ValueError: naming `path` when the file cannot be decompressed, the
            magic number or type is wrong, or the data length does not match
            the header (truncated or padded file).

    Example:
        >>> labels = read_idx("/usr/share/datasets/fashion-mnist/"
        ...                   "t10k-labels-idx1-ubyte.gz", 0x801)  # doctest: +SKIP
        >>> labels.shape  # doctest: +SKIP
        (10000,)
    """
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise _corrupt(path, f"only {len(raw)} bytes, shorter than the idx header.")
    (magic,) = struct.unpack(">I", raw[:4])
    if expected_magic is not None and magic != expected_magic:
        raise _corrupt(
            path,
            f"magic number 0x{magic:08x}, expected 0x{expected_magic:08x}.",
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise _corrupt(
            path, f"magic number 0x{magic:08x} is not an unsigned-byte idx header."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise _corrupt(path, f"header of {ndim} dimensions does not fit the file.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(raw) - header
    if actual != expected:
        raise _corrupt(
            path,
            f"header says shape {shape} ({expected} bytes of data) but the file "
            f"holds {actual} bytes of data.",
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def _find_file(folder, name):
    """Path of `name` in `folder`, gzipped or unzipped, or None."""
    for candidate in (name, name[: -len(".gz")]):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _load_split(folder, images_name, labels_name):
    images_path = _find_file(folder, images_name)
    labels_path = _find_file(folder, labels_name)
    images = read_idx(images_path, _IMAGES_MAGIC)
    labels = read_idx(labels_path, _LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise _corrupt(images_path, f"images of shape {images.shape[1:]}, not 28x28.")
    if len(images) != len(labels):
        raise _corrupt(
            labels_path,
            f"{len(labels)} labels for the {len(images)} images of {images_path}.",
        )
    try:
        check_labels(labels, NUM_CLASSES)
    except ValueError as error:
        raise _corrupt(labels_path, str(error)) from None
    return images, labels


def load_from_dir(folder):
    """Loads Fashion-MNIST from one folder holding the four idx files.

    Args:
        folder: folder with `train-images-idx3-ubyte.gz`,
            `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz` and
            `t10k-labels-idx1-ubyte.gz` (each may also be unzipped, without
            `.gz`).

    Returns:
        `((x_train, y_train), (x_test, y_test))`, uint8 arrays, images of
        shape `(N, 28, 28)`, labels of shape `(N,)`.

    Raises:
        FileNotFoundError: if a file is missing.
        ValueError: naming the file if one is corrupt or truncated.

    Example:
        >>> (x, y), _ = load_from_dir(DEBIAN_DIR)  # doctest: +SKIP
    """
    missing = [name for name in FILES if _find_file(folder, name) is None]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks the Fashion-MNIST file(s) {', '.join(missing)}."
        )
    train = _load_split(folder, TRAIN_IMAGES, TRAIN_LABELS)
    test = _load_split(folder, TEST_IMAGES, TEST_LABELS)
    return train, test


def load_fashion_mnist(data_dir=None, allow_download=None, return_source=False,
                       search_elsewhere=True):
    """Loads Fashion-MNIST, offline when the files are anywhere on the machine.

    Searches `data_dir`, the Keras cache, Debian's
    `/usr/share/datasets/fashion-mnist`, then downloads through
    `keras.datasets.fashion_mnist.load_data()`. A corrupt file in a folder
    that holds all four files is an error (no silent fallback).

    Args:
        data_dir: optional folder to look in first.
        allow_download: whether to try the Keras download when no folder has
            the files; `None` uses the module constant `ALLOW_DOWNLOAD`
            (True).
        return_source: also return where the data came from.
        search_elsewhere: with `data_dir`, False looks only there (no other
            folder, no download): an explicit folder must hold the data.

    Returns:
        `((x_train, y_train), (x_test, y_test))` with uint8 images of shape
        `(60000, 28, 28)` / `(10000, 28, 28)` and uint8 labels; with
        `return_source=True`, a third element: the folder the files were read
        from, or `DOWNLOAD_SOURCE`.

    Raises:
        FileNotFoundError: when no place has the files and the download is
            off or fails; the message lists every place looked at and how to
            install the data.
        ValueError: naming the file when one is corrupt or truncated.

    Example:
        >>> (x_train, y_train), (x_test, y_test), source = load_fashion_mnist(
        ...     return_source=True)  # doctest: +SKIP
        >>> x_train.shape, source  # doctest: +SKIP
        ((60000, 28, 28), '/usr/share/datasets/fashion-mnist')
    """
    if allow_download is None:
        allow_download = ALLOW_DOWNLOAD
    folders = []
    if data_dir is not None:
        folders.append(os.path.expanduser(os.fspath(data_dir)))
    if data_dir is not None and not search_elsewhere:
        allow_download = False
    for folder in SEARCH_PATHS() if search_elsewhere or data_dir is None else []:
        folder = os.path.expanduser(os.fspath(folder))
        if folder not in folders:
            folders.append(folder)

    looked = []
    for folder in folders:
        if not os.path.isdir(folder):
            looked.append(f"{folder} (no such folder)")
            continue
        missing = [name for name in FILES if _find_file(folder, name) is None]
        if missing:
            looked.append(f"{folder} (missing {', '.join(missing)})")
            continue
        train, test = load_from_dir(folder)
        return (train, test, folder) if return_source else (train, test)

    if allow_download:
        try:
            train, test = _download()
        except Exception as error:  # no network, proxy, disk, ...
            looked.append(f"{DOWNLOAD_SOURCE} failed: {type(error).__name__}: {error}")
        else:
            train = (np.asarray(train[0], np.uint8), np.asarray(train[1], np.uint8))
            test = (np.asarray(test[0], np.uint8), np.asarray(test[1], np.uint8))
            return (train, test, DOWNLOAD_SOURCE) if return_source else (train, test)
    else:
        why = ("the data_dir given is the only place looked at" if data_dir is not None
               and not search_elsewhere else "allow_download=False")
        looked.append(f"{DOWNLOAD_SOURCE} (not tried: {why})")

    places = "\n".join(f"  - {entry}" for entry in looked)
    raise FileNotFoundError(
        "Fashion-MNIST was not found. Looked at:\n"
        f"{places}\n"
        "To fix: on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` "
        f"(installs {DEBIAN_DIR}), or put the four files {', '.join(FILES)} "
        f"(from https://github.com/zalandoresearch/fashion-mnist) in "
        f"{keras_cache_dirs()[0]} or in a folder passed as `data_dir`."
    )
