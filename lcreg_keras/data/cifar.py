"""CIFAR-10 / CIFAR-100 from the official python archives, offline first.

The official archives (`cifar-10-python.tar.gz`, `cifar-100-python.tar.gz`
from https://www.cs.toronto.edu/~kriz/cifar.html) hold pickled dicts: for
CIFAR-10 `data_batch_1` ... `data_batch_5` and `test_batch` in
`cifar-10-batches-py/`, for CIFAR-100 `train` and `test` in
`cifar-100-python/`. Each dict has `b"data"`, a `(N, 3072)` uint8 array (the
1024 red, then green, then blue values of a 32x32 image, row-major), and
`b"labels"` (CIFAR-10) or `b"fine_labels"` (CIFAR-100, the 100 classes; the
20 `b"coarse_labels"` are not used).

`load_cifar` looks, in order, in:

1. `data_dir`: the `.tar.gz` archive in it, the extracted folder in it, or
   `data_dir` itself being the extracted folder;
2. the Keras cache (`$KERAS_HOME/datasets`, `~/.keras/datasets`,
   `/tmp/.keras/datasets`), where `keras.datasets.cifar10 / cifar100` keep
   their download (Keras 3 extracts it into `cifar-10-batches-py-target/`);
3. `keras.datasets.cifar10 / cifar100.load_data()`, which downloads.

The archives are read in memory (no extraction to disk). The pickles are
loaded with an unpickler that only accepts the NumPy array types the
official files hold, so a doctored archive cannot run code.

Tests replace `SEARCH_PATHS` and set `ALLOW_DOWNLOAD = False`.
"""

import io
import os
import pickle
import tarfile

import numpy as np

from lcreg_keras.data.keras_cache import keras_cache_dirs
from lcreg_keras.data.labels import check_labels

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# MiSLAS's normalisation for CIFAR-10-LT and CIFAR-100-LT (the widespread
# CIFAR-10 constants; the "std" values are not CIFAR's per-pixel standard
# deviations, but they are what the paper's numbers were trained with).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)

# Whether the Keras download may run; tests set it to False.
ALLOW_DOWNLOAD = True

_LAYOUT = {
    10: {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
        "keras_target": "cifar-10-batches-py-target",
    },
    100: {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
        "keras_target": "cifar-100-python-target",
    },
}


def _check_num_classes(num_classes):
    if num_classes not in _LAYOUT:
        raise ValueError(f"`num_classes` must be 10 or 100. Received: num_classes={num_classes!r}")
    return int(num_classes)


# Replaceable in tests: a callable returning the folders searched after
# `data_dir`.
SEARCH_PATHS = keras_cache_dirs


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and NumPy arrays; refuses any other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _parse_batch(raw, where, label_key):
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # truncated, not a pickle, foreign objects
        raise ValueError(f"Corrupt CIFAR batch {where}: {type(error).__name__}: {error}") from error
    if not isinstance(batch, dict):
        raise ValueError(f"Corrupt CIFAR batch {where}: not a dict.")
    batch = {k.encode() if isinstance(k, str) else k: v for k, v in batch.items()}
    if b"data" not in batch or label_key not in batch:
        raise ValueError(
            f"Corrupt CIFAR batch {where}: it lacks {b'data'!r} or {label_key!r} "
            f"(keys: {sorted(batch)})."
        )
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key])
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"Corrupt CIFAR batch {where}: data of shape {data.shape}, expected (N, 3072)."
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"Corrupt CIFAR batch {where}: {labels.shape} labels for {data.shape[0]} images."
        )
    images = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _join_batches(batches, num_classes, where):
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    try:
        check_labels(labels, num_classes)
    except ValueError as error:
        raise ValueError(f"Corrupt CIFAR-{num_classes} data in {where}: {error}") from None
    return images, labels


def _read_folder(folder, num_classes):
    layout = _LAYOUT[num_classes]
    splits = []
    for split in ("train", "test"):
        batches = []
        for name in layout[split]:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                batches.append(_parse_batch(f.read(), path, layout["label_key"]))
        splits.append(_join_batches(batches, num_classes, folder))
    return tuple(splits)


def _read_archive(archive, num_classes):
    layout = _LAYOUT[num_classes]
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(f"Corrupt CIFAR archive {archive}: {error}") from error
    with tar:
        members = {}
        try:
            for member in tar.getmembers():
                if member.isfile():
                    members[os.path.basename(member.name)] = member
        except (tarfile.TarError, OSError, EOFError) as error:
            raise ValueError(f"Corrupt or truncated CIFAR archive {archive}: {error}") from error
        splits = []
        for split in ("train", "test"):
            batches = []
            for name in layout[split]:
                if name not in members:
                    raise ValueError(f"The CIFAR archive {archive} lacks the batch {name!r}.")
                try:
                    raw = tar.extractfile(members[name]).read()
                except (tarfile.TarError, OSError, EOFError) as error:
                    raise ValueError(
                        f"Corrupt or truncated CIFAR archive {archive} ({name}): {error}"
                    ) from error
                batches.append(
                    _parse_batch(raw, f"{archive}:{members[name].name}", layout["label_key"])
                )
            splits.append(_join_batches(batches, num_classes, archive))
    return tuple(splits)


def _folder_complete(folder, num_classes):
    layout = _LAYOUT[num_classes]
    names = layout["train"] + layout["test"]
    return os.path.isdir(folder) and all(
        os.path.isfile(os.path.join(folder, n)) for n in names
    )


def _candidates(place, num_classes, is_data_dir):
    """(kind, path) pairs to try in one place, in order."""
    layout = _LAYOUT[num_classes]
    folder, archive = layout["folder"], layout["archive"]
    found = []
    if is_data_dir:
        found.append(("folder", place))
    found.append(("folder", os.path.join(place, folder)))
    found.append(("folder", os.path.join(place, layout["keras_target"], folder)))
    found.append(("archive", os.path.join(place, archive)))
    found.append(("archive", os.path.join(place, folder + ".tar.gz")))
    found.append(("archive", os.path.join(place, layout["keras_target"] + ".tar.gz")))
    return found


def _download(num_classes):
    import keras

    if num_classes == 10:
        return keras.datasets.cifar10.load_data()
    return keras.datasets.cifar100.load_data(label_mode="fine")


def load_cifar(num_classes=10, data_dir=None, allow_download=None, return_source=False,
               search_elsewhere=True):
    """Loads CIFAR-10 or CIFAR-100 (fine labels), offline when possible.

    Args:
        num_classes: 10 or 100.
        data_dir: optional folder holding the official archive
            (`cifar-10-python.tar.gz` / `cifar-100-python.tar.gz`), its
            extracted folder (`cifar-10-batches-py` / `cifar-100-python`), or
            the extracted batches themselves. Searched first.
        allow_download: whether to try `keras.datasets` when nothing is found;
            `None` uses the module constant `ALLOW_DOWNLOAD` (True).
        return_source: also return where the data came from.
        search_elsewhere: with `data_dir`, False looks only there (no other
            folder, no download): an explicit folder must hold the data.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images
        `(50000, 32, 32, 3)` / `(10000, 32, 32, 3)` and int64 labels `(N,)`;
        with `return_source=True` a third element, the file or folder read
        (or `"keras.datasets (download)"`).

    Raises:
        ValueError: `num_classes` not 10 / 100, or a corrupt archive or batch
            (named).
        FileNotFoundError: when no place has the data and the download is
            off or fails; the message lists every place looked at.

    Example:
        >>> (x, y), (xt, yt) = load_cifar(10, "/data/cifar")  # doctest: +SKIP
        >>> x.shape, int(y.max())  # doctest: +SKIP
        ((50000, 32, 32, 3), 9)
    """
    num_classes = _check_num_classes(num_classes)
    if allow_download is None:
        allow_download = ALLOW_DOWNLOAD
    places = []
    if data_dir is not None:
        places.append((os.path.expanduser(os.fspath(data_dir)), True))
    if data_dir is not None and not search_elsewhere:
        allow_download = False
    for place in SEARCH_PATHS() if search_elsewhere or data_dir is None else []:
        place = os.path.expanduser(os.fspath(place))
        if place not in [p for p, _ in places]:
            places.append((place, False))

    looked = []
    for place, is_data_dir in places:
        if not os.path.isdir(place):
            looked.append(f"{place} (no such folder)")
            continue
        for kind, path in _candidates(place, num_classes, is_data_dir):
            if kind == "folder" and _folder_complete(path, num_classes):
                train, test = _read_folder(path, num_classes)
                return (train, test, path) if return_source else (train, test)
            if kind == "archive" and os.path.isfile(path):
                train, test = _read_archive(path, num_classes)
                return (train, test, path) if return_source else (train, test)
        layout = _LAYOUT[num_classes]
        looked.append(f"{place} (no {layout['archive']} nor {layout['folder']}/)")

    source = f"keras.datasets.cifar{num_classes}.load_data() (download)"
    if allow_download:
        try:
            (x, y), (xt, yt) = _download(num_classes)
        except Exception as error:  # no network, proxy, disk, ...
            looked.append(f"{source} failed: {type(error).__name__}: {error}")
        else:
            train = (np.asarray(x, np.uint8), np.asarray(y, np.int64).reshape(-1))
            test = (np.asarray(xt, np.uint8), np.asarray(yt, np.int64).reshape(-1))
            return (train, test, source) if return_source else (train, test)
    else:
        why = ("the data_dir given is the only place looked at" if data_dir is not None
               and not search_elsewhere else "allow_download=False")
        looked.append(f"{source} (not tried: {why})")
    layout = _LAYOUT[num_classes]
    listing = "\n".join(f"  - {entry}" for entry in looked)
    raise FileNotFoundError(
        f"CIFAR-{num_classes} was not found. Looked at:\n{listing}\n"
        f"To fix: download {layout['archive']} from "
        "https://www.cs.toronto.edu/~kriz/cifar.html and pass its folder as "
        "`data_dir` (--data_dir), or put it in "
        f"{keras_cache_dirs()[0]}."
    )
