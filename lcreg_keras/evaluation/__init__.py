"""Top-1 accuracy, many / medium / few-shot splits and calibration (NumPy).

- `accuracy`: `top1_accuracy`, `per_class_accuracy`, `split_classes` (the
  count rule and MiSLAS's index ranges, `INDEX_PRESETS`), `split_accuracy`,
  `format_report`;
- `calibration`: `expected_calibration_error` (15 right-closed bins, as
  MiSLAS), `reliability_bins`, `negative_log_likelihood`, `softmax`;
- `report`: `evaluation_report`, all of it per class too, JSON-ready;
- `metrics`: Keras-metric versions for `compile` (`ExpectedCalibrationError`,
  `SplitAccuracy`);
- `evaluate`: the one evaluation of a model on a test set (`predict_test`,
  `split_report`, `evaluate_model`), used by the runner and the tool;
- `plots`: the paper's Fig. 4 (latent categories per image) and the
  evaluation plots.

The NumPy functions are importable from here; `metrics`, `evaluate` and
`plots` (Keras, matplotlib) are imported by name.
"""

from lcreg_keras.evaluation.accuracy import INDEX_PRESETS
from lcreg_keras.evaluation.accuracy import SPLITS
from lcreg_keras.evaluation.accuracy import format_report
from lcreg_keras.evaluation.accuracy import per_class_accuracy
from lcreg_keras.evaluation.accuracy import split_accuracy
from lcreg_keras.evaluation.accuracy import split_classes
from lcreg_keras.evaluation.accuracy import top1_accuracy
from lcreg_keras.evaluation.calibration import confidence_bin
from lcreg_keras.evaluation.calibration import expected_calibration_error
from lcreg_keras.evaluation.calibration import negative_log_likelihood
from lcreg_keras.evaluation.calibration import reliability_bins
from lcreg_keras.evaluation.calibration import softmax
from lcreg_keras.evaluation.report import evaluation_report
