"""Tests of the class-aware balanced sampler (stage two, spec Sec. 5)."""

import time

import numpy as np
import pytest

from lcreg_keras import data


def _long_tail_labels(counts, seed=0):
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def test_epoch_length_and_exact_balance():
    counts = [50, 20, 7, 3, 1]
    labels = _long_tail_labels(counts)
    idx = data.class_aware_indices(labels, 5, seed=0, samples_per_class=1)
    assert idx.dtype == np.int64
    assert len(idx) == 50 * 5 == data.default_epoch_size(labels, 5)
    assert idx.min() >= 0 and idx.max() < len(labels)
    # A whole number of class cycles: every class exactly epoch / C times.
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=5), [50] * 5)


def test_draws_cycle_through_shuffled_classes_and_members():
    counts = [40, 9, 4, 2, 1, 1]
    labels = _long_tail_labels(counts, seed=1)
    idx = data.class_aware_indices(labels, 6, seed=3, epoch=2, samples_per_class=1)
    drawn = labels[idx]
    # Each block of C draws is a permutation of the classes (MiSLAS's
    # RandomCycleIter over the class list) ...
    cycles = drawn.reshape(-1, 6)
    for row in cycles:
        assert sorted(row.tolist()) == list(range(6))
    # ... and not the same order every time.
    assert len({tuple(r) for r in cycles}) > 1
    # Inside a class, each block of N_c draws uses every member once.
    for c, n_c in enumerate(counts):
        members = idx[drawn == c]
        full = len(members) // n_c * n_c
        for block in members[:full].reshape(-1, n_c):
            assert sorted(block.tolist()) == sorted(np.flatnonzero(labels == c).tolist())


def test_batches_are_uniform_over_classes_chi_square():
    counts = np.maximum(1, (400 * 0.01 ** (np.arange(20) / 19)).astype(int))
    labels = _long_tail_labels(counts, seed=2)
    idx = data.class_aware_indices(
        labels, 20, epoch_size=20 * 300 + 7, seed=5, samples_per_class=1
    )
    assert len(idx) == 6007
    batch = 64
    seen = np.bincount(labels[idx[: len(idx) // batch * batch]], minlength=20)
    expected = seen.sum() / 20
    chi2 = float(np.sum((seen - expected) ** 2 / expected))
    # A cycle per C draws makes the counts far more even than i.i.d. draws
    # would (chi2 ~ 19 +- 6); allow far more than that anyway.
    assert chi2 < 40, (chi2, seen)
    assert np.abs(seen - expected).max() <= 2


def test_deterministic_per_seed_and_epoch():
    labels = _long_tail_labels([30, 10, 5, 2])
    a = data.class_aware_indices(labels, 4, seed=7, epoch=3)
    b = data.class_aware_indices(labels, 4, seed=7, epoch=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, data.class_aware_indices(labels, 4, seed=7, epoch=4))
    assert not np.array_equal(a, data.class_aware_indices(labels, 4, seed=8, epoch=3))
    # Negative and huge seeds are fine.
    data.class_aware_indices(labels, 4, seed=-1)
    data.class_aware_indices(labels, 4, seed=2**70)


def test_empty_classes_and_samples_per_class():
    labels = np.array([0, 0, 0, 0, 2, 2, 4])  # classes 1 and 3 have no samples
    idx = data.class_aware_indices(labels, 5, seed=0, samples_per_class=1)
    assert len(idx) == 4 * 3 == data.default_epoch_size(labels, 5)
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=5), [4, 0, 4, 0, 4])
    grouped = data.class_aware_indices(labels, 5, epoch_size=24, samples_per_class=4)
    classes = labels[grouped].reshape(-1, 4)
    assert all(len(set(row)) == 1 for row in classes)  # 4 in a row from a class
    np.testing.assert_array_equal(np.bincount(labels[grouped], minlength=5), [8, 0, 8, 0, 8])


def test_default_takes_runs_of_four_as_mislas():
    """MiSLAS's ClassAwareSampler(num_samples_cls=4): a class visit takes the
    next 4 samples of the class's own cycle; the visits cycle through
    shuffled class lists; inside a class every sample is used once per pass."""
    counts = [23, 9, 5, 2, 1]
    labels = _long_tail_labels(counts, seed=6)
    idx = data.class_aware_indices(labels, 5, epoch_size=4 * 5 * 12 + 2, seed=4, epoch=1)
    assert data.SAMPLES_PER_CLASS == 4 and len(idx) == 242
    runs = labels[idx][:240].reshape(-1, 4)
    assert (runs == runs[:, :1]).all()  # runs of 4 from one class
    assert labels[idx[240]] == labels[idx[241]]  # the last, cut run too
    visits = runs[:, 0].reshape(-1, 5)  # 12 cycles of the 5 classes
    for cycle in visits:
        assert sorted(cycle.tolist()) == list(range(5))
    assert len({tuple(c) for c in visits}) > 1  # reshuffled, not one order
    for c, n_c in enumerate(counts):
        members = idx[labels[idx] == c]
        assert len(members) in (48, 49, 50)  # 12 visits x 4 (+ the cut run)
        full = len(members) // n_c * n_c
        for block in members[:full].reshape(-1, n_c):  # a pass uses each once
            assert sorted(block.tolist()) == sorted(np.flatnonzero(labels == c).tolist())


def test_runs_and_cycles_are_uniform_monte_carlo():
    """Over many (seed, epoch) draws: the class of a visit is uniform at every
    position of a cycle, and a class's run starts at a uniform member (4
    sigma bounds of the binomial counts; a fixed order or member would give
    600 in one cell)."""
    counts = [12, 6, 3]
    labels = _long_tail_labels(counts, seed=7)
    trials = 600
    first_class = np.zeros((3, 3))  # [position in cycle, class]
    first_member = np.zeros(12)
    members0 = np.flatnonzero(labels == 0)
    for trial in range(trials):
        idx = data.class_aware_indices(labels, 3, epoch_size=12, seed=trial, epoch=trial % 3)
        visit_classes = labels[idx][::4]
        first_class[np.arange(3), visit_classes] += 1
        start = idx[4 * int(np.flatnonzero(visit_classes == 0)[0])]
        first_member[np.searchsorted(members0, start)] += 1
    p = 1 / 3
    assert np.abs(first_class - trials * p).max() < 4 * np.sqrt(trials * p * (1 - p))
    p = 1 / 12
    assert np.abs(first_member - trials * p).max() < 4 * np.sqrt(trials * p * (1 - p))


@pytest.mark.parametrize(
    "name, n, batch, steps",
    [
        # Hand-computed MiSLAS epochs: ceil(N / B) + 1 (train_stage2.py breaks
        # after batch index ceil(N / B)); the recipes' batch sizes.
        ("CIFAR-10-LT IF100", 12_406, 128, 98),  # ceil(96.92) + 1
        ("ImageNet-LT", 115_846, 256, 454),  # ceil(452.52) + 1
        ("iNaturalist 2018", 437_513, 256, 1_711),  # ceil(1709.04) + 1
        ("Places-LT", 62_500, 256, 246),  # ceil(244.14) + 1
    ],
)
def test_stage_two_epoch_is_mislas_loop_length(name, n, batch, steps):
    epoch = data.stage_two_epoch(n, batch)
    assert epoch == (steps * batch, batch, steps), name
    assert epoch.steps == steps and epoch.examples == steps * batch


def test_stage_two_epoch_with_a_size():
    assert data.stage_two_epoch(100, 32, epoch_size=1000) == (1000, 32, 31)
    assert data.stage_two_epoch(100, 32, epoch_size=20) == (20, 20, 1)  # batch cut
    assert data.stage_two_epoch(100, 32) == (160, 32, 5)
    for kwargs, name in [
        (dict(num_examples=0, batch_size=8), "num_examples"),
        (dict(num_examples=10, batch_size=0), "batch_size"),
        (dict(num_examples=10, batch_size=8, epoch_size=0), "epoch_size"),
    ]:
        with pytest.raises(ValueError, match=name):
            data.stage_two_epoch(**kwargs)


def test_bad_arguments_are_named():
    labels = np.array([0, 1, 1])
    for kwargs, name in [
        (dict(labels=[0, 5], num_classes=3), "labels"),
        (dict(labels=[-1, 0], num_classes=3), "labels"),
        (dict(labels=[], num_classes=3), "labels"),
        (dict(labels=[0.5], num_classes=3), "labels"),
        (dict(labels=labels, num_classes=0), "num_classes"),
        (dict(labels=labels, num_classes=2, epoch_size=0), "epoch_size"),
        (dict(labels=labels, num_classes=2, samples_per_class=0), "samples_per_class"),
        (dict(labels=labels, num_classes=2, epoch=-1), "epoch"),
    ]:
        with pytest.raises(ValueError, match=name):
            data.class_aware_indices(**kwargs)


def _inaturalist_like_labels():
    # 8,142 classes from 1,000 down to 2 images, 437,513 images in all (the
    # sizes of iNaturalist 2018's training set).
    num_classes, total = 8142, 437_513
    ranks = np.arange(num_classes) / (num_classes - 1)
    counts = np.maximum(2, np.floor(1000 * (2 / 1000) ** ranks**0.515)).astype(np.int64)
    short = total - int(counts.sum())
    counts[1 : 1 + short] += 1  # top up the head classes to the exact total
    assert counts.sum() == total and counts.max() <= 1000
    labels = np.repeat(np.arange(num_classes), counts)
    return np.random.default_rng(0).permutation(labels), num_classes


@pytest.mark.slow
def test_speed_at_inaturalist_size():
    labels, num_classes = _inaturalist_like_labels()
    timings = []
    for epoch in range(3):
        start = time.perf_counter()
        idx = data.class_aware_indices(labels, num_classes, seed=0, epoch=epoch)
        timings.append(time.perf_counter() - start)
    assert len(idx) == 1000 * num_classes
    per_class = np.bincount(labels[idx], minlength=num_classes)
    assert per_class.min() == per_class.max() == 1000
    print(
        f"\nclass_aware_indices: {len(labels):,} samples, {num_classes:,} classes, "
        f"{len(idx):,} indices per epoch: "
        + ", ".join(f"{t:.2f} s" for t in timings)
    )


# ---------------------------------------------------------------------------
# Wired into the small-image pipeline.


def _images(labels, size=8):
    labels = np.asarray(labels)
    x = np.zeros((len(labels), size, size, 3), np.uint8)
    x[...] = (labels * 20)[:, None, None, None]  # the label is in the pixels
    return x


def test_small_image_pipeline_class_aware_balanced_and_aligned():
    counts = [64, 16, 4, 2]
    labels = _long_tail_labels(counts, seed=4)
    x = _images(labels)
    ds = data.small_image_train_dataset(
        x, labels, 4, 16, 0.0, 1.0, pad=0, flip=False, sampler="class_aware", seed=1
    )
    batches = [(a.numpy(), b.numpy()) for a, b in ds]
    # MiSLAS's epoch: ceil(86 / 16) + 1 = 7 batches of 16 = 28 runs of 4.
    assert len(batches) == 7 == int(ds.cardinality()) == data.stage_two_epoch(86, 16).steps
    ys = np.concatenate([b for _, b in batches])
    np.testing.assert_array_equal(np.bincount(ys, minlength=4), [28] * 4)
    assert (ys.reshape(-1, 4) == ys.reshape(-1, 4)[:, :1]).all()
    for xb, yb in batches:  # the pixels say which class each image is
        np.testing.assert_array_equal(np.rint(xb[:, 0, 0, 0] * 255 / 20), yb)
    # A fresh draw each epoch; the same draws for the same seed.
    second = np.concatenate([b.numpy() for _, b in ds])
    assert not np.array_equal(ys, second)
    again = data.small_image_train_dataset(
        x, labels, 4, 16, 0.0, 1.0, pad=0, flip=False, sampler="class_aware", seed=1
    )
    np.testing.assert_array_equal(np.concatenate([b.numpy() for _, b in again]), ys)


def test_small_image_pipeline_sampler_arguments():
    labels = np.array([0, 0, 0, 1])
    x = _images(labels)
    ds = data.small_image_train_dataset(
        x, labels, 2, 2, 0.5, 0.5, sampler="class_aware", epoch_size=10,
        drop_remainder=False, samples_per_class=1,
    )
    assert [int(b[0].shape[0]) for b in ds] == [2, 2, 2, 2, 2]
    ys = np.concatenate([b[1].numpy() for b in ds])
    np.testing.assert_array_equal(np.bincount(ys), [5, 5])
    for kwargs, name in [
        (dict(sampler="balanced"), "sampler"),
        (dict(epoch_size=5), "epoch_size"),  # only with class_aware
        (dict(samples_per_class=4), "samples_per_class"),  # only with class_aware
        (dict(sampler="class_aware", samples_per_class=0), "samples_per_class"),
        (dict(sampler="class_aware", shuffle_buffer=2), "shuffle_buffer"),
        (dict(sampler="class_aware", epoch_size=0), "epoch_size"),
    ]:
        with pytest.raises(ValueError, match=name):
            data.small_image_train_dataset(x, labels, 2, 2, 0.5, 0.5, **kwargs)
