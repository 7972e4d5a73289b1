"""Evaluate a saved model on its recipe's test set: report, CSV and pictures.

    python -m lcreg_keras.evaluate --model=runs/x/model.keras --recipe=fashion_mnist_lt
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
logit-adjusted logits `z - tau * log prior` (`lcreg_keras.posthoc`), as the
recipe's `metrics.json` reports them.

- `report.json`: `lcreg_keras.evaluation.evaluation_report` (top-1;
  many / medium / few under the count rule and under the recipe's
  `eval_rule`, each naming its rule; ECE with 15 bins; NLL; per class) plus
  the model path, recipe, dataset and backend;
- `per_class.csv`: `class, name, train_count, test_count, accuracy`;
- `reliability.png`: the reliability diagram, ECE in the title;
- `accuracy_by_frequency.png`: per-class accuracy against training count.
"""

import csv
import importlib
import json
import os
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def define_flags():
    """The recipe flags (`runner.define_flags`) plus this tool's; once."""
    from lcreg_keras.recipes import runner

    runner.define_flags()
    if "recipe" not in FLAGS:
        flags.DEFINE_string("model", None, "The .keras file to evaluate.")
        flags.DEFINE_string(
            "recipe", None, "Recipe module name in lcreg_keras.recipes (or a dotted path)."
        )
        flags.DEFINE_string("out", None, "Output folder (default: eval/ beside --model).")
        flags.DEFINE_integer("num_bins", 15, "Confidence bins of the ECE.")


def load_model(path):
    """`keras.saving.load_model(path, safe_mode=True, compile=False)`.

    Imports the `lcreg_keras` modules that register the serializable
    classes first, and says clearly what is wrong when the file is missing.

    Args:
        path: a `.keras` file.

    Returns:
        The model.
    """
    import keras

    import lcreg_keras.backbones  # noqa: F401  (registers PadShortcut, ...)
    import lcreg_keras.metrics  # noqa: F401
    import lcreg_keras.models  # noqa: F401

    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r} (expected a .keras file).")
    if not str(path).endswith(".keras"):
        raise ValueError(f"Expected a .keras file. Received: {path!r}")
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def load_recipe_config(recipe):
    """The `Config` of `lcreg_keras.recipes.<recipe>` (or a dotted module path)."""
    name = recipe if "." in recipe else f"lcreg_keras.recipes.{recipe}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise ValueError(
            f"No recipe {recipe!r}: module {name} not found. Recipes live in "
            "lcreg_keras/recipes/ (e.g. fashion_mnist_lt)."
        ) from error
    if not hasattr(module, "get_config"):
        raise ValueError(f"Module {name} has no get_config(); is it a recipe?")
    return module.get_config()


def class_names_of(data):
    """The dataset's class names, where known."""
    names = getattr(data, "class_names", None)
    if names:
        return list(names)
    if getattr(data, "name", None) == "fashion_mnist_lt":
        from lcreg_keras.data import FASHION_MNIST_CLASSES

        return list(FASHION_MNIST_CLASSES)
    return None


def evaluate_model(
    model,
    test,
    test_labels,
    train_counts,
    out_dir,
    rule="count",
    class_names=None,
    num_bins=15,
    verbose=1,
    extra=None,
    posthoc_tau=0.0,
):
    """Predicts a test set and writes the report, the CSV and the pictures.

    Args:
        model: a Keras model whose output is class logits `(B, C)`.
        test: what `model.predict` takes: a `tf.data.Dataset` of `(x, y)` or
            `x` batches, or an array of model inputs.
        test_labels: `(N,)` labels in the order of `test`.
        train_counts: `(C,)` training images per class.
        out_dir: output folder (created).
        rule: the split rule reported beside the count rule (`"count"`,
            `"index"` or an index preset such as `"cifar10"`).
        class_names: optional list of `C` names.
        num_bins: ECE bins.
        verbose: `predict`'s verbosity (1: progress bar).
        extra: optional dict merged into `report.json` (model path, ...).
        posthoc_tau: > 0 reports the logits `z - tau * log prior` (prior:
            `train_counts`, a class without examples counting 1); recorded
            as `report["posthoc_tau"]`.

    Returns:
        The report dict (`evaluation.evaluation_report` plus `extra`).

    Example:
        >>> report = evaluate_model(model, data.test, data.test_labels,
        ...                         data.train_counts, "runs/x/eval")  # doctest: +SKIP
        >>> report["top1"], report["ece"]  # doctest: +SKIP
    """
    import numpy as np

    from lcreg_keras import evaluation
    from lcreg_keras import visualize

    from lcreg_keras.data import image_pipeline

    test_labels = np.asarray(test_labels)
    listed = len(test_labels)
    logits = np.asarray(model.predict(test, verbose=verbose), np.float64)
    if image_pipeline.dataset_paths(test) is not None:
        # Files that failed while read (`skip_bad_images`) are not predicted:
        # keep the labels of the images this pass delivered.
        test_labels = image_pipeline.evaluated_labels(test, test_labels)
    if logits.ndim != 2:
        raise ValueError(
            f"The model must output logits (N, C); it returned shape {logits.shape}."
        )
    if len(logits) != len(test_labels):
        raise ValueError(
            f"The model predicted {len(logits)} examples but there are "
            f"{len(test_labels)} test labels: `test` and `test_labels` differ."
        )
    if logits.shape[1] != len(train_counts):
        raise ValueError(
            f"The model has {logits.shape[1]} outputs but the dataset has "
            f"{len(train_counts)} classes: wrong --recipe or model?"
        )
    if posthoc_tau:
        from lcreg_keras.posthoc import adjust_logits

        logits = adjust_logits(logits, np.maximum(np.asarray(train_counts), 1), tau=posthoc_tau)
    report = evaluation.evaluation_report(
        test_labels, logits, train_counts, rule=rule, class_names=class_names,
        num_bins=num_bins,
    )
    report["posthoc_tau"] = float(posthoc_tau)
    report["test_images"] = {"listed": int(listed), "evaluated": int(len(test_labels))}
    report.update(extra or {})
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out_dir, "per_class.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "name", "train_count", "test_count", "accuracy"])
        for row in report["per_class"]:
            accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.6f}"
            writer.writerow(
                [row["class"], row["name"], row["train_count"], row["test_count"], accuracy]
            )
    visualize.plot_reliability(
        report["reliability"], os.path.join(out_dir, "reliability.png"), ece=report["ece"]
    )
    visualize.plot_accuracy_by_frequency(
        report, os.path.join(out_dir, "accuracy_by_frequency.png")
    )
    return report


def summary(report, name=None):
    """Printable lines: one per split rule, then ECE and NLL."""
    from lcreg_keras import evaluation

    def nan(value):
        return float("nan") if value is None else value

    lines = []
    for result in report["splits"].values():
        result = {k: nan(v) if k in ("overall",) + evaluation.SPLITS else v
                  for k, v in result.items()}
        lines.append(evaluation.format_report(result, name=name))
    lines.append(
        f"ECE ({report['num_bins']} bins) {100 * nan(report['ece']):.2f} % | "
        f"NLL {nan(report['nll']):.4f} | {report['num_examples']} test examples"
    )
    images = report.get("test_images")
    if images and images["evaluated"] != images["listed"]:
        lines.append(f"top-1 over {images['evaluated']:,} of {images['listed']:,} test images "
                     f"({images['listed'] - images['evaluated']} could not be read)")
    if report.get("posthoc_tau"):
        lines.append(f"(post-hoc logit adjustment, tau {report['posthoc_tau']:g})")
    return lines


def run_file(model_path, name):
    """`name` (e.g. preprocessing.json) of the run a model file belongs to.

    Looks beside the model (`<model_dir>/model.keras`), then one folder up
    (`<model_dir>/stage1/last.keras`). Returns the path or None.
    """
    folder = os.path.dirname(os.path.abspath(model_path))
    for candidate in (folder, os.path.dirname(folder)):
        path = os.path.join(candidate, name)
        if os.path.exists(path):
            return path
    return None


def _compare_with_run(model_path, data):
    """Warnings where the run of the model saw other data than `data`."""
    import numpy as np

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
    import keras

    from lcreg_keras.recipes import datasets
    from lcreg_keras.recipes import runner

    if not FLAGS.model or not FLAGS.recipe:
        raise app.UsageError("--model and --recipe are required.")
    config = runner.apply_flags(load_recipe_config(FLAGS.recipe))
    model = load_model(FLAGS.model)
    data = datasets.load(config)
    print(data.describe(), flush=True)
    for warning in _compare_with_run(FLAGS.model, data):
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
    )
    for line in summary(report, name=config.dataset):
        print(line, flush=True)
    print(f"wrote report.json, per_class.csv, reliability.png, "
          f"accuracy_by_frequency.png in {out_dir}", flush=True)
    return report


def main(argv=None):
    """Entry point of `python -m lcreg_keras.evaluate` and `tools/evaluate.py`."""
    define_flags()

    def _main(args):
        if len(args) > 1:
            raise app.UsageError(f"Unexpected arguments: {args[1:]}")
        run()

    app.run(_main, argv=argv)


if __name__ == "__main__":
    main()
