"""Latent implicit semantic data augmentation (LCReg Sec. 3.3, Eq. 6): the latent classes and L_aug.

The covariance `Sigma'` of Eq. 5 (its estimator and explicit draws) is in
`latent_covariance.py`; this module holds the latent classes (the samples,
their logits and class weights) and the loss of Eq. 6.

LCReg augments the latent category features `f'_m` along the directions of
their class-conditional covariance (Eq. 5, `f'_m + delta`,
`delta ~ N(0, lambda * Sigma'_y)`) and, following ISDA (Wang et al., 2019),
minimises the closed-form upper bound of the expected cross-entropy over
infinitely many such samples instead of sampling them (Eq. 6):

```
Q[y, j] = (w_j - w_y)^T Sigma_y (w_j - w_y)
L_aug   = mean_i CE(z_i + (lambda / 2) * Q[y_i], y_i)
```

where `z_i = W^T f'_i + b` are the (latent-class) logits and `w_j` the
weights of class `j`. The bound follows from Jensen's inequality and the
moment generating function of a Gaussian; it is tight as `lambda -> 0`.

No `keras.losses.Loss` wrapper is provided on purpose: a Keras loss sees
only `(y_true, y_pred)`, while Eq. 6 also needs the current class weights
(model variables that change every step) and the running covariance (the
state of an online estimator). A wrapper would have to hold references to
both and could not be serialised meaningfully, so it would be a
pass-through around `latent_isda_loss`; call the function from the model's
forward pass instead.
"""

import numbers

import numpy as np
from keras import ops


def _static_shape(x):
    """The static shape of a tensor as a tuple (`None` for unknown dims)."""
    shape = tuple(x.shape)
    return tuple(d if isinstance(d, (int, np.integer)) or d is None else None
                 for d in shape)


def _check_rank(name, shape, ranks):
    if len(shape) not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"Argument `{name}` must have rank {expected}. "
            f"Received: {name}.shape={shape}"
        )


def _check_dim(name_a, dim_a, name_b, dim_b, what):
    if dim_a is not None and dim_b is not None and int(dim_a) != int(dim_b):
        raise ValueError(
            f"The {what} of `{name_a}` ({dim_a}) does not match the {what} "
            f"of `{name_b}` ({dim_b})."
        )


def _validate_weights_and_covariance(class_weights, covariance):
    w_shape = _static_shape(class_weights)
    s_shape = _static_shape(covariance)
    _check_rank("class_weights", w_shape, (2,))
    _check_rank("covariance", s_shape, (2, 3))
    _check_dim("class_weights", w_shape[0], "covariance", s_shape[0],
               "number of classes (dim 0)")
    _check_dim("class_weights", w_shape[1], "covariance", s_shape[1],
               "feature dimension D (dim 1)")
    if len(s_shape) == 3:
        _check_dim("covariance", s_shape[1], "covariance", s_shape[2],
                   "dim 1 (a full covariance is (C, D, D))")
    return w_shape, s_shape


def isda_quadratic(class_weights, covariance):
    """The ISDA quadratic term `Q` of Eq. 6, one value per (label, class).

    ```
    Q[y, j] = (w_j - w_y)^T Sigma_y (w_j - w_y)
    ```

    `Q[y, y] = 0` and `Q >= 0` for a positive semi-definite `Sigma_y`. A full
    covariance costs `O(C^2 D^2)` time (for each label `y`, a `(C, D) @ (D, D)`
    product of the weight differences with `Sigma_y`) and `O(C^2 D)` memory,
    which is below the `C D^2` of the covariance itself whenever `C < D`. A
    diagonal covariance never forms the `(C, C, D)` differences: the square is
    expanded into three `(C, D) @ (D, C)` products, `O(C^2 D)` time and
    `O(C^2)` extra memory. The result is computed in float32 whatever the
    input dtype (mixed precision), clipped at 0 against rounding, and its
    diagonal is exactly 0.

    Args:
        class_weights: `(C, D)` tensor; row `j` is the weight vector `w_j` of
            class `j` (for LCReg's latent classes, `W[:, :M]^T` of the
            projection kernel `W: (D, D)`, spec Sec. 3).
        covariance: per-class covariance, either full `(C, D, D)` or diagonal
            `(C, D)` (the variances only, ISDA's large-D variant). The kind is
            chosen by rank.

    Returns:
        A float32 `(C, C)` tensor `Q`, rows indexed by the label `y`.

    Example:

    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> sigma = np.ones((2, 2), "float32")          # diagonal, unit variances
    >>> keras.ops.convert_to_numpy(isda_quadratic(w, sigma))
    array([[0., 2.],
           [2., 0.]], dtype=float32)
    """
    class_weights = ops.cast(ops.convert_to_tensor(class_weights), "float32")
    covariance = ops.cast(ops.convert_to_tensor(covariance), "float32")
    _, s_shape = _validate_weights_and_covariance(class_weights, covariance)
    return _quadratic(class_weights, covariance, full=len(s_shape) == 3)


def _quadratic(w, sigma, full):
    if full:
        # diff[y, j] = w_j - w_y: (C, C, D). Batched over y:
        # (C, D) @ Sigma_y (D, D), then contract D with diff again. This is
        # the direct form (no cancellation between large terms); it has the
        # size of the `einsum("yde,je->ydj", Sigma, W)` intermediate.
        diff = ops.expand_dims(w, 0) - ops.expand_dims(w, 1)
        q = ops.sum(ops.matmul(diff, sigma) * diff, axis=-1)
    else:
        # sum_d s_yd (w_jd - w_yd)^2
        #   = (s @ (W*W)^T)[y, j] - 2 ((s*W) @ W^T)[y, j] + sum_d s_yd w_yd^2
        w_t = ops.transpose(w)
        sw = sigma * w
        q = (
            ops.matmul(sigma, w_t * w_t)
            - 2.0 * ops.matmul(sw, w_t)
            + ops.sum(sw * w, axis=-1, keepdims=True)
        )
        num_classes = ops.shape(w)[0]
        q = q * (1.0 - ops.eye(num_classes, dtype="float32"))
    return ops.maximum(q, 0.0)


def latent_isda_loss(logits, labels, class_weights, covariance, lam):
    """The latent ISDA loss, ISDA's upper bound of Eq. 6 (LCReg Sec. 3.3).

    ```
    z~_i = z_i + (lam / 2) * Q[y_i]          # Q from `isda_quadratic`
    loss = mean_i -log softmax(z~_i)[y_i]
    ```

    This upper-bounds the expected cross-entropy of the logits of features
    augmented with `delta ~ N(0, lam * Sigma_{y_i})` (the logits must be
    linear in the feature with weights `class_weights`), and equals the plain
    sparse cross-entropy at `lam = 0`. The covariance is a constant
    (`stop_gradient`): gradients reach `logits` and `class_weights`.
    Everything is computed in float32.

    Args:
        logits: `(N, C)` logits `z = W^T f + b` of the N samples (for LCReg,
            the latent-class logits `E[:, :M]`, one row per latent).
        labels: `(N,)` (or `(N, 1)`) integer labels in `[0, C)`. Labels out of
            range are not checked (that cannot be done cheaply in graph mode
            on every backend); the gather then errors or clips depending on
            the backend and device.
        class_weights: `(C, D)`, row `j` is `w_j` (see `isda_quadratic`).
        covariance: `(C, D, D)` full or `(C, D)` diagonal class covariance
            `Sigma` of the features; treated as a constant.
        lam: the augmentation strength `lambda >= 0` (Python number or 0-d
            tensor; LCReg ramps it as `lambda_0 * t / T`).

    Returns:
        A float32 scalar, the mean augmented cross-entropy over the N samples.

    Example:

    >>> logits = np.array([[2.0, 0.0], [0.0, 1.0]], "float32")
    >>> labels = np.array([0, 1])
    >>> w = np.eye(2, dtype="float32")
    >>> sigma = np.ones((2, 2), "float32")
    >>> loss = latent_isda_loss(logits, labels, w, sigma, lam=0.5)
    """
    if isinstance(lam, numbers.Number) or (
        isinstance(lam, np.ndarray) and lam.ndim == 0
    ):
        if not np.isfinite(float(lam)) or float(lam) < 0:
            raise ValueError(
                f"Argument `lam` must be a finite number >= 0. Received: lam={lam}"
            )
    logits = ops.cast(ops.convert_to_tensor(logits), "float32")
    labels = ops.convert_to_tensor(labels)
    class_weights = ops.cast(ops.convert_to_tensor(class_weights), "float32")
    covariance = ops.cast(ops.convert_to_tensor(covariance), "float32")

    z_shape = _static_shape(logits)
    y_shape = _static_shape(labels)
    _check_rank("logits", z_shape, (2,))
    if len(y_shape) == 2 and y_shape[1] == 1:
        labels = ops.reshape(labels, (-1,))
        y_shape = y_shape[:1]
    _check_rank("labels", y_shape, (1,))
    _check_dim("labels", y_shape[0], "logits", z_shape[0],
               "number of samples (dim 0)")
    w_shape, s_shape = _validate_weights_and_covariance(class_weights, covariance)
    _check_dim("logits", z_shape[1], "class_weights", w_shape[0],
               "number of classes")

    labels = ops.cast(labels, "int32")
    covariance = ops.stop_gradient(covariance)
    q = _quadratic(class_weights, covariance, full=len(s_shape) == 3)
    lam = ops.cast(lam, "float32")
    augmented = logits + (0.5 * lam) * ops.take(q, labels, axis=0)
    log_probs = ops.log_softmax(augmented, axis=-1)
    picked = ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1)
    return -ops.mean(picked)


def latent_class_logits(pool, encoded=None):
    """`(M, M)` latent-class logits `E[:, :M]`; row m has target m (Sec. 3.1, Eq. 6).

    The latent classes are the first M output channels of the latent pool's
    projection `FC: D -> D`: latent `m`'s logits are `FC(f'_m)[:M]`, class
    `j` has weights `W[:, j]` and bias `b[j]`.

    Args:
        pool: a built `LatentPool`.
        encoded: `(M, D)` encoded latents `E` (`None`: `pool.encoded_latents()`).

    Returns:
        `(M, M)` logits.
    """
    encoded = pool.encoded_latents() if encoded is None else encoded
    return encoded[:, : pool.num_latents]


def latent_class_logits_of(pool, samples):
    """`FC(v)[..., :M]` of `(..., D)` samples, e.g. the part features (Eq. 6, spec 3.b)."""
    m = pool.num_latents
    return ops.matmul(samples, pool.kernel[:, :m]) + pool.bias[:m]


def latent_class_weights(pool):
    """`(M, D)` weights of the M latent classes: row j is `W[:, j]` (Eq. 6)."""
    return ops.transpose(pool.kernel[:, : pool.num_latents])


def part_features(features, weights):
    """The part features of reading 3.b: each latent's share of each image.

    ```
    g[i, m] = sum_ab S_hat[i, a, b, m] f[i, a, b] / sum_ab S_hat[i, a, b, m]
    ```

    one einsum over the positions: the `S_hat`-weighted mean of image `i`'s
    features under latent `m` (spec Sec. 3.b). Sample `g[i, m]` has latent
    class `m`, so every image gives every latent one sample. Computed in
    float32 (mixed precision: spec Sec. 3); gradients reach `f` and `S_hat`.

    Args:
        features: `(B, H, W, D)` feature map `f`.
        weights: `(B, H, W, M)` normalised similarity maps `S_hat` (Eq. 2).

    Returns:
        float32 `(B, M, D)` part features.

    Example:

    >>> f = np.ones((2, 3, 3, 4), "float32")
    >>> w = np.full((2, 3, 3, 5), 0.2, "float32")
    >>> part_features(f, w).shape
    (2, 5, 4)
    """
    features = ops.cast(features, "float32")
    weights = ops.cast(weights, "float32")
    if len(features.shape) != 4 or len(weights.shape) != 4:
        raise ValueError(
            "`features` (B, H, W, D) and `weights` (B, H, W, M) must have rank 4. "
            f"Received shapes: {tuple(features.shape)} and {tuple(weights.shape)}"
        )
    mass = ops.sum(weights, axis=(1, 2))  # (B, M)
    parts = ops.einsum("bhwm,bhwd->bmd", weights, features)
    return parts / ops.maximum(mass, 1e-12)[:, :, None]


def latent_aug_loss(pool, covariance, samples, features, weights, encoded, lam, training):
    """Eq. 5-6 on the M latent classes: `(L_aug, Sigma')`, updating `Sigma'` in training.

    The samples (spec Sec. 3): `"latents"` (3.a) are the M latent vectors
    `f'_m`, label `m`, logits `E[:, :M]`; `"parts"` (3.b) are the `(B, M, D)`
    part features `g[i, m]` (`part_features`), label `m`, logits
    `FC(g[i, m])[:M]`, `L_aug` the mean over all `B * M` samples. `Sigma'`
    is `covariance`'s estimate after this step's samples (when `training`).

    Args:
        pool: the built `LatentPool` (latents, `FC`).
        covariance: the `LatentCovariance` of the M latent classes.
        samples: `"latents"` or `"parts"`.
        features: float32 `(B, H, W, D)` feature map `f`.
        weights: `(B, H, W, M)` normalised maps `S_hat` (Eq. 2).
        encoded: `(M, D)` encoded latents `E = FC(f')`.
        lam: the ISDA strength `lambda`.
        training: update the covariance state.

    Returns:
        `(L_aug, Sigma')`: a float32 scalar and the `(M, D, D)` or `(M, D)`
        covariance after the update.
    """
    m = pool.num_latents
    if samples == "parts":
        parts = part_features(features, weights)  # (B, M, D)
        sigma = covariance(parts, None, training=training)
        logits = ops.reshape(latent_class_logits_of(pool, parts), (-1, m))
        labels = ops.tile(ops.arange(m, dtype="int32"), (ops.shape(parts)[0],))
    else:
        labels = ops.arange(m, dtype="int32")
        sigma = covariance(pool.latents, labels, training=training)
        logits = latent_class_logits(pool, encoded)
    loss = latent_isda_loss(logits, labels, latent_class_weights(pool), sigma, lam)
    return loss, sigma
