"""The old name of `lcreg_keras.evaluation.posthoc` (moved with the package layout of issue 14).

`import lcreg_keras.posthoc` gives the `evaluation.posthoc` module itself, so old imports and
monkeypatches keep working.
"""

import sys

from lcreg_keras.evaluation import posthoc

sys.modules[__name__] = posthoc
