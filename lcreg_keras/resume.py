"""The old name of `lcreg_keras.training.resume` (moved with the package layout of issue 14).

`import lcreg_keras.resume` gives the `training.resume` module itself, so old imports and
monkeypatches keep working.
"""

import sys

from lcreg_keras.training import resume

sys.modules[__name__] = resume
