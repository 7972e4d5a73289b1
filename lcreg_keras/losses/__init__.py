"""Losses: classification, label-aware smoothing (stage 2), long-tailed baselines; latent ISDA (Eq. 6) re-exported from `lcreg_keras.lcreg`."""

from lcreg_keras.losses.classification import SoftmaxCrossentropy
from lcreg_keras.losses.classification import Top1Accuracy
from lcreg_keras.lcreg.latent_isda import isda_quadratic
from lcreg_keras.lcreg.latent_isda import latent_isda_loss
from lcreg_keras.losses.label_aware_smoothing import LabelAwareSmoothing
from lcreg_keras.losses.label_aware_smoothing import label_aware_epsilons
from lcreg_keras.losses.long_tail import BalancedSoftmaxCrossentropy
from lcreg_keras.losses.long_tail import ClassBalancedCrossentropy
from lcreg_keras.losses.long_tail import ClassBalancedFocalLoss
from lcreg_keras.losses.long_tail import DeferredReweighting
from lcreg_keras.losses.long_tail import LDAMLoss
from lcreg_keras.losses.long_tail import LogitAdjustedCrossentropy
from lcreg_keras.losses.long_tail import class_priors
from lcreg_keras.losses.long_tail import effective_number_weights
from lcreg_keras.losses.long_tail import ldam_margins

__all__ = [
    "BalancedSoftmaxCrossentropy",
    "ClassBalancedCrossentropy",
    "ClassBalancedFocalLoss",
    "DeferredReweighting",
    "LDAMLoss",
    "LabelAwareSmoothing",
    "LogitAdjustedCrossentropy",
    "SoftmaxCrossentropy",
    "Top1Accuracy",
    "class_priors",
    "effective_number_weights",
    "isda_quadratic",
    "label_aware_epsilons",
    "latent_isda_loss",
    "ldam_margins",
]
