"""lcreg-keras: long-tailed recognition by learning from latent categories (LCReg), in Keras 3.

Importing the package registers every serializable class (layers, losses,
schedules, the model), so `keras.saving.load_model` finds them.
"""

from lcreg_keras import backbones  # noqa: F401  (registers PadShortcut)
from lcreg_keras import layers  # noqa: F401
from lcreg_keras import losses  # noqa: F401
from lcreg_keras import training  # noqa: F401  (registers the schedules)
from lcreg_keras.models import LCRegModel
from lcreg_keras.training.stage_two import DecoupledStageTwo

__version__ = "0.1.0"

__all__ = ["DecoupledStageTwo", "LCRegModel", "__version__"]
