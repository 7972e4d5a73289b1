"""LCRegModel: a classifier that learns from latent categories (LCReg Sec. 3, Eq. 1-7)."""

import warnings

import keras
from keras import ops

from lcreg_keras.data.labels import check_labels
from lcreg_keras.layers.classifier import LCRegClassifier
from lcreg_keras.lcreg.latent_covariance import LatentCovariance
from lcreg_keras.lcreg.latent_covariance import covariance_noise
from lcreg_keras.lcreg.latent_pool import LatentPool
from lcreg_keras.lcreg.latent_isda import latent_aug_loss
from lcreg_keras.lcreg.latent_reconstruction import LatentReconstruction
from lcreg_keras.losses.classification import SoftmaxCrossentropy
from lcreg_keras.training import distribute
from lcreg_keras.lcreg.latent_isda import latent_isda_loss
from lcreg_keras.lcreg.diagnostics import latent_usage

FUSIONS = ("residual", "replace", "none")
# The key of the logits in `call`'s training output (the other keys are TERMS).
OUTPUT_LOGITS = "logits"
# How to mix instead of the model's former `mixup_alpha`.
MIXUP_HOW = (
    "mix the global batch in the input pipeline: map `lcreg_keras.data.mixup_batch` "
    "over a batched tf.data.Dataset (one-hot labels in, soft labels out; example in "
    "the LCRegModel docstring), or use the recipes' pipelines "
    "(`small_image_train_dataset` / `image_train_dataset` with `mixup_alpha=...`)."
)
# The samples of Eq. 5-6 (spec Sec. 3.a / 3.b).
LATENT_AUG_SAMPLES = ("latents", "parts")

# The per-step terms reported as metrics, in the order they appear in `fit` logs.
TERMS = (
    "loss_cls",
    "loss_aug",
    "loss_recon",
    "share_aug",
    "share_recon",
    "isda_lambda",
    "latents_in_use",
    "top_latent_share",
    "mean_max_weight",
    "saturated_fraction",
)


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LCRegModel(keras.Model):
    """An image classifier with LCReg's latent categories.

    Forward pass (channels last; `f: (B, H, W, D)` is the backbone's last
    feature map):

    ```
    f               = backbone(x)
    Z, S, E         = LatentPool(f)                    # Eq. 1
    S_hat, f_hat    = LatentReconstruction(S, E)       # Eq. 2-3
    logits          = Dense(C)(GAP(f + f_hat))         # fusion="residual"
    ```

    `model(x)`, `predict` and an export return the class logits `(B, C)`.
    During training the loss is Eq. 7, `gamma * L_cls + alpha * L_aug + beta * L_recon`, where `L_cls` is
    the compiled loss (when `compile` gets no loss: `SoftmaxCrossentropy`,
    which takes integer or mixup soft labels), `L_recon` is Eq. 4 and `L_aug` is the latent ISDA loss
    of Eq. 6 on the M latent classes: class weights the first M columns of
    the projection kernel (`W[:, :M]`, `b[:M]`), a per-latent covariance
    `Sigma'` (`LatentCovariance`, ISDA's estimator, no gradient) updated online
    each training step from the samples `latent_aug_samples` names
    (spec Sec. 3):

    - `"latents"` (3.a): the M latent vectors `f'_m`, label `m`, logits
      `E[:, :M]`. Measured inert on Fashion-MNIST-LT (`L_aug` falls to about
      0.03 after a few epochs: M vectors are trivially separable).
    - `"parts"` (3.b): per image `i` and latent `m` the part feature
      `g[i, m] = sum_ab S_hat[i,a,b,m] f[i,a,b] / sum_ab S_hat[i,a,b,m]`
      (`latent_isda.part_features`, a `(B, M, D)` tensor), label `m`, logits
      `FC(g[i, m])[:M]`; `Sigma'_m` is estimated from the B samples of latent
      `m` each step and `L_aug` is the mean over all `B * M` samples.
      Gradients reach `f`, `S_hat`, the latents and FC. At D = 2048 use
      `covariance="diagonal"`.

    With `latent_aug_explicit=True` (3.c, combinable with either), in
    training the latents entering Eq. 3 are `FC(f'_m + delta_m)`,
    `delta_m ~ N(0, lambda Sigma'_m)`, one draw per latent per training step
    (shared by the batch's images; `covariance_noise`, Cholesky of
    `Sigma' + eps I` or the diagonal's square root, float32, no gradient
    through the draw), with `Sigma'` this step's updated estimate: `f_hat`,
    `L_recon` and, through the fusion, the classifier see augmented latent
    parts. Eq. 1 and `L_aug` keep the clean latents; inference never draws.

    Mixed precision: the latent branch (latent pool, reconstruction, Eq. 1-6
    and the covariance state) runs in float32 (its layers have a float32
    policy and the feature map is cast to float32 on entry) while the
    backbone and classifier follow the global policy (spec Sec. 3).

    The ISDA strength ramps as
    `lambda = isda_lambda0 * t / T` with `t` the model's own step counter (a
    variable, so it survives checkpoints and works in JAX's stateless step)
    and `T = total_steps`, or `epochs * steps_per_epoch` taken from `fit`.

    Where the training step lives: Keras 3 writes `train_step` once per
    backend; this model keeps ONE implementation of the LCReg logic for all of
    them. `call(training=True)` computes the auxiliary terms, updates the
    covariance state and the step counter (non-trainable variables, updated
    like BatchNorm statistics, so TensorFlow, JAX's stateless step and PyTorch
    all carry them), and returns the terms with the logits in its output,
    a dict `{"logits": (B, C), "loss_aug": (), "loss_recon": (), ...}`
    (`evaluate` gets the same dict). Every backend's `train_step` passes
    that output as `y_pred` to `compute_loss` and `compute_metrics`; each
    replica of a distributed step has its own, so nothing is shared between
    replicas (Keras' `add_loss` list is, under `tf.distribute`: see
    `compute_loss`). `compute_loss` (Eq. 7, the one place) takes `L_cls` of
    the logits, adds the weighted terms and the coupled weight decay, and
    updates the per-term metrics
    (`loss_cls`, `loss_aug`, `loss_recon`, `isda_lambda`, each auxiliary
    term's share of Eq. 7's total `L = gamma L_cls + alpha L_aug + beta L_recon`
    (weight decay excluded), `share_aug = alpha L_aug / L` and
    `share_recon = beta L_recon / L`, and the latent-usage
    diagnostics of spec Sec. 9: `latents_in_use`, `top_latent_share`,
    `mean_max_weight`, `saturated_fraction`), which `fit` shows in its logs.
    `evaluate` (also `fit`'s validation) reports them on its data too, without
    touching any state. Compiled metrics (`compile(metrics=...)`) see the
    logits only.

    Mixup: the model does not mix. Mix the global batch in the input
    pipeline with `lcreg_keras.data.mixup_batch` (as the recipes'
    pipelines do: the same mixup on any number of replicas) and give the
    model the soft labels; see the example below.

    Args:
        backbone: a `keras.Model` (or layer) mapping images to a feature map
            `(B, H, W, D)`; see `lcreg_keras.backbones`.
        num_classes: int >= 2, the number of classes C.
        num_latents: int, the number M of latent categories, `2 <= M <= D`.
        alpha: weight of `L_aug` in Eq. 7 (paper: 0.1).
        beta: weight of `L_recon` in Eq. 7 (paper: 0.1).
        gamma: weight of `L_cls` in Eq. 7 (paper: 1.0).
        isda_lambda0: the final ISDA strength `lambda_0` (ISDA's CIFAR 0.5).
        covariance: `"full"` or `"diagonal"` latent covariance.
        fusion: how the reconstruction enters the prediction:
            `"residual"` classifies `GAP(f + f_hat)`, `"replace"` classifies
            `GAP(f_hat)`, `"none"` classifies `GAP(f)` (latents then act only
            through the auxiliary losses).
        latent: bool; False gives the plain baseline (backbone, GAP, Dense)
            with the same training step (weight decay).
        latent_aug: bool, whether `L_aug` is trained (Table 4 ablation).
        latent_recon: bool, whether `L_recon` is trained (Table 4 ablation).
            Table 4's "latent category only" row is `isda_lambda0=0` (plain
            cross-entropy on the latent classes) with `latent_recon=False`.
        latent_aug_samples: `"latents"` (default) or `"parts"`, the samples
            of Eq. 5-6 (see above).
        latent_aug_explicit: bool, feed explicitly augmented latents to Eq. 3
            in training (see above); needs `latent_aug=True`.
        temperature: softmax temperature of Eq. 2.
        similarity, logit_scale, cosine_scale: see `LatentPool`.
        recon_scale: scale of the correlation matrix in Eq. 4 (`None`:
            `1/sqrt(D)`).
        total_steps: `T` of the lambda ramp; `None` lets `fit` set it.
        mixup_alpha: only 0 (kept so existing calls work); any other value
            raises a `ValueError`: mix in the input pipeline instead (see
            "Mixup" above). A saved model's nonzero value is dropped on
            loading, with a warning.
        weight_decay: coupled (PyTorch-style) weight decay: adds
            `weight_decay / 2 * sum(w ** 2)` over all trainable weights to the
            loss, so `weight_decay * w` joins the gradient before momentum, as
            in MiSLAS.
        seed: seed of the explicit draws (`latent_aug_explicit`; a
            `keras.random.SeedGenerator` seeded from `seed + 1`).
        **kwargs: standard `keras.Model` arguments.

    Example:

    >>> from lcreg_keras.backbones import resnet32
    >>> model = LCRegModel(resnet32((28, 28, 1)), num_classes=10, num_latents=40)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    >>> model.fit(x_train, y_train, epochs=2, batch_size=128)  # doctest: +SKIP

    Mixup in a `tf.data` map (the soft labels reach `L_cls`):

    >>> import tensorflow as tf
    >>> from lcreg_keras.data import mixup_batch
    >>> train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(128)
    >>> train = train.enumerate().map(
    ...     lambda step, xy: mixup_batch(xy[0], tf.one_hot(xy[1], 10), 1.0, seed=(0, step)))
    >>> model.fit(train, epochs=2)  # doctest: +SKIP
    """

    def __init__(
        self,
        backbone,
        num_classes,
        num_latents=40,
        alpha=0.1,
        beta=0.1,
        gamma=1.0,
        isda_lambda0=0.5,
        covariance="full",
        fusion="residual",
        latent=True,
        latent_aug=True,
        latent_recon=True,
        latent_aug_samples="latents",
        latent_aug_explicit=False,
        temperature=1.0,
        similarity="dot",
        logit_scale=None,
        cosine_scale=10.0,
        recon_scale=None,
        total_steps=None,
        mixup_alpha=0.0,
        weight_decay=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an integer >= 2. Received: {num_classes}"
            )
        if fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}. Received: {fusion!r}")
        if latent_aug_samples not in LATENT_AUG_SAMPLES:
            raise ValueError(
                f"`latent_aug_samples` must be one of {LATENT_AUG_SAMPLES}. "
                f"Received: {latent_aug_samples!r}"
            )
        if latent_aug_explicit and not (latent and latent_aug):
            raise ValueError(
                "`latent_aug_explicit=True` draws from the covariance that L_aug "
                "estimates: it needs `latent=True` and `latent_aug=True`."
            )
        _refuse_mixup(mixup_alpha)
        for name, value in (
            ("alpha", alpha),
            ("beta", beta),
            ("gamma", gamma),
            ("isda_lambda0", isda_lambda0),
            ("weight_decay", weight_decay),
        ):
            if not value >= 0:
                raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}")
        if total_steps is not None and not total_steps > 0:
            raise ValueError(f"`total_steps` must be positive. Received: {total_steps}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.num_latents = num_latents
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.isda_lambda0 = float(isda_lambda0)
        self.covariance_mode = covariance
        self.fusion = fusion
        self.latent = bool(latent)
        self.latent_aug = bool(latent_aug)
        self.latent_recon = bool(latent_recon)
        self.latent_aug_samples = latent_aug_samples
        self.latent_aug_explicit = bool(latent_aug_explicit)
        self.temperature = temperature
        self.similarity = similarity
        self.logit_scale = logit_scale
        self.cosine_scale = cosine_scale
        self.recon_scale = recon_scale
        self.total_steps = total_steps
        self.weight_decay = float(weight_decay)
        self.seed = seed

        if self.latent:
            # float32 whatever the global policy (spec Sec. 3, mixed precision).
            self.latent_pool = LatentPool(
                num_latents,
                similarity=similarity,
                logit_scale=logit_scale,
                cosine_scale=cosine_scale,
                name="latent_pool",
                dtype="float32",
            )
            self.reconstruction = LatentReconstruction(
                temperature=temperature, loss_scale=recon_scale, name="reconstruction",
                dtype="float32",
            )
            self.latent_covariance = LatentCovariance(
                num_latents, mode=covariance, name="latent_covariance"
            )
        self.pooling = keras.layers.GlobalAveragePooling2D(name="gap")
        self.classifier = self._make_classifier()
        if self.latent_aug_explicit:
            # Only built when used, so models without it keep their variable list.
            self.explicit_seed = keras.random.SeedGenerator(
                None if seed is None else int(seed) + 1, name="explicit_seed"
            )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TERMS}
        # True inside `evaluate`: `call(training=False)` then returns the
        # terms too (the dict of `call`), for the per-term metrics.
        self._aux_in_eval = False
        self._pending_total_steps = None
        self._default_loss = SoftmaxCrossentropy()

    def _make_classifier(self):
        """The head on `GAP(fused)`: a linear `LCRegClassifier`; subclasses return another."""
        return LCRegClassifier(self.num_classes, name="classifier")

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        if not self.backbone.built:
            self.backbone.build(input_shape)
        feature_shape = tuple(self.backbone.compute_output_shape(input_shape))
        if len(feature_shape) != 4:
            raise ValueError(
                "`backbone` must return a feature map (B, H, W, D); it returns "
                f"shape {feature_shape}. Use a backbone without pooling."
            )
        dim = feature_shape[-1]
        if self.latent:
            self.latent_pool.build(feature_shape)
            self.reconstruction.build(feature_shape[:-1] + (self.num_latents,))
            self.latent_covariance.build((self.num_latents, dim))
        self.classifier.build((None, dim))
        state = dict(trainable=False, aggregation="only_first_replica", autocast=False)
        self.lcreg_step = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", name="lcreg_step", **state
        )
        self.lcreg_total_steps = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(
                float(self.total_steps or self._pending_total_steps or 0)
            ),
            dtype="float32",
            name="lcreg_total_steps",
            **state,
        )
        self.built = True

    # ---------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        """The class logits; in training (and in `evaluate`) with the terms.

        Returns:
            `(B, C)` float32 logits when `training` is False (`model(x)`,
            `predict`, export); otherwise a dict `{"logits": logits, name:
            value}` with this step's scalar terms (`loss_aug`, `loss_recon`,
            `isda_lambda`, the latent-usage diagnostics; none for
            `latent=False`), which Keras' trainers pass as `y_pred` to
            `compute_loss` and `compute_metrics`.
        """
        features = self.backbone(inputs, training=training)
        terms = {}
        fused = features
        if self.latent:
            fused, terms = self._latent_branch(features, training)
        logits = ops.cast(self.classifier(self.pooling(fused)), "float32")
        if not (training or self._aux_in_eval):
            return logits
        return {OUTPUT_LOGITS: logits, **terms}

    def _latent_branch(self, features, training):
        want_terms = training or self._aux_in_eval
        # A frozen pool (stage two) has nothing for L_aug / L_recon to train.
        train_aux = training and self.latent_pool.trainable
        want_recon = self.latent_recon and (train_aux or (want_terms and not training))
        want_aug = want_terms and self.latent_aug and (train_aux or not training)
        # The latent branch runs in float32 whatever the backbone's dtype.
        f32 = ops.cast(features, "float32")
        z, s, encoded = self.latent_pool(f32)
        weights = self.reconstruction.similarity_weights(s)
        terms = {}
        recon_latents = encoded
        if train_aux:
            self.lcreg_step.assign_add(ops.ones((), "int32"))
        if want_aug:
            lam = self.isda_lambda()
            terms["isda_lambda"] = lam
            terms["loss_aug"], covariance = latent_aug_loss(
                self.latent_pool, self.latent_covariance, self.latent_aug_samples,
                f32, weights, encoded, lam, training=train_aux,
            )
            if self.latent_aug_explicit and train_aux:
                recon_latents = self._explicit_latents(covariance, lam)
        recon = self.reconstruction.reconstruct(
            weights, recon_latents, features=f32 if want_recon else None
        )
        f_hat = ops.cast(recon["reconstruction"], features.dtype)
        fused = {"residual": features + f_hat, "replace": f_hat, "none": features}
        fused = fused[self.fusion]
        if not want_terms:
            return fused, {}
        terms.update(latent_usage(z, s, weights))
        if want_recon:
            terms["loss_recon"] = recon["loss"]
        return fused, terms

    def _explicit_latents(self, covariance, lam):
        """`FC(f'_m + delta_m)`, `delta_m ~ N(0, lam Sigma'_m)` (spec Sec. 3.c)."""
        delta = covariance_noise(covariance, lam, seed=self.explicit_seed)
        return self.latent_pool.encode(self.latent_pool.latents + delta)

    def isda_lambda(self):
        """`lambda_0 * min(t / T, 1)`; `lambda_0` when `T` is unknown."""
        step = ops.cast(self.lcreg_step, "float32")
        total = ops.convert_to_tensor(self.lcreg_total_steps)
        ramp = ops.where(total > 0, ops.minimum(step / ops.maximum(total, 1.0), 1.0), 1.0)
        return self.isda_lambda0 * ramp

    # ------------------------------------------------------------------- loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Eq. 7: `gamma L_cls + alpha L_aug + beta L_recon` (+ weight decay).

        Args:
            x, y, sample_weight: as `keras.Model.compute_loss`.
            y_pred: the output of `call`: the dict of a training step (or
                of `evaluate`), whose terms enter Eq. 7, or plain logits
                (then Eq. 7 is `gamma L_cls` and the weight decay).
            training: whether the auxiliary terms and the weight decay count
                (in `evaluate` they are only reported).

        Returns:
            The scalar loss of this replica.
        """
        # The terms travel in `y_pred`, not on `self`: under `tf.distribute`
        # each replica's `call` returns its own. Keras' channel, `add_loss`,
        # is not per replica there: a layer's `_losses` list is shared by the
        # replica threads, which switch at every merge_call (our
        # `only_first_replica` assigns in `call`), so a replica's
        # `compute_loss` would also sum the other replica's terms (measured
        # with Keras 3.15 / TF 2.21 on 2 logical CPUs: one device 17.5, two
        # replicas 22.75 for the same batch; the TF 1 analogue is
        # tensorflow/tensorflow#23056). tests/distribute_test.py checks one
        # step on 2 replicas against one device.
        logits, terms = split_outputs(y_pred)
        # Under a tf.distribute strategy each of R replicas returns its share
        # of the loss and the gradients are summed: Keras' losses come divided
        # by R already, our own terms are divided here (1 elsewhere).
        replicas = distribute.replicas_in_sync()
        extra = []
        if getattr(self, "loss", None) is None:
            # Compiled without a loss: L_cls is softmax cross-entropy on
            # integer or soft labels; `add_loss` terms still count.
            loss_cls = self._default_loss(y, logits, sample_weight)
            extra = [ops.sum(ops.cast(v, "float32")) for v in self.losses]
        else:
            loss_cls = super().compute_loss(
                x=x, y=y, y_pred=logits, sample_weight=sample_weight, training=training
            )
        total = self.gamma * loss_cls
        if training and "loss_aug" in terms:
            extra.append(self.alpha * terms["loss_aug"])
        if training and "loss_recon" in terms:
            extra.append(self.beta * terms["loss_recon"])
        if training and self.weight_decay > 0:
            extra.append(self._weight_decay_term())
        if extra:
            total = total + ops.sum(ops.stack(extra)) / replicas
        self.trackers["loss_cls"].update_state(loss_cls * replicas)
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        for name, value in self._loss_shares(loss_cls * replicas, terms).items():
            self.trackers[name].update_state(value)
        return total

    def _loss_shares(self, loss_cls, terms):
        """`alpha L_aug / L` and `beta L_recon / L`, `L` Eq. 7's total."""
        parts = {"share_aug": ("loss_aug", self.alpha), "share_recon": ("loss_recon", self.beta)}
        weighted = {
            share: weight * ops.cast(terms[term], "float32")
            for share, (term, weight) in parts.items()
            if term in terms
        }
        if not weighted:
            return {}
        total = self.gamma * ops.cast(loss_cls, "float32") + ops.sum(
            ops.stack(list(weighted.values()))
        )
        total = ops.maximum(total, 1e-12)
        return {share: value / total for share, value in weighted.items()}

    def _weight_decay_term(self):
        """`weight_decay / 2 * sum(m_v * |v|^2)`, `m_v` the variable's gradient scale."""
        scaled = {id(self.classifier.kernel), id(self.classifier.bias)}
        factor = self.classifier.gradient_scale
        squares = [
            ops.sum(ops.square(ops.cast(w, "float32"))) * (factor if id(w) in scaled else 1.0)
            for w in self.trainable_weights
        ]
        if not squares:
            return 0.0
        return 0.5 * self.weight_decay * ops.sum(ops.stack(squares))

    @property
    def metrics(self):
        # Per-term trackers that never saw a value (e.g. `loss_aug` in the
        # plain baseline) are left out so the logs show only real numbers.
        names = set(TERMS) - set(self._reported_terms())
        return [m for m in super().metrics if m.name not in names]

    def _reported_terms(self):
        if not self.latent:
            return ("loss_cls",)
        off = set()
        if not self.latent_aug or not self.latent_pool.trainable:
            off |= {"loss_aug", "isda_lambda", "share_aug"}
        if not self.latent_recon or not self.latent_pool.trainable:
            off |= {"loss_recon", "share_recon"}
        return tuple(t for t in TERMS if t not in off)

    # --------------------------------------------------------- fit / evaluate
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # A MultiWorkerMirroredStrategy workaround (keras-team/keras#20585):
        # see `lcreg_keras.training.distribute.first_replica_build_batch`.
        iterator, data_batch = distribute.first_replica_build_batch(self, iterator, data_batch)
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Compiled metrics see the logits only (the terms reach the trackers
        # in `compute_loss`).
        logits, _ = split_outputs(y_pred)
        logs = super().compute_metrics(x, y, logits, sample_weight=sample_weight)
        # keras-team/keras#20585: see `distribute.reducible_step_logs`.
        return distribute.reducible_step_logs(logs)

    def compile(self, *args, weight_decay=None, mixup_alpha=None, classifier_lr_factor=None, **kwargs):
        """`keras.Model.compile`, plus the training settings a later stage changes.

        Stage two (`DecoupledStageTwo.apply`) re-compiles with its own values;
        `None` keeps the current one (the constructor's at first).

        Args:
            *args, **kwargs: `keras.Model.compile` arguments.
            weight_decay: coupled weight decay (see the constructor).
            mixup_alpha: `None` or 0 only, as in the constructor (the model
                does not mix; the input pipeline does).
            classifier_lr_factor: the classifier's gradient scale (its
                learning-rate factor, `LCRegClassifier.gradient_scale`).
        """
        _refuse_mixup(mixup_alpha)
        if weight_decay is not None and not weight_decay >= 0:
            raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")
        if classifier_lr_factor is not None and not classifier_lr_factor > 0:
            raise ValueError(
                f"`classifier_lr_factor` must be positive. Received: {classifier_lr_factor}"
            )
        if weight_decay is not None:
            self.weight_decay = float(weight_decay)
        if classifier_lr_factor is not None:
            self.classifier.gradient_scale = float(classifier_lr_factor)
        return super().compile(*args, **kwargs)

    def compile_from_config(self, config):
        # Keras skips restoring the compile state of a model whose `compile` is
        # overridden, unless it overrides this too (keras/src/trainers/trainer.py).
        # The settings `compile` adds are in `get_config` (and the classifier's).
        self.compile(**keras.saving.deserialize_keras_object(config))
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, steps_per_epoch=None, **kwargs):
        self._check_labels(y)
        if "validation_data" in kwargs and isinstance(kwargs["validation_data"], tuple):
            self._check_labels(kwargs["validation_data"][1], "validation_data")
        if self.latent and self.total_steps is None:
            steps = steps_per_epoch or _infer_steps(x, batch_size)
            if steps:
                self.set_total_steps(int(epochs) * int(steps))
            elif not self._total_steps_known():
                warnings.warn(
                    "LCRegModel could not infer the number of training steps "
                    "(pass `steps_per_epoch` or set `total_steps`): the ISDA "
                    f"strength stays at lambda_0={self.isda_lambda0} without a ramp."
                )
        return super().fit(
            x, y, batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch,
            **kwargs,
        )

    def set_total_steps(self, total_steps):
        """Sets `T` of the ISDA ramp (a variable: no retrace needed)."""
        if not total_steps > 0:
            raise ValueError(f"`total_steps` must be positive. Received: {total_steps}")
        if self.built:
            self.lcreg_total_steps.assign(float(total_steps))
        else:
            self._pending_total_steps = float(total_steps)

    def _total_steps_known(self):
        if self.built:
            return float(ops.convert_to_numpy(self.lcreg_total_steps)) > 0
        return bool(self._pending_total_steps)

    def _check_labels(self, y, name="y"):
        """Integer labels given as arrays must lie in [0, num_classes) (`data.labels.check_labels`)."""
        if y is None or not hasattr(y, "shape") or not hasattr(y, "dtype"):
            return
        y = ops.convert_to_numpy(y)
        if y.dtype.kind in "iu":
            check_labels(y.reshape(-1), self.num_classes, name=name)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_labels(y)
        previous, self._aux_in_eval = self._aux_in_eval, True
        try:
            return super().evaluate(x, y, *args, **kwargs)
        finally:
            self._aux_in_eval = previous

    # ---------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes,
                "num_latents": self.num_latents,
                "alpha": self.alpha,
                "beta": self.beta,
                "gamma": self.gamma,
                "isda_lambda0": self.isda_lambda0,
                "covariance": self.covariance_mode,
                "fusion": self.fusion,
                "latent": self.latent,
                "latent_aug": self.latent_aug,
                "latent_recon": self.latent_recon,
                "latent_aug_samples": self.latent_aug_samples,
                "latent_aug_explicit": self.latent_aug_explicit,
                "temperature": self.temperature,
                "similarity": self.similarity,
                "logit_scale": self.logit_scale,
                "cosine_scale": self.cosine_scale,
                "recon_scale": self.recon_scale,
                "total_steps": self.total_steps,
                "weight_decay": self.weight_decay,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Models saved while the model could mix carry `mixup_alpha`; it only
        # acted in training, so the loaded model predicts the same.
        mixup_alpha = config.pop("mixup_alpha", 0.0)
        if mixup_alpha:
            warnings.warn(
                f"The saved LCRegModel mixed its training batches (mixup_alpha="
                f"{mixup_alpha}); the model no longer mixes, so the value is "
                f"dropped. To train it further with mixup, {MIXUP_HOW}"
            )
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def split_outputs(y_pred):
    """`(logits, terms)` of `LCRegModel.call`'s output (a dict or plain logits).

    Args:
        y_pred: the dict `{"logits": ..., name: value}` of a training step
            or of `evaluate`, or a logits tensor.

    Returns:
        The logits and a dict of the other entries (empty for plain logits).

    Example:

    >>> logits, terms = split_outputs(model(x, training=True))  # doctest: +SKIP
    >>> sorted(terms)[:2]  # doctest: +SKIP
    ['isda_lambda', 'latents_in_use']
    """
    if isinstance(y_pred, dict):
        terms = dict(y_pred)
        return terms.pop(OUTPUT_LOGITS), terms
    return y_pred, {}


def _refuse_mixup(mixup_alpha):
    """The model does not mix: only `None` or 0 is accepted."""
    if mixup_alpha is None:
        return
    try:
        if float(mixup_alpha) == 0:
            return
    except (TypeError, ValueError):
        pass
    raise ValueError(
        f"LCRegModel does not mix its training batches (received mixup_alpha="
        f"{mixup_alpha!r}; only 0 is accepted). To train with mixup, {MIXUP_HOW}"
    )


def _infer_steps(x, batch_size):
    """Steps per epoch of `fit`'s input when it can be known up front."""
    cardinality = getattr(x, "cardinality", None)
    if callable(cardinality):  # tf.data.Dataset
        n = int(cardinality())
        return n if n > 0 else None
    if hasattr(x, "__len__") and not isinstance(x, (dict, list, tuple)):
        if hasattr(x, "shape"):  # arrays: Keras batches them
            return -(-int(x.shape[0]) // int(batch_size or 32))
        return len(x)  # PyDataset, torch DataLoader
    return None
