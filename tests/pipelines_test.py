"""lcreg_keras.data.pipelines, image files: training and evaluation batches,
unreadable files named or skipped and counted, fit on every backend."""

import os

import numpy as np
import pytest
import tensorflow as tf

from lcreg_keras import data
from lcreg_keras.data import pipelines as ip
from lcreg_keras.data import transforms
from tests import fakes
from tests.fakes import COUNTS
from tests.fakes import SMALL
from tests.fakes import assert_class_colour as _assert_colour
from tests.fakes import denormalise as _denormalise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# The training pipeline


def test_train_batches_shape_dtype_normalisation_and_labels(tree):
    paths, labels = tree["train"]
    ds = data.image_train_dataset(paths, labels, 5, 8, color_jitter=0.0, seed=1, **SMALL)
    assert int(ds.cardinality()) == len(paths) // 8
    batches = list(ds)
    assert len(batches) == len(paths) // 8
    seen = []
    for x, y in batches:
        assert x.dtype == tf.float32 and x.shape == (8, 32, 32, 3)
        assert y.dtype == tf.int32 and y.shape == (8,)
        pixels = _denormalise(x.numpy())
        for image, label in zip(pixels, y.numpy()):
            # Flat images: every crop keeps the class colour, so each image
            # came with its own label.
            _assert_colour(image, label)
        seen += y.numpy().tolist()
    # Each image at most once per epoch (the last partial batch is dropped).
    assert len(seen) == len(paths) // 8 * 8
    assert np.all(np.bincount(seen, minlength=5) <= COUNTS)


def test_train_colour_jitter_and_mixup(tree):
    paths, labels = tree["train"]
    ds = data.image_train_dataset(paths, labels, 5, 8, mixup_alpha=0.2, seed=0, **SMALL)
    x, y = next(iter(ds))
    assert y.shape == (8, 5) and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, atol=1e-5)
    pixels = _denormalise(x.numpy())
    assert pixels.min() >= -0.5 and pixels.max() <= 255.5


def test_train_same_seed_same_batches_epochs_differ(tree):
    paths, labels = tree["train"]

    def epochs(seed, n=2):
        ds = data.image_train_dataset(paths, labels, 5, 8, seed=seed, **SMALL)
        return [[(a.numpy(), b.numpy()) for a, b in ds] for _ in range(n)]

    first, again, other = epochs(3), epochs(3), epochs(4, n=1)
    for ep_a, ep_b in zip(first, again):
        for (xa, ya), (xb, yb) in zip(ep_a, ep_b):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(first[0][0][0], first[1][0][0])  # epoch 2 differs
    assert not np.array_equal(first[0][0][0], other[0][0][0])


def test_train_independent_of_global_seed(tree):
    paths, labels = tree["train"]
    tf.random.set_seed(1)
    a = next(iter(data.image_train_dataset(paths, labels, 5, 4, **SMALL)))[0].numpy()
    tf.random.set_seed(2)
    b = next(iter(data.image_train_dataset(paths, labels, 5, 4, **SMALL)))[0].numpy()
    np.testing.assert_array_equal(a, b)


def test_train_order_follows_the_documented_key(tree):
    """Epoch e's order is argsort(uniform(n)) keyed on [seed, "IMG1"] folded
    with the order stream (14) and e, re-derived here from the labels."""
    paths, labels = tree["train"]
    seed = 6
    ds = data.image_train_dataset(paths, labels, 5, 8, seed=seed, color_jitter=0.0, **SMALL)
    for epoch in range(2):
        key = tf.constant([seed, 0x494D4731], tf.int64)
        for value in (14, epoch):
            key = tf.random.experimental.stateless_fold_in(key, tf.constant(value, tf.int64))
        order = np.argsort(tf.random.stateless_uniform([len(paths)], seed=key).numpy(),
                           kind="stable")
        got = np.concatenate([y.numpy() for _, y in ds])
        np.testing.assert_array_equal(got, np.asarray(labels)[order[:len(got)]])


def test_train_class_aware_sampler(tree):
    paths, labels = tree["train"]
    ds = data.image_train_dataset(paths, labels, 5, 10, sampler="class_aware",
                                  color_jitter=0.0, **SMALL)
    # MiSLAS's epoch: ceil(24 / 10) + 1 = 4 batches, 10 runs of 4, 2 class cycles.
    assert int(ds.cardinality()) == 4 == data.stage_two_epoch(24, 10).steps
    ys = np.concatenate([y.numpy() for _, y in ds])
    np.testing.assert_array_equal(np.bincount(ys, minlength=5), [8] * 5)
    assert (ys.reshape(-1, 4) == ys.reshape(-1, 4)[:, :1]).all()


# ---------------------------------------------------------------------------
# The evaluation pipeline


def test_eval_resize_centre_crop_exact(tmp_path):
    image = (np.arange(36 * 48 * 3) % 251).astype(np.uint8).reshape(36, 48, 3)
    path = str(tmp_path / "pattern.png")
    fakes.write_image(path, image, fmt="png")
    # Shorter side 36 already: the resize is the identity, then the centre
    # 32 x 32 crop starts at row round(4 / 2) = 2 and column 8.
    ds = data.image_eval_dataset([path], [0], 1, image_size=32, resize_size=36)
    x = next(iter(ds))[0].numpy()[0]
    np.testing.assert_allclose(_denormalise(x), image[2:34, 8:40], atol=1e-3)
    shape = transforms.resize_shorter_side(tf.zeros([300, 400, 3]), 256).shape
    assert tuple(shape) == (256, 341, 3)


def test_eval_keeps_order_and_last_batch(tree):
    paths, labels = tree["test"]
    ds = data.image_eval_dataset(paths, labels, 4, image_size=24, resize_size=28)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert [len(y) for _, y in batches] == [4, 4, 2]
    ys = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(ys, labels)
    for x, y in batches:
        for image, label in zip(_denormalise(x), y):
            _assert_colour(image, label)


# ---------------------------------------------------------------------------
# Unreadable files: named, or skipped and counted


def test_bad_file_is_an_error_naming_it(tree, odd_files):
    files, _ = odd_files
    paths, labels = tree["train"]
    bad = paths[:5] + [files["truncated.jpg"]] + paths[5:]
    with pytest.raises(data.UnreadableImagesError, match="truncated.jpg: truncated JPEG"):
        data.image_train_dataset(bad, np.zeros(len(bad), int), 5, 4, **SMALL)
    with pytest.raises(ValueError, match="missing.jpg: missing"):
        data.image_eval_dataset([files["missing.jpg"]], [0], 1)


def test_bad_file_found_while_reading_names_it(tree, odd_files):
    """Without the header scan, the failing read itself names the file."""
    files, _ = odd_files
    paths, _ = tree["train"]
    for bad_name in ("truncated.jpg", "missing.jpg"):
        bad = paths[:6] + [files[bad_name]]
        ds = data.image_train_dataset(bad, np.zeros(7, int), 5, 7, check_files=False, **SMALL)
        with pytest.raises(tf.errors.InvalidArgumentError, match=bad_name):
            list(ds)
        ev = data.image_eval_dataset(bad, np.zeros(7, int), 3, check_files=False, **SMALL)
        with pytest.raises(tf.errors.InvalidArgumentError, match=bad_name):
            list(ev)


def test_skip_bad_images_counts_them(tree, odd_files):
    files, _ = odd_files
    paths, labels = tree["train"]
    bad = [files["truncated.jpg"], files["text.jpg"], files["missing.jpg"]]
    all_paths = paths + bad
    all_labels = np.concatenate([labels, [0, 1, 2]])
    ds, state = data.image_train_dataset(all_paths, all_labels, 5, 8, skip_bad_images=True,
                                         color_jitter=0.0, return_state=True, **SMALL)
    assert data.skipped_images(state) == 3
    assert ip.image_check(state).num_bad == 3
    assert len(list(ds)) == len(paths) // 8
    # Failing while reading (scan off): skipped, counted, epoch length kept.
    ds, state = data.image_train_dataset(all_paths, all_labels, 5, 8, skip_bad_images=True,
                                         check_files=False, color_jitter=0.0, return_state=True,
                                         **SMALL)
    batches = list(ds)
    assert len(batches) == len(all_paths) // 8 and all(int(y.shape[0]) == 8 for _, y in batches)
    assert data.skipped_images(state) == 3
    for x, y in batches:  # still no image with another's label
        for image, label in zip(_denormalise(x.numpy()), y.numpy()):
            _assert_colour(image, label)
    # Evaluation leaves out what the scan finds; the kept labels follow.
    ev, state = data.image_eval_dataset(all_paths, all_labels, 16, skip_bad_images=True,
                                        return_state=True, **SMALL)
    check = ip.image_check(state)
    ys = np.concatenate([y.numpy() for _, y in ev])
    np.testing.assert_array_equal(ys, all_labels[check.ok])


def test_skip_bad_images_while_reading_evaluation_and_training(tree, odd_files):
    """Failed reads are skipped in the test split too; labels follow; each file counted once."""
    files, _ = odd_files
    paths, labels = tree["test"]
    bad_paths = paths[:3] + [files["truncated.jpg"]] + paths[3:] + [files["missing.jpg"]]
    bad_labels = np.concatenate([labels[:3], [4], labels[3:], [0]])
    ev, state = data.image_eval_dataset(bad_paths, bad_labels, 4, skip_bad_images=True,
                                        check_files=False, return_state=True, **SMALL)
    for _ in range(2):  # each pass starts its record afresh
        ys = np.concatenate([y.numpy() for _, y in ev])
        assert ip.read_failures(state).tolist() == [3, len(bad_paths) - 1]
        np.testing.assert_array_equal(ys, labels)
        np.testing.assert_array_equal(ip.evaluated_labels(state, bad_labels), labels)
    train_paths, train_labels = tree["train"]
    all_paths = train_paths + [files["truncated.jpg"]]
    ds, state = data.image_train_dataset(all_paths, np.append(train_labels, 1), 5, 8,
                                         skip_bad_images=True, check_files=False,
                                         return_state=True, **SMALL)
    for _ in range(2):
        list(ds)
    assert ip.read_failures(state).tolist() == [len(train_paths)]  # once, over two epochs
    assert data.skipped_images(state) >= 2  # the event counter counts each failed read


def test_pipeline_bad_arguments(tree):
    paths, labels = tree["train"]
    for kwargs, name in [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=100), "batch_size"),
        (dict(num_classes=3), "labels"),
        (dict(image_size=0), "image_size"),
        (dict(color_jitter=-0.1), "color_jitter"),
        (dict(mixup_alpha=-1.0), "mixup_alpha"),
        (dict(sampler="uniform"), "sampler"),
        (dict(mean=(0.5, 0.5)), "mean"),
        (dict(scale=(0.5, 2.0)), "scale"),
        (dict(paths="one/path.jpg"), "paths"),
    ]:
        args = dict(paths=paths, labels=labels, num_classes=5, batch_size=4, check_files=False)
        args.update(kwargs)
        with pytest.raises(ValueError, match=name):
            data.image_train_dataset(**args)
    with pytest.raises(ValueError, match="resize_size"):
        data.image_eval_dataset(paths, labels, 4, image_size=224, resize_size=200)


@pytest.mark.multibackend
def test_image_pipeline_feeds_fit_on_current_backend(tree):
    import keras

    paths, labels = tree["train"]
    train = data.image_train_dataset(paths, labels, 5, 8, mixup_alpha=0.2, image_size=16)
    test = data.image_eval_dataset(*tree["test"], 4, image_size=16, resize_size=18)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5),
    ])
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(train, epochs=2, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.predict(test, verbose=0).shape == (10, 5)
    # Stage two: class-aware batches with integer labels.
    balanced, state = data.image_train_dataset(paths, labels, 5, 10, sampler="class_aware",
                                               image_size=16, return_state=True)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(balanced, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2
    assert int(state.epoch.numpy()) >= 2
