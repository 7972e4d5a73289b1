"""A training callback: the latent categories' usage, pictured in TensorBoard.

`LatentUsageImages` draws `lcreg_keras.evaluation.plots.latent_usage_image`
(images x latent categories, and the share of positions each latent wins;
the paper's Fig. 4 in small) of fixed images after every epoch.
"""

import keras
import tensorflow as tf

from lcreg_keras.evaluation import plots


class LatentUsageImages(keras.callbacks.Callback):
    """Writes `plots.latent_usage_image` of fixed images to TensorBoard during `fit`.

    Works on every backend: the picture is computed with the model's layers
    and written with `tf.summary` (TensorFlow is always installed with
    lcreg-keras), at step = epoch index, under the tag `name`.

    Args:
        images: model inputs `(N, H, W, C)`, or raw uint8 images with
            `preprocessing`. A dozen images from different classes is plenty.
        log_dir: TensorBoard folder (e.g. `os.path.join(model_dir,
            "tensorboard", "latents")`).
        every: write after every `every`-th epoch (epochs `every - 1`,
            `2 * every - 1`, ... counting from 0).
        preprocessing: optional preprocessing dict for raw images.
        name: the image summary's tag.

    Example:
        >>> model.fit(train, epochs=10, callbacks=[
        ...     LatentUsageImages(x_test[:12], "runs/x/tensorboard/latents")
        ... ])  # doctest: +SKIP
    """

    def __init__(self, images, log_dir, every=1, preprocessing=None, name="latent_usage"):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"`every` must be an int >= 1. Received: {every!r}")
        self.inputs = plots.model_inputs(images, preprocessing)
        self.log_dir = str(log_dir)
        self.every = every
        self.name = name
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        picture = plots.latent_usage_image(self.model, self.inputs, title=None)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.image(self.name, picture[None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
