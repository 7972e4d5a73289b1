"""The long-tailed baselines of the recipes: `--loss`, `--stage2`, `--posthoc_tau`.

Every recipe runs any stage-one loss with any second stage, with or without
LCReg's latent categories:

- `--loss` (stage one's `L_cls` in Eq. 7):
  `ce` (softmax cross-entropy, the default),
  `logit_adjusted` (`--la_tau`), `balanced_softmax`,
  `ldam_drw` (`--ldam_s`, `--ldam_max_margin`, `--drw_epoch`, `--cb_beta`;
  the model gets a cosine classifier, see `CosineLCRegModel`),
  `cb_softmax` (`--cb_beta`), `cb_focal` (`--cb_beta`, `--focal_gamma`);
- `--stage2` (what `--stage=2|both` runs):
  `mislas` (MiSLAS's decoupled fine-tuning, `DecoupledStageTwo`, the
  default), `crt` (`ClassifierRetraining`), `lws` (`LearnableWeightScaling`),
  `tau_norm` (`TauNormalization`, `tau` chosen on `--heldout_fraction` of the
  training data), `none` (no second stage);
- `--posthoc_tau`: every reported evaluation uses the logits
  `z - tau * log pi` (post-hoc logit adjustment); 0 turns it off.

`check(config)` validates all of it before any data is read.
"""

import math

import numpy as np

from lcreg_keras.training.decoupling import ClassifierRetraining
from lcreg_keras.training.decoupling import LearnableWeightScaling
from lcreg_keras.errors import UserError
from lcreg_keras.losses import long_tail
from lcreg_keras.lcreg.model import LCRegModel
from lcreg_keras.lcreg.cosine_model import CosineLCRegModel
from lcreg_keras.training.stage_two import DecoupledStageTwo

LOSSES = ("ce", "logit_adjusted", "balanced_softmax", "ldam_drw", "cb_softmax", "cb_focal")
STAGE2 = ("mislas", "crt", "lws", "tau_norm", "none")
# Held out for tau-normalisation when --heldout_fraction is not given.
DEFAULT_HELDOUT_FRACTION = 0.1
# Cao et al. switch to the re-weighted loss at epoch 160 of 200.
DRW_FRACTION = 0.8


def _number(config, name, what, ok):
    value = getattr(config, name)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and ok(value)):
        raise UserError(f"`--{name}` must be {what}. Received: {value!r}")


def heldout_fraction(config):
    """The fraction of each class held out of training (0: none)."""
    if config.heldout_fraction is not None:
        return float(config.heldout_fraction)
    return DEFAULT_HELDOUT_FRACTION if config.stage2 == "tau_norm" else 0.0


def drw_epoch(config):
    """The first (0-based) re-weighted epoch of LDAM-DRW."""
    if config.drw_epoch is not None:
        return int(config.drw_epoch)
    return int(DRW_FRACTION * config.epochs)


def check(config):
    """Raises UserError (a ValueError) for a bad baseline setting (call before reading data)."""
    if config.loss not in LOSSES:
        raise UserError(f"`--loss` must be one of {', '.join(LOSSES)}. Received: {config.loss!r}")
    if config.stage2 not in STAGE2:
        raise UserError(
            f"`--stage2` must be one of {', '.join(STAGE2)}. Received: {config.stage2!r}"
        )
    _number(config, "la_tau", "a number >= 0", lambda v: v >= 0)
    _number(config, "ldam_s", "a number > 0", lambda v: v > 0)
    _number(config, "ldam_max_margin", "a number > 0", lambda v: v > 0)
    _number(config, "cb_beta", "a number in [0, 1)", lambda v: 0 <= v < 1)
    _number(config, "focal_gamma", "a number >= 0", lambda v: v >= 0)
    _number(config, "posthoc_tau", "a number >= 0", lambda v: v >= 0)
    if config.drw_epoch is not None and (
        isinstance(config.drw_epoch, bool) or not isinstance(config.drw_epoch, int)
        or config.drw_epoch < 0
    ):
        raise UserError(f"`--drw_epoch` must be an int >= 0. Received: {config.drw_epoch!r}")
    if config.heldout_fraction is not None:
        _number(config, "heldout_fraction", "a number in [0, 1)", lambda v: 0 <= v < 1)
    if config.stage2 == "tau_norm" and heldout_fraction(config) == 0.0:
        raise UserError(
            "`--stage2=tau_norm` chooses tau on held-out training data: "
            "`--heldout_fraction` must be > 0 (default 0.1)."
        )
    if config.stage == "2" and config.stage2 == "none":
        raise UserError("`--stage=2` with `--stage2=none` has nothing to run.")
    if config.stage2 == "tau_norm" and config.loss == "ldam_drw":
        raise UserError(
            "`--stage2=tau_norm` rescales class-weight norms, which LDAM's cosine "
            "classifier normalises away; pick another second stage."
        )


def runs_stage_two(config):
    return config.stage in ("2", "both") and config.stage2 != "none"


def prior_counts(counts):
    """Training counts for priors / margins / weights: a class without examples counts 1."""
    return np.maximum(np.asarray(counts, np.int64), 1).tolist()


def stage_one_loss(config, counts):
    """The compiled `L_cls` of stage one, or None for the model's default cross-entropy."""
    counts = prior_counts(counts)
    if config.loss == "ce":
        return None
    if config.loss == "logit_adjusted":
        return long_tail.LogitAdjustedCrossentropy(counts, tau=config.la_tau)
    if config.loss == "balanced_softmax":
        return long_tail.BalancedSoftmaxCrossentropy(counts)
    if config.loss == "ldam_drw":
        return long_tail.LDAMLoss(
            counts, max_margin=config.ldam_max_margin, scale=config.ldam_s,
            drw_epoch=drw_epoch(config), drw_beta=config.cb_beta,
        )
    if config.loss == "cb_softmax":
        return long_tail.ClassBalancedCrossentropy(counts, beta=config.cb_beta)
    return long_tail.ClassBalancedFocalLoss(counts, beta=config.cb_beta, gamma=config.focal_gamma)


def stage_one_callbacks(config):
    """Callbacks the stage-one loss needs (DRW's switch)."""
    if config.loss == "ldam_drw":
        return [long_tail.DeferredReweighting()]
    return []


def model_class(config):
    """`(class, extra kwargs)` of the stage-one model."""
    if config.loss == "ldam_drw":
        return CosineLCRegModel, {"classifier_scale": config.ldam_s}
    return LCRegModel, {}


def prepare_model(config, model):
    """Loss-specific initialisation of a built stage-one model."""
    if config.loss == "cb_focal":
        # Cui et al.: bias b = -log((1 - pi) / pi), pi = 0.1, for the sigmoid losses.
        bias = model.classifier.bias
        bias.assign(np.full(bias.shape, -math.log(9.0), "float32"))


def describe_stage_one(config):
    """What the stage-one loss is, for the log."""
    if config.loss == "ce":
        return "softmax cross-entropy"
    if config.loss == "logit_adjusted":
        return f"logit-adjusted cross-entropy (tau {config.la_tau:g})"
    if config.loss == "balanced_softmax":
        return "balanced softmax"
    if config.loss == "ldam_drw":
        return (f"LDAM (s {config.ldam_s:g}, max margin {config.ldam_max_margin:g}, cosine "
                f"classifier), DRW from epoch {drw_epoch(config)} (beta {config.cb_beta:g})")
    if config.loss == "cb_softmax":
        return f"class-balanced softmax (beta {config.cb_beta:g})"
    return f"class-balanced focal (beta {config.cb_beta:g}, gamma {config.focal_gamma:g})"


def stage_two_method(config, counts):
    """The `DecoupledStageTwo` of `--stage2` (not tau_norm / none) and a description."""
    lr = config.stage2_lr or config.lr
    common = dict(epochs=config.stage2_epochs, lr=lr, weight_decay=config.weight_decay,
                  momentum=config.momentum)
    if config.stage2 == "crt":
        return ClassifierRetraining(counts, **common), (
            f"cRT: classifier re-initialised and re-trained at lr {lr:g}, cross-entropy")
    if config.stage2 == "lws":
        return LearnableWeightScaling(counts, **common), (
            f"LWS: only the per-class logit scales trained at lr {lr:g}, cross-entropy")
    method = DecoupledStageTwo(
        counts, lr_factor=config.stage2_lr_factor, eps_head=config.eps_head,
        eps_tail=config.eps_tail, shift_bn=config.shift_bn, **common,
    )
    return method, (
        f"MiSLAS: classifier lr x{config.stage2_lr_factor}, label-aware smoothing "
        f"{config.eps_head}/{config.eps_tail}, shifted BN {'on' if config.shift_bn else 'off'}")
