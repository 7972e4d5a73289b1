"""The one runner behind every recipe: flags, data, model, training, report.

A recipe module defines `get_config()` and calls `runner.main(get_config)`.
Flags override the recipe's fields; `--smoke` shrinks the run to a minute on a
CPU (what CI runs). Flag values are checked before any data is read. The
long-tailed subset is drawn with `--subset_seed` (default 0), not `--seed`, so
runs with different seeds train on the same images (MiSLAS: `rand_number=0`). `--stage=1|2|both` picks MiSLAS's stages. Outputs in
`--model_dir`:

The file reads top to bottom: the flags, `main`, then `run` (the whole
flow: check the config, place the devices, lock and check the run folder,
load the data, train and evaluate each stage, write the results), then the
two stages it trains. What a stage reports is in `recipes/report.py`, the
run folder's guard in `recipes/run_guard.py`, the data in
`recipes/datasets.py`.

- `stage1/`, `stage2/`, one folder a stage:
  - `backup/`: the `lcreg_keras.training.resume.BackupAndRestore` state, kept until
    the stage is marked finished;
  - `last.keras` after every epoch, `best.keras` (best test accuracy) when
    `--eval_every` validates during training, `model.keras` and `done.json`
    (its test metrics) once the stage is finished and evaluated;
  - `tensorboard/`: each loss term, each auxiliary term's share of the loss
    (`share_aug`, `share_recon`), lambda, the latent-usage diagnostics and
    the learning rate, per epoch; `history.csv`: the same as text. Stage one
    prints one warning per auxiliary term whose share is below 1 % after the
    first tenth of the epochs (`callbacks.LossShareMonitor`);
- `model.keras`: the final model; `preprocessing.json`: how raw images become
  its inputs (for evaluation and export);
- `metrics.json`: the test metrics after each stage (overall, many / medium /
  few under each rule, named), the images used and skipped per split, the
  configuration and the wall time. `top1` (also `top1_last`) is the model
  after the last epoch, the headline; when `--eval_every` validates during
  training, `top1_best` and `top1_best_epoch` give the best test top-1 over
  the validated epochs, what MiSLAS reports (its `best_acc1`): picked on the
  test set, so optimistic, there to compare with published numbers. With
  `--posthoc_tau` every metric is of the adjusted logits `z - tau * log prior`
  (the unadjusted ones under `"unadjusted"`); `best.keras` is still chosen on
  the unadjusted validation accuracy;
- `run.json`: the manifest (resolved config, data fingerprint, version,
  cached image scans); `run.lock`: held while a run uses the folder.

Resuming. A run killed at any point (during a stage, between the stages,
during an evaluation, while a file is written) and started again with the
same command ends with the same `metrics.json` (but the wall time), the same
histories and the same final weights as a run never killed, bit for bit on
CPU (tests/resume_runner_test.py): every file is written atomically, each
stage resumes from its backup, a finished stage is not trained again, and
stage two always starts from `stage1/model.keras`. A rerun whose config or
data differ from `run.json` refuses, naming the differences, unless
`--overwrite` (which discards the outputs the differences invalidate: stage
two's alone when only stage-two settings changed).

User errors (bad flags, data, model_dir) print their message and the fix,
without a traceback (`--verbose=1` or `2` adds it), and exit with status 2.
The long-tailed baselines (`--loss`, `--stage2`, `--posthoc_tau`,
`--heldout_fraction`, ...) are described in `lcreg_keras/recipes/baselines.py`.

"""

import dataclasses
import json
import os
import shutil
import sys
import time
import traceback

import keras
import numpy as np
from absl import app
from absl import flags

from lcreg_keras.training import distribute
from lcreg_keras.training import resume
from lcreg_keras.backbones import get_backbone
from lcreg_keras.training.callbacks import AtomicCheckpoint
from lcreg_keras.training.callbacks import HistoryCSV
from lcreg_keras.training.callbacks import KillPoints
from lcreg_keras.training.callbacks import LearningRateLogger
from lcreg_keras.training.callbacks import LossShareMonitor
from lcreg_keras.data.image_files import READ_ERROR
from lcreg_keras.errors import UserError
from lcreg_keras.losses import Top1Accuracy
from lcreg_keras.evaluation.posthoc import TauNormalization
from lcreg_keras.recipes import baselines
from lcreg_keras.recipes import datasets
from lcreg_keras.recipes import report
from lcreg_keras.recipes import validate
from lcreg_keras.recipes.report import best_over_epochs  # noqa: F401  (public name)
from lcreg_keras.recipes.run_guard import RunGuard
from lcreg_keras.recipes.run_guard import finished
from lcreg_keras.recipes.run_guard import lock_note
from lcreg_keras.recipes.run_guard import plain
from lcreg_keras.training.schedules import WarmupCosine
from lcreg_keras.training.schedules import WarmupStepDecay
from lcreg_keras.serving import run_folder
from lcreg_keras.training.latent_images import LatentUsageImages

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
    ("dct_scaling", "bool", "Image files: decode large JPEG crops at a reduced DCT scale (faster)."),
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
    # issue 11
    ("check_images", "string",
     "Before training: true (scan headers), decode (full strict decode, once: cached in "
     "run.json) or false (bad files only found while reading)."),
)

FLAGS = flags.FLAGS
CIFAR_RESNETS = ("resnet8", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
_ManifestGuard = RunGuard  # the old name
_lock_note = lock_note  # the old name


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
    flags.DEFINE_integer(
        "verbose", None, "Keras fit verbosity: 0, 1 (bar), 2 (line); default: a bar on a terminal, lines "
        "otherwise. 1 or 2 also print the traceback of a user error.")
    flags.DEFINE_bool(
        "overwrite", False, "Run even though --model_dir holds a run of another config or "
        "other data: discard the outputs that the differences invalidate.")


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
        try:
            run(apply_flags(get_config()), verbose=FLAGS.verbose, overwrite=FLAGS.overwrite)
        except Exception as error:  # noqa: BLE001  (sorted below)
            message = user_error_message(error)
            if message is None:
                raise
            if FLAGS.verbose:
                traceback.print_exc()
            print(f"error: {message}", file=sys.stderr, flush=True)
            sys.exit(2)

    app.run(_main)


def user_error_message(error):
    """The message to print for an error the user fixes, or None for a bug.

    User errors: `lcreg_keras.errors.UserError` (flags, list files, image
    scans, the model_dir's lock and manifest), `FileNotFoundError` (data not
    found), and a file that fails to decode while it is read (TensorFlow's
    error, reduced to the file and the fix).
    """
    if isinstance(error, (UserError, FileNotFoundError)):
        return str(error)
    path = _unreadable_path(error)
    if path is not None:
        return _read_error_message(path)
    return None


def _unreadable_path(error):
    """The file named by the image pipelines' read error (a TensorFlow assertion), or None."""
    text = str(error)
    if READ_ERROR not in text:
        return None
    # "assertion failed: [Could not read ...] [/path/x.jpg] [(missing, ...)]"
    parts = text[text.index(READ_ERROR):].split("\n")[0].split("] [")
    return parts[1].strip() if len(parts) > 1 else None


def _read_error_message(where):
    return (
        f"{where}: cannot be read or decoded (missing, unreadable, truncated or not an image).\n"
        "Find every such file before training with --check_images=decode (or python "
        "tools/check_dataset.py --decode), or pass --skip_bad_images to leave them out."
    )


# ----------------------------------------------------------------------------
# The run, top to bottom.


@dataclasses.dataclass(frozen=True)
class RunFolders:
    """Where this process writes, and where the stages' backups are.

    The chief worker writes into `model_dir`; another worker writes into a
    scratch folder of its own (`distribute.worker_dir`) but restores from the
    chief's backups, so `backups` stays `model_dir`.
    """

    outputs: str
    backups: str

    def stage(self, stage):
        return os.path.join(self.outputs, stage)

    def backup(self, stage):
        return os.path.join(self.backups, stage, "backup")


def run(config, verbose=None, overwrite=False):
    """Trains and evaluates one config; returns the metrics dict it writes.

    Raises:
        lcreg_keras.errors.UserError: for a config that cannot run (checked
            before any data is read or file written), data that cannot be
            used, a model_dir in use by another run (`RunLockedError`) or
            holding a run of another config or data (`RunMismatchError`,
            unless `overwrite`).
    """
    validate.check_config(config)  # before any data is read or file written
    start = time.time()
    # Before any TF op / JAX computation; handed to the training below.
    prepared = distribute.prepare(config.distribution)
    folders = RunFolders(outputs=distribute.worker_dir(config.model_dir),
                         backups=config.model_dir)
    config = config.replace(model_dir=folders.outputs)
    lock = run_folder.RunLock(config.model_dir).acquire()
    try:
        run_folder.remove_stale_temporaries(config.model_dir)
        if lock.took_over:
            print(lock_note(lock.took_over), flush=True)
        guard = RunGuard(config, overwrite)
        guard.check_config()
        if config.mixed_precision:
            keras.config.set_dtype_policy(config.mixed_precision)
        if finished(folders.stage("stage1")):
            _check_heldout(config, folders.stage("stage1"))
        keras.utils.set_random_seed(config.seed)
        data = datasets.load(config, hooks=guard)  # the guard checks the data first
        print(data.describe(), flush=True)
        run_folder.write_json(os.path.join(config.model_dir, "preprocessing.json"),
                              data.preprocessing)
        try:
            results = _train_and_evaluate(config, data, folders, verbose, prepared)
        except Exception as error:  # noqa: BLE001  (only the read error is replaced)
            path = _unreadable_path(error)
            if path is None:
                raise
            split = "train" if data.where("train", path) != path else "test"
            raise UserError(_read_error_message(data.where(split, path))) from error
        return report.finish(config, data, results, start)
    finally:
        lock.release()


def _train_and_evaluate(config, data, folders, verbose, prepared):
    """Both stages (those not finished earlier); returns each finished stage's report.

    `prepared`: what `distribute.prepare(config.distribution)` returned.
    """
    stage_dirs = {s: folders.stage(s) for s in ("stage1", "stage2")}
    with distribute.distribution_scope(config.distribution, prepared=prepared) as where:
        print(f"devices: {where}; {where.batch_note(config.batch_size, config.lr)}", flush=True)
        if config.stage in ("1", "both"):
            if finished(stage_dirs["stage1"]):
                print(f"stage 1: finished earlier, using {stage_dirs['stage1']}", flush=True)
            else:
                model = train_stage_one(config, data, verbose, folders)
                result = report.with_best(report.stage_report(config, data, model, "stage1"),
                                          stage_dirs["stage1"], config.epochs,
                                          _validates(config, config.epochs))
                result["heldout_fraction"] = baselines.heldout_fraction(config)
                _mark_finished(stage_dirs["stage1"], model, result)
            _drop_backup(folders, "stage1")
            run_folder.kill_point("between_stages")
        if baselines.runs_stage_two(config):
            if finished(stage_dirs["stage2"]):
                print(f"stage 2: finished earlier, using {stage_dirs['stage2']}", flush=True)
            else:
                # Always from the saved stage-one model (and a fresh seed), so
                # stage two is the same whether stage one ran in this process.
                keras.utils.set_random_seed(config.seed)
                model = keras.saving.load_model(os.path.join(stage_dirs["stage1"], "model.keras"))
                info = {}
                model = train_stage_two(config, data, model, verbose, info=info, folders=folders)
                result = report.with_best(report.stage_report(config, data, model, "stage2"),
                                          stage_dirs["stage2"], config.stage2_epochs,
                                          _validates(config, config.stage2_epochs))
                if info:
                    result[config.stage2] = json.loads(json.dumps(plain(info)))
                _mark_finished(stage_dirs["stage2"], model, result)
            _drop_backup(folders, "stage2")
    results = {}
    for stage, folder in stage_dirs.items():
        if finished(folder) and (stage == "stage1" or baselines.runs_stage_two(config)):
            results[stage] = run_folder.read_json(os.path.join(folder, "done.json"))
    return results


def _validates(config, epochs):
    """Whether a stage of `epochs` epochs validates during training (`--eval_every`)."""
    return 0 < config.eval_every <= epochs


def _mark_finished(stage_dir, model, result):
    """Saves the stage's model, then `done.json` (the commit); the backup goes next."""
    run_folder.save_model(model, os.path.join(stage_dir, "model.keras"))
    run_folder.write_json(os.path.join(stage_dir, "done.json"), result)


def _drop_backup(folders, stage):
    backup = folders.backup(stage)
    if distribute.is_chief() and os.path.isdir(backup):
        shutil.rmtree(backup, ignore_errors=True)


def _check_heldout(config, stage1_dir):
    """A stage two must hold out what its stage one held out (else tau sees training data)."""
    with open(os.path.join(stage1_dir, "done.json")) as f:
        trained = json.load(f).get("heldout_fraction")
    wanted = baselines.heldout_fraction(config)
    if trained is not None and abs(float(trained) - wanted) > 1e-12:
        raise ValueError(
            f"Stage one in {stage1_dir} held out {trained:g} of the training data, this "
            f"stage two {wanted:g}: pass the same --heldout_fraction and --stage2 as stage one "
            "(the held-out examples must not be ones the model trained on)."
        )


# ----------------------------------------------------------------------------
# The two stages.


def train_stage_one(config, data, verbose=None, folders=None):
    """Stage one: the LCReg model from scratch with mixup; returns the model.

    Resumes from `stage1/backup` when a killed run left one.
    """
    stage_dir = os.path.join(config.model_dir, "stage1")
    keras.utils.set_random_seed(config.seed)
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
    callbacks = stage_callbacks(config, stage_dir, _validates(config, config.epochs), data,
                                backup_dir=folders.backup("stage1"))
    model.fit(
        data.train,
        epochs=config.epochs,
        steps_per_epoch=data.steps_per_epoch,
        callbacks=callbacks + baselines.stage_one_callbacks(config),
        **_fit_kwargs(config, data, verbose, config.epochs),
    )
    return model


def train_stage_two(config, data, model, verbose=None, info=None, folders=None):
    """Stage two (`--stage2`): re-balance the classifier of a stage-one model.

    MiSLAS's fine-tuning (default), cRT or LWS train on class-balanced
    batches; tau-normalisation chooses its tau on the held-out training split.
    `info` (a dict) receives what the method chose; `folders`: the run's
    `RunFolders` (default: everything in `config.model_dir`).
    """
    folders = folders or RunFolders(config.model_dir, config.model_dir)
    if config.stage2 == "tau_norm":
        return _tau_normalize(config, data, model, {} if info is None else info, folders)
    if data.stage_two_train is None:
        raise ValueError(f"The {data.name} loader builds no class-balanced stage-two data.")
    stage_dir = folders.stage("stage2")
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
        callbacks=stage_callbacks(config, stage_dir, _validates(config, config.stage2_epochs),
                                  data, backup_dir=folders.backup("stage2")),
        **_fit_kwargs(config, data, verbose, config.stage2_epochs),
    )
    return model


def _tau_normalize(config, data, model, info, folders):
    """Stage two `tau_norm`: Kang et al.'s tau chosen on the held-out training split."""
    if data.heldout is None:
        raise ValueError("--stage2=tau_norm needs a held-out split (--heldout_fraction > 0).")
    result = TauNormalization().fit(model, data.heldout, data.heldout_labels)
    info.update(result)
    stage_dir = folders.stage("stage2")
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


def build_model(config, data):
    """The LCRegModel a config describes, for a dataset's shapes."""
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
        f"backend {keras.config.backend()}"
    )


def stage_callbacks(config, stage_dir, validate, data=None, backup_dir=None):
    """Logging, checkpoints and crash recovery of one stage.

    The order matters for resuming: the history row, the checkpoints and the
    read-skip log of an epoch are written before its backup, so a kill
    between them repeats the epoch (and rewrites them the same) instead of
    losing them. `backup_dir`: the stage's backup (default
    `stage_dir/backup`; another worker's is the chief's, `RunFolders.backup`).
    """
    stage = os.path.basename(stage_dir)
    out = [
        LearningRateLogger(),  # first: the loggers below see `learning_rate`
        HistoryCSV(os.path.join(stage_dir, "history.csv")),
        AtomicCheckpoint(os.path.join(stage_dir, "last.keras")),
    ]
    if validate:
        out.append(AtomicCheckpoint(os.path.join(stage_dir, "best.keras"), monitor="val_accuracy"))
    if data is not None:
        skips = _ReadSkipLog(stage_dir, data)
        out.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: skips.update()))
    out += [
        keras.callbacks.TensorBoard(os.path.join(stage_dir, "tensorboard"), update_freq="epoch"),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.latent:
        out.append(LossShareMonitor())
    images = _sample_images(data) if data is not None and config.latent else None
    if images is not None:
        out.append(LatentUsageImages(images, os.path.join(stage_dir, "tensorboard", "latents")))
    # Resumes at the last finished epoch with the data order it would have
    # had; only the chief worker writes, every worker restores. The backup is
    # kept after the fit: it goes once the stage is marked finished, so a
    # kill during the evaluation does not retrain the stage.
    out.append(
        resume.BackupAndRestore(
            backup_dir or os.path.join(stage_dir, "backup"),
            data_state=None if data is None else data.training_states(),
            delete_checkpoint=False,
        )
    )
    if os.environ.get("LCREG_KILL_AT"):
        out.append(KillPoints(stage))
    return out


def _fit_kwargs(config, data, verbose, epochs):
    validate = _validates(config, epochs)
    if verbose is None:  # a bar on a terminal, one line an epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    kwargs = {"shuffle": False, "verbose": verbose}
    if validate:
        kwargs.update(validation_data=data.test, validation_freq=config.eval_every)
    return kwargs


def _sample_images(data, count=12):
    """Model inputs of up to `count` test images, one class after another."""
    for x, y in data.test.take(1):
        x, y = np.asarray(x), np.asarray(y)
        order = np.argsort(y, kind="stable")
        picks = [order[np.searchsorted(y[order], c)] for c in np.unique(y)][:count]
        return x[picks]
    return None


class _ReadSkipLog:
    """Keeps `stage_dir/skipped_while_reading.json`: the training files that
    failed while reading in this stage, over every process that trained it
    (a resumed stage does not re-read the epochs before the kill)."""

    def __init__(self, stage_dir, data):
        self.path = os.path.join(stage_dir, "skipped_while_reading.json")
        self.data = data

    def paths(self):
        return sorted(set(run_folder.read_json(self.path, default=[])) | set(
            self.data.read_skips("train")))

    def update(self):
        before = run_folder.read_json(self.path, default=None)
        now = self.paths()
        if now and now != before:
            run_folder.write_json(self.path, now)
