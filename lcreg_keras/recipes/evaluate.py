"""Evaluate a saved model on its recipe's test set: report, CSV and pictures.

The command line of `lcreg_keras.evaluation.evaluate.evaluate_model`:

    python -m lcreg_keras.recipes.evaluate --model=runs/x/model.keras --recipe=fashion_mnist_lt
    python tools/evaluate.py --model=runs/x/model.keras --recipe=fashion_mnist_lt \\
        --data_dir=/path/to/fashion-mnist --out=runs/x/eval

The model is loaded with `keras.saving.load_model(path, safe_mode=True)` on
whichever backend runs this (a `.keras` file does not depend on the backend
that trained it). The data come from the recipe: `lcreg_keras.recipes.<recipe>`
`.get_config()`, changed by the same flags the recipe takes (`--data_dir`,
`--smoke`, `--imbalance_factor`, `--seed`, `--max_test_examples`,
`--eval_rule`, ...), then `lcreg_keras.recipes.datasets.load(config)`. Pass the
flags the model was trained with: the training counts, hence the many /
medium / few splits, depend on them (a `metrics.json` beside the model is
compared and a mismatch is reported).

Writes in `--out` (default: `eval/` beside the model):

With `--posthoc_tau` (a recipe flag) every number is of the post-hoc
logit-adjusted logits `z - tau * log prior` (`lcreg_keras.evaluation.posthoc`), as the
recipe's `metrics.json` reports them.

- `report.json`: `lcreg_keras.evaluation.evaluation_report` (top-1;
  many / medium / few under the count rule and under the recipe's
  `eval_rule`, each naming its rule; ECE with 15 bins; NLL; per class) plus
  the model path, recipe, dataset and backend;
- `per_class.csv`: `class, name, train_count, test_count, accuracy`;
- `reliability.png`: the reliability diagram, ECE in the title;
- `accuracy_by_frequency.png`: per-class accuracy against training count.
"""

import json
import os
import sys

import keras
import numpy as np
from absl import flags

from lcreg_keras.evaluation.evaluate import class_names_of
from lcreg_keras.evaluation.evaluate import evaluate_model
from lcreg_keras.evaluation.evaluate import summary
from lcreg_keras.recipes import model_flags
from lcreg_keras.recipes.model_flags import load_recipe_config  # noqa: F401  (public name)
from lcreg_keras.serving.trained_run import run_file

FLAGS = flags.FLAGS


def define_flags():
    """The recipe flags (`runner.define_flags`) plus this tool's; once."""
    model_flags.define_flags(
        out_help="Output folder (default: eval/ beside --model).",
        extra=[("integer", "num_bins", 15, "Confidence bins of the ECE.")],
    )


def compare_with_run(model_path, data):
    """Warnings where the run of the model saw other data than `data`."""
    warnings = []
    metrics_path = run_file(model_path, "metrics.json")
    if metrics_path:
        with open(metrics_path) as f:
            metrics = json.load(f)
        trained = metrics.get("train_examples")
        if trained is not None and int(trained) != int(np.sum(data.train_counts)):
            warnings.append(
                f"the run in {os.path.dirname(metrics_path)} trained on {trained} "
                f"examples but this config gives {int(np.sum(data.train_counts))}: pass "
                "the flags the model was trained with (--smoke, --imbalance_factor, "
                "--max_train_examples, --seed), else the many / medium / few splits "
                "use other counts."
            )
    prep_path = run_file(model_path, "preprocessing.json")
    if prep_path and data.preprocessing:
        with open(prep_path) as f:
            prep = json.load(f)
        for key in ("mean", "std"):
            if key in prep and key in data.preprocessing and not np.allclose(
                prep[key], data.preprocessing[key], atol=1e-4
            ):
                warnings.append(
                    f"{prep_path}: {key} {prep[key]} differs from this config's "
                    f"{data.preprocessing[key]}: the test images are normalised "
                    "differently from training (other data flags?)."
                )
    return warnings


def run(argv_unused=None):
    """Evaluates `--model` on `--recipe`'s test set; returns the report."""
    config, model, data = model_flags.load_model_and_data()
    for warning in compare_with_run(FLAGS.model, data):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    out_dir = FLAGS.out or os.path.join(os.path.dirname(os.path.abspath(FLAGS.model)), "eval")
    extra = {
        "model": os.path.abspath(FLAGS.model),
        "recipe": FLAGS.recipe,
        "dataset": config.dataset,
        "backend": keras.config.backend(),
        "smoke": bool(FLAGS.smoke),
    }
    report = evaluate_model(
        model,
        data.test,
        data.test_labels,
        data.train_counts,
        out_dir,
        rule=config.eval_rule,
        class_names=class_names_of(data),
        num_bins=FLAGS.num_bins,
        verbose=1 if FLAGS.verbose is None else FLAGS.verbose,
        extra=extra,
        posthoc_tau=config.posthoc_tau,
        state=data.states.get("test"),
    )
    for line in summary(report, name=config.dataset):
        print(line, flush=True)
    print(f"wrote report.json, per_class.csv, reliability.png, "
          f"accuracy_by_frequency.png in {out_dir}", flush=True)
    return report


def main(argv=None):
    """Entry point of `python -m lcreg_keras.recipes.evaluate` and `tools/evaluate.py`."""
    model_flags.main(define_flags, run, argv)


if __name__ == "__main__":
    main()
