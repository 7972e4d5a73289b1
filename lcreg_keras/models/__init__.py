"""LCReg models."""

from lcreg_keras.models.lcreg_model import LCRegModel

__all__ = ["LCRegModel"]
