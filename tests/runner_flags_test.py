"""Runner flags of the Eq. 5-6 readings and the fixed long-tailed subset (issue 12)."""

import dataclasses

import numpy as np
import pytest
from absl import flags

from lcreg_keras.training.callbacks import LossShareMonitor
from lcreg_keras.recipes import datasets
from lcreg_keras.recipes import runner
from lcreg_keras.recipes.config import Config


def parse(args):
    runner.define_flags()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["recipe"] + args)


def test_new_flags_reach_the_config():
    parse(["--latent_aug_samples=parts", "--latent_aug_explicit", "--subset_seed=3",
           "--isda_lambda0=0", "--latent_recon=false"])
    config = runner.apply_flags(Config())
    assert config.latent_aug_samples == "parts" and config.latent_aug_explicit is True
    assert config.subset_seed == 3
    # 0 is a value, not "flag not given": Table 4's "latent category only".
    assert config.isda_lambda0 == 0.0 and config.latent_recon is False
    parse([])
    default = runner.apply_flags(Config())
    assert default.latent_aug_samples == "latents" and default.latent_aug_explicit is False
    assert default.subset_seed == 0 and default.isda_lambda0 == 0.5
    fields = {f.name for f in dataclasses.fields(Config)}
    assert {name for name, _, _ in runner.FLAG_FIELDS} <= fields


def test_the_model_gets_the_new_options():
    data = type("D", (), {"input_shape": (28, 28, 1), "num_classes": 10})()
    config = Config(backbone="resnet8", backbone_width=4, num_latents=8,
                    latent_aug_samples="parts", latent_aug_explicit=True, isda_lambda0=0.0)
    model = runner.build_model(config, data)
    assert model.latent_aug_samples == "parts" and model.latent_aug_explicit
    assert model.isda_lambda0 == 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"latent_aug_samples": "pixels"}, "latent_aug_samples"),
        ({"latent_aug": False, "latent_aug_explicit": True}, "latent_aug_explicit"),
        ({"subset_seed": -1}, "subset_seed"),
        ({"fusion": "sum"}, "fusion"),
        ({"covariance": "banded"}, "covariance"),
        ({"stage": "3"}, "stage"),
        ({"dct_scaling": True}, "dct_scaling"),  # Fashion-MNIST has no JPEG files
    ],
)
def test_bad_values_fail_before_any_data_is_read(tmp_path, change, message):
    # A missing data folder would raise a different error if data were read first.
    config = Config(data_dir=str(tmp_path / "missing"), model_dir=str(tmp_path / "run"), **change)
    with pytest.raises(ValueError, match=message):
        runner.run(config)
    assert not (tmp_path / "run").exists()


def test_long_tailed_subset_is_fixed_across_run_seeds():
    labels = np.repeat(np.arange(10), 300)
    images = np.arange(len(labels))  # each image is its own index
    config = Config(imbalance_factor=10.0)

    def subset(**change):
        x, y = datasets.capped_long_tail(images, labels, config.replace(**change), 300, 10)
        return x

    a, b = subset(seed=0), subset(seed=7)
    np.testing.assert_array_equal(a, b)
    c = subset(seed=0, subset_seed=1)
    assert len(c) == len(a) and not np.array_equal(np.sort(a), np.sort(c))
    # The smoke caps follow the subset seed too.
    test_labels = np.arange(1000) % 10
    capped = lambda **ch: datasets.capped_test(  # noqa: E731
        images[:1000], test_labels, config.replace(max_test_examples=100, **ch))[0]
    np.testing.assert_array_equal(capped(seed=0), capped(seed=5))
    assert not np.array_equal(capped(subset_seed=0), capped(subset_seed=2))


def test_stage_callbacks_watch_the_loss_shares(tmp_path):
    config = Config(model_dir=str(tmp_path))
    callbacks = runner.stage_callbacks(config, str(tmp_path / "stage1"), validate=False)
    assert sum(isinstance(c, LossShareMonitor) for c in callbacks) == 1
    plain = runner.stage_callbacks(config.replace(latent=False), str(tmp_path / "s"), False)
    assert not any(isinstance(c, LossShareMonitor) for c in plain)
