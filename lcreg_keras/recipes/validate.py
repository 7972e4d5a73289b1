"""Checks a recipe's resolved config before the runner reads data or writes files.

`check_config(config)` raises `lcreg_keras.errors.UserError` naming the
flag, the value and what would be accepted, so `--epochs=0`,
`--imbalance_factor=-5` or `--data_dir=/nonexistent` fail in a second,
before a dataset is loaded or anything is written in `--model_dir`.
"""

import math
import os

from lcreg_keras.training import distribute
from lcreg_keras.backbones import BACKBONES
from lcreg_keras.data import image_files
from lcreg_keras.errors import UserError
from lcreg_keras.evaluation import INDEX_PRESETS
from lcreg_keras.lcreg.model import LATENT_AUG_SAMPLES
from lcreg_keras.recipes import baselines
from lcreg_keras.recipes import datasets

_EXPERIMENT_CHOICES = {
    "fusion": ("residual", "replace", "none"),
    "covariance": ("full", "diagonal"),
    "similarity": ("dot", "cosine"),
    "schedule": ("cosine", "warmup_step"),
    "stage": ("1", "2", "both"),
    "mixed_precision": (None, "", "mixed_bfloat16", "mixed_float16"),
}


# Classes of the array datasets (the list datasets' are in datasets.LIST_DATASETS).
_NUM_CLASSES = {"fashion_mnist_lt": 10, "cifar10_lt": 10, "cifar100_lt": 100}


def _fail(name, value, wanted):
    return UserError(f"--{name}={value!r} is not valid: {wanted}.")


def _number(config, name):
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(name, value, "expected a finite number")
    return value


def _integer(config, name, low, optional=False, why=""):
    value = getattr(config, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(name, value, f"expected an integer >= {low}{why}")


def _positive(config, name, optional=False):
    if getattr(config, name) is None and optional:
        return
    if not _number(config, name) > 0:
        raise _fail(name, getattr(config, name), "expected a number > 0")


def _non_negative(config, name):
    if not _number(config, name) >= 0:
        raise _fail(name, getattr(config, name), "expected a number >= 0")


def check_config(config):
    """Raises `UserError` for the first field of `config` that cannot run.

    Checks ranges (epochs, batch sizes, learning rates, imbalance factor,
    smoothing, ...), names (fusion, covariance, backbone, evaluation rule,
    distribution, stage, ...), that `--data_dir` is an existing folder when
    given, and `--check_images` (with `decode`, that the strict decoder is
    installed). Reads no data and writes nothing.

    Args:
        config: a `lcreg_keras.recipes.config.Config`, flags applied.

    Returns:
        The config, unchanged.
    """
    if config.dataset not in datasets.LOADERS:
        raise _fail("dataset", config.dataset, f"known datasets: {', '.join(sorted(datasets.LOADERS))}")
    _integer(config, "epochs", 1)
    _integer(config, "batch_size", 1)
    _integer(config, "warmup_epochs", 0)
    if config.warmup_epochs > config.epochs:
        raise _fail("warmup_epochs", config.warmup_epochs,
                    f"at most the {config.epochs} epochs of stage one")
    _positive(config, "lr")
    _non_negative(config, "momentum")
    _non_negative(config, "weight_decay")
    if not _number(config, "imbalance_factor") >= 1:
        raise _fail("imbalance_factor", config.imbalance_factor,
                    "expected a number >= 1 (N_max / N_min; 1 is a balanced set)")
    _integer(config, "num_latents", 1)
    _non_negative(config, "mixup_alpha")
    for name in ("alpha", "beta", "gamma", "isda_lambda0", "color_jitter"):
        _non_negative(config, name)
    _positive(config, "temperature")
    if config.latent_aug_samples not in LATENT_AUG_SAMPLES:
        raise _fail("latent_aug_samples", config.latent_aug_samples,
                    f"one of {', '.join(LATENT_AUG_SAMPLES)}")
    if config.latent_aug_explicit and not (config.latent and config.latent_aug):
        raise _fail("latent_aug_explicit", config.latent_aug_explicit,
                    "it draws from the covariance that L_aug estimates: it needs --latent "
                    "and --latent_aug")
    _integer(config, "subset_seed", 0)
    for name, choices in _EXPERIMENT_CHOICES.items():
        if getattr(config, name) not in choices:
            shown = ", ".join(str(c) for c in choices if c)
            raise _fail(name, getattr(config, name), f"one of {shown}")
    if str(config.backbone).lower() not in BACKBONES:
        raise _fail("backbone", config.backbone, f"one of {', '.join(BACKBONES)}")
    if config.eval_rule != "count" and config.eval_rule not in INDEX_PRESETS:
        raise _fail("eval_rule", config.eval_rule,
                    f"count or an index preset ({', '.join(INDEX_PRESETS)})")
    num_classes = _NUM_CLASSES.get(config.dataset) or datasets.LIST_DATASETS[config.dataset][0]
    if config.eval_rule in INDEX_PRESETS and INDEX_PRESETS[config.eval_rule][-1][1] != num_classes:
        raise _fail("eval_rule", config.eval_rule,
                    f"its ranges cover {INDEX_PRESETS[config.eval_rule][-1][1]} classes, "
                    f"{config.dataset} has {num_classes} (use count or the dataset's preset)")
    weights = config.backbone_weights
    if weights not in (None, "", "none", "imagenet") and not os.path.isfile(
            os.path.expanduser(str(weights))):
        raise _fail("backbone_weights", weights, "none, imagenet or an existing weights file")
    if config.distribution not in distribute.CHOICES:
        raise _fail("distribution", config.distribution, f"one of {', '.join(distribute.CHOICES)}")
    _integer(config, "image_size", 1)
    _integer(config, "resize_size", config.image_size,
             why=f" (the --image_size {config.image_size} centre crop is cut from it)")
    if config.dct_scaling and config.dataset not in datasets.LIST_DATASETS:
        raise _fail("dct_scaling", config.dct_scaling,
                    f"it scales the JPEG decode of image files; {config.dataset} is decoded "
                    f"already (image-file datasets: {', '.join(sorted(datasets.LIST_DATASETS))})")
    _integer(config, "eval_every", 0)
    _integer(config, "eval_batch_size", 1)
    _integer(config, "max_train_examples", 1, optional=True)
    _integer(config, "max_test_examples", 1, optional=True)
    fractions = tuple(config.lr_decay_at)
    if any(not 0 < f <= 1 for f in fractions) or list(fractions) != sorted(fractions):
        raise _fail("lr_decay_at", fractions, "increasing fractions of the epochs in (0, 1]")
    if len(config.lr_decay_factors) != len(fractions):
        raise _fail("lr_decay_factors", config.lr_decay_factors,
                    f"one factor for each of the {len(fractions)} decay points")
    if config.stage in ("2", "both"):
        _integer(config, "stage2_epochs", 1)
        _positive(config, "stage2_lr", optional=True)
        _positive(config, "stage2_lr_factor")
        _integer(config, "stage2_batch_size", 1, optional=True)
        _integer(config, "stage2_epoch_size", 1, optional=True)
        for name in ("eps_head", "eps_tail"):
            if not 0 <= _number(config, name) < 1:
                raise _fail(name, getattr(config, name), "a smoothing in [0, 1)")
    baselines.check(config)  # --loss, --stage2, --posthoc_tau and their parameters
    if config.data_dir:
        folder = os.path.expanduser(str(config.data_dir))
        if not os.path.isdir(folder):
            raise UserError(
                f"--data_dir={config.data_dir} is not a folder"
                f"{' (no such path)' if not os.path.exists(folder) else ''}: give the folder "
                "that holds the dataset, or leave --data_dir out to use the default places "
                "(where the recipe says)."
            )
    if not config.model_dir:
        raise _fail("model_dir", config.model_dir, "a folder for the run's outputs")
    if os.path.exists(config.model_dir) and not os.path.isdir(config.model_dir):
        raise _fail("model_dir", config.model_dir, "a folder, not a file")
    if datasets.check_mode(config.check_images) == "decode":
        missing = image_files.strict_decoder_missing()
        if missing:
            raise UserError(missing)
    if config.stage == "2":
        done = os.path.join(config.model_dir, "stage1", "done.json")
        if not os.path.exists(done):
            raise UserError(
                f"--stage=2 needs a finished stage one in {os.path.dirname(done)} "
                "(run --stage=1 or --stage=both first, with the same --model_dir)."
            )
    return config
