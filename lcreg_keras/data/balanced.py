"""Class-aware balanced sampling for stage two (spec Sec. 5).

MiSLAS (after Shen et al. 2016 / Kang et al. 2020) re-trains the classifier
on class-balanced batches. Its `ClassAwareSampler` walks through a shuffled
list of the classes, reshuffling the list each time it is used up, and for
each class it visits takes the next sample of that class from the class's own
shuffled cycle of samples (reshuffled each time that cycle is used up). So
every draw picks a class uniformly (exactly uniformly over each pass through
the class list) and, inside a class, every sample is seen once before any is
seen twice. An epoch has `max_c N_c * C` draws.

`class_aware_indices` draws one such epoch at once with vectorised NumPy, so
an iNaturalist-2018-sized epoch (8,142 classes, 437,513 images, about 8.1
million draws) takes a couple of seconds rather than minutes of a Python
loop. Differences from MiSLAS's iterator, none of which changes the
distribution of a batch:

- Each epoch is drawn afresh from `(seed, epoch)` (the class cycle and the
  per-class cycles restart at each epoch, where MiSLAS's iterators carry on
  from the previous epoch). This makes any epoch reproducible on its own,
  e.g. after resuming from a backup.
- Classes without samples are left out of the class cycle (MiSLAS would fail
  on them); the default epoch size counts only the classes present.
"""

import numbers

import numpy as np

# Folded into the seed so this stream differs from other users of `seed`.
_TAG = 0x434C4157  # "CLAW"


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_labels(labels, num_classes):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"`labels` must be a 1-D array of class ids. Received shape {labels.shape}."
        )
    if labels.size == 0:
        raise ValueError("`labels` is empty: there is nothing to sample.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must hold integer class ids. Received dtype {labels.dtype}.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(
            f"`labels` must lie in [0, num_classes) = [0, {num_classes}). Found {bad}."
        )
    return labels


def default_epoch_size(labels, num_classes):
    """The class-aware epoch length: largest class count x classes present.

    Args:
        labels: 1-D int array of class ids in `[0, num_classes)`.
        num_classes: number of classes `C`.

    Returns:
        An int, `max_c N_c * (number of classes with N_c > 0)`.

    Example:
        >>> default_epoch_size([0, 0, 0, 1, 2], 3)
        9
    """
    num_classes = _check_int(num_classes, "num_classes", 1)
    counts = np.bincount(_check_labels(labels, num_classes), minlength=num_classes)
    return int(counts.max()) * int(np.count_nonzero(counts))


def _rng(seed, epoch):
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF  # SeedSequence wants non-negative ints
    return np.random.default_rng(np.random.SeedSequence([seed, int(epoch), _TAG]))


def _sort_key_dtype(num_values):
    # NumPy's stable sort is a radix sort for 8- and 16-bit integers.
    if num_values <= np.iinfo(np.int16).max:
        return np.int16
    return np.int32 if num_values <= np.iinfo(np.int32).max else np.int64


def class_aware_indices(
    labels, num_classes, epoch_size=None, seed=0, epoch=0, samples_per_class=1
):
    """Sample indices of one class-aware (class-balanced) epoch.

    Draw `t` picks a class from a cycle over the shuffled list of classes
    (a new shuffle each time the list is used up), then takes the next
    `samples_per_class` samples of that class from the class's own cycle of
    its samples (a new shuffle each time the class is used up). Over an epoch
    every class is picked `epoch_size / C` times, give or take one, and the
    samples of a class are used as evenly as possible.

    Args:
        labels: 1-D int array of `N` class ids in `[0, num_classes)`.
        num_classes: number of classes `C`, an int >= 1.
        epoch_size: number of indices to return; `None` gives
            `max_c N_c * C` (C counting only classes with samples), MiSLAS's
            epoch.
        seed: int; with `epoch` it fixes the result.
        epoch: int >= 0, the epoch number; each epoch is a fresh draw.
        samples_per_class: consecutive samples taken from a class each time
            it is picked (1 in MiSLAS; 4 in some decoupling recipes).

    Returns:
        An int64 NumPy array of `epoch_size` indices into `labels`.

    Raises:
        ValueError: for labels outside `[0, num_classes)`, empty labels or a
            bad `epoch_size` / `samples_per_class` / `epoch` (named).

    Example:
        >>> labels = np.array([0] * 8 + [1] * 2 + [2])
        >>> idx = class_aware_indices(labels, 3, seed=0)
        >>> len(idx), np.bincount(labels[idx]).tolist()
        (24, [8, 8, 8])
    """
    num_classes = _check_int(num_classes, "num_classes", 1)
    labels = _check_labels(labels, num_classes)
    samples_per_class = _check_int(samples_per_class, "samples_per_class", 1)
    epoch = _check_int(epoch, "epoch", 0)
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    present = np.flatnonzero(counts)
    if epoch_size is None:
        epoch_size = int(counts.max()) * len(present)
    epoch_size = _check_int(epoch_size, "epoch_size", 1)
    rng = _rng(seed, epoch)

    # 1. The class of each draw: whole shuffled cycles of the present classes.
    num_present = len(present)
    num_draws = -(-epoch_size // samples_per_class)
    cycles = -(-num_draws // num_present)
    key_dtype = _sort_key_dtype(num_classes)
    draws = rng.permuted(
        np.broadcast_to(present.astype(key_dtype), (cycles, num_present)), axis=1
    ).reshape(-1)[:num_draws]
    sample_class = np.repeat(draws, samples_per_class)[:epoch_size]

    # 2. How many samples each class must give, and how many shuffled passes
    #    over its members that takes.
    need = np.bincount(sample_class, minlength=num_classes).astype(np.int64)
    passes = -(-need // np.maximum(counts, 1))  # 0 for classes never drawn

    # 3. Class c's sequence of samples: `passes[c]` shuffled copies of its
    #    members, back to back; all classes' sequences in one flat array
    #    (class c's starts at `first[c]`). Each (class, pass) block is
    #    shuffled by sorting on block id + a uniform key in [0, 1).
    members = np.argsort(labels, kind="stable")
    class_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    block_class = np.repeat(np.arange(num_classes), passes)
    block_size = counts[block_class]
    block_start = np.concatenate([[0], np.cumsum(block_size)[:-1]])
    total = int(block_size.sum())
    entry_block = np.repeat(np.arange(len(block_class)), block_size)
    position = np.arange(total) - block_start[entry_block]
    position += class_start[block_class][entry_block]
    shuffle = np.argsort(entry_block + rng.random(total))
    sequence = members[position[shuffle]]
    first = np.concatenate([[0], np.cumsum(passes * counts)[:-1]])

    # 4. Class c's k-th draw takes element k of its sequence. Every class
    #    occurs once per cycle of the class list, so the k-th draw of a class
    #    is in cycle k: no sort is needed to count occurrences.
    t = np.arange(epoch_size)
    draw = t // samples_per_class
    rank = (draw // num_present) * samples_per_class + t % samples_per_class
    indices = sequence[first[sample_class] + rank].astype(np.int64)
    return indices
