"""lcreg-keras: long-tailed recognition by learning from latent categories (LCReg), in Keras 3.

Importing the package registers every serializable class (layers, losses,
schedules, the model), so `keras.saving.load_model` finds them.

TensorFlow's oneDNN kernels are switched on (`TF_ENABLE_ONEDNN_OPTS=1`)
unless the environment says otherwise. TensorFlow turns them on by itself
only on CPUs with AVX-512 or AMX; on an AVX2 CPU (AMD EPYC Zen 3, the CI
machines) they double the ResNet-32 training step (`docs/results.md`,
issue 16). The switch is read when TensorFlow is first imported, so it acts
when `lcreg_keras` (or a recipe module) is imported before TensorFlow and
Keras; set the variable yourself otherwise.
"""

import os
import sys

if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from lcreg_keras import backbones  # noqa: E402,F401  (registers PadShortcut)
from lcreg_keras import layers  # noqa: E402,F401
from lcreg_keras import losses  # noqa: E402,F401
from lcreg_keras import training  # noqa: E402,F401  (registers the schedules)
from lcreg_keras.models import LCRegModel  # noqa: E402
from lcreg_keras.training.stage_two import DecoupledStageTwo  # noqa: E402

__version__ = "0.1.0"

__all__ = ["DecoupledStageTwo", "LCRegModel", "__version__"]
