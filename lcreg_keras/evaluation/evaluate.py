"""Evaluating a model on a test set: the one place predictions meet labels.

- `predict_test`: the logits of a test pipeline and the labels of the images
  it delivered (a file pipeline that skipped unreadable images while
  reading says which, through its `PipelineState`);
- `posthoc`: the post-hoc logit adjustment `z - tau * log prior`
  (`lcreg_keras.evaluation.posthoc.adjust_logits`), a class without training examples
  counting 1;
- `split_report`: top-1, the many / medium / few splits under a rule and the
  count rule, ECE and NLL (what a recipe stage reports);
- `evaluate_model`: the full report (`evaluation_report`, per class) written
  as `report.json`, `per_class.csv` and the plots (`tools/evaluate.py`);
- `summary`: printable lines of that report.

The recipes' runner (`lcreg_keras.recipes.runner`) and the evaluation tool
(`lcreg_keras.recipes.evaluate`, `tools/evaluate.py`) both come here.
"""

import csv
import json
import os

import numpy as np

from lcreg_keras.data.fashion_mnist import CLASS_NAMES as FASHION_MNIST_CLASSES
from lcreg_keras.evaluation import plots
from lcreg_keras.evaluation.accuracy import SPLITS
from lcreg_keras.evaluation.accuracy import format_report
from lcreg_keras.evaluation.accuracy import split_accuracy
from lcreg_keras.evaluation.calibration import expected_calibration_error
from lcreg_keras.evaluation.calibration import negative_log_likelihood
from lcreg_keras.evaluation.report import evaluation_report
from lcreg_keras.evaluation.posthoc import adjust_logits


def predict_test(model, test, labels, state=None, verbose=0):
    """Predicts a test set; returns `(labels, logits)` of the images it delivered.

    Args:
        model: a Keras model whose output is class logits `(B, C)`.
        test: what `model.predict` takes (a `tf.data.Dataset`, an array).
        labels: `(N,)` labels in the order of `test`.
        state: the test pipeline's `PipelineState`, or None. A file
            pipeline with `skip_bad_images` leaves out the files that fail
            while reading; their labels are dropped too.
        verbose: `predict`'s verbosity.

    Returns:
        `(labels, logits)`: int labels `(n,)` and the logits `(n, C)` as
        `predict` returns them, `n` the images the pass delivered.

    Raises:
        ValueError: when the model does not output `(N, C)` logits or their
            number differs from the labels'.
    """
    logits = np.asarray(model.predict(test, verbose=verbose))
    labels = np.asarray(labels)
    if state is not None and state.paths is not None:
        labels = state.evaluated_labels(labels)
    if logits.ndim != 2:
        raise ValueError(
            f"The model must output logits (N, C); it returned shape {logits.shape}."
        )
    if len(logits) != len(labels):
        raise ValueError(
            f"The model predicted {len(logits)} examples but there are "
            f"{len(labels)} test labels: `test` and `test_labels` differ."
        )
    return labels, logits


def posthoc(logits, train_counts, tau):
    """`logits - tau * log prior` (a class without examples counting 1); tau 0: unchanged."""
    if not tau:
        return logits
    return adjust_logits(logits, np.maximum(np.asarray(train_counts, np.int64), 1), tau=tau)


def split_report(labels, logits, train_counts, rule="count"):
    """Top-1, the splits under `rule` and the count rule, ECE, NLL.

    Args:
        labels: `(N,)` int labels.
        logits: `(N, C)` logits.
        train_counts: `(C,)` training examples per class.
        rule: the recipe's split rule (`"count"` or an index preset); the
            count rule is always reported too.

    Returns:
        `{"top1", "splits": {rule: split_accuracy(...)}, "ece", "nll"}`;
        `top1` is the overall accuracy under `rule`.
    """
    rules = [rule] + [r for r in ("count",) if r != rule]
    splits = {r: split_accuracy(labels, logits, train_counts, rule=r) for r in rules}
    return {
        "top1": splits[rule]["overall"],
        "splits": splits,
        "ece": expected_calibration_error(labels, logits, from_logits=True),
        "nll": negative_log_likelihood(labels, logits, from_logits=True),
    }


def class_names_of(data):
    """The dataset's class names, where known."""
    names = getattr(data, "class_names", None)
    if names:
        return list(names)
    if getattr(data, "name", None) == "fashion_mnist_lt":
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
    state=None,
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
        state: the test pipeline's `PipelineState` (see `predict_test`), or
            None.

    Returns:
        The report dict (`evaluation.evaluation_report` plus `extra`).

    Example:
        >>> report = evaluate_model(model, data.test, data.test_labels,
        ...                         data.train_counts, "runs/x/eval")  # doctest: +SKIP
        >>> report["top1"], report["ece"]  # doctest: +SKIP
    """
    listed = len(test_labels)
    test_labels, logits = predict_test(model, test, test_labels, state, verbose)
    logits = np.asarray(logits, np.float64)
    if logits.shape[1] != len(train_counts):
        raise ValueError(
            f"The model has {logits.shape[1]} outputs but the dataset has "
            f"{len(train_counts)} classes: wrong --recipe or model?"
        )
    logits = posthoc(logits, train_counts, posthoc_tau)
    report = evaluation_report(
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
    plots.plot_reliability(
        report["reliability"], os.path.join(out_dir, "reliability.png"), ece=report["ece"]
    )
    plots.plot_accuracy_by_frequency(
        report, os.path.join(out_dir, "accuracy_by_frequency.png")
    )
    return report


def summary(report, name=None):
    """Printable lines: one per split rule, then ECE and NLL."""
    def nan(value):
        return float("nan") if value is None else value

    lines = []
    for result in report["splits"].values():
        result = {k: nan(v) if k in ("overall",) + SPLITS else v
                  for k, v in result.items()}
        lines.append(format_report(result, name=name))
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
