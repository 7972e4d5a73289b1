"""The tf.data dataset builders, in one namespace (arrays and image files).

The code lives by subject:

- `lcreg_keras.data.array_pipelines`: small images held in arrays (CIFAR,
  Fashion-MNIST): `small_image_train_dataset`, `small_image_eval_dataset`,
  `channel_stats`;
- `lcreg_keras.data.file_pipelines`: image files (ImageNet-LT, Places-LT,
  iNaturalist 2018): `image_train_dataset`, `image_eval_dataset` and the
  accessors of their state (`image_check`, `read_failures`,
  `dataset_paths`, `evaluated_labels`, `skipped_images`);
- `lcreg_keras.data.epochs`: what both use: the epoch skeleton keyed on
  `(seed, epoch, step)` (`keyed_epochs`), `PipelineState`, `mixup_batch`,
  the sampler (`check_sampler`, `class_aware_order`).

This module re-exports them (and `lcreg_keras.data.pipeline` is this module),
so `from lcreg_keras.data.pipelines import ...` keeps working.
"""

from lcreg_keras.data.array_pipelines import channel_stats  # noqa: F401
from lcreg_keras.data.array_pipelines import small_image_eval_dataset  # noqa: F401
from lcreg_keras.data.array_pipelines import small_image_train_dataset  # noqa: F401
from lcreg_keras.data.epochs import AUTOTUNE  # noqa: F401
from lcreg_keras.data.epochs import PipelineState  # noqa: F401
from lcreg_keras.data.epochs import check_sampler  # noqa: F401
from lcreg_keras.data.epochs import class_aware_order  # noqa: F401
from lcreg_keras.data.epochs import mixup_batch  # noqa: F401
from lcreg_keras.data.file_pipelines import dataset_paths  # noqa: F401
from lcreg_keras.data.file_pipelines import evaluated_labels  # noqa: F401
from lcreg_keras.data.file_pipelines import image_check  # noqa: F401
from lcreg_keras.data.file_pipelines import image_eval_dataset  # noqa: F401
from lcreg_keras.data.file_pipelines import image_train_dataset  # noqa: F401
from lcreg_keras.data.file_pipelines import read_failures  # noqa: F401
from lcreg_keras.data.file_pipelines import skipped_images  # noqa: F401
from lcreg_keras.data.image_files import ImageCheck  # noqa: F401
from lcreg_keras.data.normalization import IMAGENET_MEAN  # noqa: F401
from lcreg_keras.data.normalization import IMAGENET_STD  # noqa: F401
