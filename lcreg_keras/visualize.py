"""The old home of the pictures, kept for imports.

The Fig. 4 pictures and the evaluation plots moved to
`lcreg_keras.evaluation.plots`; the training callback `LatentUsageImages` to
`lcreg_keras.training.latent_images`.
"""

from lcreg_keras.evaluation.plots import HIGHLIGHT  # noqa: F401
from lcreg_keras.evaluation.plots import figure_to_array  # noqa: F401
from lcreg_keras.evaluation.plots import latent_usage_figure  # noqa: F401
from lcreg_keras.evaluation.plots import latent_usage_image  # noqa: F401
from lcreg_keras.evaluation.plots import latent_weights  # noqa: F401
from lcreg_keras.evaluation.plots import plot_accuracy_by_frequency  # noqa: F401
from lcreg_keras.evaluation.plots import plot_latent_histograms  # noqa: F401
from lcreg_keras.evaluation.plots import plot_reliability  # noqa: F401
from lcreg_keras.training.latent_images import LatentUsageImages  # noqa: F401
