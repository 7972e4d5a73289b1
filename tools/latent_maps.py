"""Draw the latent categories of test images (the paper's Fig. 4).

    python tools/latent_maps.py --model=runs/x/model.keras --recipe=fashion_mnist_lt \
        --num_images=6 --out=latent_maps.png [--top_k=3] [--data_dir=...] [--smoke]
        [--usage_out=latent_usage.png]

Picks `--num_images` test images of different classes, spread from the most
to the least frequent training class, and draws for each the image, its
histogram of latent weights (mean S_hat over positions, Eq. 2) with the top-k
latents highlighted, and where in the image those latents are.
`--usage_out` also writes the images x latents usage picture that
`lcreg_keras.training.latent_images.LatentUsageImages` logs to TensorBoard. The recipe and
data flags are the recipe's (pass those the model was trained with).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from lcreg_keras.evaluation import plots  # noqa: E402
from lcreg_keras.evaluation.evaluate import class_names_of  # noqa: E402
from lcreg_keras.recipes import model_flags  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    model_flags.define_flags("latent_maps.png", "Output PNG.", extra=[
        ("integer", "num_images", 6, "Test images to draw (from different classes)."),
        ("integer", "top_k", 3, "Top latents highlighted and mapped per image."),
        ("string", "usage_out", None, "Optional PNG of the latent-usage heat map."),
    ])


def pick_examples(data, num_images):
    """Indices of test examples of distinct classes, head to tail by count."""
    labels = np.asarray(data.test_labels)
    ranked = [int(c) for c in np.argsort(-np.asarray(data.train_counts), kind="stable")
              if np.any(labels == c)]
    if not ranked:
        raise ValueError("The test set is empty.")
    count = min(num_images, len(ranked))
    chosen = [ranked[int(round(i))] for i in np.linspace(0, len(ranked) - 1, count)]
    indices = [int(np.flatnonzero(labels == c)[0]) for c in chosen]
    # More images than classes: add further examples in test order.
    extra = [i for i in range(len(labels)) if i not in indices]
    return indices + extra[: max(0, num_images - count)]


def test_inputs(data, indices):
    """The model inputs of the chosen test examples (from the test batches)."""
    wanted = sorted(indices)
    found = {}
    offset = 0
    for batch in data.test:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = np.asarray(x)
        for i in wanted:
            if offset <= i < offset + len(x):
                found[i] = x[i - offset]
        offset += len(x)
        if offset > wanted[-1]:
            break
    return np.stack([found[i] for i in indices])


def run():
    _, model, data = model_flags.load_model_and_data()
    indices = pick_examples(data, FLAGS.num_images)
    x = test_inputs(data, indices)
    mean = np.asarray(data.preprocessing.get("mean", [0.0]), np.float32)
    std = np.asarray(data.preprocessing.get("std", [1.0]), np.float32)
    shown = np.clip((x * std + mean) * 255.0, 0, 255).round().astype(np.uint8)
    hist, maps = plots.latent_weights(model, x)
    preds = np.argmax(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), axis=-1)
    names = class_names_of(data) or [str(c) for c in range(data.num_classes)]
    titles = []
    for i, pred in zip(indices, preds):
        label = int(data.test_labels[i])
        titles.append(
            f"{names[label]} (n={int(data.train_counts[label])})\npredicted: {names[pred]}"
        )
    plots.plot_latent_histograms(shown, hist, maps, top_k=FLAGS.top_k, path=FLAGS.out,
                                     titles=titles)
    print(f"wrote {FLAGS.out}: {len(indices)} images, M={hist.shape[1]} latents, "
          f"maps {maps.shape[1]}x{maps.shape[2]}", flush=True)
    if FLAGS.usage_out:
        fig = plots.latent_usage_figure(hist, maps)
        fig.savefig(FLAGS.usage_out, dpi=100, bbox_inches="tight")
        print(f"wrote {FLAGS.usage_out}", flush=True)


def main(argv=None):
    model_flags.main(define_flags, run, argv)


if __name__ == "__main__":
    main()
