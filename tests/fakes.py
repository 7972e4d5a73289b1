"""Small datasets the tests write to disk in the official formats."""

import gzip
import os
import struct

import numpy as np

from lcreg_keras.data import fashion_mnist as fm


def write_idx(path, array, magic):
    """Writes a gzipped idx file (the MNIST / Fashion-MNIST format)."""
    array = np.asarray(array, np.uint8)
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def fake_fashion_mnist(folder, n_train=30, n_test=20, seed=0, learnable=False):
    """The four Fashion-MNIST files with random images, labels cycling 0..9.

    With `learnable=True` class c brightens a horizontal band of the image,
    so a short training run can beat chance.
    """
    rng = np.random.default_rng(seed)

    def images(n):
        x = rng.integers(0, 128, (n, 28, 28))
        if learnable:
            for c in range(10):
                x[np.arange(n) % 10 == c, 2 * c + 4 : 2 * c + 7, :] += 127
        return x

    arrays = {
        fm.TRAIN_IMAGES: (images(n_train), 0x803),
        fm.TRAIN_LABELS: (np.arange(n_train) % 10, 0x801),
        fm.TEST_IMAGES: (images(n_test), 0x803),
        fm.TEST_LABELS: (np.arange(n_test) % 10, 0x801),
    }
    os.makedirs(folder, exist_ok=True)
    for name, (array, magic) in arrays.items():
        write_idx(os.path.join(folder, name), array, magic)
    return {name: np.asarray(a, np.uint8) for name, (a, _) in arrays.items()}
