"""Every recipe module and every flagfile in recipes/ parses into a sane config."""

import dataclasses
import glob
import importlib
import os

import numpy as np
import pytest
from absl import flags

from lcreg_keras.recipes import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ["fashion_mnist_lt", "cifar10_lt", "cifar100_lt", "imagenet_lt", "inaturalist2018", "places_lt"]
FLAGFILES = sorted(glob.glob(os.path.join(ROOT, "recipes", "*.flags")))


def parse(args):
    runner.define_flags()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["recipe"] + args)


@pytest.mark.parametrize("name", MODULES)
def test_recipe_defaults(name):
    module = importlib.import_module(f"lcreg_keras.recipes.{name}")
    config = module.get_config()
    assert config.dataset == name
    assert 2 <= config.num_latents
    assert config.stage in ("1", "2", "both")
    assert module.__doc__ and f"python -m lcreg_keras.recipes.{name}" in module.__doc__
    parse(["--smoke", "--epochs=1"])
    small = runner.apply_flags(config)
    assert small.backbone == "resnet8" and small.epochs == 1 and small.max_train_examples == 2048


def test_every_paper_row_has_both_stage_flagfiles():
    names = {os.path.basename(p) for p in FLAGFILES}
    rows = [f"cifar10_lt_if{i}" for i in (100, 50, 10)] + [f"cifar100_lt_if{i}" for i in (100, 50, 10)]
    rows += ["imagenet_lt", "inaturalist2018", "places_lt"]
    for row in rows:
        assert {f"{row}_stage1.flags", f"{row}_stage2.flags"} <= names, row


@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_flagfile_parses(path):
    base = os.path.basename(path)
    module = importlib.import_module(f"lcreg_keras.recipes.{base.split('_if')[0].split('_stage')[0]}")
    parse([f"--flagfile={path}"])
    config = runner.apply_flags(module.get_config())
    assert config.stage == base[-7]
    assert config.model_dir.startswith("runs/")
    if "_if" in base:
        assert config.imbalance_factor == int(base.split("_if")[1].split("_")[0])
    text = open(path).read()
    if config.stage == "2":
        assert config.paper_top1 is not None
        assert config.stage2_samples_per_class == 4 and config.stage2_epochs == 10
        assert "# MiSLAS-equivalent stage two (config/" in text
    assert "# Paper: LCReg" in text


def test_step_decay_keeps_every_phase_of_a_short_run():
    from lcreg_keras.recipes import fashion_mnist_lt
    from lcreg_keras.recipes.runner import decay_steps
    from lcreg_keras.recipes.runner import learning_rate

    # Long runs decay at whole epochs, as MiSLAS does (160 and 180 of 200).
    assert decay_steps((0.8, 0.9), 200, 97) == [160 * 97, 180 * 97]
    assert decay_steps((0.8, 0.9), 16, 116) == [13 * 116, 14 * 116]
    # 0.8 and 0.9 of 6 epochs both round to epoch 5: step precision instead.
    config = dataclasses.replace(fashion_mnist_lt.get_config(), epochs=6)
    schedule = learning_rate(config, 116)
    rates = sorted({round(float(schedule(step)), 6) for step in range(116, 6 * 116)})
    assert rates == [0.001, 0.01, 0.1]
    assert float(schedule(556)) == pytest.approx(0.1) and float(schedule(557)) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "name, n_train, steps",
    [
        # N of each training set; MiSLAS's stage-two epoch ceil(N / B) + 1 with
        # the recipe's batch, by hand: ceil(14886 / 128) = 117, ceil(12406 / 128)
        # = 97, ceil(115846 / 256) = 453, ceil(437513 / 256) = 1710,
        # ceil(62500 / 256) = 245.
        ("fashion_mnist_lt", 14_886, 118),
        ("cifar10_lt", 12_406, 98),
        ("imagenet_lt", 115_846, 454),
        ("inaturalist2018", 437_513, 1_711),
        ("places_lt", 62_500, 246),
    ],
)
def test_stage_two_epoch_of_each_recipe_is_mislas(name, n_train, steps):
    from lcreg_keras.recipes import datasets

    config = importlib.import_module(f"lcreg_keras.recipes.{name}").get_config()
    assert config.stage2_epoch_size is None  # no override: MiSLAS's length
    assert config.stage2_samples_per_class == 4
    epoch = datasets.stage_two_sizes(config, np.zeros(n_train, np.int64))
    assert epoch.steps == steps
    assert epoch.examples == steps * epoch.batch_size
    # --stage2_epoch_size still picks another length, in whole batches.
    other = datasets.stage_two_sizes(config.replace(stage2_epoch_size=10_000), np.zeros(n_train))
    assert other.steps == 10_000 // config.batch_size


def test_large_recipes_use_the_right_backbones():
    from lcreg_keras.recipes import imagenet_lt
    from lcreg_keras.recipes import inaturalist2018
    from lcreg_keras.recipes import places_lt

    # MiSLAS trains torchvision's ResNet-50 (v1.5) from scratch on these two ...
    for module in (imagenet_lt, inaturalist2018):
        assert module.get_config().backbone == "resnet50_v1_5"
        assert "v1.5" in module.__doc__
    # ... and uses ImageNet weights on Places-LT: keras.applications' ResNet-152.
    assert places_lt.get_config().backbone == "places_resnet152"
    assert places_lt.get_config().backbone_weights == "imagenet"
    assert "keras.applications" in places_lt.__doc__


def test_best_over_epochs_reads_validated_epochs_of_history(tmp_path):
    # As Keras' CSVLogger writes it with validation_freq=2 ("NA" on the other
    # epochs), a resumed run repeating epoch 3 (the later row wins).
    (tmp_path / "history.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n"
        "0,0.3,2.0,NA,NA\n"
        "1,0.4,1.8,0.41,1.9\n"
        "2,0.5,1.6,NA,NA\n"
        "3,0.6,1.4,0.47,1.7\n"
        "3,0.6,1.4,0.45,1.7\n"
        "4,0.7,1.2,NA,NA\n"
        "5,0.7,1.2,0.44,1.8\n"
    )
    best = runner.best_over_epochs(str(tmp_path), 0.43, 6)
    assert best == {"top1_last": 0.43, "top1_best": 0.45, "top1_best_epoch": 4}
    # The final evaluation counts as the last epoch; ties go to the earliest.
    assert runner.best_over_epochs(str(tmp_path), 0.46, 6)["top1_best_epoch"] == 6
    assert runner.best_over_epochs(str(tmp_path), 0.45, 6)["top1_best_epoch"] == 4
    # Without a history (or validation) the best is the last.
    assert runner.best_over_epochs(str(tmp_path / "none"), 0.5, 3) == {
        "top1_last": 0.5, "top1_best": 0.5, "top1_best_epoch": 3,
    }
