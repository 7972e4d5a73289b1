"""Class-aware balanced sampling for stage two (spec Sec. 5), as MiSLAS does it.

MiSLAS (after Shen et al. 2016 / Kang et al. 2020) re-trains the classifier
on class-balanced batches. Its `ClassAwareSampler(num_samples_cls=4)`
(`datasets/sampler.py`) walks through a shuffled list of the classes,
reshuffling the list each time it is used up, and each time it visits a
class takes the next `num_samples_cls = 4` samples of that class, one after
another, from the class's own shuffled cycle of samples (reshuffled each
time that cycle is used up). So the classes come in runs of 4, every class
is visited once per pass through the class list, and inside a class every
sample is seen once before any is seen twice.

Epoch length. The sampler's nominal length is `max_c N_c * C`
(`default_epoch_size`), but MiSLAS's stage-two loop (`train_stage2.py`)
stops after batch `ceil(N / B)`, i.e. after `ceil(N / B) + 1` batches of
`B` (N: training images): `stage_two_epoch` computes that, the default of
the pipelines and the recipes. For CIFAR-10-LT IF 100 (N = 12,406, B = 128)
that is 98 batches against 390 for `max_c N_c * C`; for iNaturalist 2018
(437,513 images, B = 256) 1,711 against 31,804.

`class_aware_indices` draws one epoch at once with vectorised NumPy, so an
iNaturalist-2018-sized draw of `max_c N_c * C` (8,142 classes, about 8.1
million indices) takes a couple of seconds rather than minutes of a Python
loop. Differences from MiSLAS's iterator, none of which changes the
distribution of a batch:

- Each epoch is drawn afresh from `(seed, epoch)` (the class cycle and the
  per-class cycles restart at each epoch, where MiSLAS's iterators carry on
  from the previous epoch). This makes any epoch reproducible on its own,
  e.g. after resuming from a backup.
- Classes without samples are left out of the class cycle (MiSLAS would fail
  on them); `default_epoch_size` counts only the classes present.
"""

import numbers
import typing

import numpy as np

from lcreg_keras.data.labels import check_labels

# Folded into the seed so this stream differs from other users of `seed`.
_TAG = 0x434C4157  # "CLAW"

# MiSLAS's `ClassAwareSampler(num_samples_cls=4)`: samples a class visit takes.
SAMPLES_PER_CLASS = 4


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_labels(labels, num_classes):
    return check_labels(labels, num_classes, allow_empty=False)


def default_epoch_size(labels, num_classes):
    """The class-aware sampler's nominal length: largest count x classes present.

    This is `len(ClassAwareSampler)` in MiSLAS and the default length of
    `class_aware_indices`; MiSLAS's stage-two loop stops much earlier, after
    `stage_two_epoch(N, B).steps` batches.

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


class StageTwoEpoch(typing.NamedTuple):
    """One stage-two epoch: `examples` indices drawn, in `steps` batches of `batch_size`."""

    examples: int
    batch_size: int
    steps: int


def stage_two_epoch(num_examples, batch_size, epoch_size=None):
    """The length of one class-balanced stage-two epoch.

    The one place the stage-two epoch is computed (the pipelines and the
    recipes call it).

    Args:
        num_examples: `N`, the number of training examples.
        batch_size: `B`, the stage-two batch size (global, over replicas).
        epoch_size: `None` for MiSLAS's epoch, `ceil(N / B) + 1` batches
            (its `train_stage2.py` loop breaks after batch index
            `ceil(N / B)`); or examples per epoch, whole batches of them
            kept, with the batch cut to `epoch_size` when larger.

    Returns:
        A `StageTwoEpoch(examples, batch_size, steps)`: `examples = steps *
        batch_size` indices to draw, `steps` batches of `batch_size`.

    Raises:
        ValueError: for a non-positive `num_examples`, `batch_size` or
            `epoch_size` (named).

    Example:
        >>> stage_two_epoch(12406, 128)  # CIFAR-10-LT, IF 100
        StageTwoEpoch(examples=12544, batch_size=128, steps=98)
        >>> stage_two_epoch(12406, 128, epoch_size=1000)
        StageTwoEpoch(examples=1000, batch_size=128, steps=7)
    """
    num_examples = _check_int(num_examples, "num_examples", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    if epoch_size is None:
        steps = -(-num_examples // batch_size) + 1
        return StageTwoEpoch(steps * batch_size, batch_size, steps)
    epoch_size = _check_int(epoch_size, "epoch_size", 1)
    batch_size = min(batch_size, epoch_size)
    return StageTwoEpoch(epoch_size, batch_size, epoch_size // batch_size)


def _rng(seed, epoch):
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF  # SeedSequence wants non-negative ints
    return np.random.default_rng(np.random.SeedSequence([seed, int(epoch), _TAG]))


def _sort_key_dtype(num_values):
    # NumPy's stable sort is a radix sort for 8- and 16-bit integers.
    if num_values <= np.iinfo(np.int16).max:
        return np.int16
    return np.int32 if num_values <= np.iinfo(np.int32).max else np.int64


def class_aware_indices(
    labels, num_classes, epoch_size=None, seed=0, epoch=0, samples_per_class=SAMPLES_PER_CLASS
):
    """Sample indices of one class-aware (class-balanced) epoch.

    Visit `v` picks a class from a cycle over the shuffled list of classes
    (a new shuffle each time the list is used up), then takes the next
    `samples_per_class` samples of that class, one after another, from the
    class's own cycle of its samples (a new shuffle each time the class is
    used up). Over an epoch every class gets `epoch_size / C` samples, give
    or take `samples_per_class`, and the samples of a class are used as
    evenly as possible.

    Args:
        labels: 1-D int array of `N` class ids in `[0, num_classes)`.
        num_classes: number of classes `C`, an int >= 1.
        epoch_size: number of indices to return; `None` gives
            `max_c N_c * C` (C counting only classes with samples), the
            sampler's nominal length (`default_epoch_size`).
        seed: int; with `epoch` it fixes the result.
        epoch: int >= 0, the epoch number; each epoch is a fresh draw.
        samples_per_class: consecutive samples taken from a class each time
            it is visited (4, MiSLAS's `num_samples_cls`; 1 draws a class
            for every sample).

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
        >>> len(set(labels[idx[:4]].tolist()))  # a run of 4 from one class
        1
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
