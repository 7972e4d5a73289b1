"""LCReg models."""

from lcreg_keras.models.cosine_model import CosineLCRegModel
from lcreg_keras.models.lcreg_model import LCRegModel

__all__ = ["CosineLCRegModel", "LCRegModel"]
