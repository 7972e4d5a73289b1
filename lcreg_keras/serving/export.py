"""Export a trained model as a TensorFlow SavedModel that takes raw images.

The SavedModel's `serving_default` signature takes a batch of raw uint8
images, `images: (None, None, None, C)` (any height and width; the images of
one batch share a size; `C` is the model's channel count, 1 for a grayscale
model), does the test-time preprocessing of the training run inside, and
returns `{"probabilities": (B, num_classes), "logits": (B, num_classes)}`
(float32). The preprocessing is the `preprocessing.json` a recipe run writes:

- `input_shape`: `[H, W, C]` of the model input;
- `resize`: `None` resizes straight to `H x W`; an int `R` resizes the
  shorter side to `R` (the longer one to `int(R * long / short)`, as
  torchvision's `Resize(R)`) and then crops the centre `H x W` (as
  `CenterCrop`); bilinear with antialiasing (`tf.image.resize`, as
  Pillow), the result rounded back to 0..255 integers. These are the steps
  of the evaluation batches of `lcreg_keras.data.pipelines`, the same
  function (`lcreg_keras.data.transforms.eval_geometry`), so the SavedModel
  sees what the test set showed the model; an image already of the target
  size passes unchanged;
- `mean`, `std`: per-channel, in the [0, 1] scale: the model input is
  `(x / 255 - mean) / std`.

Backends. A SavedModel is a TensorFlow artifact, so `export_serving` runs on
the TensorFlow backend. A `.keras` file does not depend on the backend that
trained it, so a model trained on any backend is exported by loading its
`.keras` file under TensorFlow: `tools/export.py` (or `python -m
lcreg_keras.serving.export`) does that, re-executing itself with
`KERAS_BACKEND=tensorflow` when started under another backend.

- TensorFlow-trained: supported.
- JAX-trained: supported through the `.keras` file (tested).
- PyTorch-trained: supported through the `.keras` file (tested).
- In all cases the model must be made of Keras layers only (every
  `lcreg_keras` model and backbone is); a model holding backend-specific code
  (a `TorchModuleWrapper`, a JAX or `tf.function` inside a custom layer,
  `Lambda` layers) cannot be loaded under TensorFlow in safe mode and is not
  supported. A model saved under a mixed-precision policy keeps that policy
  when reloaded; on a CPU-only TensorFlow prefer exporting a float32 model.

Loading the SavedModel needs TensorFlow only (no Keras, no `lcreg_keras`):

    import tensorflow as tf
    serving = tf.saved_model.load("export_dir").signatures["serving_default"]
    out = serving(images=tf.constant(uint8_batch))   # (B, h, w, C) uint8
    out["probabilities"], out["logits"]

Command line:

    python tools/export.py --model=runs/x/model.keras \\
        --preprocessing=runs/x/preprocessing.json --out=runs/x/export
"""

import argparse
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from lcreg_keras.data.transforms import check_preprocessing
from lcreg_keras.data.transforms import preprocess
from lcreg_keras.serving.trained_run import load_model
from lcreg_keras.serving.trained_run import run_file

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "images"


def export_serving(model, export_dir, preprocessing, verbose=False):
    """Writes `model` as a SavedModel whose signature takes raw uint8 images.

    Args:
        model: a built Keras model (for instance an `LCRegModel`) whose
            output is the class logits `(B, num_classes)`. The TensorFlow
            backend is required (see the module docstring for models trained
            on JAX or PyTorch).
        export_dir: output folder of the SavedModel (created).
        preprocessing: the run's preprocessing dict, or the path of its
            `preprocessing.json` (see `check_preprocessing`).
        verbose: print the exported variables.

    Returns:
        `export_dir`.

    Raises:
        RuntimeError: if the Keras backend is not TensorFlow.
        ValueError: if the preprocessing does not fit the model.

    Example:
        >>> model = keras.saving.load_model("runs/x/model.keras")  # doctest: +SKIP
        >>> export_serving(model, "runs/x/export",
        ...                "runs/x/preprocessing.json")  # doctest: +SKIP
        >>> serving = tf.saved_model.load("runs/x/export").signatures[
        ...     "serving_default"]  # doctest: +SKIP
        >>> serving(images=tf.zeros((2, 28, 28, 1), tf.uint8))[
        ...     "probabilities"].shape  # doctest: +SKIP
        TensorShape([2, 10])
    """
    if keras.config.backend() != "tensorflow":
        raise RuntimeError(
            "export_serving writes a TensorFlow SavedModel and needs the TensorFlow "
            f"backend; this process runs {keras.config.backend()!r}. Save the model "
            "as .keras and run `python tools/export.py --model=... "
            "--preprocessing=... --out=...` (it switches to TensorFlow), or set "
            "KERAS_BACKEND=tensorflow."
        )
    prep = check_preprocessing(preprocessing)
    height, width, channels = prep["input_shape"]
    if not model.built:
        model.build((None, height, width, channels))
    model_shape = _input_shape(model)
    if model_shape is not None and len(model_shape) == 4:
        expected = tuple(model_shape[1:])
        if any(m is not None and m != p for m, p in zip(expected, prep["input_shape"])):
            raise ValueError(
                f"The preprocessing's input_shape {prep['input_shape']} does not match "
                f"the model's input shape {expected}."
            )

    def serve(images):
        logits = model(preprocess(images, prep), training=False)
        logits = tf.cast(logits, tf.float32)
        return {"probabilities": tf.nn.softmax(logits, axis=-1), "logits": logits}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_KEY,
        fn=serve,
        input_signature=[
            tf.TensorSpec((None, None, None, channels), tf.uint8, name=INPUT_NAME)
        ],
    )
    archive.write_out(str(export_dir), verbose=verbose)
    with open(os.path.join(str(export_dir), "preprocessing.json"), "w") as f:
        json.dump(prep, f, indent=2)
    return export_dir


def _input_shape(model):
    """The model's `(None, H, W, C)` input shape where it can be known."""
    for layer in (getattr(model, "backbone", None), model):
        try:
            shape = layer.input_shape if layer is not None else None
        except (AttributeError, ValueError):
            shape = None
        if shape is not None:
            return tuple(shape)
    return None


# ---------------------------------------------------------------------------
# Command line: python tools/export.py / python -m lcreg_keras.serving.export
# ---------------------------------------------------------------------------


def ensure_tensorflow_backend():
    """Re-executes this program under `KERAS_BACKEND=tensorflow` if needed.

    When the backend in use (keras' if already imported, else
    `KERAS_BACKEND`) is not TensorFlow, prints a note to stderr and replaces
    the process (same interpreter, same arguments) by one with
    `KERAS_BACKEND=tensorflow`; `os.execve` replaces the whole process, so
    this is safe after keras was imported. When no backend is chosen yet,
    sets `KERAS_BACKEND=tensorflow` (it then overrides `~/.keras/keras.json`).
    """
    backend = os.environ.get("KERAS_BACKEND") or None
    if "keras" in sys.modules:
        backend = sys.modules["keras"].config.backend()
    if backend in (None, "tensorflow"):
        os.environ["KERAS_BACKEND"] = "tensorflow"
        return
    print(
        f"export: KERAS_BACKEND={backend!r}; a SavedModel needs TensorFlow, so this "
        "command runs again with KERAS_BACKEND=tensorflow (a .keras file does not "
        "depend on the backend that trained it).",
        file=sys.stderr,
        flush=True,
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    command = [sys.executable] + list(sys.orig_argv[1:])
    sys.stdout.flush()
    os.execve(sys.executable, command, env)


def main(argv=None):
    """`--model`, `--preprocessing`, `--out`: loads the .keras file and exports it."""
    parser = argparse.ArgumentParser(
        description="Export a .keras model as a SavedModel taking raw uint8 images."
    )
    parser.add_argument("--model", required=True, help="the .keras file (e.g. runs/x/model.keras)")
    parser.add_argument(
        "--preprocessing",
        default=None,
        help="preprocessing.json of the run (default: beside --model or one folder up)",
    )
    parser.add_argument("--out", required=True, help="output folder of the SavedModel")
    args = parser.parse_args(argv)
    ensure_tensorflow_backend()
    prep_path = args.preprocessing or run_file(args.model, "preprocessing.json")
    if not prep_path or not os.path.exists(prep_path):
        parser.error(
            f"no preprocessing file {'at ' + prep_path if prep_path else 'found'}; pass "
            "--preprocessing (a recipe run writes preprocessing.json in --model_dir)."
        )
    if not os.path.exists(args.model):
        parser.error(f"no model file at {args.model}")
    prep = check_preprocessing(prep_path)
    model = load_model(args.model)
    export_serving(model, args.out, prep)
    serving = tf.saved_model.load(args.out).signatures[SIGNATURE_KEY]
    height, width, channels = prep["input_shape"]
    check = serving(**{INPUT_NAME: tf.zeros((1, height, width, channels), tf.uint8)})
    probs = np.asarray(check["probabilities"])
    print(
        f"exported {args.model} (backend tensorflow) to {args.out}: signature "
        f"'{SIGNATURE_KEY}' takes {INPUT_NAME}: uint8 (None, None, None, {channels}), "
        f"returns probabilities and logits {tuple(probs.shape[1:])} per image.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    ensure_tensorflow_backend()
    sys.exit(main())
