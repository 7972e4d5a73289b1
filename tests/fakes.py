"""The toy data of the tests: in memory, and written to disk in the official formats.

In memory: `fake_images` (class c brightens band c: learnable, what the tiny
model trains on), `random_images` (noise, for pipeline mechanics). On disk:
Fashion-MNIST idx files, CIFAR archives, image trees with list files,
iNaturalist JSON, damaged JPEGs.
"""

import gzip
import os
import struct

import numpy as np

from lcreg_keras.data import fashion_mnist as fm
from lcreg_keras.data.normalization import IMAGENET_MEAN
from lcreg_keras.data.normalization import IMAGENET_STD

COUNTS = [12, 6, 3, 2, 1]  # a miniature long tail, 5 classes (the `tree` fixture)
SMALL = dict(image_size=32)  # small crops for the image-file pipelines


def fake_images(n, seed=0, size=28, channels=1, num_classes=10):
    """uint8 images whose class c brightens band c (labels cycle 0 .. num_classes - 1)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 128, (n, size, size, channels))
    step = size / 14.0
    for c in range(num_classes):
        top = int(round((2 * c + 4) * step / 2))
        x[np.arange(n) % num_classes == c, top : top + max(2, int(3 * step / 2)), :] += 127
    return x.astype(np.uint8), (np.arange(n) % num_classes).astype(np.int64)


def random_images(n=64, size=8, channels=3, seed=0):
    """uint8 noise images `(n, size, size[, channels])` (`channels=0`: no channel
    axis), labels cycling 0..9: data whose content does not matter."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) + ((channels,) if channels else ())
    return rng.integers(0, 256, shape, dtype=np.uint8), np.arange(n) % 10


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


# ---------------------------------------------------------------------------
# CIFAR: the official python-pickle batches, as a folder or a .tar.gz.


def write_cifar_batch(path, images, labels, label_key):
    """One pickled CIFAR batch: {b"data": (N, 3072) uint8, label_key: list}."""
    import pickle

    images = np.asarray(images, np.uint8)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"fake", label_key: [int(v) for v in labels], b"data": data}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def fake_cifar(folder, num_classes=10, n_train=60, n_test=20, archive=True, seed=0):
    """The official CIFAR-10 / -100 python files with random images.

    Labels cycle 0..C-1. With `archive=True` writes `cifar-10-python.tar.gz`
    (or `cifar-100-python.tar.gz`) in `folder`, else the extracted folder
    `cifar-10-batches-py` (or `cifar-100-python`). Returns
    `((x_train, y_train), (x_test, y_test))` as written.
    """
    import tarfile

    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    y_train = np.arange(n_train) % num_classes
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_test = np.arange(n_test) % num_classes
    if num_classes == 10:
        inner, key = "cifar-10-batches-py", b"labels"
        train_parts = np.array_split(np.arange(n_train), 5)
        files = [(f"data_batch_{i + 1}", part) for i, part in enumerate(train_parts)]
        names = {"test_batch": None}
    else:
        inner, key = "cifar-100-python", b"fine_labels"
        files = [("train", np.arange(n_train))]
        names = {"test": None}
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, ".staging", inner) if archive else os.path.join(folder, inner)
    os.makedirs(staging, exist_ok=True)
    for name, part in files:
        write_cifar_batch(os.path.join(staging, name), x_train[part], y_train[part], key)
    for name in names:
        write_cifar_batch(os.path.join(staging, name), x_test, y_test, key)
    if archive:
        archive_name = "cifar-10-python.tar.gz" if num_classes == 10 else "cifar-100-python.tar.gz"
        with tarfile.open(os.path.join(folder, archive_name), "w:gz") as tar:
            tar.add(staging, arcname=inner)
        import shutil

        shutil.rmtree(os.path.join(folder, ".staging"))
    return (x_train, y_train), (x_test, y_test)


# ---------------------------------------------------------------------------
# Image-file datasets: ImageNet-LT / Places-LT lists, iNaturalist JSON.

# A distinct colour per class: a crop of a flat image keeps its colour, so a
# batch shows whether every image came with its own label.
def class_colour(label):
    label = int(label)
    return np.array([(53 * label + 20) % 256, (101 * label + 60) % 256, (157 * label + 100) % 256])


def write_image(path, image, fmt="jpeg"):
    """Writes an (H, W, C) uint8 image with TensorFlow (no Pillow needed)."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt == "jpeg":
        data = tf.io.encode_jpeg(image, quality=95).numpy()
    elif fmt == "png":
        data = tf.io.encode_png(image).numpy()
    else:
        raise ValueError(fmt)
    with open(path, "wb") as f:
        f.write(data)


def flat_image(label, height, width):
    return np.broadcast_to(class_colour(label).astype(np.uint8), (height, width, 3)).copy()


def fake_image_tree(root, counts, split="train", list_name=None, prefix="",
                    sizes=((40, 56), (48, 36), (33, 33))):
    """Writes small flat-colour JPEGs, one folder per class, and a list file.

    Class `c` gets `counts[c]` images `{prefix}{split}/n{c:08d}/n{c:08d}_{i}.JPEG`
    under `root`, in a few sizes. The list (`list_name` in `root`, lines
    `relative/path label`) is written when `list_name` is given.

    Returns:
        `(relative_paths, labels)` in list order.
    """
    relative, labels = [], []
    for label, count in enumerate(counts):
        for i in range(count):
            rel = f"{split}/n{label:08d}/n{label:08d}_{i}.JPEG"
            height, width = sizes[i % len(sizes)]
            write_image(os.path.join(root, prefix, rel), flat_image(label, height, width))
            relative.append(rel)
            labels.append(label)
    if list_name:
        write_list(os.path.join(root, list_name), relative, labels)
    return relative, np.asarray(labels, np.int64)


def write_list(path, relative_paths, labels):
    with open(path, "w") as f:
        for rel, label in zip(relative_paths, labels):
            f.write(f"{rel} {int(label)}\n")


def fake_inaturalist(root, counts, json_name="train2018.json", split="train_val2018"):
    """Flat-colour JPEGs under `root/{split}/...` and a COCO-style JSON.

    Image ids are not in file order and the annotations are shuffled, so a
    reader must match them by id.
    """
    import json

    images, annotations, labels = [], [], []
    image_id = 1000
    for label, count in enumerate(counts):
        for i in range(count):
            rel = f"{split}/Plantae/{label}/{json_name[:-5]}_{i}.jpg"
            write_image(os.path.join(root, rel), flat_image(label, 36, 44))
            images.append({"id": image_id, "file_name": rel, "width": 44, "height": 36})
            annotations.append({"id": 7 * image_id, "image_id": image_id, "category_id": label})
            labels.append(label)
            image_id += 3
    annotations = annotations[::-1]
    with open(os.path.join(root, json_name), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": []}, f)
    return [im["file_name"] for im in images], np.asarray(labels, np.int64)


def damaged_jpegs(jpeg):
    """Two JPEGs damaged inside their compressed data, as copies of ImageNet hold.

    Both keep a valid header and the end-of-image marker, so the header scan
    passes them:

    - `"extraneous"`: 50 stray bytes before the end marker. TensorFlow
      decodes it with only libjpeg's warning on stderr, naming no file
      ("Corrupt JPEG data: 49 extraneous bytes before marker 0xd9");
    - `"cut_scan"`: the scan cut in the middle and the end marker appended
      ("Corrupt JPEG data: premature end of data segment"; TensorFlow
      decodes some such files with grey blocks, refuses others).
    """
    assert jpeg.endswith(b"\xff\xd9")
    return {
        "extraneous": jpeg[:-2] + bytes(range(1, 51)) + b"\xff\xd9",
        "cut_scan": jpeg[: (jpeg.index(b"\xff\xda") + len(jpeg)) // 2] + b"\xff\xd9",
    }


def denormalise(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Model inputs back to the [0, 255] pixel scale."""
    return (np.asarray(x) * np.asarray(std) + np.asarray(mean)) * 255.0


def assert_class_colour(image, label):
    """A flat image of class `label` has the class colour (within JPEG error)."""
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), class_colour(label), atol=3)
