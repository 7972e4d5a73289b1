"""Every recipe module and every flagfile in recipes/ parses into a sane config."""

import dataclasses
import glob
import importlib
import os

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
    if config.stage == "2":
        assert config.paper_top1 is not None
    text = open(path).read()
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
