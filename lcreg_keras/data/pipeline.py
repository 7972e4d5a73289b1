"""The old name of `lcreg_keras.data.pipelines` (the array pipelines lived here).

`import lcreg_keras.data.pipeline` gives the `pipelines` module itself, so
old imports and monkeypatches keep working.
"""

import sys

from lcreg_keras.data import pipelines

sys.modules[__name__] = pipelines
