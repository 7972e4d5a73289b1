"""Tests of lcreg_keras.data: long-tailed subsets, Fashion-MNIST, tf.data."""

import gzip
import os

import numpy as np
import pytest

from lcreg_keras import data
from lcreg_keras.data import fashion_mnist as fm
from lcreg_keras.data import long_tail
from lcreg_keras.data import pipelines as pipeline
from tests.fakes import fake_fashion_mnist
from tests.fakes import random_images
from tests.fakes import write_idx

# ---------------------------------------------------------------------------
# long_tailed_counts / long_tailed_subset / class_counts


def test_cifar10_if100_counts_match_spec():
    counts = data.long_tailed_counts(5000, 10, 100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12406
    assert all(isinstance(c, int) for c in counts)


def test_cifar100_if100_total_matches_spec():
    counts = data.long_tailed_counts(500, 100, 100)
    assert sum(counts) == 10847
    assert counts[0] == 500 and counts[-1] == 5
    for c, count in enumerate(counts):
        assert count == int(500 * (1 / 100) ** (c / 99))


def test_counts_monotone_and_respect_imbalance_factor():
    # (The conftest's per-test Keras reset costs ~0.5 s, so cheap cases loop.)
    for n_max, num_classes, imbalance_factor in [
        (5000, 10, 100), (5000, 10, 50), (5000, 10, 10), (500, 100, 50),
        (6000, 10, 100),
    ]:
        counts = data.long_tailed_counts(n_max, num_classes, imbalance_factor)
        assert len(counts) == num_classes
        assert all(a >= b for a, b in zip(counts, counts[1:]))
        assert counts[0] == n_max
        assert counts[-1] == int(n_max / imbalance_factor)
        assert counts[0] / counts[-1] == pytest.approx(imbalance_factor, rel=0.02)


def test_imbalance_factor_one_is_balanced():
    assert data.long_tailed_counts(500, 100, 1) == [500] * 100


def test_counts_bad_arguments_name_the_argument():
    for kwargs, name in [
        (dict(n_max=5000, num_classes=10, imbalance_factor=0.01), "imbalance_factor"),
        (dict(n_max=5000, num_classes=10, imbalance_factor=0), "imbalance_factor"),
        (dict(n_max=5000, num_classes=10, imbalance_factor=-5), "imbalance_factor"),
        (dict(n_max=5000, num_classes=1, imbalance_factor=10), "num_classes"),
        (dict(n_max=0, num_classes=10, imbalance_factor=10), "n_max"),
        (dict(n_max=2.5, num_classes=10, imbalance_factor=10), "n_max"),
    ]:
        with pytest.raises(ValueError, match=name):
            data.long_tailed_counts(**kwargs)


def _balanced(n_per_class=60, num_classes=10):
    labels = np.repeat(np.arange(num_classes), n_per_class)
    images = np.arange(len(labels))  # image i "is" i: checks alignment
    return images, labels


def test_subset_counts_alignment_and_no_duplicates():
    images, labels = _balanced(60, 10)
    x, y, idx = data.long_tailed_subset(images, labels, 10, seed=3)
    expected = data.long_tailed_counts(60, 10, 10)
    np.testing.assert_array_equal(data.class_counts(y, 10), expected)
    assert len(np.unique(idx)) == len(idx) == sum(expected)
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(x, images[idx])
    np.testing.assert_array_equal(y, labels[idx])


def test_subset_seed_reproducible_and_seed_dependent():
    images, labels = _balanced(60, 10)
    _, _, a = data.long_tailed_subset(images, labels, 10, seed=1)
    _, _, b = data.long_tailed_subset(images, labels, 10, seed=1)
    _, _, c = data.long_tailed_subset(images, labels, 10, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_subset_cifar10_shape_total():
    labels = np.tile(np.arange(10), 5000)  # interleaved, like real CIFAR order
    _, y, idx = data.long_tailed_subset(None, labels, 100)
    assert len(idx) == 12406
    assert data.class_counts(y, 10).tolist() == data.long_tailed_counts(5000, 10, 100)


def test_subset_class_order_and_n_max():
    images, labels = _balanced(60, 4)
    order = [2, 0, 3, 1]
    _, y, _ = data.long_tailed_subset(images, labels, 4, n_max=40, class_order=order)
    counts = data.class_counts(y, 4)
    expected = data.long_tailed_counts(40, 4, 4)
    for rank, c in enumerate(order):
        assert counts[c] == expected[rank]


def test_subset_list_images_and_errors():
    images, labels = _balanced(10, 3)
    paths = [f"img_{i}.png" for i in images]
    x, _, idx = data.long_tailed_subset(paths, labels, 2)
    assert x == [paths[i] for i in idx]
    with pytest.raises(ValueError, match="Class 2 has 10 samples"):
        data.long_tailed_subset(images, labels, 2, n_max=11, class_order=[2, 1, 0])
    with pytest.raises(ValueError, match="labels"):
        data.long_tailed_subset(images, np.where(labels == 2, -1, labels), 2)
    with pytest.raises(ValueError, match="labels"):
        data.long_tailed_subset(images, labels, 2, num_classes=2)
    with pytest.raises(ValueError, match="class_order"):
        data.long_tailed_subset(images, labels, 2, class_order=[0, 0, 1])
    with pytest.raises(ValueError, match="same length"):
        data.long_tailed_subset(images[:-1], labels, 2)
    with pytest.raises(ValueError, match="imbalance_factor"):
        data.long_tailed_subset(images, labels, 0.5)


def test_class_counts():
    assert data.class_counts([0, 2, 2, 1, 2], 4).tolist() == [1, 1, 3, 0]
    with pytest.raises(ValueError, match="labels"):
        data.class_counts([0, 4], 4)
    with pytest.raises(ValueError, match="num_classes"):
        data.class_counts([0], 0)


# ---------------------------------------------------------------------------
# Fashion-MNIST


@pytest.fixture
def no_default_places(monkeypatch, tmp_path):
    """Search paths point at empty tmp folders; downloading is forbidden."""
    empty = [str(tmp_path / "keras-cache"), str(tmp_path / "debian")]
    monkeypatch.setattr(fm, "SEARCH_PATHS", lambda: list(empty))
    monkeypatch.setattr(fm, "ALLOW_DOWNLOAD", False)

    def _no_download():
        raise AssertionError("tests must never download")

    monkeypatch.setattr(fm, "_download", _no_download)
    return empty


def test_fashion_mnist_round_trip(tmp_path, no_default_places):
    folder = str(tmp_path / "fm")
    written = fake_fashion_mnist(folder)
    (x, y), (xt, yt), source = data.load_fashion_mnist(folder, return_source=True)
    assert source == folder
    assert x.dtype == np.uint8 and x.shape == (30, 28, 28)
    np.testing.assert_array_equal(x, written[fm.TRAIN_IMAGES])
    np.testing.assert_array_equal(y, written[fm.TRAIN_LABELS])
    np.testing.assert_array_equal(xt, written[fm.TEST_IMAGES])
    np.testing.assert_array_equal(yt, written[fm.TEST_LABELS])
    # Without return_source: two elements.
    assert len(data.load_fashion_mnist(folder)) == 2


def test_fashion_mnist_found_in_search_path(tmp_path, no_default_places):
    fake_fashion_mnist(no_default_places[1])
    (_, y), _, source = data.load_fashion_mnist(
        str(tmp_path / "nowhere"), return_source=True
    )
    assert source == no_default_places[1] and len(y) == 30


def test_fashion_mnist_unzipped_files(tmp_path, no_default_places):
    folder = tmp_path / "fm"
    written = fake_fashion_mnist(str(folder))
    for name in fm.FILES:
        with gzip.open(folder / name, "rb") as f:
            (folder / name[:-3]).write_bytes(f.read())
        os.remove(folder / name)
    (x, _), _ = data.load_fashion_mnist(str(folder))
    np.testing.assert_array_equal(x, written[fm.TRAIN_IMAGES])


@pytest.mark.parametrize("damage", ["truncate", "magic", "not_gzip", "count"])
def test_fashion_mnist_corrupt_file_names_file(tmp_path, no_default_places, damage):
    folder = tmp_path / "fm"
    fake_fashion_mnist(str(folder))
    target = folder / fm.TEST_IMAGES
    if damage == "truncate":
        with gzip.open(target, "rb") as f:
            raw = f.read()
        with gzip.open(target, "wb") as f:
            f.write(raw[:-100])
    elif damage == "magic":
        write_idx(target, np.zeros((20, 28, 28)), 0x801)
    elif damage == "not_gzip":
        target.write_bytes(target.read_bytes()[: 50])
    elif damage == "count":
        write_idx(target, np.zeros((19, 28, 28)), 0x803)
        target = folder / fm.TEST_LABELS  # the mismatch is reported on labels
    with pytest.raises(ValueError, match=str(target).replace("\\", "\\\\")):
        data.load_fashion_mnist(str(folder))


def test_fashion_mnist_missing_everywhere_lists_places(tmp_path, no_default_places):
    partial = tmp_path / "partial"
    fake_fashion_mnist(str(partial))
    os.remove(partial / fm.TRAIN_LABELS)
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist(str(partial))
    message = str(info.value)
    assert str(partial) in message and fm.TRAIN_LABELS in message
    for place in no_default_places:
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message
    for name in fm.FILES:
        assert name in message


def test_fashion_mnist_failed_download_is_reported(no_default_places, monkeypatch):
    def _offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(fm, "_download", _offline)
    with pytest.raises(FileNotFoundError, match="network unreachable"):
        data.load_fashion_mnist(allow_download=True)


def test_fashion_mnist_default_places():
    places = fm.default_search_paths()
    assert places[-1] == "/usr/share/datasets/fashion-mnist"
    assert any(p.endswith(os.path.join(".keras", "datasets", "fashion-mnist"))
               for p in places)


@pytest.mark.skipif(
    not all(os.path.exists(os.path.join(fm.DEBIAN_DIR, n)) for n in fm.FILES),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_debian_files():
    (x, y), (xt, yt) = fm.load_from_dir(fm.DEBIAN_DIR)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == np.uint8 and y.shape == (60000,) and yt.shape == (10000,)
    assert np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10
    # The default search finds them (or an identical Keras cache) offline.
    (x2, _), _, source = data.load_fashion_mnist(
        allow_download=False, return_source=True
    )
    assert source in fm.default_search_paths()
    np.testing.assert_array_equal(x2, x)
    # The Fashion-MNIST-LT rule of the spec on top of it.
    _, y_lt, _ = data.long_tailed_subset(x, y, 100, seed=0)
    assert data.class_counts(y_lt, 10).tolist() == data.long_tailed_counts(
        6000, 10, 100
    )


# ---------------------------------------------------------------------------
# tf.data pipeline


def _first(dataset):
    x, y = next(iter(dataset))
    return x.numpy(), y.numpy()


def test_channel_stats():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[..., 0] = 255
    images[0, ..., 1] = 255
    mean, std = data.channel_stats(images)
    np.testing.assert_allclose(mean, [1.0, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(std, [0.0, 0.5, 0.0], atol=1e-6)
    x, _ = random_images(channels=0)
    mean, std = data.channel_stats(x)
    assert mean.shape == (1,) and std.shape == (1,)
    np.testing.assert_allclose(mean, [x.mean() / 255], rtol=1e-5)
    np.testing.assert_allclose(std, [x.std() / 255], rtol=1e-5)


def test_train_dataset_shapes_dtypes_and_normalisation():
    x, y = random_images(64, 8, 3)
    mean, std = data.channel_stats(x)
    ds = data.small_image_train_dataset(x, y, 10, 16, mean, std, pad=0, flip=False)
    batches = [(a.numpy(), b.numpy()) for a, b in ds]
    assert len(batches) == 4
    xb = np.concatenate([b[0] for b in batches])
    yb = np.concatenate([b[1] for b in batches])
    assert xb.shape == (64, 8, 8, 3) and xb.dtype == np.float32
    assert yb.shape == (64,) and yb.dtype == np.int32
    # No augmentation: the batches are the normalised images, shuffled.
    np.testing.assert_allclose(xb.reshape(-1, 3).mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(xb.reshape(-1, 3).std(0), 1.0, atol=1e-4)
    assert sorted(yb.tolist()) == sorted(y.tolist())
    assert not np.array_equal(yb, y)  # shuffled


def test_train_dataset_grayscale_gets_channel_axis():
    x, y = random_images(32, 28, channels=0)
    ds = data.small_image_train_dataset(x, y, 10, 8, 0.5, 0.25)
    xb, yb = _first(ds)
    assert xb.shape == (8, 28, 28, 1) and yb.shape == (8,)


def test_train_dataset_pixels_match_labels_without_augmentation():
    x, _ = random_images(40, 8, 3)
    y = np.arange(40) % 10
    # Encode the sample index in the image so a batch can be traced back.
    x[:, 0, 0, 0] = np.arange(40)
    ds = data.small_image_train_dataset(x, y, 10, 8, 0.0, 1.0, pad=0, flip=False)
    for xb, yb in ds:
        index = np.rint(xb.numpy()[:, 0, 0, 0] * 255).astype(int)
        np.testing.assert_array_equal(yb.numpy(), y[index])
        np.testing.assert_allclose(xb.numpy(), x[index] / 255.0, atol=1e-6)


def test_train_dataset_same_seed_same_batches_other_seed_differs():
    x, y = random_images(64, 8, 3)
    make = lambda seed: data.small_image_train_dataset(  # noqa: E731
        x, y, 10, 16, 0.5, 0.25, seed=seed
    )
    a, b, c = make(7), make(7), make(8)
    xa, ya = _first(a)
    xb, yb = _first(b)
    xc, _ = _first(c)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(xa, xc)
    # Epoch 2 of a dataset differs from its epoch 1 but matches epoch 2 of a
    # twin built with the same seed.
    xa2, _ = _first(a)
    xb2, _ = _first(b)
    assert not np.array_equal(xa, xa2)
    np.testing.assert_array_equal(xa2, xb2)


def test_train_dataset_independent_of_global_seed():
    import tensorflow as tf

    x, y = random_images(32, 8, 3)
    tf.random.set_seed(1)
    a = _first(data.small_image_train_dataset(x, y, 10, 8, 0.5, 0.25, seed=3))
    tf.random.set_seed(2)
    b = _first(data.small_image_train_dataset(x, y, 10, 8, 0.5, 0.25, seed=3))
    np.testing.assert_array_equal(a[0], b[0])


def test_crop_keeps_content_and_flip_mirrors():
    # A constant image: every crop of the zero-padded image equals the
    # constant in its centre (the crop moves at most `pad` pixels).
    x = np.full((16, 12, 12, 3), 200, np.uint8)
    y = np.zeros(16, int)
    ds = data.small_image_train_dataset(x, y, 10, 16, 0.0, 1.0, pad=4, flip=True)
    xb, _ = _first(ds)
    centre = xb[:, 4:8, 4:8, :]
    np.testing.assert_allclose(centre, 200 / 255, atol=1e-6)
    # Everything is either the image or the black zero padding.
    assert np.all(np.isclose(xb, 200 / 255, atol=1e-6) | np.isclose(xb, 0.0))
    # Some crop actually moved (there is padding somewhere).
    assert np.any(np.isclose(xb, 0.0))

    # A horizontal ramp without padding: each output row is the ramp or its
    # mirror, and both occur.
    ramp = np.tile(np.arange(0, 240, 20, dtype=np.uint8), (12, 1))
    x = np.repeat(ramp[None, ..., None], 32, axis=0)
    ds = data.small_image_train_dataset(
        x, np.zeros(32, int), 10, 32, 0.0, 1.0, pad=0, flip=True
    )
    xb, _ = _first(ds)
    values = np.rint(xb[..., 0] * 255).astype(int)
    forward = np.all(values == ramp, axis=(1, 2))
    mirrored = np.all(values == ramp[:, ::-1], axis=(1, 2))
    assert np.all(forward | mirrored) and forward.any() and mirrored.any()


def test_crop_is_a_shifted_window():
    # Unique pixel values: each crop is a contiguous window of the padded image.
    x = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1) + 1
    x = np.repeat(x, 8, axis=0)
    ds = data.small_image_train_dataset(
        x, np.zeros(8, int), 10, 8, 0.0, 1.0, pad=2, flip=False
    )
    xb, _ = _first(ds)
    padded = np.pad(x[0, ..., 0], 2)
    for image in np.rint(xb[..., 0] * 255).astype(int):
        found = any(
            np.array_equal(image, padded[i : i + 8, j : j + 8])
            for i in range(5)
            for j in range(5)
        )
        assert found


def test_mixup_labels_soft_and_consistent():
    x, y = random_images(32, 8, 3)
    ds = data.small_image_train_dataset(
        x, y, 10, 16, 0.0, 1.0, pad=0, flip=False, mixup_alpha=1.0, seed=5
    )
    xb, yb = _first(ds)
    assert yb.shape == (16, 10) and yb.dtype == np.float32
    np.testing.assert_allclose(yb.sum(-1), 1.0, atol=1e-6)
    assert np.all(yb >= -1e-7) and np.all(yb <= 1 + 1e-7)
    assert np.all((yb > 1e-7).sum(-1) <= 2)


def test_mixup_batch_standalone():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 4, 4, 3)).astype(np.float32)
    labels = np.arange(8) % 5
    onehot = np.eye(5, dtype=np.float32)[labels]
    xm, ym, lam, perm = data.mixup_batch(
        images, onehot, alpha=1.0, seed=3, return_lam=True
    )
    lam, perm = float(lam), perm.numpy()
    assert 0.0 <= lam <= 1.0
    assert sorted(perm.tolist()) == list(range(8))
    np.testing.assert_allclose(
        xm.numpy(), lam * images + (1 - lam) * images[perm], atol=1e-5
    )
    # Each soft label lies on the segment between the two one-hots.
    np.testing.assert_allclose(
        ym.numpy(), lam * onehot + (1 - lam) * onehot[perm], atol=1e-6
    )
    np.testing.assert_allclose(ym.numpy().sum(-1), 1.0, atol=1e-6)
    # Deterministic in the seed, usable inside a tf.data map.
    again = data.mixup_batch(images, onehot, 1.0, 3)
    np.testing.assert_array_equal(xm.numpy(), again[0].numpy())
    ds = tf.data.Dataset.from_tensors((images, onehot)).map(
        lambda a, b: data.mixup_batch(a, b, 0.2, tf.constant([1, 2]))
    )
    xs, ys = next(iter(ds))
    assert xs.shape == (8, 4, 4, 3) and ys.shape == (8, 5)
    with pytest.raises(ValueError, match="alpha"):
        data.mixup_batch(images, onehot, 0.0, 0)


def _key(seed, word, *data):
    """The documented per-stream key: `[seed, word]` with each of `data` folded in."""
    import tensorflow as tf

    key = tf.constant([seed, word], tf.int64)
    for value in data:
        key = tf.random.experimental.stateless_fold_in(key, tf.constant(value, tf.int64))
    return key


def test_train_batches_follow_the_documented_keys():
    """Each batch is re-derived from its keys (seed, stream, epoch, step) with
    TF's stateless draws and NumPy for the image ops: the order, the pad /
    crop offsets, the flips, the normalisation and the mixup of the first two
    epochs. Pins the key scheme, hence the batches a seed gives."""
    import tensorflow as tf

    x, y = random_images(40, 6, 2, seed=4)
    seed, pad, batch, word = 9, 2, 16, 0x4C435265  # "LCRe"
    mean, std = np.array([0.4, 0.6], np.float32), np.array([0.2, 0.3], np.float32)
    ds = data.small_image_train_dataset(x, y, 10, batch, mean, std, pad=pad,
                                        mixup_alpha=0.5, seed=seed)
    for epoch in range(2):
        u = tf.random.stateless_uniform([40], seed=_key(seed, word, 1, epoch))
        order = np.argsort(u.numpy(), kind="stable")
        for step, (xb, yb) in enumerate(ds):
            idx = order[step * batch:(step + 1) * batch]
            s = tf.random.experimental.stateless_split(_key(seed, word, 2, epoch, step), 3)
            top, left = (tf.random.stateless_uniform([batch], seed=s[i], minval=0,
                                                     maxval=2 * pad + 1, dtype=tf.int32).numpy()
                         for i in (0, 1))
            flipped = tf.random.stateless_uniform([batch], seed=s[2]).numpy() < 0.5
            padded = np.pad(x[idx], [(0, 0), (pad, pad), (pad, pad), (0, 0)])
            crops = np.stack([padded[i, top[i]:top[i] + 6, left[i]:left[i] + 6] for i in range(batch)])
            crops[flipped] = crops[flipped, :, ::-1]
            want = (crops.astype(np.float32) / np.float32(255.0) - mean) / std
            m = tf.random.experimental.stateless_split(_key(seed, word, 3, epoch, step), 3)
            g1, g2 = (float(tf.random.stateless_gamma([], seed=m[i], alpha=0.5)) for i in (0, 1))
            lam = g1 / (g1 + g2)
            perm = np.argsort(tf.random.stateless_uniform([batch], seed=m[2]).numpy(), kind="stable")
            onehot = np.eye(10, dtype=np.float32)[y[idx]]
            np.testing.assert_allclose(xb.numpy(), lam * want + (1 - lam) * want[perm],
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(yb.numpy(), lam * onehot + (1 - lam) * onehot[perm],
                                       atol=1e-6)


def test_drop_remainder_and_buffered_shuffle():
    x, y = random_images(50, 8, 3)
    ds = data.small_image_train_dataset(x, y, 10, 16, 0.5, 0.25)
    assert [int(b[0].shape[0]) for b in ds] == [16, 16, 16]
    ds = data.small_image_train_dataset(
        x, y, 10, 16, 0.5, 0.25, drop_remainder=False, shuffle_buffer=8
    )
    assert [int(b[0].shape[0]) for b in ds] == [16, 16, 16, 2]
    ds = data.small_image_train_dataset(
        x, y, 10, 16, 0.5, 0.25, shuffle_buffer=0, pad=0, flip=False
    )
    np.testing.assert_array_equal(_first(ds)[1], y[:16])


def test_eval_dataset_keeps_every_sample_in_order():
    x, y = random_images(37, 8, channels=0)
    mean, std = 0.5, 0.25
    ds = data.small_image_eval_dataset(x, y, 8, mean, std)
    batches = [(a.numpy(), b.numpy()) for a, b in ds]
    assert [len(b[1]) for b in batches] == [8, 8, 8, 8, 5]
    xb = np.concatenate([b[0] for b in batches])
    yb = np.concatenate([b[1] for b in batches])
    assert xb.shape == (37, 8, 8, 1) and yb.dtype == np.int32
    np.testing.assert_array_equal(yb, y)
    np.testing.assert_allclose(xb[..., 0], (x / 255.0 - mean) / std, atol=1e-5)


def test_train_dataset_bad_arguments():
    x, y = random_images(32, 8, 3)
    for kwargs, name in [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=64), "batch_size"),  # > N with drop_remainder
        (dict(mean=[0.5, 0.5]), "mean"),
        (dict(mean=125.0), "mean"),
        (dict(std=0.0), "std"),
        (dict(pad=-1), "pad"),
        (dict(mixup_alpha=-1.0), "mixup_alpha"),
        (dict(num_classes=5), "labels"),
        (dict(shuffle_buffer=-3), "shuffle_buffer"),
        (dict(pad_mode="wrap"), "pad_mode"),
    ]:
        args = dict(
            images=x, labels=y, num_classes=10, batch_size=8, mean=0.5, std=0.25
        )
        args.update(kwargs)
        with pytest.raises(ValueError, match=name):
            data.small_image_train_dataset(**args)


def test_train_dataset_needs_uint8():
    x, y = random_images(32, 8, 3)
    with pytest.raises(ValueError, match="uint8"):
        data.small_image_train_dataset(x.astype(np.float32), y, 10, 8, 0.5, 0.25)


def test_reflect_padding():
    x = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1)
    x = np.repeat(x, 4, axis=0)
    ds = data.small_image_train_dataset(
        x, np.zeros(4, int), 10, 4, 0.0, 1.0, pad=2, flip=False, pad_mode="reflect"
    )
    xb, _ = _first(ds)
    padded = np.pad(x[0, ..., 0], 2, mode="reflect")
    for image in np.rint(xb[..., 0] * 255).astype(int):
        assert any(
            np.array_equal(image, padded[i : i + 8, j : j + 8])
            for i in range(5)
            for j in range(5)
        )


@pytest.mark.multibackend
def test_pipeline_feeds_fit_on_current_backend():
    import keras

    x, y = random_images(48, 8, 3)
    mean, std = data.channel_stats(x)
    train, state = data.small_image_train_dataset(
        x, y, 10, 16, mean, std, mixup_alpha=1.0, seed=0, return_state=True
    )
    val = data.small_image_eval_dataset(x, y, 16, mean, std)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, padding="same"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="sgd",
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    # shuffle=False: the dataset shuffles itself (Keras warns otherwise).
    history = model.fit(train, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2
    # Each epoch started a new pass, so each got its own order / augmentation.
    assert int(state.epoch.numpy()) >= 2
    assert all(np.isfinite(history.history["loss"]))
    logits = model.predict(val, verbose=0)
    assert logits.shape == (48, 10)


def test_module_exports():
    for name in data.__all__:
        assert hasattr(data, name)
    assert long_tail.long_tailed_counts is data.long_tailed_counts
    assert pipeline.mixup_batch is data.mixup_batch
    # The builders live by subject; `pipelines` and `pipeline` re-export them.
    from lcreg_keras.data import array_pipelines
    from lcreg_keras.data import epochs
    from lcreg_keras.data import file_pipelines
    from lcreg_keras.data import pipeline as old_name

    assert old_name is pipeline
    assert pipeline.small_image_train_dataset is array_pipelines.small_image_train_dataset
    assert pipeline.image_train_dataset is file_pipelines.image_train_dataset
    assert pipeline.PipelineState is epochs.PipelineState is data.PipelineState
