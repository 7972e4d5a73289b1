"""Long-tailed baseline losses: logit adjustment, balanced softmax, LDAM-DRW, class-balanced.

The losses users compare LCReg against, each usable as the compiled `L_cls`
of `LCRegModel` (Eq. 7) or of any Keras classifier that outputs logits:

- `LogitAdjustedCrossentropy` (Menon et al., 2021, Eq. 10): cross-entropy on
  `z_j + tau * log pi_j`, `pi` the training class prior;
- `BalancedSoftmaxCrossentropy` (Ren et al., 2020, Eq. 4): cross-entropy on
  `z_j + log n_j` (the softmax `n_j exp(z_j) / sum_k n_k exp(z_k)`);
- `LDAMLoss` (Cao et al., 2019, Eq. 13) with the deferred re-weighting (DRW)
  schedule of their Alg. 1, switched by the `DeferredReweighting` callback;
- `ClassBalancedCrossentropy` and `ClassBalancedFocalLoss` (Cui et al.,
  2019, Eq. 6-8): per-class weights `(1 - beta) / (1 - beta^n_j)` from the
  effective number of samples.

Every loss takes integer labels `(N,)` / `(N, 1)` or soft labels `(N, C)`
(mixup). A soft label `t` enters where the one-hot vector does in the
paper's formula: the cross-entropy becomes `-sum_j t_j log p_j`, a per-class
weight `w_j` weights class `j`'s share (`-sum_j w_j t_j log p_j`, so a mixup
of classes `a` and `b` with weight `lam` costs `lam * w_a * CE_a +
(1 - lam) * w_b * CE_b`), and LDAM subtracts the margin in proportion
(`z_j - s * Delta_j * t_j`). For one-hot `t` each formula is the paper's.

All computations are in float32; the class counts are the *training*
counts (the long-tailed ones, not re-sampled ones) and must be positive.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from lcreg_keras.losses.label_aware_smoothing import validate_class_counts


# ----------------------------------------------------------------------------
# Class statistics (NumPy).


def _validate_counts(class_counts):
    return validate_class_counts(
        class_counts, min_classes=2, hint="; give a class without examples a count of 1"
    )


def _counts_config(counts):
    return [int(c) if float(c).is_integer() else float(c) for c in counts.tolist()]


def _check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(
            f"Argument `{name}` must be a finite number in {span}. Received: {name}={value!r}"
        )
    return value


def class_priors(class_counts):
    """The training class prior `pi_j = n_j / sum_k n_k`.

    Args:
        class_counts: 1-D sequence of the C positive training counts.

    Returns:
        A float64 NumPy array `(C,)` summing to 1.

    Example:

    >>> class_priors([3, 1]).tolist()
    [0.75, 0.25]
    """
    counts = _validate_counts(class_counts)
    return counts / counts.sum()


def effective_number_weights(class_counts, beta):
    """Cui et al. (2019)'s class-balanced weights from the effective numbers.

    The effective number of `n` samples is `E_n = (1 - beta^n) / (1 - beta)`
    (Eq. 3); class `j` gets `w_j = 1 / E_{n_j} = (1 - beta) / (1 - beta^n_j)`,
    normalised so that `sum_j w_j = C` (their code, and Cao et al.'s DRW).
    `beta = 0` gives all ones (no re-weighting); `beta -> 1` tends to inverse
    class frequency.

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        beta: in `[0, 1)`.

    Returns:
        A float64 NumPy array `(C,)` summing to C.

    Example:

    >>> effective_number_weights([100, 1], beta=0.0).tolist()
    [1.0, 1.0]
    """
    counts = _validate_counts(class_counts)
    beta = _check_number("beta", beta, 0.0, 1.0, high_open=True)
    # 1 - beta^n computed as -expm1(n log beta): exact for beta near 1.
    if beta == 0.0:
        weights = np.ones_like(counts)
    else:
        weights = (1.0 - beta) / -np.expm1(counts * math.log(beta))
    return weights / weights.sum() * len(counts)


def ldam_margins(class_counts, max_margin=0.5):
    """LDAM's per-class margins `Delta_j = K / n_j^(1/4)`, the largest `max_margin`.

    Cao et al. (2019), Eq. 12-13: `K` is chosen so that the rarest class gets
    `max_margin` (their `max_m`, 0.5).

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        max_margin: the margin of the rarest class, > 0.

    Returns:
        A float64 NumPy array `(C,)`.

    Example:

    >>> ldam_margins([16, 1], max_margin=0.5).tolist()
    [0.25, 0.5]
    """
    counts = _validate_counts(class_counts)
    max_margin = _check_number("max_margin", max_margin, 0.0, low_open=True)
    margins = counts ** -0.25
    return margins * (max_margin / margins.max())


# ----------------------------------------------------------------------------
# Shared label handling (keras.ops).


def _soft_targets(y_true, logits, num_classes):
    """`(N, C)` float32 targets from integer `(N,)` / `(N, 1)` or soft `(N, C)` labels."""
    logit_shape = tuple(logits.shape)
    if len(logit_shape) != 2:
        raise ValueError(f"`y_pred` must have shape (N, C). Received: y_pred.shape={logit_shape}")
    if logit_shape[-1] is not None and int(logit_shape[-1]) != num_classes:
        raise ValueError(
            f"The last dimension of `y_pred` ({logit_shape[-1]}) does not match the "
            f"number of classes in `class_counts` ({num_classes})."
        )
    shape = tuple(y_true.shape)
    if len(shape) == 2 and shape[-1] not in (1, None):
        if int(shape[-1]) != num_classes:
            raise ValueError(
                f"Soft labels must have shape (N, {num_classes}). Received: y_true.shape={shape}"
            )
        return ops.cast(y_true, "float32")
    if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
        raise ValueError(
            "`y_true` must hold integer labels (N,) / (N, 1) or soft labels (N, C). "
            f"Received: y_true.shape={shape}"
        )
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return ops.one_hot(labels, num_classes, dtype="float32")


def _constant(values):
    return ops.convert_to_tensor(np.asarray(values, "float32"))


class _CountsLoss(keras.losses.Loss):
    """Base of the losses that need the training class counts.

    Subclasses list their own constructor arguments in `CONFIG` (saved by
    `get_config` beside `class_counts`).

    Call arguments (every subclass):
        y_true: integer `(N,)` / `(N, 1)` labels or soft `(N, C)` labels.
        y_pred: `(N, C)` logits.

    Returns:
        The reduced loss (per sample with `reduction=None`).
    """

    CONFIG = ()

    def __init__(self, class_counts, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._counts = _validate_counts(class_counts)
        self.class_counts = _counts_config(self._counts)
        self._dtype_arg = dtype

    @property
    def num_classes(self):
        return len(self.class_counts)

    def _targets(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        return _soft_targets(y_true, logits, self.num_classes), logits

    def get_config(self):
        config = super().get_config()
        config["class_counts"] = list(self.class_counts)
        config.update({key: getattr(self, key) for key in self.CONFIG})
        if self._dtype_arg is not None:
            config["dtype"] = keras.saving.serialize_keras_object(self._dtype_arg)
        return config


def _soft_cross_entropy(targets, logits, class_weights=None):
    """`-sum_j w_j t_j log softmax(z)_j` per sample (`w = 1` when None)."""
    log_probs = ops.log_softmax(logits, axis=-1)
    mass = targets if class_weights is None else targets * class_weights
    return -ops.sum(mass * log_probs, axis=-1)


# ----------------------------------------------------------------------------
# Logit adjustment and balanced softmax.


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LogitAdjustedCrossentropy(_CountsLoss):
    """Logit-adjusted softmax cross-entropy (Menon et al., 2021, Eq. 10).

    ```
    loss = -log softmax(z + tau * log pi)_y
    ```

    with `pi` the training class prior. Training on the adjusted logits and
    predicting with the plain `argmax_j z_j` targets the balanced error:
    with `tau = 1` the loss is Fisher-consistent for it (their Theorem 1).
    The model's outputs stay the unadjusted `z`; nothing changes at
    inference.

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        tau: the adjustment strength, >= 0 (`tau = 0` is plain cross-entropy).
        name, **kwargs: as in `keras.losses.Loss` (`reduction`, `dtype`).

    Call arguments, Returns: as every `_CountsLoss` (labels, logits; the
    reduced loss).

    Example:

    >>> loss = LogitAdjustedCrossentropy([900, 90, 10], tau=1.0)
    >>> value = loss(np.array([0, 2]), np.zeros((2, 3), "float32"))
    """

    CONFIG = ('tau',)

    def __init__(
        self,
        class_counts,
        tau=1.0,
        name="logit_adjusted_crossentropy",
        **kwargs,
    ):
        super().__init__(class_counts, name=name, **kwargs)
        self.tau = _check_number("tau", tau, 0.0)
        self._offsets = self.tau * np.log(self._counts / self._counts.sum())

    def call(self, y_true, y_pred):
        targets, logits = self._targets(y_true, y_pred)
        return _soft_cross_entropy(targets, logits + _constant(self._offsets))


@keras.saving.register_keras_serializable(package="lcreg_keras")
class BalancedSoftmaxCrossentropy(_CountsLoss):
    """Balanced softmax cross-entropy (Ren et al., 2020, Eq. 4).

    ```
    p_j  = n_j exp(z_j) / sum_k n_k exp(z_k)
    loss = -log p_y = -log softmax(z + log n)_y
    ```

    Equal to `LogitAdjustedCrossentropy` with `tau = 1` (`log n_j` and
    `log pi_j` differ by the constant `log N`, which the softmax ignores).
    Ren et al.'s meta sampler is not part of this loss.

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        name, **kwargs: as in `keras.losses.Loss` (`reduction`, `dtype`).

    Call arguments, Returns: as every `_CountsLoss` (labels, logits; the
    reduced loss).

    Example:

    >>> loss = BalancedSoftmaxCrossentropy([900, 90, 10])
    >>> value = loss(np.array([0, 2]), np.zeros((2, 3), "float32"))
    """

    def __init__(
        self,
        class_counts,
        name="balanced_softmax_crossentropy",
        **kwargs,
    ):
        super().__init__(class_counts, name=name, **kwargs)
        self._offsets = np.log(self._counts)

    def call(self, y_true, y_pred):
        targets, logits = self._targets(y_true, y_pred)
        return _soft_cross_entropy(targets, logits + _constant(self._offsets))


# ----------------------------------------------------------------------------
# Class-balanced losses (effective number of samples).


@keras.saving.register_keras_serializable(package="lcreg_keras")
class ClassBalancedCrossentropy(_CountsLoss):
    """Class-balanced softmax cross-entropy (Cui et al., 2019, Eq. 6).

    ```
    loss = -w_y log softmax(z)_y,   w_j = (1 - beta) / (1 - beta^n_j)
    ```

    with `w` normalised to sum to C (`effective_number_weights`). Reduced as
    Cui et al.'s code does: the plain mean over the batch of the weighted
    per-sample losses.

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        beta: in `[0, 1)`; 0 is plain cross-entropy (Cui et al.: 0.9999 on
            CIFAR-LT).
        name, **kwargs: as in `keras.losses.Loss` (`reduction`, `dtype`).

    Call arguments, Returns: as every `_CountsLoss` (labels, logits; the
    reduced loss).

    Example:

    >>> loss = ClassBalancedCrossentropy([900, 90, 10], beta=0.999)
    >>> value = loss(np.array([0, 2]), np.zeros((2, 3), "float32"))
    """

    CONFIG = ('beta',)

    def __init__(
        self,
        class_counts,
        beta=0.9999,
        name="class_balanced_crossentropy",
        **kwargs,
    ):
        super().__init__(class_counts, name=name, **kwargs)
        self.beta = _check_number("beta", beta, 0.0, 1.0, high_open=True)
        self._weights = effective_number_weights(self._counts, self.beta)

    @property
    def class_weights(self):
        """The `(C,)` float64 NumPy class weights (summing to C)."""
        return self._weights.copy()

    def call(self, y_true, y_pred):
        targets, logits = self._targets(y_true, y_pred)
        return _soft_cross_entropy(targets, logits, _constant(self._weights))


@keras.saving.register_keras_serializable(package="lcreg_keras")
class ClassBalancedFocalLoss(_CountsLoss):
    """Class-balanced sigmoid focal loss (Cui et al., 2019, Eq. 8).

    With `p_j = sigmoid(z_j)` and `p^t_j = p_j` for `j = y`, `1 - p_j`
    otherwise:

    ```
    loss = w_y * sum_j (1 - p^t_j)^gamma * (-log p^t_j)
    ```

    the C one-vs-rest binary terms of the focal loss (Lin et al., 2017), as
    in the paper (its focal loss is sigmoid-based). The modulating factor is
    computed as Cui et al.'s code does, `exp(-gamma * (t_j z_j +
    log(1 + exp(-z_j))))`, which equals `(1 - p^t_j)^gamma` for `t_j` in
    {0, 1} and extends it to soft labels; the sample's weight is
    `sum_j w_j t_j`. Reduced as their code does: the mean over the batch of
    the per-sample sums. Cui et al. start the classifier's bias at
    `-log((1 - 0.1) / 0.1)` for the sigmoid losses; the recipes do that for
    `--loss=cb_focal`.

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        beta: in `[0, 1)` (0: no re-weighting, the plain focal loss).
        gamma: the focusing parameter, >= 0 (0: sigmoid cross-entropy).
        name, **kwargs: as in `keras.losses.Loss` (`reduction`, `dtype`).

    Call arguments, Returns: as every `_CountsLoss` (labels, logits; the
    reduced loss).

    Example:

    >>> loss = ClassBalancedFocalLoss([900, 90, 10], beta=0.999, gamma=1.0)
    >>> value = loss(np.array([0, 2]), np.zeros((2, 3), "float32"))
    """

    CONFIG = ('beta', 'gamma')

    def __init__(
        self,
        class_counts,
        beta=0.9999,
        gamma=1.0,
        name="class_balanced_focal",
        **kwargs,
    ):
        super().__init__(class_counts, name=name, **kwargs)
        self.beta = _check_number("beta", beta, 0.0, 1.0, high_open=True)
        self.gamma = _check_number("gamma", gamma, 0.0)
        self._weights = effective_number_weights(self._counts, self.beta)

    @property
    def class_weights(self):
        """The `(C,)` float64 NumPy class weights (summing to C)."""
        return self._weights.copy()

    def call(self, y_true, y_pred):
        targets, logits = self._targets(y_true, y_pred)
        # Binary cross-entropy from logits: t sp(-z) + (1 - t) sp(z) = z - z t + sp(-z).
        softplus_neg = ops.softplus(-logits)  # log(1 + e^-z)
        bce = logits - logits * targets + softplus_neg
        if self.gamma:
            bce = ops.exp(-self.gamma * (targets * logits + softplus_neg)) * bce
        sample_weight = ops.sum(targets * _constant(self._weights), axis=-1)
        return sample_weight * ops.sum(bce, axis=-1)


# ----------------------------------------------------------------------------
# LDAM with deferred re-weighting.


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LDAMLoss(_CountsLoss):
    """Label-distribution-aware margin loss (Cao et al., 2019, Eq. 13) with DRW.

    ```
    loss = -w_y log softmax(z - s * Delta_y * e_y)_y,   Delta_j = K / n_j^(1/4)
    ```

    Cao et al. compute `z` as `s * cos(theta)`: cosine similarities of
    L2-normalised features and L2-normalised class weights, scaled by
    `s = 30` (their `NormedLinear`). So `y_pred` here is expected to be
    those scaled cosines, as `CosineLCRegModel(classifier_scale=s)` (or a
    `CosineClassifier(scale=s)` head) outputs, and the margin
    `Delta` (in cosine units, the largest `max_margin`) is subtracted as
    `s * Delta`: `softmax(s * (cos - Delta e_y))`, their formula, with the
    model's outputs `s * cos` being the logits whose softmax was trained (so
    calibration is measured on them). For a plain linear head pass the
    margin in logit units and `scale=1`.

    Deferred re-weighting (their Alg. 1): `w` is all ones until epoch
    `drw_epoch`, then the class-balanced weights of
    `effective_number_weights(class_counts, drw_beta)`. The weights live in
    a variable that `set_epoch` switches; put the `DeferredReweighting`
    callback in `fit` to call it each epoch. With weights, the batch is
    reduced as PyTorch's `cross_entropy(weight=...)` in their code:
    `sum_i w_i l_i / sum_i w_i` (the per-sample values returned are
    `w_i l_i / mean_i(w_i)`, so `"sum_over_batch_size"` gives that ratio).

    Args:
        class_counts: 1-D sequence of the C positive training counts.
        max_margin: the rarest class's margin (their `max_m`), > 0.
        scale: `s`, > 0, the scale of the cosine logits.
        drw_epoch: first (0-based) epoch with class-balanced weights, or
            None for no re-weighting (LDAM alone). Cao et al.: 160 of 200.
        drw_beta: `beta` of the DRW weights, in `[0, 1)` (theirs: 0.9999).
        name, **kwargs: as in `keras.losses.Loss` (`reduction`, `dtype`).

    Call arguments:
        y_true: integer `(N,)` / `(N, 1)` labels or soft `(N, C)` labels.
        y_pred: `(N, C)` logits `s * cos(theta)`.

    Returns:
        The reduced loss (per sample with `reduction=None`, scaled as above).

    Example:

    >>> loss = LDAMLoss([900, 90, 10], max_margin=0.5, scale=30.0, drw_epoch=160)
    >>> value = loss(np.array([0, 2]), np.zeros((2, 3), "float32"))
    >>> loss.set_epoch(160)  # what DeferredReweighting does each epoch
    True
    """

    CONFIG = ('max_margin', 'scale', 'drw_epoch', 'drw_beta')

    def __init__(
        self,
        class_counts,
        max_margin=0.5,
        scale=30.0,
        drw_epoch=None,
        drw_beta=0.9999,
        name="ldam",
        **kwargs,
    ):
        super().__init__(class_counts, name=name, **kwargs)
        self.max_margin = _check_number("max_margin", max_margin, 0.0, low_open=True)
        self.scale = _check_number("scale", scale, 0.0, low_open=True)
        if drw_epoch is not None and (
            isinstance(drw_epoch, bool)
            or not isinstance(drw_epoch, numbers.Integral)
            or drw_epoch < 0
        ):
            raise ValueError(
                "Argument `drw_epoch` must be None or an int >= 0. "
                f"Received: drw_epoch={drw_epoch!r}"
            )
        self.drw_epoch = None if drw_epoch is None else int(drw_epoch)
        self.drw_beta = _check_number("drw_beta", drw_beta, 0.0, 1.0, high_open=True)
        self._margins = ldam_margins(self._counts, self.max_margin)
        self._balanced = effective_number_weights(self._counts, self.drw_beta)
        self._weights = keras.Variable(
            np.ones(self.num_classes, "float32"), trainable=False, dtype="float32",
            name="ldam_class_weights",
        )
        self._reweighted = False

    @property
    def margins(self):
        """The `(C,)` float64 NumPy margins `Delta_j` (cosine units)."""
        return self._margins.copy()

    @property
    def drw_weights(self):
        """The `(C,)` float64 NumPy class-balanced weights used from `drw_epoch` on."""
        return self._balanced.copy()

    @property
    def class_weights(self):
        """The `(C,)` weights in use now (ones before `drw_epoch`)."""
        return ops.convert_to_numpy(self._weights).astype("float64")

    def reweights_at(self, epoch):
        """Whether epoch `epoch` (0-based) trains with the class-balanced weights."""
        return self.drw_epoch is not None and int(epoch) >= self.drw_epoch

    def set_epoch(self, epoch):
        """Sets the weights of epoch `epoch`; returns True when they changed."""
        reweight = self.reweights_at(epoch)
        if reweight == self._reweighted:
            return False
        self._weights.assign(
            (self._balanced if reweight else np.ones(self.num_classes)).astype("float32")
        )
        self._reweighted = reweight
        return True

    def call(self, y_true, y_pred):
        targets, logits = self._targets(y_true, y_pred)
        adjusted = logits - targets * _constant(self.scale * self._margins)
        weights = ops.cast(ops.convert_to_tensor(self._weights), "float32")
        per_sample = _soft_cross_entropy(targets, adjusted, weights)
        # sum_i w_i l_i / sum_i w_i with w_i = sum_j w_j t_ij (1 before DRW).
        sample_weight = ops.sum(targets * weights, axis=-1)
        return per_sample / ops.maximum(ops.mean(sample_weight), 1e-12)


class DeferredReweighting(keras.callbacks.Callback):
    """Switches an `LDAMLoss` to its class-balanced weights at `drw_epoch` (DRW).

    At the start of every epoch it calls `loss.set_epoch(epoch)`, so a run
    resumed from a backup gets the weights of the epoch it resumes at. On
    TensorFlow and PyTorch the compiled step reads the weight variable on
    every call; JAX compiles the step with the variable's value frozen in, so
    on JAX the callback rebuilds the train and test functions when the
    weights change (one recompilation, at `drw_epoch`).

    Args:
        loss: the `LDAMLoss` (or any object with `set_epoch(epoch) -> bool`);
            None takes the model's compiled loss.

    Example:

    >>> loss = LDAMLoss(counts, drw_epoch=160)
    >>> model.compile(optimizer, loss=loss)                    # doctest: +SKIP
    >>> model.fit(x, y, epochs=200, callbacks=[DeferredReweighting()])  # doctest: +SKIP
    """

    def __init__(self, loss=None):
        super().__init__()
        self.loss = loss

    def _loss(self):
        loss = self.loss if self.loss is not None else getattr(self.model, "loss", None)
        if not hasattr(loss, "set_epoch"):
            raise ValueError(
                "DeferredReweighting needs an LDAMLoss (a loss with `set_epoch`): pass "
                f"it, or compile the model with it. The model's loss is {loss!r}."
            )
        return loss

    def on_train_begin(self, logs=None):
        self._loss()  # fail before the first step, not at drw_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if self._loss().set_epoch(epoch) and keras.config.backend() == "jax":
            if getattr(self.model, "train_function", None) is not None:
                self.model.make_train_function(force=True)
            if getattr(self.model, "test_function", None) is not None:
                self.model.make_test_function(force=True)
