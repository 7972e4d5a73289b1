"""Export a .keras model as a SavedModel that takes raw uint8 images.

    python tools/export.py --model=runs/x/model.keras \
        --preprocessing=runs/x/preprocessing.json --out=runs/x/export

The model may have been trained on TensorFlow, JAX or PyTorch: the .keras file
is loaded under the TensorFlow backend (this script runs itself again with
KERAS_BACKEND=tensorflow when started under another one, and says so). See
`lcreg_keras/serving/export.py` for the signature and what is supported.
"""

import os
import sys

if not os.environ.get("KERAS_BACKEND"):
    os.environ["KERAS_BACKEND"] = "tensorflow"  # before keras is imported
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lcreg_keras.serving.export import ensure_tensorflow_backend  # noqa: E402
from lcreg_keras.serving.export import main  # noqa: E402

if __name__ == "__main__":
    ensure_tensorflow_backend()
    sys.exit(main())
