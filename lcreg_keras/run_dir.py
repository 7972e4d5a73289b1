"""The old name of `lcreg_keras.serving.run_folder` (kept for imports).

`import lcreg_keras.run_dir` gives the `run_folder` module itself, so old
imports and monkeypatches keep working.
"""

import sys

from lcreg_keras.serving import run_folder

sys.modules[__name__] = run_folder
