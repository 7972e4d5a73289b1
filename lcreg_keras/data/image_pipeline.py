"""The old home of the image-file pipelines, kept for imports.

The builders moved to `lcreg_keras.data.file_pipelines`, the image ops to
`lcreg_keras.data.transforms`, the scan's refusal or dropping of unreadable
files to `lcreg_keras.data.image_files.keep_readable`.
"""

from lcreg_keras.data.normalization import IMAGENET_MEAN  # noqa: F401
from lcreg_keras.data.normalization import IMAGENET_STD  # noqa: F401
from lcreg_keras.data.normalization import INATURALIST_MEAN  # noqa: F401
from lcreg_keras.data.normalization import INATURALIST_STD  # noqa: F401
from lcreg_keras.data.epochs import PipelineState  # noqa: F401
from lcreg_keras.data.file_pipelines import dataset_paths  # noqa: F401
from lcreg_keras.data.file_pipelines import evaluated_labels  # noqa: F401
from lcreg_keras.data.file_pipelines import image_check  # noqa: F401
from lcreg_keras.data.file_pipelines import image_eval_dataset  # noqa: F401
from lcreg_keras.data.file_pipelines import image_train_dataset  # noqa: F401
from lcreg_keras.data.file_pipelines import read_failures  # noqa: F401
from lcreg_keras.data.file_pipelines import skipped_images  # noqa: F401
from lcreg_keras.data.transforms import center_crop  # noqa: F401
from lcreg_keras.data.transforms import random_color_jitter  # noqa: F401
from lcreg_keras.data.transforms import random_resized_crop_window  # noqa: F401
from lcreg_keras.data.transforms import resize_shorter_side  # noqa: F401
