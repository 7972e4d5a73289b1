"""Tests of lcreg_keras.losses: latent ISDA (Eq. 6) and label-aware smoothing."""

import math

import keras
import numpy as np
import pytest

from lcreg_keras.losses import LabelAwareSmoothing
from lcreg_keras.losses import isda_quadratic
from lcreg_keras.losses import label_aware_epsilons
from lcreg_keras.losses import latent_isda_loss

pytestmark = pytest.mark.multibackend

BACKEND = keras.backend.backend()


# --------------------------------------------------------------------------
# Independent NumPy references (float64, explicit loops).


def np_quadratic(w, sigma):
    w = np.asarray(w, "float64")
    sigma = np.asarray(sigma, "float64")
    c = w.shape[0]
    q = np.zeros((c, c))
    for y in range(c):
        s = sigma[y] if sigma.ndim == 3 else np.diag(sigma[y])
        for j in range(c):
            d = w[j] - w[y]
            q[y, j] = d @ s @ d
    return q


def np_log_softmax(z):
    z = np.asarray(z, "float64")
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def np_isda_loss(logits, labels, w, sigma, lam):
    q = np_quadratic(w, sigma)
    total = 0.0
    for i, y in enumerate(labels):
        z = np.asarray(logits[i], "float64") + 0.5 * lam * q[y]
        total -= np_log_softmax(z)[y]
    return total / len(labels)


def random_psd(rng, c, d):
    a = rng.normal(size=(c, d, d))
    return (a @ np.transpose(a, (0, 2, 1)) / d + 0.1 * np.eye(d)).astype("float32")


def random_problem(rng, n=12, c=6, d=5):
    logits = rng.normal(size=(n, c)).astype("float32")
    labels = rng.integers(0, c, size=n)
    w = rng.normal(size=(c, d)).astype("float32")
    full = random_psd(rng, c, d)
    diag = rng.uniform(0.1, 2.0, size=(c, d)).astype("float32")
    return logits, labels, w, full, diag


def to_np(x):
    return keras.ops.convert_to_numpy(x)


# --------------------------------------------------------------------------
# Backend-specific gradient and compilation helpers (tests only).


def backend_grads(fn, *args):
    """Gradients of scalar `fn(*args)` w.r.t. every arg, as NumPy arrays."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            out = fn(*tensors)
        grads = tape.gradient(
            out, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return [g.numpy() for g in grads]
    if BACKEND == "jax":
        import jax

        grads = jax.jit(jax.grad(fn, argnums=tuple(range(len(args)))))(*args)
        return [np.asarray(g) for g in grads]
    if BACKEND == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        fn(*tensors).backward()
        return [
            np.zeros(a.shape, "float32") if t.grad is None else t.grad.numpy()
            for a, t in zip(args, tensors)
        ]
    raise NotImplementedError(BACKEND)


def compiled(fn, example_args):
    """`fn` compiled for the backend: tf.function with unknown batch, jax.jit."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        signature = []
        for a in example_args:
            shape = (None,) + a.shape[1:] if a.ndim else ()
            signature.append(tf.TensorSpec(shape, tf.as_dtype(a.dtype)))
        return tf.function(fn, input_signature=signature)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


# --------------------------------------------------------------------------
# isda_quadratic


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_quadratic_matches_numpy_loops(rng, kind):
    _, _, w, full, diag = random_problem(rng)
    sigma = full if kind == "full" else diag
    q = to_np(isda_quadratic(w, sigma))
    expected = np_quadratic(w, sigma)
    assert q.dtype == np.float32 and q.shape == (6, 6)
    np.testing.assert_allclose(
        q, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )
    np.testing.assert_array_equal(np.diag(q), 0.0)
    assert np.all(q >= 0)


def test_quadratic_is_not_symmetric_for_class_dependent_covariance(rng):
    # Q[y, j] uses Sigma_y: a check that rows are indexed by the label.
    _, _, w, full, _ = random_problem(rng)
    full[1] *= 10.0
    q = to_np(isda_quadratic(w, full))
    np.testing.assert_allclose(q[1, 0], np_quadratic(w, full)[1, 0], rtol=1e-4)
    assert abs(q[1, 0] - q[0, 1]) > 1e-2


def test_diagonal_equals_full_with_diagonal_matrix(rng):
    logits, labels, w, _, diag = random_problem(rng)
    full = np.stack([np.diag(s) for s in diag]).astype("float32")
    np.testing.assert_allclose(
        to_np(isda_quadratic(w, diag)), to_np(isda_quadratic(w, full)),
        rtol=1e-4, atol=1e-5,
    )
    np.testing.assert_allclose(
        to_np(latent_isda_loss(logits, labels, w, diag, 0.7)),
        to_np(latent_isda_loss(logits, labels, w, full, 0.7)),
        rtol=1e-5,
    )


def test_quadratic_computes_in_float32_for_half_inputs(rng):
    _, _, w, full, diag = random_problem(rng)
    for sigma in (full, diag):
        q = isda_quadratic(w.astype("float16"), sigma.astype("float16"))
        assert keras.backend.standardize_dtype(q.dtype) == "float32"
        expected = np_quadratic(w.astype("float16"), sigma.astype("float16"))
        np.testing.assert_allclose(to_np(q), expected, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------
# latent_isda_loss


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_loss_matches_numpy_loops(rng, kind):
    logits, labels, w, full, diag = random_problem(rng)
    sigma = full if kind == "full" else diag
    for lam in (0.0, 0.25, 2.0):
        loss = latent_isda_loss(logits, labels, w, sigma, lam)
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"
        assert tuple(loss.shape) == ()
        expected = np_isda_loss(logits, labels, w, sigma, lam)
        np.testing.assert_allclose(float(to_np(loss)), expected, rtol=1e-4)


def test_loss_accepts_tensor_lam_and_column_labels(rng):
    logits, labels, w, full, _ = random_problem(rng)
    lam = keras.ops.convert_to_tensor(0.4)
    loss = latent_isda_loss(logits, labels.reshape(-1, 1), w, full, lam)
    np.testing.assert_allclose(
        float(to_np(loss)), np_isda_loss(logits, labels, w, full, 0.4), rtol=1e-4
    )


def test_lam_zero_is_plain_sparse_cross_entropy(rng):
    logits, labels, w, full, diag = random_problem(rng)
    expected = -np.mean(np_log_softmax(logits)[np.arange(len(labels)), labels])
    for sigma in (full, diag):
        loss = latent_isda_loss(logits, labels, w, sigma, 0.0)
        np.testing.assert_allclose(float(to_np(loss)), expected, rtol=1e-5)


def test_loss_grows_with_lam(rng):
    logits, labels, w, full, _ = random_problem(rng)
    values = [
        float(to_np(latent_isda_loss(logits, labels, w, full, lam)))
        for lam in (0.0, 0.1, 1.0, 5.0)
    ]
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_upper_bounds_monte_carlo_and_is_tight_as_lam_vanishes():
    # Eq. 6 is ISDA's closed-form upper bound (Jensen) of the expected CE of
    # the logits of augmented features x + delta, delta ~ N(0, lam Sigma_y).
    rng = np.random.default_rng(1)
    n, c, d, samples = 16, 5, 6, 4000
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(c, d)).astype("float32") * 0.7
    b = rng.normal(size=(c,)) * 0.3
    labels = rng.integers(0, c, size=n)
    sigma = random_psd(rng, c, d)
    logits = (x @ w.T.astype("float64") + b).astype("float32")
    chol = np.linalg.cholesky(sigma.astype("float64"))
    # Common random numbers across lam; antithetic pairs cancel the linear
    # (first-order) noise so the MC error shrinks like the gap does.
    noise = rng.normal(size=(n, samples, d))
    unit = np.einsum("nde,nse->nsd", chol[labels], noise)  # ~ N(0, Sigma_y)
    shift = unit @ w.T.astype("float64")                    # (n, S, c)

    def mc(lam):
        per_point = []
        for sign in (1.0, -1.0):
            z = logits.astype("float64")[:, None, :] + sign * math.sqrt(lam) * shift
            logp = np_log_softmax(z)
            per_point.append(-logp[np.arange(n), :, labels])  # (n, S)
        ce = 0.5 * (per_point[0] + per_point[1])
        return ce.mean(), ce.std() / math.sqrt(ce.size)

    gaps = []
    for lam in (1.0, 0.3, 0.1, 0.01):
        bound = float(to_np(latent_isda_loss(logits, labels, w, sigma, lam)))
        np.testing.assert_allclose(
            bound, np_isda_loss(logits, labels, w, sigma, lam), rtol=1e-4
        )
        mean, stderr = mc(lam)
        gap = bound - mean
        assert gap > 4 * stderr, (lam, bound, mean, stderr)
        gaps.append(gap)
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.01 * gaps[0], gaps
    # Second order in lam, the gap is lam/2 * mean_i v_i^T Sigma_y v_i with
    # v_i = W^T p_i - w_y (the variance of the softmax-weighted logit shift).
    p = np.exp(np_log_softmax(logits))
    v = p @ w.astype("float64") - w[labels].astype("float64")
    sigma_y = sigma[labels].astype("float64")
    slope = 0.5 * np.mean(np.einsum("nd,nde,ne->n", v, sigma_y, v))
    np.testing.assert_allclose(gaps[-1] / 0.01, slope, rtol=0.05)


def test_gradients_reach_logits_and_weights_not_covariance(rng):
    logits, labels, w, full, diag = random_problem(rng)
    lam = 0.8
    for sigma in (full, diag):

        def fn(z, weights, cov):
            return latent_isda_loss(z, labels, weights, cov, lam)

        g_z, g_w, g_s = backend_grads(fn, logits, w, sigma)
        assert np.abs(g_z).max() > 1e-3 and np.abs(g_w).max() > 1e-3
        np.testing.assert_array_equal(g_s, 0.0)
        # Directional central differences of the float64 NumPy reference.
        z64, w64, h = logits.astype("float64"), w.astype("float64"), 1e-5
        for _ in range(3):
            dz, dw = rng.normal(size=logits.shape), rng.normal(size=w.shape)
            numeric = (
                np_isda_loss(z64 + h * dz, labels, w64 + h * dw, sigma, lam)
                - np_isda_loss(z64 - h * dz, labels, w64 - h * dw, sigma, lam)
            ) / (2 * h)
            analytic = np.sum(g_z * dz) + np.sum(g_w * dw)
            np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-5)
            # The weights alone, so the Q path is checked on its own.
            numeric_w = (
                np_isda_loss(z64, labels, w64 + h * dw, sigma, lam)
                - np_isda_loss(z64, labels, w64 - h * dw, sigma, lam)
            ) / (2 * h)
            np.testing.assert_allclose(
                np.sum(g_w * dw), numeric_w, rtol=1e-3, atol=1e-5
            )


def test_descent_on_weights_lowers_the_loss(rng):
    # The Q term penalises spread of the weights along Sigma: shrinking the
    # weight differences lowers the augmented loss at fixed logits.
    logits, labels, w, full, _ = random_problem(rng)
    before = float(to_np(latent_isda_loss(logits, labels, w, full, 1.0)))
    mean = w.mean(axis=0, keepdims=True)
    shrunk = mean + 0.5 * (w - mean)
    after = float(to_np(latent_isda_loss(logits, labels, shrunk, full, 1.0)))
    assert after < before


def test_compiled_loss_with_unknown_batch(rng):
    logits, labels, w, full, diag = random_problem(rng)
    for sigma in (full, diag):
        args = (logits, labels.astype("int32"), w, sigma, np.float32(0.6))
        fn = compiled(latent_isda_loss, args)
        np.testing.assert_allclose(
            float(to_np(fn(*args))),
            np_isda_loss(logits, labels, w, sigma, 0.6),
            rtol=1e-4,
        )


ISDA_BAD_INPUTS = (
    ({"logits": np.zeros((4,), "float32")}, "logits"),
    ({"labels": np.zeros((4, 2), "int32")}, "labels"),
    ({"labels": np.zeros((5,), "int32")}, "labels"),
    ({"class_weights": np.zeros((3,), "float32")}, "class_weights"),
    ({"class_weights": np.zeros((4, 3), "float32")}, "class_weights"),
    ({"covariance": np.zeros((3, 2, 2, 2), "float32")}, "covariance"),
    ({"covariance": np.zeros((4, 2), "float32")}, "covariance"),
    ({"covariance": np.zeros((3, 5), "float32")}, "covariance"),
    ({"covariance": np.zeros((3, 2, 3), "float32")}, "covariance"),
    ({"lam": -0.1}, "lam"),
    ({"lam": float("nan")}, "lam"),
)


def test_isda_bad_inputs_raise():
    good = {
        "logits": np.zeros((4, 3), "float32"),
        "labels": np.zeros((4,), "int32"),
        "class_weights": np.zeros((3, 2), "float32"),
        "covariance": np.zeros((3, 2, 2), "float32"),
        "lam": 0.5,
    }
    latent_isda_loss(**good)
    for kwargs, match in ISDA_BAD_INPUTS:
        with pytest.raises(ValueError, match=match):
            latent_isda_loss(**dict(good, **kwargs))


def test_quadratic_bad_inputs_raise():
    with pytest.raises(ValueError, match="covariance"):
        isda_quadratic(np.zeros((3, 2)), np.zeros((3,)))
    with pytest.raises(ValueError, match="class_weights"):
        isda_quadratic(np.zeros((3, 2)), np.zeros((2, 2)))


# --------------------------------------------------------------------------
# label_aware_epsilons

COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_epsilons_concave_head_tail_and_formula():
    counts = [37, 500, 5, 120, 5, 260]
    eps = label_aware_epsilons(counts, head=0.4, tail=0.1)
    assert eps.dtype == np.float32 and eps.shape == (6,)
    assert eps[1] == pytest.approx(0.4) and eps[2] == pytest.approx(0.1)
    assert eps[4] == pytest.approx(0.1)
    for y, n in enumerate(counts):
        expected = 0.1 + 0.3 * math.sin(math.pi * (n - 5) / (2 * (500 - 5)))
        assert eps[y] == pytest.approx(expected, abs=1e-6)


def test_epsilons_monotone_in_counts():
    for shape in ("concave", "linear", "convex"):
        eps = label_aware_epsilons(COUNTS[::-1], head=0.3, tail=0.0, shape=shape)
        assert np.all(np.diff(eps) > 0), shape
        assert eps[-1] == pytest.approx(0.3) and eps[0] == pytest.approx(0.0)


def test_epsilons_shapes_formulas_and_order():
    counts = np.array(COUNTS, "float64")
    r = (counts - counts.min()) / (counts.max() - counts.min())
    concave = label_aware_epsilons(COUNTS, 0.4, 0.1, "concave")
    linear = label_aware_epsilons(COUNTS, 0.4, 0.1, "linear")
    convex = label_aware_epsilons(COUNTS, 0.4, 0.1, "convex")
    np.testing.assert_allclose(linear, 0.1 + 0.3 * r, atol=1e-6)
    # MiSLAS writes convex as head + (head - tail) * sin(1.5 pi + pi/2 r).
    np.testing.assert_allclose(
        convex, 0.4 + 0.3 * np.sin(1.5 * np.pi + 0.5 * np.pi * r), atol=1e-6
    )
    assert np.all(convex <= linear + 1e-7) and np.all(linear <= concave + 1e-7)
    inner = (r > 0) & (r < 1)
    assert np.all(convex[inner] < linear[inner])
    assert np.all(linear[inner] < concave[inner])


def test_epsilons_equal_counts_all_head():
    np.testing.assert_array_equal(
        label_aware_epsilons([7, 7, 7], 0.3, 0.1), np.full(3, 0.3, "float32")
    )


EPS_BAD_INPUTS = (
    ({"class_counts": [10, 0, 3]}, "class_counts"),
    ({"class_counts": [10, -2, 3]}, "class_counts"),
    ({"class_counts": []}, "class_counts"),
    ({"class_counts": [[1, 2], [3, 4]]}, "class_counts"),
    ({"class_counts": ["a", "b"]}, "class_counts"),
    ({"head": 1.5}, "head"),
    ({"head": -0.1}, "head"),
    ({"tail": 2.0}, "tail"),
    ({"tail": None}, "tail"),
    ({"shape": "exp"}, "shape"),
)


def test_epsilons_bad_inputs_raise():
    good = {"class_counts": [10, 5, 1], "head": 0.4, "tail": 0.1, "shape": "concave"}
    label_aware_epsilons(**good)
    for kwargs, match in EPS_BAD_INPUTS:
        args = dict(good, **kwargs)
        with pytest.raises(ValueError, match=match):
            label_aware_epsilons(**args)
        with pytest.raises(ValueError, match=match):
            LabelAwareSmoothing(**args)


# --------------------------------------------------------------------------
# LabelAwareSmoothing


def np_las(labels, logits, eps):
    logp = np_log_softmax(logits)
    out = []
    for i, y in enumerate(labels):
        out.append((1 - eps[y]) * -logp[i, y] + eps[y] * -logp[i].mean())
    return np.array(out)


@pytest.mark.parametrize("shape", ["concave", "convex"])
def test_label_aware_smoothing_matches_formula(rng, shape):
    counts = [300, 120, 40, 9, 3]
    logits = (3 * rng.normal(size=(16, 5))).astype("float32")
    labels = rng.integers(0, 5, size=16)
    loss = LabelAwareSmoothing(counts, head=0.4, tail=0.1, shape=shape)
    eps = label_aware_epsilons(counts, 0.4, 0.1, shape)
    per_sample = np_las(labels, logits, eps)
    np.testing.assert_allclose(
        float(to_np(loss(labels, logits))), per_sample.mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(to_np(loss(labels.reshape(-1, 1), logits))), per_sample.mean(), rtol=1e-5
    )
    none = LabelAwareSmoothing(counts, 0.4, 0.1, shape=shape, reduction=None)
    np.testing.assert_allclose(to_np(none(labels, logits)), per_sample, rtol=1e-5)
    weights = rng.uniform(size=16).astype("float32")
    np.testing.assert_allclose(
        float(to_np(loss(labels, logits, sample_weight=weights))),
        (per_sample * weights).mean(), rtol=1e-5,
    )


def test_label_aware_smoothing_probabilities_input(rng):
    counts = [50, 20, 4]
    logits = rng.normal(size=(8, 3)).astype("float32")
    labels = rng.integers(0, 3, size=8)
    probs = np.exp(np_log_softmax(logits)).astype("float32")
    a = LabelAwareSmoothing(counts, 0.3, 0.0)(labels, logits)
    b = LabelAwareSmoothing(counts, 0.3, 0.0, from_logits=False)(labels, probs)
    np.testing.assert_allclose(to_np(a), to_np(b), rtol=1e-5)


def test_zero_smoothing_is_sparse_cross_entropy(rng):
    logits = rng.normal(size=(10, 4)).astype("float32")
    labels = rng.integers(0, 4, size=10)
    loss = LabelAwareSmoothing([40, 30, 2, 1], head=0.0, tail=0.0)
    expected = -np.mean(np_log_softmax(logits)[np.arange(10), labels])
    np.testing.assert_allclose(float(to_np(loss(labels, logits))), expected, rtol=1e-5)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        float(to_np(loss(labels, logits))),
        float(to_np(keras_ce(labels, logits))),
        rtol=1e-5,
    )


def test_smoothing_penalises_confidence_more_for_head_classes():
    # Same confident logits, one head-class and one tail-class sample: the
    # head class (larger eps) pays more for its confidence.
    logits = np.array([[8.0, 0.0, 0.0], [0.0, 0.0, 8.0]], "float32")
    loss = LabelAwareSmoothing([1000, 100, 10], 0.4, 0.0, reduction=None)
    head, tail = to_np(loss(np.array([0, 2]), logits))
    assert head > tail + 1.0


def test_serialization_round_trip(rng):
    logits = rng.normal(size=(6, 4)).astype("float32")
    labels = rng.integers(0, 4, size=6)
    loss = LabelAwareSmoothing(
        np.array([90, 30, 10, 2]), head=0.3, tail=0.05, shape="convex", name="las"
    )
    config = loss.get_config()
    assert config["class_counts"] == [90, 30, 10, 2]
    assert all(type(c) is int for c in config["class_counts"])
    value = float(to_np(loss(labels, logits)))
    for clone in (
        LabelAwareSmoothing.from_config(config),
        keras.losses.deserialize(keras.losses.serialize(loss)),
    ):
        assert isinstance(clone, LabelAwareSmoothing)
        assert clone.name == "las" and clone.shape == "convex"
        np.testing.assert_array_equal(clone.epsilons, loss.epsilons)
        assert float(to_np(clone(labels, logits))) == pytest.approx(value, rel=1e-6)


def test_label_aware_smoothing_in_compiled_model(rng):
    counts = [64, 16, 4]
    x = rng.normal(size=(32, 3)).astype("float32")
    y = rng.integers(0, 3, size=32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    model.compile(loss=LabelAwareSmoothing(counts, 0.3, 0.1))
    value = model.evaluate(x, y, batch_size=32, verbose=0)
    expected = np_las(y, x, label_aware_epsilons(counts, 0.3, 0.1)).mean()
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_label_aware_smoothing_class_mismatch_raises():
    loss = LabelAwareSmoothing([10, 5, 1])
    with pytest.raises(ValueError, match="y_pred"):
        loss(np.array([0, 1]), np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="y_true"):
        loss(np.zeros((2, 3)), np.zeros((2, 3), "float32"))
