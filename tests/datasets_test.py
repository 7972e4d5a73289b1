"""lcreg_keras.recipes.datasets: the recipe loaders build a whole Data bundle."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from lcreg_keras import data
from lcreg_keras.data import cifar
from lcreg_keras.recipes import datasets
from lcreg_keras.recipes.config import Config
from tests import fakes
from tests.fakes import COUNTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# The recipe loaders build a whole Data bundle


def _check_bundle(bundle, num_classes, input_shape, batch_size):
    assert bundle.num_classes == num_classes
    assert tuple(bundle.input_shape) == tuple(input_shape)
    assert bundle.train_counts.shape == (num_classes,)
    assert bundle.steps_per_epoch == int(bundle.train_counts.sum()) // batch_size > 0
    x, y = next(iter(bundle.train))
    assert tuple(x.shape) == (batch_size,) + tuple(input_shape)
    preprocessing = bundle.preprocessing
    assert set(preprocessing) >= {"input_shape", "mean", "std", "resize"}
    assert preprocessing["input_shape"] == list(input_shape)
    json.dumps(preprocessing)  # written to preprocessing.json
    test_y = np.concatenate([b.numpy() for _, b in bundle.test])
    np.testing.assert_array_equal(test_y, bundle.test_labels)
    assert bundle.stage_two_steps == int(bundle.stage_two_train.cardinality()) > 0
    ys = np.concatenate([b.numpy() for _, b in bundle.stage_two_train])
    assert ys.ndim == 1  # no mixup in stage two
    assert len(ys) == bundle.stage_two_steps * (len(ys) // bundle.stage_two_steps)
    present = np.flatnonzero(bundle.train_counts)
    seen = np.bincount(ys, minlength=num_classes)[present]
    # Balanced: every class visited as often as any other, give or take one
    # visit of 4 samples.
    assert seen.min() > 0 and seen.max() - seen.min() <= data.SAMPLES_PER_CLASS
    assert bundle.name in bundle.describe()


@pytest.mark.parametrize("num_classes", [10, 100])
def test_cifar_lt_loaders(tmp_path, cifar_offline, num_classes):
    per_class = 40 if num_classes == 10 else 12
    folder = str(tmp_path / "cifar")
    fakes.fake_cifar(folder, num_classes, n_train=per_class * num_classes, n_test=30)
    # The cap shrinks n_max (5000 / 500) below the fake's images per class.
    cap = 150 if num_classes == 10 else 450
    config = Config(
        dataset=f"cifar{num_classes}_lt", data_dir=folder, imbalance_factor=10,
        batch_size=16, eval_batch_size=16, mixup_alpha=1.0, max_train_examples=cap,
    )
    bundle = datasets.load(config)
    _check_bundle(bundle, num_classes, (32, 32, 3), 16)
    assert bundle.preprocessing["mean"] == pytest.approx(list(cifar.CIFAR_MEAN))
    assert bundle.preprocessing["std"] == pytest.approx(list(cifar.CIFAR_STD))
    counts = bundle.train_counts
    assert counts.sum() <= cap and np.all(np.diff(counts) <= 0) and counts[-1] >= 1
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.35)
    assert len(bundle.test_labels) == 30


def test_fashion_mnist_lt_has_stage_two(tmp_path, monkeypatch):
    from lcreg_keras.data import fashion_mnist as fm

    monkeypatch.setattr(fm, "SEARCH_PATHS", lambda: [])
    monkeypatch.setattr(fm, "ALLOW_DOWNLOAD", False)
    fakes.fake_fashion_mnist(str(tmp_path / "fm"), n_train=600, n_test=40)
    config = Config(dataset="fashion_mnist_lt", data_dir=str(tmp_path / "fm"),
                    imbalance_factor=10, batch_size=16, eval_batch_size=16,
                    max_train_examples=200)
    _check_bundle(datasets.load(config), 10, (28, 28, 1), 16)


def _list_config(name, root, **changes):
    values = dict(dataset=name, data_dir=root, batch_size=4, eval_batch_size=4,
                  image_size=24, resize_size=28, mixup_alpha=0.2, seed=0)
    values.update(changes)
    return Config(**values)


def test_imagenet_lt_loader(tree):
    bundle = datasets.load(_list_config("imagenet_lt", tree["root"]))
    _check_bundle(bundle, 1000, (24, 24, 3), 4)
    assert bundle.train_counts[:5].tolist() == COUNTS and bundle.train_counts.sum() == 24
    assert bundle.preprocessing == {
        "input_shape": [24, 24, 3], "mean": list(data.IMAGENET_MEAN),
        "std": list(data.IMAGENET_STD), "resize": 28,
    }
    _, y = next(iter(bundle.train))
    assert y.shape == (4, 1000)  # mixup: soft labels
    assert "ImageNet_LT_train.txt" in bundle.source and bundle.skipped_images == 0


def test_imagenet_lt_loader_falls_back_to_val_list_and_caps(tmp_path):
    root = str(tmp_path)
    fakes.fake_image_tree(root, [20, 10, 5, 1], "train", "ImageNet_LT_train.txt")
    fakes.fake_image_tree(root, [3, 3, 3, 3], "val", "ImageNet_LT_val.txt")
    config = _list_config("imagenet_lt", root, max_train_examples=12, max_test_examples=8,
                          mixup_alpha=0.0)
    bundle = datasets.load(config)
    assert "ImageNet_LT_val.txt" in bundle.source
    counts = bundle.train_counts[:4]
    assert counts.sum() <= 12 and counts.min() >= 1  # every class keeps one
    assert counts[0] > counts[1] > counts[3]  # proportional
    assert len(bundle.test_labels) <= 8 and set(bundle.test_labels.tolist()) == {0, 1, 2, 3}


def test_cap_per_class():
    labels = np.repeat([0, 1, 2, 3], [100, 30, 5, 1])
    keep = datasets.cap_per_class(labels, 40, seed=0)
    counts = np.bincount(labels[keep], minlength=4)
    assert counts.sum() <= 40 and counts.min() >= 1 and counts[0] >= counts[1] >= counts[2]
    np.testing.assert_array_equal(keep, np.sort(keep))
    np.testing.assert_array_equal(datasets.cap_per_class(labels, 40, seed=0), keep)
    keep = datasets.cap_per_class(labels, 3, seed=1)  # fewer slots than classes
    assert len(keep) == 3 and len(set(labels[keep])) == 3
    assert len(datasets.cap_per_class(labels, None)) == len(labels)


def test_places_lt_loader_with_prefix_and_leading_slash(tmp_path):
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [6, 3, 1], "train", prefix="data_256")
    fakes.write_list(os.path.join(root, "Places_LT_train.txt"), ["/" + r for r in rel], labels)
    rel, labels = fakes.fake_image_tree(root, [2, 2, 2], "val", prefix="data_256")
    fakes.write_list(os.path.join(root, "Places_LT_test.txt"), rel, labels)
    bundle = datasets.load(_list_config("places_lt", root, path_prefix="data_256"))
    _check_bundle(bundle, 365, (24, 24, 3), 4)
    assert bundle.train_counts[:3].tolist() == [6, 3, 1]


def test_inaturalist_loader(tmp_path):
    root = str(tmp_path)
    fakes.fake_inaturalist(root, [8, 4, 2, 2], "train2018.json")
    fakes.fake_inaturalist(root, [1, 1, 1, 1], "val2018.json")
    bundle = datasets.load(_list_config("inaturalist2018", root, mixup_alpha=0.0))
    _check_bundle(bundle, 8142, (24, 24, 3), 4)
    assert bundle.preprocessing["mean"] == list(data.INATURALIST_MEAN)


def test_inaturalist_loader_reads_mislas_text_lists(tmp_path):
    """MiSLAS's iNaturalist18_train.txt / _val.txt ("path label" lines), found
    by the default lookup when the JSON files are absent."""
    root = str(tmp_path)
    train_rel, train_y = fakes.fake_inaturalist(root, [8, 4, 2, 2], "train2018.json")
    val_rel, val_y = fakes.fake_inaturalist(root, [1, 1, 1, 1], "val2018.json")
    fakes.write_list(os.path.join(root, "iNaturalist18_train.txt"), train_rel, train_y)
    fakes.write_list(os.path.join(root, "iNaturalist18_val.txt"), val_rel, val_y)
    config = _list_config("inaturalist2018", root, mixup_alpha=0.0)
    names = data.image_lists.INATURALIST_2018_LISTS
    # Both present: the official JSON first; the two formats agree.
    json_train = datasets._find_list(config, names, "train")
    assert json_train == os.path.join(root, "train2018.json")
    from_json = data.read_any_list(json_train, root, num_classes=8142)
    from_text = data.read_any_list(os.path.join(root, "iNaturalist18_train.txt"), root,
                                   num_classes=8142)
    assert from_json[0] == from_text[0]
    np.testing.assert_array_equal(from_json[1], from_text[1])
    # Only MiSLAS's lists: the same lookup finds them.
    os.remove(os.path.join(root, "train2018.json"))
    os.remove(os.path.join(root, "val2018.json"))
    bundle = datasets.load(config)
    assert "iNaturalist18_train.txt" in bundle.source and "iNaturalist18_val.txt" in bundle.source
    assert bundle.train_counts[:4].tolist() == [8, 4, 2, 2]
    np.testing.assert_array_equal(bundle.test_labels, val_y)
    _check_bundle(bundle, 8142, (24, 24, 3), 4)
    # Neither: the error names both candidates.
    os.remove(os.path.join(root, "iNaturalist18_train.txt"))
    with pytest.raises(FileNotFoundError, match="train2018.json.*iNaturalist18_train.txt"):
        datasets.load(config)


def test_list_loader_bad_images(tmp_path, odd_files):
    files, _ = odd_files
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [6, 3, 2], "train")
    with open(files["truncated.jpg"], "rb") as f:
        broken = f.read()
    with open(os.path.join(root, "broken.JPEG"), "wb") as f:
        f.write(broken)
    fakes.write_list(os.path.join(root, "ImageNet_LT_train.txt"), rel + ["broken.JPEG"],
                     np.concatenate([labels, [1]]))
    fakes.fake_image_tree(root, [1, 1, 1], "val", "ImageNet_LT_test.txt")
    # The message gives the list file and line of the bad entry.
    with pytest.raises(ValueError, match=r"ImageNet_LT_train\.txt:12: .*broken.JPEG: truncated JPEG"):
        datasets.load(_list_config("imagenet_lt", root))
    bundle = datasets.load(_list_config("imagenet_lt", root, skip_bad_images=True))
    assert bundle.skipped_images == 1
    assert bundle.train_counts[:3].tolist() == [6, 3, 2]
    assert bundle.images["train"] == {"listed": 12, "skipped_at_scan": 1, "scan": "header"}
    assert bundle.images["test"]["skipped_at_scan"] == 0
    assert "1 unreadable image files skipped" in bundle.describe()
    train_list = os.path.join(root, "ImageNet_LT_train.txt")
    assert bundle.where("train", os.path.join(root, rel[0])) == (
        f"{train_list}:1: {os.path.join(root, rel[0])}")
    assert set(bundle.fingerprint) == {"train", "test"}
    assert bundle.fingerprint["train"]["counts"][:3] == [6, 4, 2]  # as listed, before the scan
    # Without the header scan the list loads whole; reading the file names it.
    bundle = datasets.load(_list_config("imagenet_lt", root, check_images=False))
    assert bundle.train_counts[:3].tolist() == [6, 4, 2] and bundle.skipped_images == 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.JPEG"):
        list(bundle.train.take(bundle.steps_per_epoch))


def test_list_loader_decode_scan_and_cache(tmp_path, odd_files):
    files, image = odd_files
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [6, 3, 2], "train")
    damaged = fakes.damaged_jpegs(tf.io.encode_jpeg(image, quality=95).numpy())["extraneous"]
    with open(os.path.join(root, "damaged.JPEG"), "wb") as f:
        f.write(damaged)
    fakes.write_list(os.path.join(root, "ImageNet_LT_train.txt"), rel + ["damaged.JPEG"],
                     np.concatenate([labels, [1]]))
    fakes.fake_image_tree(root, [1, 1, 1], "val", "ImageNet_LT_test.txt")
    # The header scan passes the file; the strict decode does not.
    assert datasets.load(_list_config("imagenet_lt", root)).skipped_images == 0
    with pytest.raises(ValueError, match=r"ImageNet_LT_train\.txt:12: .*damaged.JPEG: damaged "
                                         r"JPEG data \(Corrupt JPEG data: 49 extraneous bytes"):
        datasets.load(_list_config("imagenet_lt", root, check_images="decode"))

    class Cache(datasets.LoadHooks):
        def __init__(self):
            self.kept, self.scans = {}, 0

        def cached_check(self, split, paths, mode):
            return self.kept.get((split, mode))

        def store_check(self, split, paths, mode, check):
            self.scans += 1
            self.kept[(split, mode)] = check

    cache = Cache()
    config = _list_config("imagenet_lt", root, check_images="decode", skip_bad_images=True)
    for _ in range(2):
        bundle = datasets.load(config, hooks=cache)
        assert bundle.skipped_images == 1
    assert cache.scans == 2  # train and test once; the second load used the cache
    assert bundle.images["train"]["scan"] == "decode (cached)"
    with pytest.raises(ValueError, match="--check_images must be true"):
        datasets.load(_list_config("imagenet_lt", root, check_images="yes"))


def test_explicit_data_dir_must_hold_the_data(tmp_path, monkeypatch):
    """No silent fallback to another copy (issue 11: --data_dir=/nonexistent was ignored)."""
    from lcreg_keras.data import fashion_mnist as fm

    elsewhere = tmp_path / "elsewhere"
    fakes.fake_fashion_mnist(str(elsewhere), n_train=600, n_test=40)
    monkeypatch.setattr(fm, "SEARCH_PATHS", lambda: [str(elsewhere)])
    empty = tmp_path / "empty"
    empty.mkdir()
    config = Config(dataset="fashion_mnist_lt", data_dir=str(empty), imbalance_factor=10,
                    batch_size=16, max_train_examples=200)
    with pytest.raises(FileNotFoundError, match=rf"{empty} \(missing train-images-idx3-ubyte.gz"):
        datasets.load(config)
    assert datasets.load(config.replace(data_dir=None)).source == str(elsewhere)


def test_list_loader_missing_list_or_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageNet_LT_train.txt"):
        datasets.load(_list_config("imagenet_lt", str(tmp_path)))
    with pytest.raises(ValueError, match="data_dir"):
        datasets.load(_list_config("places_lt", None))


def test_dct_scaling_reaches_both_training_pipelines(tree, monkeypatch):
    seen = []
    build = datasets.pipelines.image_train_dataset

    def spy(*args, **kwargs):
        seen.append(kwargs["dct_scaling"])
        return build(*args, **kwargs)

    monkeypatch.setattr(datasets.pipelines, "image_train_dataset", spy)
    datasets.load(_list_config("imagenet_lt", tree["root"], dct_scaling=True))
    assert seen == [True, True]  # stage one and the class-aware stage two
