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
    idx = data.class_aware_indices(labels, 5, seed=0)
    assert idx.dtype == np.int64
    assert len(idx) == 50 * 5 == data.default_epoch_size(labels, 5)
    assert idx.min() >= 0 and idx.max() < len(labels)
    # A whole number of class cycles: every class exactly epoch / C times.
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=5), [50] * 5)


def test_draws_cycle_through_shuffled_classes_and_members():
    counts = [40, 9, 4, 2, 1, 1]
    labels = _long_tail_labels(counts, seed=1)
    idx = data.class_aware_indices(labels, 6, seed=3, epoch=2)
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
    idx = data.class_aware_indices(labels, 20, epoch_size=20 * 300 + 7, seed=5)
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
    idx = data.class_aware_indices(labels, 5, seed=0)
    assert len(idx) == 4 * 3 == data.default_epoch_size(labels, 5)
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=5), [4, 0, 4, 0, 4])
    grouped = data.class_aware_indices(labels, 5, epoch_size=24, samples_per_class=4)
    classes = labels[grouped].reshape(-1, 4)
    assert all(len(set(row)) == 1 for row in classes)  # 4 in a row from a class
    np.testing.assert_array_equal(np.bincount(labels[grouped], minlength=5), [8, 0, 8, 0, 8])


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
    assert len(batches) == 64 * 4 // 16 == int(ds.cardinality())
    ys = np.concatenate([b for _, b in batches])
    np.testing.assert_array_equal(np.bincount(ys, minlength=4), [64] * 4)
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
        drop_remainder=False,
    )
    assert [int(b[0].shape[0]) for b in ds] == [2, 2, 2, 2, 2]
    for kwargs, name in [
        (dict(sampler="balanced"), "sampler"),
        (dict(epoch_size=5), "epoch_size"),  # only with class_aware
        (dict(sampler="class_aware", shuffle_buffer=2), "shuffle_buffer"),
        (dict(sampler="class_aware", epoch_size=0), "epoch_size"),
    ]:
        with pytest.raises(ValueError, match=name):
            data.small_image_train_dataset(x, labels, 2, 2, 0.5, 0.5, **kwargs)
