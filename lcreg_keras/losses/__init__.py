"""Losses of LCReg: latent ISDA (Eq. 6) and label-aware smoothing (stage 2)."""

from lcreg_keras.losses.classification import SoftmaxCrossentropy
from lcreg_keras.losses.classification import Top1Accuracy
from lcreg_keras.losses.isda import isda_quadratic
from lcreg_keras.losses.isda import latent_isda_loss
from lcreg_keras.losses.label_aware_smoothing import LabelAwareSmoothing
from lcreg_keras.losses.label_aware_smoothing import label_aware_epsilons

__all__ = [
    "LabelAwareSmoothing",
    "SoftmaxCrossentropy",
    "Top1Accuracy",
    "isda_quadratic",
    "label_aware_epsilons",
    "latent_isda_loss",
]
