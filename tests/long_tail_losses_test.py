"""The long-tailed baseline losses against NumPy implementations of each paper's formula."""

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.data import mixup_batch
from lcreg_keras.layers import CosineClassifier
from lcreg_keras.losses import BalancedSoftmaxCrossentropy
from lcreg_keras.losses import ClassBalancedCrossentropy
from lcreg_keras.losses import ClassBalancedFocalLoss
from lcreg_keras.losses import DeferredReweighting
from lcreg_keras.losses import LDAMLoss
from lcreg_keras.losses import LogitAdjustedCrossentropy
from lcreg_keras.losses import effective_number_weights
from lcreg_keras.losses import ldam_margins
from lcreg_keras.models import CosineLCRegModel
from lcreg_keras.models import LCRegModel
from tests.model_test import SHAPE
from tests.model_test import mixup_dataset
from tests.model_test import tiny_backbone

pytestmark = pytest.mark.multibackend

COUNTS = np.array([500, 120, 30, 7], "float64")


# --------------------------------------------------------------------------
# NumPy references (float64, one sample at a time where the paper sums).


def np_log_softmax(z):
    z = np.asarray(z, "float64")
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def np_cb_weights(counts, beta):
    """Cui et al., Eq. 3-4: 1 / E_n with E_n = (1 - beta^n) / (1 - beta), sum C."""
    raw = np.array([(1.0 - beta) / (1.0 - beta ** n) if beta > 0 else 1.0 for n in counts])
    return raw * len(counts) / raw.sum()


def np_la(z, y, counts, tau):
    prior = counts / counts.sum()
    return np.mean([-np_log_softmax(z[i] + tau * np.log(prior))[y[i]] for i in range(len(y))])


def np_balanced_softmax(z, y, counts):
    """Ren et al., Eq. 4: p_y = n_y e^{z_y} / sum_k n_k e^{z_k}."""
    out = []
    for i in range(len(y)):
        e = counts * np.exp(z[i] - z[i].max())
        out.append(-np.log(e[y[i]] / e.sum()))
    return np.mean(out)


def np_ldam(z, y, counts, max_m, s, weights=None):
    """Cao et al.'s code: m = 1/n^(1/4) scaled to max_m; CE(s (cos - m e_y), weight)."""
    m = 1.0 / np.sqrt(np.sqrt(counts))
    m = m * (max_m / m.max())
    w = np.ones(len(counts)) if weights is None else weights
    num = den = 0.0
    for i in range(len(y)):
        cos = z[i] / s  # the model outputs s * cos
        adjusted = cos.copy()
        adjusted[y[i]] -= m[y[i]]
        num += w[y[i]] * -np_log_softmax(s * adjusted)[y[i]]
        den += w[y[i]]
    return num / den


def np_cb_softmax(z, y, counts, beta):
    w = np_cb_weights(counts, beta)
    return np.mean([w[y[i]] * -np_log_softmax(z[i])[y[i]] for i in range(len(y))])


def np_cb_focal(z, y, counts, beta, gamma):
    """Cui et al., Eq. 8: w_y sum_j (1 - p^t_j)^gamma (-log p^t_j), sigmoid p."""
    w = np_cb_weights(counts, beta)
    out = []
    for i in range(len(y)):
        total = 0.0
        for j in range(len(counts)):
            p = 1.0 / (1.0 + np.exp(-z[i, j]))
            pt = p if j == y[i] else 1.0 - p
            total += (1.0 - pt) ** gamma * -np.log(pt)
        out.append(w[y[i]] * total)
    return np.mean(out)


def problem(rng, n=16, scale=2.0):
    z = (rng.normal(size=(n, len(COUNTS))) * scale).astype("float32")
    y = rng.integers(0, len(COUNTS), size=n)
    return z, y


def images(rng, n):
    """Four classes of toy images: class c < 3 brightens channel c, class 3 darkens channel 0."""
    y = rng.integers(0, len(COUNTS), size=n)
    x = rng.normal(size=(n,) + SHAPE).astype("float32") * 0.5
    x[np.arange(n), :, :, y % 3] += np.where(y < 3, 1.5, -1.5)[:, None, None]
    return x, y.astype("int32")


def value(loss, y, z, **kwargs):
    return float(ops.convert_to_numpy(loss(y, z, **kwargs)))


# --------------------------------------------------------------------------
# Formulas.


def test_class_statistics_against_numpy():
    for beta in (0.0, 0.9, 0.999, 0.9999):
        np.testing.assert_allclose(
            effective_number_weights(COUNTS, beta), np_cb_weights(COUNTS, beta), rtol=1e-10
        )
    weights = effective_number_weights(COUNTS, 0.9999)
    assert abs(weights.sum() - 4) < 1e-12 and np.all(np.diff(weights) > 0)  # rarer: heavier
    # beta -> 1 tends to inverse frequency.
    inverse = (1 / COUNTS) * 4 / (1 / COUNTS).sum()
    np.testing.assert_allclose(effective_number_weights(COUNTS, 1 - 1e-9), inverse, rtol=1e-5)
    margins = ldam_margins(COUNTS, 0.5)
    assert margins[-1] == 0.5
    np.testing.assert_allclose(margins, 0.5 * (COUNTS[-1] / COUNTS) ** 0.25, rtol=1e-12)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_loss(tau, rng):
    z, y = problem(rng)
    loss = LogitAdjustedCrossentropy(COUNTS, tau=tau)
    np.testing.assert_allclose(value(loss, y, z), np_la(z, y, COUNTS, tau), rtol=1e-5)
    # (N, 1) labels and per-sample values.
    np.testing.assert_allclose(value(loss, y[:, None], z), np_la(z, y, COUNTS, tau), rtol=1e-5)
    per_sample = ops.convert_to_numpy(LogitAdjustedCrossentropy(COUNTS, tau, reduction=None)(y, z))
    assert per_sample.shape == (len(y),)


def test_balanced_softmax_is_ren_et_al_and_la_with_tau_one(rng):
    z, y = problem(rng)
    bs = value(BalancedSoftmaxCrossentropy(COUNTS), y, z)
    np.testing.assert_allclose(bs, np_balanced_softmax(z, y, COUNTS), rtol=1e-5)
    np.testing.assert_allclose(bs, value(LogitAdjustedCrossentropy(COUNTS, 1.0), y, z), rtol=1e-5)
    # Plain CE differs: the adjustment is not a no-op on a long tail.
    assert abs(bs - value(LogitAdjustedCrossentropy(COUNTS, 0.0), y, z)) > 1e-2


@pytest.mark.parametrize("max_m, s", [(0.5, 30.0), (0.3, 10.0), (1.0, 1.0)])
def test_ldam_loss_and_drw_weights(max_m, s, rng):
    cos = rng.uniform(-1, 1, size=(16, len(COUNTS)))
    z = (s * cos).astype("float32")
    y = rng.integers(0, len(COUNTS), size=16)
    loss = LDAMLoss(COUNTS, max_margin=max_m, scale=s, drw_epoch=3, drw_beta=0.999)
    np.testing.assert_allclose(value(loss, y, z), np_ldam(z, y, COUNTS, max_m, s), rtol=1e-5)
    assert not loss.set_epoch(2) and np.all(loss.class_weights == 1)
    assert loss.set_epoch(3) and not loss.set_epoch(4)
    weights = np_cb_weights(COUNTS, 0.999)
    np.testing.assert_allclose(loss.class_weights, weights, rtol=1e-6)
    np.testing.assert_allclose(value(loss, y, z), np_ldam(z, y, COUNTS, max_m, s, weights), rtol=1e-5)
    assert loss.set_epoch(0) and np.all(loss.class_weights == 1)  # a resume before drw_epoch


@pytest.mark.parametrize("beta", [0.0, 0.99, 0.9999])
def test_class_balanced_softmax(beta, rng):
    z, y = problem(rng)
    loss = ClassBalancedCrossentropy(COUNTS, beta=beta)
    np.testing.assert_allclose(value(loss, y, z), np_cb_softmax(z, y, COUNTS, beta), rtol=1e-5)


@pytest.mark.parametrize("beta, gamma", [(0.0, 0.0), (0.999, 0.5), (0.9999, 1.0), (0.9999, 2.0)])
def test_class_balanced_focal(beta, gamma, rng):
    z, y = problem(rng, scale=3.0)
    loss = ClassBalancedFocalLoss(COUNTS, beta=beta, gamma=gamma)
    np.testing.assert_allclose(value(loss, y, z), np_cb_focal(z, y, COUNTS, beta, gamma), rtol=1e-5)


def test_focal_is_stable_for_large_logits():
    z = np.array([[60.0, -60.0, 0.0, 5.0]], "float32")
    for y in ([0], [1]):
        v = value(ClassBalancedFocalLoss(COUNTS, beta=0.9, gamma=2.0), np.array(y), z)
        assert np.isfinite(v)
    # A confident correct sample costs almost nothing; a confident wrong one a lot.
    assert value(ClassBalancedFocalLoss(COUNTS, 0.0, 0.0), np.array([0]), z) < 8.0
    assert value(ClassBalancedFocalLoss(COUNTS, 0.0, 0.0), np.array([1]), z) > 100.0


# --------------------------------------------------------------------------
# Soft (mixup) labels.


def all_losses():
    ldam = LDAMLoss(COUNTS, max_margin=0.5, scale=5.0, drw_epoch=0)
    ldam.set_epoch(0)  # weighted, so the weights enter the soft-label rule too
    return [
        LogitAdjustedCrossentropy(COUNTS, tau=1.0),
        BalancedSoftmaxCrossentropy(COUNTS),
        ldam,
        ClassBalancedCrossentropy(COUNTS, beta=0.999),
        ClassBalancedFocalLoss(COUNTS, beta=0.999, gamma=1.5),
    ]


def np_soft(loss, z, t):
    """Each paper's formula with the one-hot vector replaced by t (module docstring)."""
    z = z.astype("float64")
    counts = COUNTS
    if isinstance(loss, (LogitAdjustedCrossentropy, BalancedSoftmaxCrossentropy)):
        offset = np.log(counts) if isinstance(loss, BalancedSoftmaxCrossentropy) else np.log(counts / counts.sum())
        return np.mean(-(t * np_log_softmax(z + offset)).sum(-1))
    if isinstance(loss, LDAMLoss):
        m = 0.5 * (counts[-1] / counts) ** 0.25
        w = np_cb_weights(counts, 0.9999)
        per = -(w * t * np_log_softmax(z - 5.0 * m * t)).sum(-1)
        return per.sum() / (t * w).sum()
    w = np_cb_weights(counts, 0.999)
    if isinstance(loss, ClassBalancedCrossentropy):
        return np.mean(-(w * t * np_log_softmax(z)).sum(-1))
    bce = -(t * np.log(1 / (1 + np.exp(-z))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-z))))
    modulator = np.exp(-1.5 * (t * z + np.log1p(np.exp(-z))))
    return np.mean((t * w).sum(-1) * (modulator * bce).sum(-1))


def test_soft_labels_match_the_formulas_and_one_hot_matches_integers(rng):
    z, y = problem(rng)
    onehot = np.eye(len(COUNTS), dtype="float32")[y]
    partner = np.eye(len(COUNTS), dtype="float32")[rng.permutation(y)]
    soft = 0.7 * onehot + 0.3 * partner
    for loss in all_losses():
        np.testing.assert_allclose(value(loss, onehot, z), value(loss, y, z), rtol=1e-5,
                                   err_msg=loss.name)
        np.testing.assert_allclose(value(loss, soft, z), np_soft(loss, z, soft), rtol=1e-5,
                                   err_msg=loss.name)


def lcreg_model(loss, **kwargs):
    if isinstance(loss, LDAMLoss):
        return CosineLCRegModel(tiny_backbone(), num_classes=4, num_latents=4, seed=1,
                                classifier_scale=5.0, **kwargs)
    return LCRegModel(tiny_backbone(), num_classes=4, num_latents=4, seed=1, **kwargs)


def test_each_loss_is_lcreg_l_cls_on_pipeline_mixup_labels(rng):
    """Compiled into LCRegModel, each loss gets the soft labels `mixup_batch` made.

    Each loss through `compute_loss` on one mixed batch; the last one
    (class-balanced focal) through `fit` on the same batch from a tf.data map
    too, where lr 0 keeps the logits.
    """
    x, y = images(rng, 8)
    onehot = np.eye(4, dtype="float32")[y]
    xm, soft = (ops.convert_to_numpy(t) for t in mixup_batch(x, onehot, 1.0, seed=(4, 0)))
    assert np.abs(soft - onehot).max() > 0.05  # mixed
    for loss in all_losses():
        model = lcreg_model(loss)
        model.compile(keras.optimizers.SGD(0.0), loss=loss)
        out = model(xm, training=True)
        got = float(ops.convert_to_numpy(model.compute_loss(xm, soft, out, training=False)))
        logits = ops.convert_to_numpy(out["logits"])
        np.testing.assert_allclose(got, value(loss, soft, logits), rtol=1e-5, err_msg=loss.name)
    logs = model.fit(mixup_dataset(x, y, 4, 1.0, 4, 8), epochs=1, verbose=0, shuffle=False).history
    logits = model.predict(xm, verbose=0)
    np.testing.assert_allclose(logs["loss_cls"][0], value(loss, soft, logits), rtol=1e-4,
                               err_msg=loss.name)


# --------------------------------------------------------------------------
# DRW inside fit, on every backend.


def test_deferred_reweighting_switches_inside_fit(rng):
    """With lr 0 the logged loss of epoch e is the LDAM loss with epoch e's weights."""
    x = rng.normal(size=(32, 6)).astype("float32")
    y = np.repeat(np.arange(4), [20, 8, 3, 1])
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    loss = LDAMLoss(COUNTS, max_margin=0.5, scale=1.0, drw_epoch=2, drw_beta=0.99)
    model.compile(keras.optimizers.SGD(0.0), loss=loss)
    z = model.predict(x, verbose=0).astype("float64")
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, shuffle=False,
                        callbacks=[DeferredReweighting()]).history["loss"]
    plain = np_ldam(z, y, COUNTS, 0.5, 1.0)
    weighted = np_ldam(z, y, COUNTS, 0.5, 1.0, np_cb_weights(COUNTS, 0.99))
    np.testing.assert_allclose(history, [plain, plain, weighted, weighted], rtol=1e-5)
    assert abs(plain - weighted) > 0.05
    # evaluate after the switch uses the weights too.
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0, batch_size=32), weighted, rtol=1e-5)


def test_deferred_reweighting_needs_an_ldam_loss(rng):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile("sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="LDAMLoss"):
        model.fit(np.zeros((4, 3)), np.zeros(4), verbose=0, callbacks=[DeferredReweighting()])


# --------------------------------------------------------------------------
# Cosine classifier, serialization, bad input.


def test_cosine_classifier_is_scaled_cosine(rng):
    x = rng.normal(size=(5, 7)).astype("float32")
    head = CosineClassifier(3, cosine_scale=30.0)
    out = ops.convert_to_numpy(head(x)).astype("float64")
    w = ops.convert_to_numpy(head.kernel).astype("float64")
    expected = 30.0 * (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert not head.bias.trainable and len(head.trainable_weights) == 1


def test_cosine_model_has_one_classifier_and_reloads(tmp_path, rng):
    x, y = images(rng, 16)
    loss = LDAMLoss(COUNTS, scale=8.0, drw_epoch=1)
    # Trained in fit on the pipeline mixup's soft labels.
    model = CosineLCRegModel(tiny_backbone(), num_classes=4, latent=False, classifier_scale=8.0)
    model.compile(keras.optimizers.SGD(0.01), loss=loss)
    logs = model.fit(mixup_dataset(x, y, 4, 1.0, 0, 8), epochs=1, verbose=0, shuffle=False).history
    assert np.all(np.isfinite(logs["loss"]))
    assert [layer.name for layer in model.layers].count("classifier") == 1
    logits = model.predict(x, verbose=0)
    assert np.abs(logits).max() <= 8.0 + 1e-3
    path = str(tmp_path / "cosine.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, CosineLCRegModel) and isinstance(loaded.classifier, CosineClassifier)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), logits, rtol=1e-5, atol=1e-5)
    assert isinstance(loaded.loss, LDAMLoss) and loaded.loss.get_config() == loss.get_config()


def test_serialization_round_trips(rng):
    z, y = problem(rng)
    for loss in all_losses():
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
        if isinstance(loss, LDAMLoss):
            restored.set_epoch(loss.drw_epoch)
        np.testing.assert_allclose(value(restored, y, z), value(loss, y, z), rtol=1e-6)
        again = type(loss).from_config(loss.get_config())
        if isinstance(loss, LDAMLoss):
            again.set_epoch(loss.drw_epoch)
        np.testing.assert_allclose(ops.convert_to_numpy(again(y, z)), value(restored, y, z), rtol=1e-6)


def test_bad_arguments(rng):
    for bad in ([5], [5, 0], [5, -1], [[1, 2]], [1, np.nan], "ab"):
        with pytest.raises(ValueError, match="class_counts"):
            LogitAdjustedCrossentropy(bad)
    with pytest.raises(ValueError, match="tau"):
        LogitAdjustedCrossentropy(COUNTS, tau=-1)
    for beta in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="beta"):
            ClassBalancedCrossentropy(COUNTS, beta=beta)
    with pytest.raises(ValueError, match="gamma"):
        ClassBalancedFocalLoss(COUNTS, gamma=-1)
    with pytest.raises(ValueError, match="max_margin"):
        LDAMLoss(COUNTS, max_margin=0)
    with pytest.raises(ValueError, match="scale"):
        LDAMLoss(COUNTS, scale=0)
    with pytest.raises(ValueError, match="drw_epoch"):
        LDAMLoss(COUNTS, drw_epoch=-1)
    z, y = problem(rng)
    with pytest.raises(ValueError, match="number of classes"):
        LogitAdjustedCrossentropy(COUNTS[:3])(y, z)
    with pytest.raises(ValueError, match="Soft labels"):
        LogitAdjustedCrossentropy(COUNTS)(np.ones((16, 3), "float32"), z)
