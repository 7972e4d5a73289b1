"""The old name of `lcreg_keras.serving.export` (kept for imports and `python -m`).

`import lcreg_keras.export` gives the `serving.export` module itself;
`python -m lcreg_keras.export` runs its command line.
"""

import sys

from lcreg_keras.serving import export as _export

if __name__ == "__main__":
    _export.ensure_tensorflow_backend()
    sys.exit(_export.main())
sys.modules[__name__] = _export
