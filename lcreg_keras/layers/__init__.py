"""Keras layers: the generic classifier heads here; LCReg's latent layers live in `lcreg_keras.lcreg`.

`LatentPool`, `LatentReconstruction`, `LatentCovariance`, `covariance_noise`
and `part_features` are re-exported here so `lcreg_keras.layers.LatentPool`
keeps working.
"""

from lcreg_keras.layers.classifier import LCRegClassifier
from lcreg_keras.layers.cosine_classifier import CosineClassifier
from lcreg_keras.lcreg.latent_covariance import LatentCovariance
from lcreg_keras.lcreg.latent_covariance import covariance_noise
from lcreg_keras.lcreg.latent_isda import part_features
from lcreg_keras.lcreg.latent_pool import LatentPool
from lcreg_keras.lcreg.latent_reconstruction import LatentReconstruction

__all__ = [
    "CosineClassifier",
    "LCRegClassifier",
    "LatentCovariance",
    "LatentPool",
    "LatentReconstruction",
    "covariance_noise",
    "part_features",
]
