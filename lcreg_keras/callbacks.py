"""Callbacks used by the recipes."""

import math

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


class LossShareMonitor(keras.callbacks.Callback):
    """Warns once per term when an auxiliary loss is inert (spec Sec. 3.d).

    `LCRegModel` logs each auxiliary term's share of the loss,
    `share_aug = alpha L_aug / L` and `share_recon = beta L_recon / L`. After
    the first `warmup_fraction` of the epochs, the first epoch whose mean
    share of a term is below `threshold` prints one warning naming the term
    (and never again for that term): a term that small barely trains
    anything, which a user should know before reading an ablation.

    Args:
        threshold: the share below which a term counts as inert (1 %).
        warmup_fraction: the share of the epochs left unchecked (a tenth).
        terms: the log keys to watch.

    Example:

    >>> model.fit(x, y, epochs=20, callbacks=[LossShareMonitor()])  # doctest: +SKIP
    """

    def __init__(self, threshold=0.01, warmup_fraction=0.1, terms=("share_aug", "share_recon")):
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError(f"`threshold` must lie in (0, 1). Received: {threshold}")
        if not 0 <= warmup_fraction < 1:
            raise ValueError(
                f"`warmup_fraction` must lie in [0, 1). Received: {warmup_fraction}"
            )
        self.threshold = float(threshold)
        self.warmup_fraction = float(warmup_fraction)
        self.terms = tuple(terms)
        self.warned = []  # the messages printed, in order

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        epochs = (self.params or {}).get("epochs") or 0
        if epoch + 1 <= math.ceil(self.warmup_fraction * epochs):
            return
        for term in self.terms:
            if term not in logs or any(term in message for message in self.warned):
                continue
            share = float(logs[term])
            if share < self.threshold:
                message = (
                    f"WARNING: {term} = {100 * share:.2f} % of the loss at epoch "
                    f"{epoch + 1} of {epochs}, below {100 * self.threshold:g} % after the "
                    f"first {100 * self.warmup_fraction:g} % of training: that auxiliary "
                    "term is close to inert (spec Sec. 3.d)."
                )
                self.warned.append(message)
                print(message, flush=True)
