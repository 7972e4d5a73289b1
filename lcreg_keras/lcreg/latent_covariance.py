"""Online class-conditional covariance, ISDA's estimator (LCReg Sec. 3.3, Eq. 5)."""

import keras
from keras import ops

COVARIANCE_MODES = ("full", "diagonal")


@keras.saving.register_keras_serializable(package="lcreg_keras")
class LatentCovariance(keras.layers.Layer):
    """Running per-class mean and covariance of samples, updated online.

    This holds the `Sigma'` of Eq. 5: one covariance per latent class. It is
    non-trainable float32 state (`mean (C, D)`, `covariance (C, D, D)` or its
    diagonal `(C, D)`, and integer `count (C,)`), updated only when the layer
    is called with `training=True`, and never differentiated.

    The update is ISDA's (Wang et al., 2019), written for any batch of samples:
    with `n_c` samples of class `c` in the batch, batch mean `mu_b`, biased
    batch covariance `Sigma_b`, running count `N_c` and
    `w = n_c / (n_c + N_c)` (0 where both are 0):

    ```
    Sigma_c <- (1 - w) Sigma_c + w Sigma_b + w (1 - w) (mu_c - mu_b)(mu_c - mu_b)^T
    mu_c    <- (1 - w) mu_c + w mu_b
    N_c     <- N_c + n_c
    ```

    which equals the biased covariance of every sample seen so far. Internally
    the batch is centred on the running mean before its moments are taken,
    which keeps float32 cancellation small once the mean has settled.

    In LCReg the samples are either the M latent vectors `f'_m` themselves,
    one per latent class per training step (`latent_aug_samples="latents"`,
    spec Sec. 3.a: every replica of a data-parallel step computes the same
    update), or the `(B, M, D)` part features of the batch (`"parts"`, spec
    Sec. 3.b), passed as rank-3 `samples` without labels: sample `[i, m]`
    belongs to class `m`. The state variables use
    `aggregation="only_first_replica"`; under a `tf.distribute` strategy the
    part features of the first replica's share of the batch update the state.

    Counts are int64 (float32 counts stop at 2**24); on the JAX backend
    without `jax_enable_x64` they are int32 (up to 2**31 - 1 samples a class).

    Args:
        num_classes: int, the number of classes C.
        mode: `"full"` (a `(D, D)` matrix per class) or `"diagonal"` (ISDA's
            choice for large D, `(D,)` per class).
        **kwargs: standard `keras.layers.Layer` arguments; the dtype policy is
            forced to float32.

    Call arguments:
        samples: `(N, D)` feature vectors with `labels`, or `(N, C, D)` with
            `labels=None`: N samples of every class, `samples[:, c]` of class
            `c` (gradients are stopped).
        labels: `(N,)` integer classes in `[0, C)`, or `None` for rank-3
            `samples`.
        training: bool. When true the state is updated and the updated
            covariance is returned; otherwise the stored one is returned.

    Returns:
        The covariance after this call, float32, `(C, D, D)` or `(C, D)`.

    Example:

    >>> cov = LatentCovariance(num_classes=3)
    >>> x = np.random.rand(10, 4).astype("float32")
    >>> y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    >>> cov(x, y, training=True).shape
    (3, 4, 4)
    """

    def __init__(self, num_classes, mode="full", **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"`num_classes` must be a positive integer. Received: {num_classes}"
            )
        if mode not in COVARIANCE_MODES:
            raise ValueError(
                f"`mode` must be one of {COVARIANCE_MODES}. Received: mode={mode!r}"
            )
        self.num_classes = num_classes
        self.mode = mode

    def build(self, samples_shape, labels_shape=None):
        if len(samples_shape) != 2 or samples_shape[-1] is None:
            raise ValueError(
                "`samples` must have shape (N, D) with D known. "
                f"Received shape: {tuple(samples_shape)}"
            )
        dim = samples_shape[-1]
        self.feature_dim = dim
        shape = (self.num_classes, dim) + ((dim,) if self.mode == "full" else ())
        state = dict(trainable=False, aggregation="only_first_replica", autocast=False)
        self.mean = self.add_weight(
            shape=(self.num_classes, dim), initializer="zeros", name="mean", **state
        )
        self.covariance = self.add_weight(
            shape=shape, initializer="zeros", name="covariance", **state
        )
        self.count = self.add_weight(
            shape=(self.num_classes,),
            initializer="zeros",
            dtype=_count_dtype(),
            name="count",
            **state,
        )

    def call(self, samples, labels=None, training=False):
        if not training:
            return ops.convert_to_tensor(self.covariance)
        mean, covariance, count = self.updated_state(samples, labels)
        self.mean.assign(mean)
        self.covariance.assign(covariance)
        self.count.assign(count)
        return covariance

    def updated_state(self, samples, labels=None):
        """The `(mean, covariance, count)` after seeing a batch; assigns nothing."""
        if samples.shape[-1] != self.feature_dim:
            raise ValueError(
                f"`samples` has D={samples.shape[-1]} but the estimator was "
                f"built for D={self.feature_dim}."
            )
        x = ops.cast(ops.stop_gradient(samples), "float32")
        c = self.num_classes
        old_mean = ops.convert_to_tensor(self.mean)
        old_cov = ops.convert_to_tensor(self.covariance)
        old_count = ops.convert_to_tensor(self.count)
        if labels is None:
            n, delta, second, delta_sq = self._grouped_moments(x, old_mean)
        else:
            n, delta, second, delta_sq = self._labelled_moments(x, labels, old_mean)

        total = ops.cast(old_count, "float32") + n
        w = ops.where(total > 0, n / ops.maximum(total, 1.0), 0.0)  # (C,)
        w_mean = w[:, None]
        w_cov = ops.reshape(w, (c,) + (1,) * (len(old_cov.shape) - 1))
        # (1-w) S + w (second - d d^T) + w (1-w) d d^T = (1-w) S + w second - w^2 d d^T
        covariance = (1.0 - w_cov) * old_cov + w_cov * second - w_cov**2 * delta_sq
        mean = old_mean + w_mean * delta
        count = old_count + ops.cast(n, old_count.dtype)
        return mean, covariance, count

    def _labelled_moments(self, x, labels, old_mean):
        """Batch moments of `(N, D)` samples with labels, centred on the running mean."""
        if len(x.shape) != 2:
            raise ValueError(
                "`samples` with `labels` must have shape (N, D). "
                f"Received shape: {tuple(x.shape)}"
            )
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        c = self.num_classes
        shifted = x - ops.take(old_mean, labels, axis=0)
        ones = ops.ones_like(labels, dtype="float32")
        n = ops.segment_sum(ones, labels, num_segments=c)  # (C,)
        n_safe = ops.maximum(n, 1.0)[:, None]
        delta = ops.segment_sum(shifted, labels, num_segments=c) / n_safe  # mu_b - mu
        if self.mode == "full":
            outer = ops.einsum("nd,ne->nde", shifted, shifted)
            second = ops.segment_sum(outer, labels, num_segments=c) / n_safe[:, :, None]
            delta_sq = ops.einsum("cd,ce->cde", delta, delta)
        else:
            second = ops.segment_sum(ops.square(shifted), labels, num_segments=c)
            second = second / n_safe
            delta_sq = ops.square(delta)
        return n, delta, second, delta_sq

    def _grouped_moments(self, x, old_mean):
        """Batch moments of `(N, C, D)` samples, N of every class (no `(N, D, D)` outer products)."""
        if len(x.shape) != 3 or x.shape[1] != self.num_classes:
            raise ValueError(
                "`samples` without `labels` must have shape (N, C, D) with "
                f"C={self.num_classes}. Received shape: {tuple(x.shape)}"
            )
        shifted = x - old_mean[None]
        count = ops.cast(ops.shape(x)[0], "float32")
        n = ops.ones((self.num_classes,), "float32") * count
        delta = ops.mean(shifted, axis=0)
        if self.mode == "full":
            second = ops.einsum("ncd,nce->cde", shifted, shifted) / count
            delta_sq = ops.einsum("cd,ce->cde", delta, delta)
        else:
            second = ops.mean(ops.square(shifted), axis=0)
            delta_sq = ops.square(delta)
        return n, delta, second, delta_sq

    def compute_output_shape(self, samples_shape, labels_shape=None):
        dim = samples_shape[-1]
        return (self.num_classes, dim) + ((dim,) if self.mode == "full" else ())

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "mode": self.mode})
        config.pop("dtype", None)
        return config


def _count_dtype():
    if keras.config.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            return "int32"
    return "int64"


def covariance_noise(covariance, scale, seed, num_draws=None, jitter=1e-5):
    """Gaussian draws `delta_c ~ N(0, scale * Sigma_c)`, one per class (Eq. 5).

    The explicit counterpart of ISDA's bound (spec Sec. 3.c): a full
    covariance is factored as `Sigma_c + eps_c I = L_c L_c^T` (Cholesky) and
    `delta_c = sqrt(scale) L_c u`, `u ~ N(0, I)`; a diagonal one gives
    `delta_c = sqrt(scale * max(sigma_c, 0)) * u`. The jitter
    `eps_c = jitter * mean(diag Sigma_c) + 1e-12` keeps the factorisation
    defined for the singular running estimates; where float32 rounding left
    an eigenvalue `mu_c < -eps_c / 2`, `eps_c - 2 mu_c` replaces it. It adds
    `scale * eps_c` to each variance. Computed in
    float32; the draw carries no gradient (`stop_gradient`), neither into the
    covariance nor into `scale`.

    Args:
        covariance: `(C, D, D)` full or `(C, D)` diagonal class covariance.
        scale: float or 0-d tensor `>= 0`, the `lambda` of Eq. 5.
        seed: a `keras.random.SeedGenerator` (or an int) for the normal draws.
        num_draws: `None` for one draw per class, `(C, D)`; an int `n` gives
            `n` independent draws, `(n, C, D)` (for Monte Carlo checks).
        jitter: relative diagonal jitter of the Cholesky factorisation.

    Returns:
        float32 `(C, D)` (or `(num_draws, C, D)`) draws.

    Example:

    >>> sigma = np.stack([np.eye(3), 4 * np.eye(3)]).astype("float32")
    >>> covariance_noise(sigma, 0.5, seed=0).shape
    (2, 3)
    """
    covariance = ops.cast(ops.stop_gradient(ops.convert_to_tensor(covariance)), "float32")
    scale = ops.cast(ops.stop_gradient(ops.convert_to_tensor(scale)), "float32")
    if len(covariance.shape) not in (2, 3):
        raise ValueError(
            "`covariance` must be (C, D, D) full or (C, D) diagonal. "
            f"Received shape: {tuple(covariance.shape)}"
        )
    c, d = covariance.shape[0], covariance.shape[1]
    shape = (c, d) if num_draws is None else (int(num_draws), c, d)
    normal = keras.random.normal(shape, dtype="float32", seed=seed)
    root_scale = ops.sqrt(ops.maximum(scale, 0.0))
    if len(covariance.shape) == 2:
        delta = ops.sqrt(ops.maximum(covariance, 0.0)) * normal
    else:
        diagonal = ops.diagonal(covariance, axis1=1, axis2=2)
        eps = jitter * ops.mean(ops.abs(diagonal), axis=-1) + 1e-12  # (C,)
        # A running estimate of low rank (the `latents` reading adds one
        # sample per class a step) can round to eigenvalues below -eps, where
        # the factorisation fails (TensorFlow raises). Such a class is shifted
        # past its lowest eigenvalue; every other class keeps `eps`.
        lowest = ops.eigh(covariance)[0][:, 0]  # ascending eigenvalues, (C,)
        eps = ops.where(lowest > -0.5 * eps, eps, eps - 2.0 * lowest)
        eye = ops.eye(d, dtype="float32")
        factor = ops.cholesky(covariance + eps[:, None, None] * eye)  # lower, (C, D, D)
        pattern = "cde,ce->cd" if num_draws is None else "cde,nce->ncd"
        delta = ops.einsum(pattern, factor, normal)
    return ops.stop_gradient(root_scale * delta)
