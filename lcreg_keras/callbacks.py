"""Callbacks used by the recipes."""

import keras
from keras import ops


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs.

    Put it before `TensorBoard` / `CSVLogger` in the callback list: they read
    the same logs dict afterwards and record `learning_rate` with the rest.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        # A schedule is evaluated at the optimizer's step count here.
        lr = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(ops.convert_to_numpy(lr))
