"""A tiny trained LCRegModel on disk, for the evaluation / export / tool tests.

`train_tiny_model(folder)` trains in this process (on its Keras backend);
`train_tiny_model_subprocess(folder, backend)` trains on another backend in a
child process. Both write what a recipe run writes for these tools:
`last.keras` and `preprocessing.json`.
"""

import json
import os
import subprocess
import sys

import numpy as np

from tests.fakes import fake_images  # noqa: F401  (the tiny model's data; public here too)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
NUM_LATENTS = 8


def build_tiny_model(input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES, num_latents=NUM_LATENTS):
    from lcreg_keras.backbones import get_backbone
    from lcreg_keras.models import LCRegModel

    backbone = get_backbone("resnet8", input_shape, width=4)
    return LCRegModel(backbone, num_classes=num_classes, num_latents=num_latents, seed=0)


def train_tiny_model(folder, n=64, epochs=1, channels=1):
    """Fits a tiny model one epoch on fake data; writes last.keras + preprocessing.json."""
    import keras

    keras.utils.set_random_seed(0)
    os.makedirs(folder, exist_ok=True)
    shape = INPUT_SHAPE[:2] + (channels,)
    images, labels = fake_images(n, channels=channels)
    mean = images.reshape(-1, channels).mean(0) / 255.0
    std = images.reshape(-1, channels).std(0) / 255.0
    x = ((images / 255.0 - mean) / std).astype("float32")
    model = build_tiny_model(shape)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, labels, batch_size=32, epochs=epochs, verbose=0)
    path = os.path.join(folder, "last.keras")
    model.save(path)
    preprocessing = {
        "input_shape": list(shape),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "resize": None,
    }
    with open(os.path.join(folder, "preprocessing.json"), "w") as f:
        json.dump(preprocessing, f)
    # The model's probabilities on the first images, for cross-backend checks.
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x[:8], verbose=0)))
    np.save(os.path.join(folder, "probs.npy"), probs)
    return model, preprocessing


def train_tiny_model_subprocess(folder, backend, channels=1, timeout=600):
    """`train_tiny_model` in a child process on `backend`; returns its stdout."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from tests.tiny_model import train_tiny_model\n"
        "train_tiny_model(%r, channels=%d)\n"
        "import keras; print('trained on', keras.config.backend())\n"
    ) % (ROOT, str(folder), channels)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"trained on {backend}" in proc.stdout
    return proc.stdout
