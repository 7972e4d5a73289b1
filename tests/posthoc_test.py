"""Post-hoc and second-stage baselines: logit adjustment, tau-norm, cRT, LWS."""

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.training.decoupling import ClassifierRetraining
from lcreg_keras.training.decoupling import LearnableWeightScaling
from lcreg_keras.losses import LogitAdjustedCrossentropy
from lcreg_keras.models import LCRegModel
from lcreg_keras.posthoc import TauNormalization
from lcreg_keras.posthoc import adjust_logits
from lcreg_keras.posthoc import apply_tau_normalization
from lcreg_keras.posthoc import balanced_accuracy
from lcreg_keras.posthoc import tau_normalized_logits
from lcreg_keras.training.stage_two import DecoupledStageTwo
from tests.model_test import tiny_backbone
from tests.model_test import toy_data

pytestmark = pytest.mark.multibackend

COUNTS = [40, 16, 8]


def _numpy(variables):
    return [ops.convert_to_numpy(v).copy() for v in variables]


def np_log_softmax(z):
    z = np.asarray(z, "float64")
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def np_balanced_accuracy(labels, logits):
    preds = np.argmax(logits, axis=1)
    return np.mean([np.mean(preds[labels == c] == c) for c in np.unique(labels)])


def stage_one(rng, batchnorm=True):
    """A built baseline model (untrained: its random class-weight norms differ)."""
    x, y = toy_data(rng, n=64)
    model = LCRegModel(tiny_backbone(batchnorm=batchnorm), num_classes=3, num_latents=4, latent=False)
    model.build((None,) + x.shape[1:])
    return model, x, y


def pooled_features(model, x):
    """GAP(backbone(x)) of a model without latents, computed outside the model."""
    return ops.convert_to_numpy(model.pooling(model.backbone(x, training=False))).astype("float64")


# --------------------------------------------------------------------------
# Logit adjustment at inference.


def test_adjust_logits_against_numpy(rng):
    z = rng.normal(size=(6, 3))
    counts = np.array(COUNTS, "float64")
    for tau in (0.0, 0.5, 1.0, 1.5):
        expected = z - tau * np.log(counts / counts.sum())
        np.testing.assert_allclose(adjust_logits(z, COUNTS, tau), expected, rtol=1e-12)
        tensor = adjust_logits(ops.convert_to_tensor(z.astype("float32")), COUNTS, tau)
        np.testing.assert_allclose(ops.convert_to_numpy(tensor), expected, rtol=1e-5, atol=1e-5)
    # Adjusted predictions are what the logit-adjusted loss trains the raw logits towards.
    assert np.mean(np.argmax(adjust_logits(np.zeros((1, 3)), COUNTS), 1) == 2) == 1.0
    with pytest.raises(ValueError, match="tau"):
        adjust_logits(z, COUNTS, -1.0)
    with pytest.raises(ValueError, match="class_counts"):
        adjust_logits(z, [3, 0, 1])
    with pytest.raises(ValueError, match="shape"):
        adjust_logits(z[:, :2], COUNTS)


def test_balanced_accuracy_is_the_mean_of_per_class_accuracies(rng):
    labels = np.repeat([0, 1, 2], [50, 8, 2])
    logits = rng.normal(size=(60, 3))
    assert balanced_accuracy(labels, logits) == pytest.approx(np_balanced_accuracy(labels, logits))
    assert balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0]) == 0.5


def test_logit_adjustment_beats_ce_on_balanced_error_of_a_long_tailed_gaussian_problem():
    """Menon et al.'s point: on class-conditional Gaussians with a long-tailed
    prior, logit adjustment (the loss, and post hoc) reaches near the
    Bayes-optimal balanced error, while plain CE tends to the prior-weighted
    Bayes rule, whose balanced error is higher.

    The margin comes from Monte Carlo: with shared identity covariance the
    Bayes scores are `mu_c . x - |mu_c|^2 / 2 (+ log pi_c)`; `gap` is the
    difference of the two rules' balanced errors on a balanced sample of
    `n` per class. A balanced error is a mean of C Bernoulli rates, so its
    standard error is at most `0.5 / sqrt(C n)`; we require half the Bayes
    gap (many times that) between CE and logit adjustment.
    """
    rng = np.random.default_rng(0)
    mu = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.732]])
    counts = np.array([18000, 1600, 400])
    y = np.repeat(np.arange(3), counts)
    x = (rng.normal(size=(len(y), 2)) + mu[y]).astype("float32")
    n = 20000
    y_test = np.repeat(np.arange(3), n)
    x_test = (rng.normal(size=(3 * n, 2)) + mu[y_test]).astype("float32")

    def bayes_error(log_prior):
        scores = x_test @ mu.T - 0.5 * (mu ** 2).sum(1) + log_prior
        return 1.0 - np_balanced_accuracy(y_test, scores)

    bayes_plain = bayes_error(np.log(counts / counts.sum()))
    bayes_balanced = bayes_error(np.zeros(3))
    gap = bayes_plain - bayes_balanced
    se = 0.5 / np.sqrt(3 * n)
    assert gap > 20 * se, (bayes_plain, bayes_balanced)

    def train(loss):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        model.compile(keras.optimizers.Adam(0.05), loss=loss)
        model.fit(x, y, batch_size=250, epochs=2, verbose=0)
        return model.predict(x_test, batch_size=20000, verbose=0)

    ce_logits = train(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    la_logits = train(LogitAdjustedCrossentropy(counts, tau=1.0))
    ce = 1.0 - balanced_accuracy(y_test, ce_logits)
    la_loss = 1.0 - balanced_accuracy(y_test, la_logits)
    la_posthoc = 1.0 - balanced_accuracy(y_test, adjust_logits(ce_logits, counts, tau=1.0))
    for adjusted in (la_loss, la_posthoc):
        assert ce - adjusted > gap / 2, (ce, adjusted, gap)
        # No rule beats the Bayes rule (up to sampling error); these come close.
        assert bayes_balanced - 4 * se < adjusted < bayes_balanced + 0.05, (adjusted, bayes_balanced)
    assert ce > bayes_plain - 0.05, (ce, bayes_plain)


# --------------------------------------------------------------------------
# tau-normalisation.


def test_tau_normalized_logits_against_numpy(rng):
    scores = rng.normal(size=(5, 3))
    norms = rng.uniform(0.5, 2.0, size=3)
    scale = rng.uniform(0.5, 1.5, size=3)
    for tau in (0.0, 0.7, 1.0, 2.0):
        expected = np.stack([scores[:, j] / norms[j] ** tau * scale[j] for j in range(3)], 1)
        np.testing.assert_allclose(tau_normalized_logits(scores, norms, tau, scale), expected)
    with pytest.raises(ValueError, match="tau"):
        tau_normalized_logits(scores, norms, -0.1)


def test_tau_normalization_chooses_tau_on_heldout_data_and_applies_it(rng):
    model, x, y = stage_one(rng)
    heldout_x, heldout_y = toy_data(rng, n=30)
    heldout_y[:4] = 0  # a long-tailed held-out split
    feats = pooled_features(model, heldout_x)
    kernel = ops.convert_to_numpy(model.classifier.kernel).astype("float64")
    norms = np.linalg.norm(kernel, axis=0)
    taus = (0.0, 0.5, 1.0, 1.5)
    accuracies = [np_balanced_accuracy(heldout_y, feats @ (kernel / norms ** t)) for t in taus]
    expected_tau = taus[int(np.argmax(accuracies))]  # first maximum: the smallest tau on ties

    result = TauNormalization(taus).fit(model, heldout_x, heldout_y)
    assert result["tau"] == expected_tau
    assert result["heldout_balanced_accuracy"] == pytest.approx(max(accuracies))
    assert [a for _, a in result["curve"]] == pytest.approx(accuracies)
    # The model now predicts feats @ (W / ||W||^tau), without bias.
    new_kernel = kernel / norms ** expected_tau
    np.testing.assert_allclose(ops.convert_to_numpy(model.classifier.kernel), new_kernel, rtol=1e-5)
    assert np.all(ops.convert_to_numpy(model.classifier.bias) == 0)
    test_feats = pooled_features(model, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), test_feats @ new_kernel, rtol=1e-4, atol=1e-5)


def test_tau_one_equalises_the_class_weight_norms(rng):
    model, _, _ = stage_one(rng, batchnorm=False)
    apply_tau_normalization(model, 1.0)
    norms = np.linalg.norm(ops.convert_to_numpy(model.classifier.kernel), axis=0)
    np.testing.assert_allclose(norms, np.ones(3), rtol=1e-5)
    with pytest.raises(ValueError, match="taus"):
        TauNormalization([0.5, -1.0])


# --------------------------------------------------------------------------
# cRT and LWS (DecoupledStageTwo with other switches).


def frozen_state(model):
    return _numpy([w for w in model.backbone.weights])


def test_crt_reinitialises_and_retrains_only_the_classifier(rng):
    model, x, y = stage_one(rng)
    before = frozen_state(model)
    old_kernel = _numpy([model.classifier.kernel])[0]
    crt = ClassifierRetraining(COUNTS, epochs=1, lr=0.05, weight_decay=0.0)
    crt.apply(model, steps_per_epoch=4)
    fresh = _numpy([model.classifier.kernel, model.classifier.bias])
    assert np.abs(fresh[0] - old_kernel).max() > 1e-3 and np.all(fresh[1] == 0)
    assert not model.classifier.scale.trainable
    # The loss is plain cross-entropy on integer labels.
    out = model(x[:8], training=True)
    z = ops.convert_to_numpy(out["logits"])
    expected = -np.mean(np_log_softmax(z)[np.arange(8), y[:8]])
    got = ops.convert_to_numpy(model.compute_loss(x[:8], y[:8], out, training=True))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    model.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=4, verbose=0, shuffle=False)
    for a, b in zip(before, frozen_state(model)):
        np.testing.assert_array_equal(a, b)  # BatchNorm statistics included
    assert np.abs(_numpy([model.classifier.kernel])[0] - fresh[0]).max() > 1e-6
    np.testing.assert_array_equal(ops.convert_to_numpy(model.classifier.scale), np.ones(3))


def test_lws_trains_only_the_logit_scales(rng):
    model, x, y = stage_one(rng)
    before = frozen_state(model) + _numpy([model.classifier.kernel, model.classifier.bias])
    lws = LearnableWeightScaling(COUNTS, epochs=1, lr=0.1)
    lws.fit(model, x, steps_per_epoch=4, y=y, batch_size=16, verbose=0)
    after = frozen_state(model) + _numpy([model.classifier.kernel, model.classifier.bias])
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    scale = ops.convert_to_numpy(model.classifier.scale)
    assert np.abs(scale - 1).max() > 1e-5
    assert [w.name for w in model.trainable_weights] == ["logit_scale"]


def test_stage_two_that_trains_nothing_is_refused():
    with pytest.raises(ValueError, match="nothing"):
        DecoupledStageTwo(COUNTS, logit_scaling=False, train_classifier=False)
