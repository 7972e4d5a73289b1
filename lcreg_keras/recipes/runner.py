"""The one runner behind every recipe: flags, data, model, training, report.

A recipe module defines `get_config()` and calls `runner.main(get_config)`.
Flags override the recipe's fields; `--smoke` shrinks the run to a minute on a
CPU (what CI runs). Outputs in `--model_dir`:

- `backup/`: `keras.callbacks.BackupAndRestore` state; a killed run started
  again with the same command resumes from the last finished epoch.
- `last.keras`: the model after the last finished epoch.
- `tensorboard/`: each loss term, lambda, the latent-usage diagnostics and
  the learning rate, per epoch.
- `history.csv`: the same numbers as text.
- `metrics.json`: the final test metrics (overall, many / medium / few under
  each rule, named), the configuration and the wall time.
"""

import dataclasses
import json
import os
import time

from absl import app
from absl import flags

# (field, flag type, help). Each becomes `--field`, default: the recipe's value.
FLAG_FIELDS = (
    ("data_dir", "string", "Where the dataset lives (searched first)."),
    ("model_dir", "string", "Output folder: checkpoints, backup, logs, metrics."),
    ("epochs", "integer", "Stage-one epochs."),
    ("batch_size", "integer", "Global batch size."),
    ("lr", "float", "Peak learning rate."),
    ("weight_decay", "float", "Coupled (PyTorch-style) weight decay."),
    ("imbalance_factor", "float", "N_max / N_min of the long-tailed training set."),
    ("num_latents", "integer", "M, the number of latent categories."),
    ("seed", "integer", "Seed of initialisation, data order, augmentation, mixup."),
    ("mixup_alpha", "float", "Mixup Beta(alpha, alpha); 0 turns mixup off."),
    ("latent", "bool", "Use the latent pool (False: the MiSLAS baseline)."),
    ("latent_aug", "bool", "Train the latent ISDA loss (Table 4 ablation)."),
    ("latent_recon", "bool", "Train the reconstruction loss (Table 4 ablation)."),
    ("fusion", "string", "residual | replace | none."),
    ("covariance", "string", "full | diagonal latent covariance."),
    ("isda_lambda0", "float", "Final ISDA strength lambda_0."),
    ("temperature", "float", "Softmax temperature of Eq. 2."),
    ("similarity", "string", "dot | cosine similarity in Eq. 1."),
    ("alpha", "float", "Weight of L_aug (Eq. 7)."),
    ("beta", "float", "Weight of L_recon (Eq. 7)."),
    ("backbone", "string", "Backbone name (lcreg_keras.backbones.get_backbone)."),
    ("backbone_width", "integer", "Width of a CIFAR ResNet's first stage."),
    ("eval_rule", "string", "count | an index preset (cifar10, cifar100, ...)."),
    ("train_list", "string", "Training list file (name in --data_dir, or a path)."),
    ("val_list", "string", "Validation list file."),
    ("test_list", "string", "Test list file."),
    ("path_prefix", "string", "Prefix joined to every listed image path."),
    ("image_size", "integer", "Training crop / test centre-crop size."),
    ("skip_bad_images", "bool", "Count and skip unreadable images instead of failing."),
    ("max_train_examples", "integer", "Use at most this many training examples."),
    ("max_test_examples", "integer", "Use at most this many test examples."),
    ("mixed_precision", "string", "mixed_bfloat16 | mixed_float16 (losses stay float32)."),
)

FLAGS = flags.FLAGS
CIFAR_RESNETS = ("resnet8", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")


def define_flags():
    """Defines the recipe flags once (recipes may be imported together)."""
    if "smoke" in FLAGS:
        return
    definers = {
        "string": flags.DEFINE_string,
        "integer": flags.DEFINE_integer,
        "float": flags.DEFINE_float,
        "bool": flags.DEFINE_bool,
    }
    for name, kind, help_text in FLAG_FIELDS:
        definers[kind](name, None, help_text + " Default: the recipe's.")
    flags.DEFINE_bool("smoke", False, "Shrink the run to about a minute on a CPU.")
    flags.DEFINE_integer("verbose", None, "Keras fit verbosity: 0, 1 (bar), 2 (line).")


def smoke(config):
    """A minute-long CPU version of a recipe, for CI and first tries."""
    small_resnet = config.backbone in CIFAR_RESNETS
    return config.replace(
        epochs=min(config.epochs, 2),
        batch_size=min(config.batch_size, 64),
        backbone="resnet8" if small_resnet else config.backbone,
        backbone_width=min(config.backbone_width, 8),
        warmup_epochs=min(config.warmup_epochs, 1),
        num_latents=min(config.num_latents, 8),
        max_train_examples=2048,
        max_test_examples=1024,
    )


def apply_flags(config):
    """The recipe's config, shrunk by `--smoke`, then with every given flag."""
    if FLAGS.smoke:
        config = smoke(config)
    changes = {name: FLAGS[name].value for name, _, _ in FLAG_FIELDS}
    return config.replace(**{k: v for k, v in changes.items() if v is not None})


def main(get_config):
    """Entry point of `python -m lcreg_keras.recipes.<name>`."""
    define_flags()

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        run(apply_flags(get_config()), verbose=FLAGS.verbose)

    app.run(_main)


# ----------------------------------------------------------------------------
def build_model(config, data):
    """The LCRegModel a config describes, for a dataset's shapes."""
    from lcreg_keras.backbones import get_backbone
    from lcreg_keras.models import LCRegModel

    kwargs = {"width": config.backbone_width} if config.backbone in CIFAR_RESNETS else {}
    backbone = get_backbone(config.backbone, data.input_shape, **kwargs)
    return LCRegModel(
        backbone,
        num_classes=data.num_classes,
        num_latents=config.num_latents,
        alpha=config.alpha,
        beta=config.beta,
        gamma=config.gamma,
        isda_lambda0=config.isda_lambda0,
        covariance=config.covariance,
        fusion=config.fusion,
        latent=config.latent,
        latent_aug=config.latent_aug,
        latent_recon=config.latent_recon,
        temperature=config.temperature,
        similarity=config.similarity,
        weight_decay=config.weight_decay,
        seed=config.seed,
        name="lcreg",
    )


def learning_rate(config, steps_per_epoch):
    """The stage-one schedule, in optimizer steps."""
    from lcreg_keras.schedules import WarmupCosine
    from lcreg_keras.schedules import WarmupStepDecay

    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return WarmupCosine(config.lr, total_steps=total, warmup_steps=warmup)
    if config.schedule == "warmup_step":
        boundaries = [int(round(f * config.epochs)) * steps_per_epoch for f in config.lr_decay_at]
        return WarmupStepDecay(config.lr, warmup, boundaries, config.lr_decay_factors)
    raise ValueError(f"`schedule` must be 'cosine' or 'warmup_step'. Received: {config.schedule!r}")


def callbacks(config, steps_per_epoch):
    import keras

    from lcreg_keras.callbacks import LearningRateLogger

    out = config.model_dir
    return [
        LearningRateLogger(),  # first: the loggers below see `learning_rate`
        keras.callbacks.BackupAndRestore(os.path.join(out, "backup")),
        keras.callbacks.ModelCheckpoint(os.path.join(out, "last.keras")),
        keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), update_freq="epoch"),
        keras.callbacks.TerminateOnNaN(),
    ]


def run(config, verbose=None):
    """Trains and evaluates one config; returns the metrics dict it writes."""
    import keras

    from lcreg_keras import evaluation
    from lcreg_keras.recipes import datasets

    start = time.time()
    os.makedirs(config.model_dir, exist_ok=True)
    if config.mixed_precision:
        keras.config.set_dtype_policy(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    data = datasets.load(config)
    print(data.describe(), flush=True)

    model = build_model(config, data)
    optimizer = keras.optimizers.SGD(
        learning_rate(config, data.steps_per_epoch), momentum=config.momentum
    )
    model.compile(optimizer=optimizer)
    model.build((None,) + tuple(data.input_shape))
    print(_describe_model(config, model, data), flush=True)
    model.fit(
        data.train,
        epochs=config.epochs,
        steps_per_epoch=data.steps_per_epoch,
        callbacks=callbacks(config, data.steps_per_epoch),
        shuffle=False,
        verbose="auto" if verbose is None else verbose,
    )
    train_seconds = time.time() - start

    logits = model.predict(data.test, verbose=0)
    rules = [config.eval_rule] + [r for r in ("count",) if r != config.eval_rule]
    reports = {
        rule: evaluation.split_accuracy(data.test_labels, logits, data.train_counts, rule=rule)
        for rule in rules
    }
    metrics = {
        "dataset": config.dataset,
        "backend": keras.config.backend(),
        "top1": reports[config.eval_rule]["overall"],
        "splits": reports,
        "paper_top1": config.paper_top1,
        "train_examples": int(sum(data.train_counts)),
        "test_examples": int(len(data.test_labels)),
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - start, 1),
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(config.model_dir, "preprocessing.json"), "w") as f:
        json.dump(data.preprocessing, f, indent=2)
    with open(os.path.join(config.model_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, default=str)
    name = f"{config.dataset} (IF {config.imbalance_factor:g})"
    for rule, report in reports.items():
        print(evaluation.format_report(report, name=name), flush=True)
    print(
        f"time: {metrics['total_seconds'] / 60:.1f} min; metrics: "
        f"{os.path.join(config.model_dir, 'metrics.json')}",
        flush=True,
    )
    return metrics


def _describe_model(config, model, data):
    if not config.latent:
        what = "baseline (no latent pool)"
    else:
        parts = [f"M={config.num_latents}", f"fusion={config.fusion}"]
        parts.append("aug" if config.latent_aug else "no aug")
        parts.append("recon" if config.latent_recon else "no recon")
        what = "LCReg " + ", ".join(parts)
    return (
        f"model: {config.backbone} + {what}; {model.count_params():,} parameters; "
        f"{config.epochs} epochs x {data.steps_per_epoch} steps, batch {config.batch_size}, "
        f"backend {__import__('keras').config.backend()}"
    )
