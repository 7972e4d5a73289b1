"""Data: long-tailed subsets, Fashion-MNIST loading, tf.data pipelines."""

from lcreg_keras.data.fashion_mnist import CLASS_NAMES as FASHION_MNIST_CLASSES
from lcreg_keras.data.fashion_mnist import load_fashion_mnist
from lcreg_keras.data.long_tail import class_counts
from lcreg_keras.data.long_tail import long_tailed_counts
from lcreg_keras.data.long_tail import long_tailed_subset
from lcreg_keras.data.pipeline import channel_stats
from lcreg_keras.data.pipeline import mixup_batch
from lcreg_keras.data.pipeline import small_image_eval_dataset
from lcreg_keras.data.pipeline import small_image_train_dataset

__all__ = [
    "FASHION_MNIST_CLASSES",
    "channel_stats",
    "class_counts",
    "load_fashion_mnist",
    "long_tailed_counts",
    "long_tailed_subset",
    "mixup_batch",
    "small_image_eval_dataset",
    "small_image_train_dataset",
]
