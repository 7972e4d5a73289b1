"""The one runner behind every recipe: flags, data, model, training, report.

A recipe module defines `get_config()` and calls `runner.main(get_config)`.
Flags override the recipe's fields; `--smoke` shrinks the run to a minute on a
CPU (what CI runs). Flag values are checked before any data is read. The
long-tailed subset is drawn with `--subset_seed` (default 0), not `--seed`, so
runs with different seeds train on the same images (MiSLAS: `rand_number=0`). `--stage=1|2|both` picks MiSLAS's stages. Outputs in
`--model_dir`:

- `stage1/`, `stage2/`, one folder a stage:
  - `backup/`: `keras.callbacks.BackupAndRestore` state; a killed run started
    again with the same command resumes from the last finished epoch (a
    finished stage is not trained again: its `done.json` and `model.keras`
    are loaded);
  - `last.keras` after every epoch, `best.keras` (best test accuracy) when
    `--eval_every` validates during training, `model.keras` at the end;
  - `tensorboard/`: each loss term, each auxiliary term's share of the loss
    (`share_aug`, `share_recon`), lambda, the latent-usage diagnostics and
    the learning rate, per epoch; `history.csv`: the same as text. Stage one
    prints one warning per auxiliary term whose share is below 1 % after the
    first tenth of the epochs (`callbacks.LossShareMonitor`);
- `model.keras`: the final model; `preprocessing.json`: how raw images become
  its inputs (for evaluation and export);
- `metrics.json`: the test metrics after each stage (overall, many / medium /
  few under each rule, named), the configuration and the wall time. `top1`
  (also `top1_last`) is the model after the last epoch, the headline; when
  `--eval_every` validates during training, `top1_best` and
  `top1_best_epoch` give the best test top-1 over the validated epochs and
  the last one, what MiSLAS reports (its `best_acc1`). The best is
  picked on the test set, so it is optimistic; it is there to compare with
  published numbers.
  With `--posthoc_tau` every metric is of the adjusted logits
  `z - tau * log prior` (the unadjusted ones under `"unadjusted"`);
  `best.keras` is still chosen on the unadjusted validation accuracy.

The long-tailed baselines (`--loss`, `--stage2`, `--posthoc_tau`,
`--heldout_fraction`, ...) are described in `lcreg_keras/recipes/baselines.py`.
"""

import csv
import dataclasses
import json
import math
import os
import sys
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
    # issue 12
    ("latent_aug_samples", "string", "latents | parts: the samples of Eq. 5-6 (spec Sec. 3)."),
    ("latent_aug_explicit", "bool", "Feed latents augmented with N(0, lambda Sigma') to Eq. 3 in training."),
    ("subset_seed", "integer", "Seed of the long-tailed subset, fixed across --seed (MiSLAS: 0)."),
    ("alpha", "float", "Weight of L_aug (Eq. 7)."),
    ("beta", "float", "Weight of L_recon (Eq. 7)."),
    ("backbone", "string", "Backbone name (lcreg_keras.backbones.get_backbone)."),
    ("backbone_width", "integer", "Width of a CIFAR ResNet's first stage."),
    ("backbone_weights", "string", "ImageNet ResNets: none, imagenet or a weights file."),
    ("paper_top1", "float", "The paper's top-1 for this row, printed beside ours."),
    ("eval_rule", "string", "count | an index preset (cifar10, cifar100, ...)."),
    ("train_list", "string", "Training list file (name in --data_dir, or a path)."),
    ("val_list", "string", "Validation list file."),
    ("test_list", "string", "Test list file."),
    ("path_prefix", "string", "Prefix joined to every listed image path."),
    ("image_size", "integer", "Training crop / test centre-crop size."),
    ("skip_bad_images", "bool", "Count and skip unreadable images instead of failing."),
    ("check_images", "bool", "Scan image headers before training (false: only while reading)."),
    ("stage", "string", "1 | 2 (from --model_dir/stage1) | both."),
    ("stage2_epochs", "integer", "Stage-two epochs."),
    ("stage2_lr", "float", "Stage-two base learning rate (default: --lr)."),
    ("stage2_lr_factor", "float", "Stage-two classifier learning-rate factor."),
    ("stage2_epoch_size", "integer", "Stage-two examples per epoch (default: ceil(N / B) + 1 batches)."),
    # issue 13
    ("stage2_samples_per_class", "integer", "Stage two: samples a class visit takes (MiSLAS: 4)."),
    ("eps_head", "float", "Label-aware smoothing of the largest class."),
    ("eps_tail", "float", "Label-aware smoothing of the smallest class."),
    ("shift_bn", "bool", "Re-estimate BatchNorm statistics in stage two."),
    # issue 15
    ("loss", "string",
     "Stage-one loss: ce | logit_adjusted | balanced_softmax | ldam_drw | cb_softmax | cb_focal."),
    ("la_tau", "float", "tau of the logit-adjusted loss (z + tau * log prior)."),
    ("ldam_s", "float", "LDAM's scale s of the cosine logits."),
    ("ldam_max_margin", "float", "LDAM's largest margin (the rarest class's)."),
    ("drw_epoch", "integer", "First re-weighted epoch (0-based) of LDAM-DRW; default 0.8 x epochs."),
    ("cb_beta", "float", "Effective-number beta of cb_softmax, cb_focal and DRW's weights."),
    ("focal_gamma", "float", "gamma of cb_focal."),
    ("stage2", "string", "Second stage: mislas | crt | lws | tau_norm | none."),
    ("posthoc_tau", "float", "Report logits z - tau * log prior (post-hoc adjustment); 0: off."),
    ("heldout_fraction", "float",
     "Training data held out per class, for tau_norm's tau (default: 0.1 there, else 0)."),
    ("eval_every", "integer", "Validate on the test set every N epochs (0: at the end only)."),
    ("distribution", "string", "auto | none | mirrored | multi_worker | data_parallel."),
    ("max_train_examples", "integer", "Use at most this many training examples."),
    ("max_test_examples", "integer", "Use at most this many test examples."),
    ("mixed_precision", "string", "mixed_bfloat16 | mixed_float16 (losses stay float32)."),
)

FLAGS = flags.FLAGS
_BACKUP_ROOT = {}  # a worker's model_dir -> the chief's, where the backups are
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
    flags.DEFINE_integer("verbose", None, "Keras fit verbosity: 0, 1 (bar), 2 (line). Default: a bar on a terminal, lines otherwise.")


def smoke(config):
    """A minute-long CPU version of a recipe, for CI and first tries.

    Same data source, loss, stages and outputs; a tiny ResNet-8, 32-pixel
    crops for the ImageNet-style sets, at most 2,048 training and 1,024 test
    examples, two epochs and one stage-two epoch.
    """
    return config.replace(
        epochs=min(config.epochs, 2),
        batch_size=min(config.batch_size, 64),
        backbone="resnet8",
        backbone_width=min(config.backbone_width, 8),
        backbone_weights=None,
        image_size=min(config.image_size, 32),
        resize_size=min(config.resize_size, 36),
        warmup_epochs=min(config.warmup_epochs, 1),
        num_latents=min(config.num_latents, 8),
        stage2_epochs=min(config.stage2_epochs, 1),
        stage2_epoch_size=min(config.stage2_epoch_size or 1024, 1024),
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
    from lcreg_keras.recipes import baselines

    if config.backbone in CIFAR_RESNETS:
        kwargs = {"width": config.backbone_width}
    else:
        weights = config.backbone_weights
        kwargs = {"weights": None if weights in (None, "", "none") else weights}
    backbone = get_backbone(config.backbone, data.input_shape, **kwargs)
    model_class, model_kwargs = baselines.model_class(config)  # LDAM: a cosine classifier
    return model_class(
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
        latent_aug_samples=config.latent_aug_samples,
        latent_aug_explicit=config.latent_aug_explicit,
        temperature=config.temperature,
        similarity=config.similarity,
        weight_decay=config.weight_decay,
        seed=config.seed,
        name="lcreg",
        **model_kwargs,
    )


def decay_steps(fractions, epochs, steps_per_epoch):
    """Steps where the step schedule decays: whole epochs when they keep apart.

    MiSLAS decays at whole epochs (160 and 180 of 200). A short run can round
    two decay points onto one epoch (0.8 and 0.9 of 6 epochs both round to
    epoch 5), which would silently drop a phase; then every point is placed
    at step precision instead (steps 557 and 626 of 696).

    >>> decay_steps((0.8, 0.9), 200, 10), decay_steps((0.8, 0.9), 6, 116)
    ([1600, 1800], [557, 626])
    """
    in_epochs = [int(round(f * epochs)) * steps_per_epoch for f in fractions]
    if len(set(in_epochs)) == len(in_epochs):
        return in_epochs
    return [int(round(f * epochs * steps_per_epoch)) for f in fractions]


def learning_rate(config, steps_per_epoch):
    """The stage-one schedule, in optimizer steps."""
    from lcreg_keras.schedules import WarmupCosine
    from lcreg_keras.schedules import WarmupStepDecay

    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return WarmupCosine(config.lr, total_steps=total, warmup_steps=warmup)
    if config.schedule == "warmup_step":
        return WarmupStepDecay(
            config.lr, warmup, decay_steps(config.lr_decay_at, config.epochs, steps_per_epoch),
            config.lr_decay_factors,
        )
    raise ValueError(f"`schedule` must be 'cosine' or 'warmup_step'. Received: {config.schedule!r}")


def _sample_images(data, count=12):
    """Model inputs of up to `count` test images, one class after another."""
    import numpy as np

    for x, y in data.test.take(1):
        x, y = np.asarray(x), np.asarray(y)
        order = np.argsort(y, kind="stable")
        picks = [order[np.searchsorted(y[order], c)] for c in np.unique(y)][:count]
        return x[picks]
    return None


def stage_callbacks(config, stage_dir, validate, data=None):
    """Logging, checkpoints and crash recovery of one stage."""
    import keras

    from lcreg_keras import resume
    from lcreg_keras.callbacks import LearningRateLogger

    backup_root = _BACKUP_ROOT.get(config.model_dir, config.model_dir)
    out = [
        LearningRateLogger(),  # first: the loggers below see `learning_rate`
        # Resumes at the last finished epoch with the data order it would
        # have had; only the chief worker writes, every worker restores.
        resume.BackupAndRestore(
            os.path.join(backup_root, os.path.basename(stage_dir), "backup"),
            dataset=None if data is None else (data.train, data.stage_two_train),
        ),
        keras.callbacks.ModelCheckpoint(os.path.join(stage_dir, "last.keras")),
        keras.callbacks.CSVLogger(os.path.join(stage_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(stage_dir, "tensorboard"), update_freq="epoch"),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.latent:
        from lcreg_keras.callbacks import LossShareMonitor

        out.append(LossShareMonitor())
    images = _sample_images(data) if data is not None and config.latent else None
    if images is not None:
        from lcreg_keras.visualize import LatentUsageImages

        out.append(LatentUsageImages(images, os.path.join(stage_dir, "tensorboard", "latents")))
    if validate:
        out.append(
            keras.callbacks.ModelCheckpoint(
                os.path.join(stage_dir, "best.keras"),
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
            )
        )
    return out


def _validates(config, epochs):
    return 0 < config.eval_every <= epochs


def _fit_kwargs(config, data, verbose, epochs):
    validate = _validates(config, epochs)
    if verbose is None:  # a bar on a terminal, one line an epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    kwargs = {"shuffle": False, "verbose": verbose}
    if validate:
        kwargs.update(validation_data=data.test, validation_freq=config.eval_every)
    return kwargs


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


def _with_best(config, result, stage_dir, epochs):
    """`result` plus the best-over-epochs report when the stage validated."""
    if _validates(config, epochs):
        result.update(best_over_epochs(stage_dir, result["top1"], epochs))
    return result


def _finished(stage_dir):
    return os.path.exists(os.path.join(stage_dir, "done.json"))


def _mark_finished(stage_dir, model, report):
    model.save(os.path.join(stage_dir, "model.keras"))
    with open(os.path.join(stage_dir, "done.json"), "w") as f:
        json.dump(report, f, indent=2, default=str)


def train_stage_one(config, data, verbose=None):
    """Stage one: the LCReg model from scratch with mixup; returns the model."""
    import keras

    from lcreg_keras.losses import Top1Accuracy
    from lcreg_keras.recipes import baselines

    stage_dir = os.path.join(config.model_dir, "stage1")
    if _finished(stage_dir):
        print(f"stage 1: finished earlier, loading {stage_dir}/model.keras", flush=True)
        return keras.saving.load_model(os.path.join(stage_dir, "model.keras"))
    model = build_model(config, data)
    optimizer = keras.optimizers.SGD(
        learning_rate(config, data.steps_per_epoch), momentum=config.momentum
    )
    loss = baselines.stage_one_loss(config, data.train_counts)  # None: cross-entropy
    model.compile(optimizer=optimizer, loss=loss, metrics=[Top1Accuracy()])
    model.build((None,) + tuple(data.input_shape))
    baselines.prepare_model(config, model)
    print("stage 1: " + _describe_model(config, model, data), flush=True)
    print(f"stage 1: L_cls = {baselines.describe_stage_one(config)}", flush=True)
    callbacks = stage_callbacks(config, stage_dir, _validates(config, config.epochs), data)
    model.fit(
        data.train,
        epochs=config.epochs,
        steps_per_epoch=data.steps_per_epoch,
        callbacks=callbacks + baselines.stage_one_callbacks(config),
        **_fit_kwargs(config, data, verbose, config.epochs),
    )
    return model


def train_stage_two(config, data, model, verbose=None, info=None):
    """Stage two (`--stage2`): re-balance the classifier of a stage-one model.

    MiSLAS's fine-tuning (default), cRT or LWS train on class-balanced
    batches; tau-normalisation chooses its tau on the held-out training split.
    `info` (a dict) receives what the method chose.
    """
    from lcreg_keras.losses import Top1Accuracy
    from lcreg_keras.recipes import baselines

    if config.stage2 == "tau_norm":
        return _tau_normalize(config, data, model, {} if info is None else info)
    if data.stage_two_train is None:
        raise ValueError(f"The {data.name} loader builds no class-balanced stage-two data.")
    stage_dir = os.path.join(config.model_dir, "stage2")
    stage_two, what = baselines.stage_two_method(config, data.train_counts)
    print(
        f"stage 2: {config.stage2_epochs} epochs x {data.stage_two_steps} class-balanced "
        f"steps ({config.stage2_samples_per_class} a class visit); {what}",
        flush=True,
    )
    stage_two.fit(
        model,
        data.stage_two_train,
        data.stage_two_steps,
        metrics=[Top1Accuracy()],
        callbacks=stage_callbacks(config, stage_dir, _validates(config, config.stage2_epochs), data),
        **_fit_kwargs(config, data, verbose, config.stage2_epochs),
    )
    return model


def _tau_normalize(config, data, model, info):
    """Stage two `tau_norm`: Kang et al.'s tau chosen on the held-out training split."""
    from lcreg_keras.posthoc import TauNormalization

    if data.heldout is None:
        raise ValueError("--stage2=tau_norm needs a held-out split (--heldout_fraction > 0).")
    result = TauNormalization().fit(model, data.heldout, data.heldout_labels)
    info.update(result)
    stage_dir = os.path.join(config.model_dir, "stage2")
    os.makedirs(stage_dir, exist_ok=True)
    with open(os.path.join(stage_dir, "tau_norm.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"stage 2: tau-normalisation, tau {result['tau']:g} chosen on "
        f"{result['heldout_examples']} held-out training examples (balanced accuracy "
        f"{100 * result['heldout_balanced_accuracy']:.2f} %; classifier bias dropped)",
        flush=True,
    )
    return model


def _logit_report(config, data, logits):
    from lcreg_keras import evaluation

    rules = [config.eval_rule] + [r for r in ("count",) if r != config.eval_rule]
    splits = {
        rule: evaluation.split_accuracy(data.test_labels, logits, data.train_counts, rule=rule)
        for rule in rules
    }
    return {
        "top1": splits[config.eval_rule]["overall"],
        "splits": splits,
        "ece": evaluation.expected_calibration_error(data.test_labels, logits, from_logits=True),
        "nll": evaluation.negative_log_likelihood(data.test_labels, logits, from_logits=True),
    }


def validate(config):
    """Raises a clear ValueError for a bad choice, before any data is read."""
    from lcreg_keras.layers.latent_covariance import COVARIANCE_MODES
    from lcreg_keras.models.lcreg_model import FUSIONS
    from lcreg_keras.models.lcreg_model import LATENT_AUG_SAMPLES

    choices = (
        ("stage", ("1", "2", "both")),
        ("latent_aug_samples", LATENT_AUG_SAMPLES),
        ("fusion", FUSIONS),
        ("covariance", COVARIANCE_MODES),
        ("similarity", ("dot", "cosine")),
    )
    for name, allowed in choices:
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(
                f"`--{name}` must be one of {', '.join(allowed)}. Received: {value!r}"
            )
    if config.latent_aug_explicit and not (config.latent and config.latent_aug):
        raise ValueError(
            "`--latent_aug_explicit` draws from the covariance that L_aug estimates: "
            "it needs --latent and --latent_aug."
        )
    if isinstance(config.subset_seed, bool) or not isinstance(config.subset_seed, int) \
            or config.subset_seed < 0:
        raise ValueError(
            f"`--subset_seed` must be an integer >= 0. Received: {config.subset_seed!r}"
        )
    if not config.isda_lambda0 >= 0:
        raise ValueError(f"`--isda_lambda0` must be >= 0. Received: {config.isda_lambda0}")


def evaluate(config, data, model):
    """Test metrics under the recipe's rule and the count rule.

    With `--posthoc_tau` every metric (top-1, splits, ECE, NLL) is of the
    adjusted logits `z - tau * log prior`; the unadjusted ones are kept
    under `"unadjusted"`.
    """
    from lcreg_keras.posthoc import adjust_logits
    from lcreg_keras.recipes import baselines

    logits = model.predict(data.test, verbose=0)
    if not config.posthoc_tau:
        return _logit_report(config, data, logits)
    adjusted = adjust_logits(
        logits, baselines.prior_counts(data.train_counts), tau=config.posthoc_tau
    )
    report = _logit_report(config, data, adjusted)
    report["posthoc_tau"] = config.posthoc_tau
    report["unadjusted"] = _logit_report(config, data, logits)
    return report


def run(config, verbose=None):
    """Trains and evaluates one config; returns the metrics dict it writes."""
    import keras

    from lcreg_keras import distribute
    from lcreg_keras import evaluation
    from lcreg_keras.recipes import baselines
    from lcreg_keras.recipes import datasets

    validate(config)
    baselines.check(config)  # --loss, --stage2, --posthoc_tau, ...: before any data is read
    start = time.time()
    distribute.prepare(config.distribution)  # before any TF op / JAX computation
    scratch = distribute.worker_dir(config.model_dir)  # non-chief workers write here
    _BACKUP_ROOT[scratch] = config.model_dir
    config = config.replace(model_dir=scratch)
    os.makedirs(config.model_dir, exist_ok=True)
    if _finished(os.path.join(config.model_dir, "stage1")):
        _check_heldout(config, os.path.join(config.model_dir, "stage1"))
    if config.mixed_precision:
        keras.config.set_dtype_policy(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    data = datasets.load(config)
    print(data.describe(), flush=True)
    with open(os.path.join(config.model_dir, "preprocessing.json"), "w") as f:
        json.dump(data.preprocessing, f, indent=2)

    results = {}
    stage1_dir = os.path.join(config.model_dir, "stage1")
    with distribute.distribution_scope(config.distribution) as where:
        print(f"devices: {where}; {where.batch_note(config.batch_size, config.lr)}", flush=True)
        model = None
        if config.stage in ("1", "both"):
            model = train_stage_one(config, data, verbose)
            if not _finished(stage1_dir):
                results["stage1"] = _with_best(
                    config, evaluate(config, data, model), stage1_dir, config.epochs
                )
                results["stage1"]["heldout_fraction"] = baselines.heldout_fraction(config)
                _mark_finished(stage1_dir, model, results["stage1"])
            else:
                with open(os.path.join(stage1_dir, "done.json")) as f:
                    results["stage1"] = json.load(f)
        if baselines.runs_stage_two(config):
            if model is None:
                if not _finished(stage1_dir):
                    raise FileNotFoundError(
                        f"--stage=2 needs a finished stage one in {stage1_dir} "
                        "(run --stage=1 or --stage=both first)."
                    )
                model = keras.saving.load_model(os.path.join(stage1_dir, "model.keras"))
            info = {}
            model = train_stage_two(config, data, model, verbose, info=info)
            stage2_dir = os.path.join(config.model_dir, "stage2")
            results["stage2"] = _with_best(
                config, evaluate(config, data, model), stage2_dir, config.stage2_epochs
            )
            if info:
                results["stage2"][config.stage2] = info
            _mark_finished(stage2_dir, model, results["stage2"])
    final = results["stage2" if "stage2" in results else "stage1"]
    model.save(os.path.join(config.model_dir, "model.keras"))

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
        "train_examples": int(sum(data.train_counts)),
        "test_examples": int(len(data.test_labels)),
        "skipped_images": int(getattr(data, "skipped_images", 0)),
        "total_seconds": round(time.time() - start, 1),
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(config.model_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, default=str)
    name = f"{config.dataset} (IF {config.imbalance_factor:g})"
    for stage, result in results.items():
        for report in result["splits"].values():
            print(evaluation.format_report(report, name=f"{name} {stage}"), flush=True)
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
    if metrics["skipped_images"]:
        print(f"skipped {metrics['skipped_images']} unreadable images", flush=True)
    print(
        f"time: {metrics['total_seconds'] / 60:.1f} min; metrics: "
        f"{os.path.join(config.model_dir, 'metrics.json')}",
        flush=True,
    )
    return metrics


def _check_heldout(config, stage1_dir):
    """A stage two must hold out what its stage one held out (else tau sees training data)."""
    from lcreg_keras.recipes import baselines

    with open(os.path.join(stage1_dir, "done.json")) as f:
        trained = json.load(f).get("heldout_fraction")
    wanted = baselines.heldout_fraction(config)
    if trained is not None and abs(float(trained) - wanted) > 1e-12:
        raise ValueError(
            f"Stage one in {stage1_dir} held out {trained:g} of the training data, this "
            f"stage two {wanted:g}: pass the same --heldout_fraction and --stage2 as stage one "
            "(the held-out examples must not be ones the model trained on)."
        )


def _describe_model(config, model, data):
    if not config.latent:
        what = "baseline (no latent pool)"
    else:
        parts = [f"M={config.num_latents}", f"fusion={config.fusion}"]
        if config.latent_aug:
            explicit = " + explicit" if config.latent_aug_explicit else ""
            parts.append(
                f"aug on {config.latent_aug_samples}{explicit} "
                f"(lambda_0 {config.isda_lambda0:g})"
            )
        else:
            parts.append("no aug")
        parts.append("recon" if config.latent_recon else "no recon")
        what = "LCReg " + ", ".join(parts)
    return (
        f"model: {config.backbone} + {what}; {model.count_params():,} parameters; "
        f"{config.epochs} epochs x {data.steps_per_epoch} steps, batch {config.batch_size}, "
        f"backend {__import__('keras').config.backend()}"
    )
