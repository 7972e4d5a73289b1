"""What a recipe run reports: a stage's test metrics, the best epoch, metrics.json.

- `stage_report`: a trained stage's test metrics (through
  `lcreg_keras.evaluation.evaluate`, the one evaluation), with the images
  evaluated and skipped;
- `best_over_epochs`: the best validated epoch beside the last (MiSLAS's
  `best_acc1`);
- `finish`: the final `model.keras`, `metrics.json` and the printed summary.
"""

import csv
import dataclasses
import json
import math
import os
import shutil
import time

import keras

from lcreg_keras.evaluation.accuracy import format_report
from lcreg_keras.evaluation.evaluate import posthoc
from lcreg_keras.evaluation.evaluate import predict_test
from lcreg_keras.evaluation.evaluate import split_report
from lcreg_keras.recipes.run_guard import plain
from lcreg_keras.serving import run_folder


def stage_report(config, data, model, stage=None):
    """Test metrics under the recipe's rule and the count rule.

    Images of the test split that fail while reading (with
    `--skip_bad_images`) are left out, and the report says how many
    (`test_images`: `evaluated` of `listed`). With `--posthoc_tau` every
    metric (top-1, splits, ECE, NLL) is of the adjusted logits
    `z - tau * log prior`; the unadjusted ones are kept under `"unadjusted"`.
    """
    labels, logits = predict_test(model, data.test, data.test_labels, data.states.get("test"))
    failed = data.read_skips("test")
    if stage is not None:
        run_folder.kill_point(f"evaluate.{stage}")
    counts = data.train_counts
    report = split_report(labels, posthoc(logits, counts, config.posthoc_tau), counts,
                          config.eval_rule)
    if config.posthoc_tau:
        report["posthoc_tau"] = config.posthoc_tau
        report["unadjusted"] = split_report(labels, logits, counts, config.eval_rule)
    test = data.images.get("test", {})
    report["test_images"] = {
        "listed": int(test.get("listed", len(data.test_labels))),
        "evaluated": int(len(labels)),
        "skipped_at_scan": int(test.get("skipped_at_scan", 0)),
        "skipped_while_reading": len(failed),
        "skipped_files": [data.where("test", p) for p in failed[:20]],
    }
    # As JSON holds it: a stage read back from done.json is the same dict.
    return json.loads(json.dumps(plain(report)))


def best_over_epochs(stage_dir, last_top1, epochs):
    """The best test top-1 over the validated epochs of a stage, beside the last.

    MiSLAS reports `best_acc1`, the best test accuracy over its epochs; we
    keep the last as the headline and report the best beside it. The
    validated epochs are the `val_accuracy` entries of
    `stage_dir/history.csv` (every `--eval_every`-th epoch, across resumed
    runs; a later row of an epoch replaces an earlier one), and the final
    evaluation counts as epoch `epochs`.

    Args:
        stage_dir: the stage's folder (`history.csv` inside).
        last_top1: top-1 of the final evaluation, in [0, 1].
        epochs: the stage's number of epochs.

    Returns:
        `{"top1_last", "top1_best", "top1_best_epoch"}` (epochs counted
        from 1; on a tie the earliest epoch).

    Example:
        >>> best_over_epochs("runs/x/stage2", 0.52, 10)  # doctest: +SKIP
        {'top1_last': 0.52, 'top1_best': 0.534, 'top1_best_epoch': 8}
    """
    by_epoch = {}
    path = os.path.join(stage_dir, "history.csv")
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    epoch, value = int(row["epoch"]) + 1, float(row.get("val_accuracy") or "nan")
                except (KeyError, ValueError):
                    continue
                if 1 <= epoch <= epochs and not math.isnan(value):
                    by_epoch[epoch] = value
    by_epoch[epochs] = float(last_top1)
    best_epoch = max(sorted(by_epoch), key=lambda e: by_epoch[e])
    return {
        "top1_last": float(last_top1),
        "top1_best": by_epoch[best_epoch],
        "top1_best_epoch": best_epoch,
    }


def with_best(result, stage_dir, epochs, validated):
    """`result` plus the best-over-epochs report when the stage validated."""
    if validated:
        result.update(best_over_epochs(stage_dir, result["top1"], epochs))
    return result


def finish(config, data, results, start):
    """The final model, metrics.json and the summary."""


    stage_dirs = {s: os.path.join(config.model_dir, s) for s in ("stage1", "stage2")}
    final_stage = "stage2" if "stage2" in results else "stage1"
    final = results[final_stage]
    final_model = os.path.join(stage_dirs[final_stage], "model.keras")
    run_folder.replace_file(os.path.join(config.model_dir, "model.keras"),
                         lambda tmp: shutil.copyfile(final_model, tmp))

    images = _image_counts(config, data, final, stage_dirs)
    metrics = {
        "dataset": config.dataset,
        "backend": keras.config.backend(),
        "top1": final["top1"],  # the last epoch's: the headline
        "top1_last": final["top1"],
        "top1_best": final.get("top1_best"),  # over validated epochs, as MiSLAS
        "top1_best_epoch": final.get("top1_best_epoch"),
        "splits": final["splits"],
        "ece": final.get("ece"),
        "nll": final.get("nll"),
        # The reported numbers are of z - posthoc_tau * log prior; "unadjusted": of z.
        "posthoc_tau": config.posthoc_tau,
        "unadjusted": final.get("unadjusted"),
        "heldout_examples": 0 if data.heldout_labels is None else int(len(data.heldout_labels)),
        "stages": results,
        "paper_top1": config.paper_top1,
        "images": images,
        "train_examples": images["train"]["used"],
        "test_examples": images["test"]["evaluated"],
        "skipped_images": images["train"]["skipped"] + images["test"]["skipped"],
        "total_seconds": round(time.time() - start, 1),
        "config": plain(dataclasses.asdict(config)),
    }
    run_folder.write_json(os.path.join(config.model_dir, "metrics.json"), metrics)
    name = f"{config.dataset} (IF {config.imbalance_factor:g})"
    for stage, result in results.items():
        for report in result["splits"].values():
            print(format_report(report, name=f"{name} {stage}"), flush=True)
        if result.get("ece") is not None:
            print(f"{name} {stage}: ECE {100 * result['ece']:.2f} % (15 bins), "
                  f"NLL {result['nll']:.3f}", flush=True)
        if result.get("top1_best") is not None:
            print(
                f"{name} {stage}: top-1 last {100 * result['top1']:.2f} (headline), "
                f"best {100 * result['top1_best']:.2f} at epoch {result['top1_best_epoch']} "
                "of the validated epochs (what MiSLAS reports)",
                flush=True,
            )
        if result.get("posthoc_tau"):
            print(f"{name} {stage}: the numbers above are post-hoc logit-adjusted (tau "
                  f"{result['posthoc_tau']:g}); unadjusted top-1 "
                  f"{100 * result['unadjusted']['top1']:.2f}", flush=True)
    if config.paper_top1 is not None:
        print(f"paper: top-1 {config.paper_top1:.1f}", flush=True)
    for line in _image_lines(images):
        print(line, flush=True)
    print(
        f"time: {metrics['total_seconds'] / 60:.1f} min; metrics: "
        f"{os.path.join(config.model_dir, 'metrics.json')}",
        flush=True,
    )
    return metrics


def _image_counts(config, data, final, stage_dirs):
    """Images listed, skipped (at the scan and while reading) and used, per split."""
    train = data.images.get("train", {})
    listed = int(train.get("listed", int(sum(data.train_counts))))
    at_scan = int(train.get("skipped_at_scan", 0))
    failed = set()
    for folder in stage_dirs.values():
        failed.update(run_folder.read_json(os.path.join(folder, "skipped_while_reading.json"),
                                        default=[]))
    test = dict(final.get("test_images") or {
        "listed": int(len(data.test_labels)), "evaluated": int(len(data.test_labels)),
        "skipped_at_scan": 0, "skipped_while_reading": 0, "skipped_files": [],
    })
    test["skipped"] = test["skipped_at_scan"] + test["skipped_while_reading"]
    return {
        "train": {
            "listed": listed,
            "skipped_at_scan": at_scan,
            "skipped_while_reading": len(failed),
            "skipped": at_scan + len(failed),
            "used": listed - at_scan - len(failed),
            "skipped_files": [data.where("train", p) for p in sorted(failed)[:20]],
            "scan": train.get("scan", "none"),
        },
        "test": test,
    }


def _image_lines(images):
    train, test = images["train"], images["test"]
    lines = [f"top-1 over {test['evaluated']:,} of {test['listed']:,} test images"
             + (f" ({test['skipped_at_scan']} skipped at the scan, "
                f"{test['skipped_while_reading']} while reading)" if test["skipped"] else "")]
    if train["skipped"]:
        lines.append(
            f"trained on {train['used']:,} of {train['listed']:,} training images "
            f"({train['skipped_at_scan']} skipped at the scan, "
            f"{train['skipped_while_reading']} while reading)")
    for split, info in (("train", train), ("test", test)):
        for where in info.get("skipped_files", [])[:5]:
            lines.append(f"  skipped {split} image: {where}")
    return lines
