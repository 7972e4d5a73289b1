"""LCReg's Keras layers: the latent pool, the reconstruction and the covariance state."""

from lcreg_keras.layers.classifier import LCRegClassifier
from lcreg_keras.layers.cosine_classifier import CosineClassifier
from lcreg_keras.layers.latent_covariance import LatentCovariance
from lcreg_keras.layers.latent_covariance import covariance_noise
from lcreg_keras.layers.latent_pool import LatentPool
from lcreg_keras.layers.latent_pool import part_features
from lcreg_keras.layers.latent_reconstruction import LatentReconstruction

__all__ = [
    "CosineClassifier",
    "LCRegClassifier",
    "LatentCovariance",
    "LatentPool",
    "LatentReconstruction",
    "covariance_noise",
    "part_features",
]
