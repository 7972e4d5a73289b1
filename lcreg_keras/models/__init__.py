"""LCReg models (aliases: the models live in `lcreg_keras.lcreg`)."""

from lcreg_keras.lcreg.cosine_model import CosineLCRegModel
from lcreg_keras.lcreg.model import LCRegModel

__all__ = ["CosineLCRegModel", "LCRegModel"]
