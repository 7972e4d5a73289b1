"""The old name of `lcreg_keras.evaluation.metrics` (kept for imports).

`import lcreg_keras.metrics` gives the `evaluation.metrics` module itself.
"""

import sys

from lcreg_keras.evaluation import metrics

sys.modules[__name__] = metrics
