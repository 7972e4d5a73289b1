"""The baselines in the recipes: flags, validation, the held-out split, a smoke run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from lcreg_keras.data.heldout import heldout_split
from lcreg_keras.recipes import baselines
from lcreg_keras.recipes import runner
from lcreg_keras.recipes.config import Config
from tests.fakes import fake_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import study_rows  # noqa: E402


def parse(args):
    runner.define_flags()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["recipe"] + args)
    return runner.apply_flags(Config())


# --------------------------------------------------------------------------
# The held-out split.


def test_heldout_split_partitions_each_class():
    labels = np.repeat(np.arange(5), [600, 200, 60, 7, 1])
    train, held = heldout_split(labels, 0.1, seed=3)
    assert np.intersect1d(train, held).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, held])), np.arange(len(labels)))
    assert np.bincount(labels[held], minlength=5).tolist() == [60, 20, 6, 1, 0]
    assert np.all(np.bincount(labels[train], minlength=5) >= 1)  # every class still trains
    again = heldout_split(labels, 0.1, seed=3)
    np.testing.assert_array_equal(again[1], held)
    assert not np.array_equal(heldout_split(labels, 0.1, seed=4)[1], held)
    everything, nothing = heldout_split(labels, 0.0)
    assert len(everything) == len(labels) and len(nothing) == 0
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(ValueError, match="fraction"):
            heldout_split(labels, bad)


# --------------------------------------------------------------------------
# Flags and validation.


def test_flags_reach_the_config():
    config = parse(["--loss=ldam_drw", "--ldam_s=20", "--ldam_max_margin=0.3", "--drw_epoch=7",
                    "--cb_beta=0.999", "--stage2=crt", "--posthoc_tau=0.5", "--heldout_fraction=0.2"])
    assert (config.loss, config.ldam_s, config.ldam_max_margin, config.drw_epoch) == ("ldam_drw", 20, 0.3, 7)
    assert (config.cb_beta, config.stage2, config.posthoc_tau) == (0.999, "crt", 0.5)
    assert baselines.heldout_fraction(config) == 0.2
    defaults = parse([])
    assert (defaults.loss, defaults.stage2, defaults.posthoc_tau) == ("ce", "mislas", 0.0)
    assert baselines.heldout_fraction(defaults) == 0.0
    assert baselines.heldout_fraction(defaults.replace(stage2="tau_norm")) == 0.1
    assert baselines.drw_epoch(defaults.replace(epochs=200)) == 160  # Cao et al.


@pytest.mark.parametrize("change, flag", [
    ({"loss": "focal"}, "--loss"),
    ({"stage2": "decouple"}, "--stage2"),
    ({"la_tau": -1.0}, "--la_tau"),
    ({"ldam_s": 0.0}, "--ldam_s"),
    ({"ldam_max_margin": -0.5}, "--ldam_max_margin"),
    ({"drw_epoch": -2}, "--drw_epoch"),
    ({"cb_beta": 1.0}, "--cb_beta"),
    ({"focal_gamma": float("nan")}, "--focal_gamma"),
    ({"posthoc_tau": -0.1}, "--posthoc_tau"),
    ({"heldout_fraction": 1.0}, "--heldout_fraction"),
    ({"stage2": "tau_norm", "heldout_fraction": 0.0}, "--heldout_fraction"),
    ({"stage": "2", "stage2": "none"}, "nothing to run"),
    ({"stage2": "tau_norm", "loss": "ldam_drw"}, "cosine"),
])
def test_bad_values_fail_before_any_data_is_read(change, flag, tmp_path):
    config = Config(data_dir=str(tmp_path / "missing"), model_dir=str(tmp_path / "run"), **change)
    with pytest.raises(ValueError, match=flag):
        runner.run(config)
    assert not (tmp_path / "run").exists()


def test_every_baseline_row_of_the_study_is_a_valid_config():
    for row in study_rows.BASELINE_ROWS + ("lws", "cb_softmax", "cb_focal"):
        config = parse(study_rows.ROWS[row])
        baselines.check(config)
        if row not in ("mislas", "lcreg"):
            assert config.mixup_alpha == 0 and not config.latent, row


def test_stage_one_losses_and_stage_two_methods(tmp_path):
    counts = [50, 10, 0]  # a class without examples counts 1 for priors and weights
    for loss in baselines.LOSSES:
        config = Config(loss=loss)
        baselines.check(config)
        built = baselines.stage_one_loss(config, counts)
        assert (built is None) == (loss == "ce")
        if built is not None:
            assert built.class_counts == [50, 10, 1]
    from lcreg_keras.training.decoupling import ClassifierRetraining
    from lcreg_keras.training.decoupling import LearnableWeightScaling
    from lcreg_keras.training.stage_two import DecoupledStageTwo

    kinds = {"mislas": DecoupledStageTwo, "crt": ClassifierRetraining, "lws": LearnableWeightScaling}
    for name, kind in kinds.items():
        method, _ = baselines.stage_two_method(Config(stage2=name), counts)
        assert type(method) is kind


# --------------------------------------------------------------------------
# End to end: tau-norm and post-hoc LA in one smoke run, then cRT; LDAM-DRW.


def run_recipe(*args):
    cmd = [sys.executable, "-m", "lcreg_keras.recipes.fashion_mnist_lt", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ))


def smoke_flags(tmp_path):
    data_dir = tmp_path / "fashion"
    fake_fashion_mnist(data_dir, n_train=6000, n_test=300, learnable=True)
    return ["--smoke", f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}", "--verbose=2",
            "--imbalance_factor=10", "--latent=false", "--mixup_alpha=0", "--epochs=1"]


def test_smoke_run_tau_norm_and_posthoc_adjustment(tmp_path):
    import keras

    from lcreg_keras.posthoc import adjust_logits
    from lcreg_keras.recipes import datasets

    common = smoke_flags(tmp_path)
    out = tmp_path / "run"
    proc = run_recipe(*common, "--stage=both", "--loss=balanced_softmax", "--stage2=tau_norm",
                      "--posthoc_tau=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "L_cls = balanced softmax" in proc.stdout and "held-out training examples" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    held = metrics["heldout_examples"]
    assert held > 0 and metrics["stages"]["stage1"]["heldout_fraction"] == 0.1
    chosen = metrics["stages"]["stage2"]["tau_norm"]
    assert chosen["heldout_examples"] == held
    assert chosen["heldout_balanced_accuracy"] == max(a for _, a in chosen["curve"])
    assert chosen["tau"] in [t for t, _ in chosen["curve"]]

    # The reported numbers are those of the adjusted logits of the final
    # model, with the counts of the training part (the held-out part carved away).
    assert metrics["posthoc_tau"] == 1.0
    data = datasets.load(parse(common + ["--stage2=tau_norm"]))
    assert int(data.train_counts.sum()) == metrics["train_examples"]
    assert len(data.heldout_labels) == held
    model = keras.saving.load_model(str(out / "model.keras"))
    logits = model.predict(data.test, verbose=0)
    adjusted = adjust_logits(logits, np.maximum(data.train_counts, 1), 1.0)
    assert metrics["top1"] == pytest.approx(np.mean(np.argmax(adjusted, 1) == data.test_labels))
    unadjusted = np.mean(np.argmax(logits, 1) == data.test_labels)
    assert metrics["unadjusted"]["top1"] == pytest.approx(unadjusted)

    # A second stage that holds out less than stage one did is refused (before any data is read).
    with pytest.raises(ValueError, match="held out 0.1"):
        runner._check_heldout(parse(common + ["--stage=2", "--stage2=crt"]), str(out / "stage1"))
    runner._check_heldout(parse(common + ["--stage2=crt", "--heldout_fraction=0.1"]), str(out / "stage1"))


@pytest.mark.slow
def test_smoke_run_ldam_drw_then_crt(tmp_path):
    # Four epochs: after two (DRW from the second), the cosine model can still sit near chance
    # at test time (it did on an AMX Xeon with oneDNN: 11 %, one class predicted).
    proc = run_recipe(*smoke_flags(tmp_path), "--epochs=4", "--loss=ldam_drw", "--drw_epoch=3",
                      "--stage=both", "--stage2=crt")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "LDAM (s 30, max margin 0.5, cosine classifier), DRW from epoch 3" in proc.stdout
    assert "cRT: classifier re-initialised" in proc.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["heldout_examples"] == 0 and set(metrics["stages"]) == {"stage1", "stage2"}
    assert metrics["stages"]["stage1"]["top1"] > 0.2
