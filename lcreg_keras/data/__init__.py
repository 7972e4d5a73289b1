"""Data: sources, long-tailed subsets, samplers, image transforms, tf.data pipelines.

- sources: `fashion_mnist`, `cifar` (arrays), `image_lists` (list files),
  `image_files` (the header scan of image files, `keep_readable`);
- `long_tail` (the CIFAR-LT rule), `balanced` (the class-aware sampler and
  the stage-two epoch), `heldout` (a held-out split);
- `transforms`: the one copy of each image op (training, evaluation, export);
- `array_pipelines` (arrays), `file_pipelines` (image files): the tf.data
  builders; `epochs`: what both use (the epoch skeleton keyed on
  `(seed, epoch, step)`, `PipelineState`, mixup, the sampler);
  `pipelines` re-exports all three.
"""

from lcreg_keras.data.balanced import SAMPLES_PER_CLASS
from lcreg_keras.data.balanced import StageTwoEpoch
from lcreg_keras.data.balanced import class_aware_indices
from lcreg_keras.data.balanced import default_epoch_size
from lcreg_keras.data.balanced import stage_two_epoch
from lcreg_keras.data.cifar import CIFAR_MEAN
from lcreg_keras.data.cifar import CIFAR_STD
from lcreg_keras.data.cifar import load_cifar
from lcreg_keras.data.fashion_mnist import CLASS_NAMES as FASHION_MNIST_CLASSES
from lcreg_keras.data.fashion_mnist import load_fashion_mnist
from lcreg_keras.data.image_lists import read_any_list
from lcreg_keras.data.image_lists import read_image_list
from lcreg_keras.data.image_lists import read_inaturalist_json
from lcreg_keras.data.image_lists import resolve_list
from lcreg_keras.data.normalization import IMAGENET_MEAN
from lcreg_keras.data.normalization import IMAGENET_STD
from lcreg_keras.data.normalization import INATURALIST_MEAN
from lcreg_keras.data.normalization import INATURALIST_STD
from lcreg_keras.data.image_files import ImageCheck
from lcreg_keras.data.image_files import UnreadableImagesError
from lcreg_keras.data.image_files import check_images
from lcreg_keras.data.image_files import keep_readable
from lcreg_keras.data.long_tail import class_counts
from lcreg_keras.data.long_tail import long_tailed_counts
from lcreg_keras.data.long_tail import long_tailed_subset
from lcreg_keras.data.array_pipelines import channel_stats
from lcreg_keras.data.array_pipelines import small_image_eval_dataset
from lcreg_keras.data.array_pipelines import small_image_train_dataset
from lcreg_keras.data.epochs import PipelineState
from lcreg_keras.data.epochs import mixup_batch
from lcreg_keras.data.file_pipelines import image_eval_dataset
from lcreg_keras.data.file_pipelines import image_train_dataset
from lcreg_keras.data.file_pipelines import skipped_images

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "FASHION_MNIST_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INATURALIST_MEAN",
    "INATURALIST_STD",
    "ImageCheck",
    "PipelineState",
    "SAMPLES_PER_CLASS",
    "StageTwoEpoch",
    "UnreadableImagesError",
    "channel_stats",
    "check_images",
    "class_aware_indices",
    "class_counts",
    "default_epoch_size",
    "image_eval_dataset",
    "image_train_dataset",
    "keep_readable",
    "load_cifar",
    "load_fashion_mnist",
    "long_tailed_counts",
    "long_tailed_subset",
    "mixup_batch",
    "read_any_list",
    "read_image_list",
    "read_inaturalist_json",
    "resolve_list",
    "skipped_images",
    "small_image_eval_dataset",
    "small_image_train_dataset",
    "stage_two_epoch",
]
