"""The paper in one package: LCReg's Eq. 1-7 (docs/equations.md maps each to its file).

- `latent_pool.py`: the latent features and their similarity maps (Eq. 1).
- `latent_reconstruction.py`: normalised maps, reconstruction, L_recon (Eq. 2-4).
- `latent_covariance.py`: the latent classes' covariance `Sigma'` and draws
  `delta ~ N(0, lambda Sigma')` (Eq. 5).
- `latent_isda.py`: the latent classes and the latent ISDA loss L_aug (Eq. 6).
- `model.py`: `LCRegModel`, the forward pass and Eq. 7 (`compute_loss`).
- `cosine_model.py`: `CosineLCRegModel` (a cosine head, for LDAM).
- `diagnostics.py`: latent-usage summaries (spec Sec. 9).
"""

from lcreg_keras.lcreg.cosine_model import CosineLCRegModel
from lcreg_keras.lcreg.diagnostics import latent_usage
from lcreg_keras.lcreg.latent_covariance import LatentCovariance
from lcreg_keras.lcreg.latent_covariance import covariance_noise
from lcreg_keras.lcreg.latent_isda import isda_quadratic
from lcreg_keras.lcreg.latent_isda import latent_isda_loss
from lcreg_keras.lcreg.latent_isda import part_features
from lcreg_keras.lcreg.latent_pool import LatentPool
from lcreg_keras.lcreg.latent_reconstruction import LatentReconstruction
from lcreg_keras.lcreg.model import LCRegModel

__all__ = [
    "CosineLCRegModel",
    "LCRegModel",
    "LatentCovariance",
    "LatentPool",
    "LatentReconstruction",
    "covariance_noise",
    "isda_quadratic",
    "latent_isda_loss",
    "latent_usage",
    "part_features",
]
