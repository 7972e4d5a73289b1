"""Loading a trained run: its model file and the files written beside it.

A recipe run writes `model.keras` (and `stage1/`, `stage2/` with their own
model files), `preprocessing.json` (how raw images become the model's inputs,
`lcreg_keras.data.transforms.check_preprocessing`) and `metrics.json` in its
`model_dir` (`lcreg_keras.recipes.runner`). The evaluation tool, the latent
maps and the export find them from a model path with `run_file`.
"""

import os

import keras

import lcreg_keras.backbones  # noqa: F401  (registers PadShortcut, ...)
import lcreg_keras.evaluation.metrics  # noqa: F401  (registers the metrics)
import lcreg_keras.models  # noqa: F401  (registers the models and layers)
from lcreg_keras.data.transforms import check_preprocessing


def load_model(path):
    """`keras.saving.load_model(path, safe_mode=True, compile=False)`.

    The `lcreg_keras` modules that register the serializable classes are
    imported with this module; a missing file or another format is said
    clearly.

    Args:
        path: a `.keras` file.

    Returns:
        The model.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r} (expected a .keras file).")
    if not str(path).endswith(".keras"):
        raise ValueError(f"Expected a .keras file. Received: {path!r}")
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def run_file(model_path, name):
    """`name` (e.g. preprocessing.json) of the run a model file belongs to.

    Looks beside the model (`<model_dir>/model.keras`), then one folder up
    (`<model_dir>/stage1/last.keras`). Returns the path or None.
    """
    folder = os.path.dirname(os.path.abspath(model_path))
    for candidate in (folder, os.path.dirname(folder)):
        path = os.path.join(candidate, name)
        if os.path.exists(path):
            return path
    return None


def read_preprocessing(model_path, path=None):
    """The checked `preprocessing.json` of a model's run (or of `path`), or None."""
    path = path or run_file(model_path, "preprocessing.json")
    if not path or not os.path.exists(path):
        return None
    return check_preprocessing(path)
