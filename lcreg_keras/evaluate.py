"""The old home of the evaluation tool, kept for imports.

The library moved to `lcreg_keras.evaluation.evaluate` (`evaluate_model`,
`summary`, `class_names_of`) and `lcreg_keras.serving.trained_run`
(`load_model`, `run_file`); the command line (which reads a recipe) to
`lcreg_keras.recipes.evaluate` (`python -m lcreg_keras.recipes.evaluate`,
`python tools/evaluate.py`).
"""

from lcreg_keras.evaluation.evaluate import class_names_of  # noqa: F401
from lcreg_keras.evaluation.evaluate import evaluate_model  # noqa: F401
from lcreg_keras.evaluation.evaluate import summary  # noqa: F401
from lcreg_keras.serving.trained_run import load_model  # noqa: F401
from lcreg_keras.serving.trained_run import run_file  # noqa: F401
