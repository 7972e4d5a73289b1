"""Long-tailed subsets of balanced datasets (CIFAR-LT, Fashion-MNIST-LT).

The rule is the one of LDAM / MiSLAS / LCReg (spec Sec. 7): with `C` classes,
imbalance factor `IF` and head size `n_max`, class `c` keeps

    int(n_max * (1 / IF) ** (c / (C - 1)))

training images, so class 0 keeps `n_max` and class `C - 1` keeps
`int(n_max / IF)`. CIFAR-10-LT IF100 (n_max 5000) totals 12,406 images and
CIFAR-100-LT IF100 (n_max 500) 10,847. Test sets stay balanced.

The images of each class are chosen without replacement with a fixed NumPy
generator (`np.random.default_rng(seed)`), so a seed always gives the same
subset on every machine and backend.
"""

import numbers

import numpy as np

from lcreg_keras.data.labels import check_labels


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def _check_imbalance_factor(imbalance_factor):
    if isinstance(imbalance_factor, bool) or not isinstance(
        imbalance_factor, numbers.Real
    ):
        raise ValueError(
            "`imbalance_factor` must be a number >= 1 (n_max / n_min, e.g. 100). "
            f"Received: imbalance_factor={imbalance_factor!r}"
        )
    value = float(imbalance_factor)
    if not np.isfinite(value) or value < 1.0:
        hint = ""
        if 0.0 < value < 1.0:
            hint = (
                " It is the ratio of the largest to the smallest class, so pass "
                f"{1.0 / value:g} rather than its inverse {value:g}."
            )
        raise ValueError(
            "`imbalance_factor` must be a finite number >= 1 (n_max / n_min, "
            f"e.g. 100). Received: imbalance_factor={imbalance_factor!r}.{hint}"
        )
    return value


def long_tailed_counts(n_max, num_classes, imbalance_factor):
    """Per-class image counts of an exponential long-tailed profile.

    Args:
        n_max: number of images of the largest class (class 0), an int >= 1
            (5000 for CIFAR-10, 500 for CIFAR-100, 6000 for Fashion-MNIST).
        num_classes: number of classes `C`, an int >= 2.
        imbalance_factor: `IF`, the ratio of the largest to the smallest class,
            a number >= 1. `IF = 1` gives balanced counts.

    Returns:
        A list of `num_classes` Python ints, non-increasing; entry `c` is
        `int(n_max * (1 / IF) ** (c / (C - 1)))`.

    Raises:
        ValueError: if `n_max < 1`, `num_classes < 2` or `imbalance_factor < 1`
            (the message names the argument).

    Example:
        >>> counts = long_tailed_counts(5000, 10, 100)
        >>> counts
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
        >>> sum(counts), sum(long_tailed_counts(500, 100, 100))
        (12406, 10847)
    """
    n_max = _check_int(n_max, "n_max", 1)
    num_classes = _check_int(num_classes, "num_classes", 2)
    imbalance_factor = _check_imbalance_factor(imbalance_factor)
    ratio = 1.0 / imbalance_factor
    return [
        int(n_max * ratio ** (c / (num_classes - 1))) for c in range(num_classes)
    ]


def _check_labels(labels, num_classes=None, name="labels"):
    return check_labels(labels, num_classes, name=name, integral_floats=True)


def class_counts(labels, num_classes):
    """Number of samples of each class.

    Args:
        labels: 1-D array-like of integer class ids in `[0, num_classes)`.
        num_classes: number of classes, an int >= 1.

    Returns:
        An int64 NumPy array of shape `(num_classes,)`; entry `c` counts the
        labels equal to `c` (0 for a class that does not occur).

    Raises:
        ValueError: for labels outside `[0, num_classes)` or a bad
            `num_classes`.

    Example:
        >>> class_counts([0, 2, 2, 1, 2], 4).tolist()
        [1, 1, 3, 0]
    """
    num_classes = _check_int(num_classes, "num_classes", 1)
    labels = _check_labels(labels, num_classes)
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def long_tailed_subset(
    images,
    labels,
    imbalance_factor,
    n_max=None,
    seed=0,
    class_order=None,
    num_classes=None,
):
    """Draws a long-tailed subset of a (balanced) labelled dataset.

    Class `class_order[r]` (class `r` by default) keeps
    `long_tailed_counts(n_max, C, imbalance_factor)[r]` of its samples, chosen
    without replacement. The classes are visited in increasing class id and
    each draws from one `np.random.default_rng(seed)`, so the subset depends
    only on the labels, the arguments and `seed`.

    Args:
        images: array-like indexable by an integer index array along axis 0
            (e.g. `(N, H, W, C)` uint8), aligned with `labels`; `None` is
            allowed and gives `None` back; a list (e.g. of file paths) gives
            a list back.
        labels: 1-D array-like of `N` integer class ids in `[0, C)`.
        imbalance_factor: ratio of the largest to the smallest class, >= 1.
        n_max: size of the largest class of the subset; defaults to the
            largest class count in `labels`.
        seed: int seed of the NumPy generator.
        class_order: optional permutation of `range(C)`; `class_order[0]` is
            the head class (keeps `n_max`), `class_order[-1]` the tail class.
            Defaults to `range(C)` (class 0 is the head, as in CIFAR-LT).
        num_classes: number of classes `C`; defaults to `len(class_order)` if
            given, else `max(labels) + 1`.

    Returns:
        `(images_subset, labels_subset, indices)`: `indices` is a sorted int64
        array of distinct positions into the inputs (original order is kept),
        `labels_subset = labels[indices]` (int64) and
        `images_subset = images[indices]`.

    Raises:
        ValueError: if a label is outside `[0, C)`, `images` and `labels`
            differ in length, `class_order` is not a permutation, or a class
            has fewer samples than its target count (the class is named).

    Example:
        >>> labels = np.repeat(np.arange(10), 5000)
        >>> images = np.zeros((50000, 32, 32, 3), np.uint8)
        >>> x, y, idx = long_tailed_subset(images, labels, 100)
        >>> len(idx), np.bincount(y)[[0, 9]].tolist()
        (12406, [5000, 50])
    """
    labels = _check_labels(labels, name="labels")
    if labels.size == 0:
        raise ValueError("`labels` is empty: there is nothing to subset.")
    if images is not None and len(images) != len(labels):
        raise ValueError(
            "`images` and `labels` must have the same length. "
            f"Received {len(images)} images and {len(labels)} labels."
        )
    if num_classes is None:
        if class_order is not None:
            num_classes = len(class_order)
        else:
            num_classes = int(labels.max()) + 1
    num_classes = _check_int(num_classes, "num_classes", 2)
    labels = _check_labels(labels, num_classes, name="labels")
    counts_available = np.bincount(labels, minlength=num_classes)

    if class_order is None:
        class_order = np.arange(num_classes)
    else:
        class_order = np.asarray(class_order)
        if class_order.shape != (num_classes,) or not np.array_equal(
            np.sort(class_order), np.arange(num_classes)
        ):
            raise ValueError(
                "`class_order` must be a permutation of range(num_classes) = "
                f"range({num_classes}). Received: {class_order.tolist()}"
            )
        class_order = class_order.astype(np.int64)

    if n_max is None:
        n_max = int(counts_available.max())
    n_max = _check_int(n_max, "n_max", 1)
    counts = long_tailed_counts(n_max, num_classes, imbalance_factor)
    target = np.zeros(num_classes, np.int64)
    target[class_order] = counts

    for c in range(num_classes):
        if target[c] > counts_available[c]:
            raise ValueError(
                f"Class {c} has {counts_available[c]} samples but the long-tailed "
                f"profile (n_max={n_max}, imbalance_factor={imbalance_factor}) "
                f"asks for {target[c]}. Lower `n_max` or check `labels`."
            )

    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        chosen.append(rng.choice(members, size=int(target[c]), replace=False))
    indices = np.sort(np.concatenate(chosen).astype(np.int64))
    if images is None:
        images_subset = None
    elif isinstance(images, (list, tuple)):
        images_subset = [images[i] for i in indices]
    else:
        images_subset = images[indices]
    return images_subset, labels[indices], indices
