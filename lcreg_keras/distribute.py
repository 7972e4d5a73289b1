"""Choosing how a run spreads over devices, per backend.

- TensorFlow: `tf.distribute.MirroredStrategy` (one machine, several GPUs) or
  `MultiWorkerMirroredStrategy` (several machines, `TF_CONFIG`). Keras' `fit`
  splits each global batch across the replicas and all-reduces gradients.
- JAX: `keras.distribution.DataParallel` over all local devices.
- PyTorch: one device (Keras' torch backend has no data-parallel `fit`).

The batch size and learning rate of a recipe are global: the recipe's lr is
for its global batch, whatever the number of replicas (no automatic scaling).

LCReg's own state is replicated correctly by construction: the covariance
estimator's samples are the latent vectors themselves, identical on every
replica after each synchronised update, so every replica computes the same
covariance update; the state variables use `aggregation="only_first_replica"`.
"""

import contextlib

import keras

CHOICES = ("auto", "none", "mirrored", "multi_worker", "data_parallel")


def _tf_strategy(name):
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "none"
    if name == "mirrored":
        return name, tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return name, tf.distribute.MultiWorkerMirroredStrategy()
    if name == "none":
        return name, None
    raise ValueError(f"`distribution={name!r}` is not available on the TensorFlow backend.")


@contextlib.contextmanager
def distribution_scope(name="auto"):
    """Context in which to build, compile and fit; yields a description string."""
    if name not in CHOICES:
        raise ValueError(f"`distribution` must be one of {CHOICES}. Received: {name!r}")
    backend = keras.config.backend()
    if backend == "tensorflow":
        name, strategy = _tf_strategy(name)
        if strategy is None:
            yield "one device"
            return
        with strategy.scope():
            yield f"{name}: {strategy.num_replicas_in_sync} replicas"
        return
    if backend == "jax":
        devices = keras.distribution.list_devices()
        if name == "auto":
            name = "data_parallel" if len(devices) > 1 else "none"
        if name == "data_parallel":
            previous = keras.distribution.distribution()
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            try:
                yield f"data_parallel: {len(devices)} devices"
            finally:
                keras.distribution.set_distribution(previous)
            return
        if name != "none":
            raise ValueError(f"`distribution={name!r}` is not available on the JAX backend.")
        yield "one device"
        return
    if name not in ("auto", "none"):
        raise ValueError(f"`distribution={name!r}` is not available on the {backend} backend.")
    yield "one device"
