"""Training: schedules, callbacks, stage two (MiSLAS), cRT/LWS, and the distribution workarounds.

Submodules are imported on use (`distribute` pulls in TensorFlow or JAX
pieces for the backend it runs on); importing this package registers the
serializable schedules.
"""

from lcreg_keras.training import schedules  # noqa: F401  (registers the schedules)
