"""LCRegModel: Eq. 7, the lambda ramp, training, ablation switches, saving."""

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.losses import latent_isda_loss
from lcreg_keras.models import LCRegModel
from lcreg_keras.lcreg.diagnostics import latent_usage

pytestmark = pytest.mark.multibackend

SHAPE = (8, 8, 3)


def tiny_backbone(batchnorm=False, dim=12):
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(dim, 3, padding="same", activation="relu")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(dim, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inputs, x, name="tiny")


def toy_data(rng, n=96, classes=3):
    """Class c brightens channel c: learnable in a few steps."""
    y = rng.integers(0, classes, size=n)
    x = rng.normal(size=(n,) + SHAPE).astype("float32") * 0.5
    x[np.arange(n), :, :, y] += 1.5
    return x, y.astype("int32")


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_eq7_total_is_weighted_sum_of_terms(rng):
    model = LCRegModel(
        tiny_backbone(), num_classes=3, num_latents=5, alpha=0.3, beta=0.7, gamma=1.3,
        isda_lambda0=0.8, total_steps=4,
    )
    x, y = toy_data(rng, n=8)
    model(x)  # build
    logits = model(x, training=True)  # step 1 of 4: lambda = 0.8 / 4
    total = float(model.compute_loss(x, y, logits, training=True))

    cls = -np_log_softmax(ops.convert_to_numpy(logits).astype(np.float64))[np.arange(8), y].mean()
    pool = model.latent_pool
    labels = np.arange(5)
    aug = float(
        latent_isda_loss(
            pool.latent_class_logits(), labels, pool.latent_class_weights(),
            model.latent_covariance.covariance, 0.8 / 4,
        )
    )
    features = model.backbone(x)
    _, s, e = pool(features)
    recon = float(model.reconstruction(s, e, features=features)["loss"])
    np.testing.assert_allclose(total, 1.3 * cls + 0.3 * aug + 0.7 * recon, rtol=1e-4)
    np.testing.assert_allclose(float(model.isda_lambda()), 0.2, rtol=1e-6)
    got = {k: float(model.trackers[k].result()) for k in ("loss_cls", "loss_aug", "loss_recon")}
    np.testing.assert_allclose([got["loss_cls"], got["loss_aug"], got["loss_recon"]], [cls, aug, recon], rtol=1e-4)


def test_fit_lowers_loss_and_moves_covariance(rng):
    x, y = toy_data(rng)
    model = LCRegModel(tiny_backbone(batchnorm=True), num_classes=3, num_latents=6)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    for term in ("loss_cls", "loss_aug", "loss_recon", "isda_lambda", "latents_in_use",
                 "top_latent_share", "mean_max_weight", "saturated_fraction"):
        assert term in history.history, term
    # 6 epochs x 6 steps: the step counter, T and the covariance all moved.
    assert int(ops.convert_to_numpy(model.lcreg_step)) == 36
    assert float(ops.convert_to_numpy(model.lcreg_total_steps)) == 36
    np.testing.assert_allclose(history.history["isda_lambda"][-1], 0.5 * np.mean(np.arange(31, 37)) / 36, rtol=1e-5)
    assert list(ops.convert_to_numpy(model.latent_covariance.count)) == [36] * 6
    assert np.abs(ops.convert_to_numpy(model.latent_covariance.covariance)).max() > 0


def test_save_load_round_trip_gives_identical_logits(tmp_path, rng):
    x, y = toy_data(rng, n=32)
    model = LCRegModel(
        tiny_backbone(batchnorm=True), num_classes=3, num_latents=4, covariance="diagonal",
        fusion="replace", similarity="cosine", mixup_alpha=0.4, weight_decay=1e-4, seed=3,
    )
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "lcreg.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, LCRegModel)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    for a, b in zip(model.non_trainable_weights, loaded.non_trainable_weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
    assert loaded.get_config()["fusion"] == "replace"
    # It keeps training after loading, the step counter continuing.
    loaded.compile(keras.optimizers.SGD(0.05))
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert int(ops.convert_to_numpy(loaded.lcreg_step)) == 4


def test_ablation_switches(rng):
    x, y = toy_data(rng, n=32)
    base = LCRegModel(tiny_backbone(), num_classes=3, latent=False)
    base.compile(keras.optimizers.SGD(0.01))
    logs = base.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert set(logs) == {"loss", "loss_cls"}
    assert not any("latent" in w.path for w in base.weights)

    no_aug = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, latent_aug=False, latent_recon=False)
    no_aug.compile(keras.optimizers.SGD(0.01))
    logs = no_aug.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert "loss_aug" not in logs and "loss_recon" not in logs and "latents_in_use" in logs
    # Without aug the covariance is never updated.
    assert int(ops.convert_to_numpy(no_aug.latent_covariance.count).sum()) == 0


@pytest.mark.parametrize("fusion,depends", [("residual", True), ("replace", True), ("none", False)])
def test_fusion_decides_whether_latents_reach_the_logits(fusion, depends, rng):
    x, _ = toy_data(rng, n=4)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, fusion=fusion)
    before = ops.convert_to_numpy(model(x))
    model.latent_pool.latents.assign(ops.convert_to_numpy(model.latent_pool.latents) * 3.0)
    after = ops.convert_to_numpy(model(x))
    assert (np.abs(after - before).max() > 1e-4) == depends


def test_coupled_weight_decay_term(rng):
    x, y = toy_data(rng, n=8)
    kwargs = dict(num_classes=3, latent=False)
    plain = LCRegModel(tiny_backbone(), **kwargs)
    decayed = LCRegModel(plain.backbone, weight_decay=0.01, **kwargs)
    decayed(x)
    plain(x)
    decayed.classifier.set_weights(plain.classifier.get_weights())
    logits = plain(x, training=True)
    l0 = float(plain.compute_loss(x, y, logits))
    l1 = float(decayed.compute_loss(x, y, decayed(x, training=True)))
    squares = sum(float(np.sum(ops.convert_to_numpy(w) ** 2)) for w in decayed.trainable_weights)
    np.testing.assert_allclose(l1 - l0, 0.5 * 0.01 * squares, rtol=1e-4)


def test_in_step_mixup_mixes_labels_like_inputs(rng):
    """With mixup in the step, L_cls equals CE against the same mix of one-hots."""
    x, y = toy_data(rng, n=16)
    model = LCRegModel(tiny_backbone(), num_classes=3, latent=False, mixup_alpha=1.0, seed=7)
    model(x)
    logits = model(x, training=True)
    lam, order = (ops.convert_to_numpy(t) for t in model._handoff.mix)
    mixed_x = lam * x + (1 - lam) * x[order]
    np.testing.assert_allclose(ops.convert_to_numpy(model(mixed_x)), ops.convert_to_numpy(logits), rtol=1e-4, atol=1e-5)
    model._handoff.mix = (lam, order)
    loss = float(model.compute_loss(x, y, logits))
    onehot = np.eye(3)[y]
    soft = lam * onehot + (1 - lam) * onehot[order]
    expected = -(soft * np_log_softmax(ops.convert_to_numpy(logits).astype(np.float64))).sum(-1).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    assert sorted(order.tolist()) == list(range(16))


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_in_step_mixup_lam_follows_beta(alpha):
    """lam ~ Beta(alpha, alpha): mean 1/2, variance 1 / (4 (2 alpha + 1)).

    alpha = 1 draws a uniform instead of two gammas; the law must not move.
    """
    model = LCRegModel(tiny_backbone(), num_classes=3, latent=False, mixup_alpha=alpha, seed=11)
    x = np.zeros((4,) + SHAPE, "float32")
    draws = np.array([float(ops.convert_to_numpy(model._mixup(x)[1][0])) for _ in range(600)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    variance = 1 / (4 * (2 * alpha + 1))
    assert abs(draws.mean() - 0.5) < 4 * np.sqrt(variance / draws.size)
    # The tolerance is over 4 SE of the sample variance for both alphas and
    # under the 0.056 gap between Beta(0.4, 0.4) and a uniform.
    assert abs(draws.var() - variance) < 4 * np.sqrt(2 / draws.size) * variance * 1.5
    assert len(np.unique(draws)) == draws.size


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's XLA")
def test_tensorflow_xla_and_in_step_mixup(rng):
    """alpha = 1 compiles with XLA; other alphas decline jit_compile cleanly."""
    x, y = toy_data(rng, n=32)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, mixup_alpha=1.0, seed=0)
    model.compile(keras.optimizers.SGD(0.01), jit_compile=True)
    assert model.jit_compile is True
    assert np.isfinite(model.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"][0])
    other = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, mixup_alpha=0.4, seed=0)
    with pytest.warns(UserWarning, match="jit_compile"):
        other.compile(keras.optimizers.SGD(0.01), jit_compile=True)
    assert other.jit_compile is False
    assert np.isfinite(other.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"][0])
    # Without in-step mixup (stage two sets alpha to 0) nothing blocks XLA.
    other.mixup_alpha = 0.0
    assert other.supports_jit


def test_soft_labels_from_the_pipeline(rng):
    x, y = toy_data(rng, n=32)
    soft = np.eye(3, dtype="float32")[y] * 0.7 + 0.1
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4)
    model.compile(keras.optimizers.SGD(0.01))
    logs = model.fit(x, soft, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])


def test_latent_usage_reports_a_collapse():
    z = np.zeros((2, 2, 2, 4), "float32")
    z[..., 1] = 5.0  # latent 1 wins everywhere
    s = 1 / (1 + np.exp(-z))
    weights = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    stats = {k: float(v) for k, v in latent_usage(z, s, weights).items()}
    assert stats["latents_in_use"] == 1 and stats["top_latent_share"] == 1.0
    np.testing.assert_allclose(stats["mean_max_weight"], weights[..., 1].mean(), rtol=1e-6)
    assert stats["saturated_fraction"] == 0.0
    z = np.arange(8, dtype="float32").reshape(1, 2, 2, 2) * 10 - 40  # spread winners
    s = 1 / (1 + np.exp(-z))
    stats = {k: float(v) for k, v in latent_usage(z, s, s).items()}
    expected_sat = float(np.mean((s < 1e-3) | (s > 1 - 1e-3)))
    np.testing.assert_allclose(stats["saturated_fraction"], expected_sat)
    assert stats["latents_in_use"] == 1  # z increases with the channel: latent 1 wins


def test_bad_input(rng):
    with pytest.raises(ValueError, match="num_classes"):
        LCRegModel(tiny_backbone(), num_classes=1)
    with pytest.raises(ValueError, match="fusion"):
        LCRegModel(tiny_backbone(), num_classes=3, fusion="concat")
    with pytest.raises(ValueError, match="num_latents"):
        LCRegModel(tiny_backbone(dim=4), num_classes=3, num_latents=6)(np.zeros((1,) + SHAPE, "float32"))
    with pytest.raises(ValueError, match="alpha"):
        LCRegModel(tiny_backbone(), num_classes=3, alpha=-1)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4)
    model.compile(keras.optimizers.SGD(0.01))
    x, y = toy_data(rng, n=8)
    with pytest.raises(ValueError, match="`y`"):
        model.fit(x, y + 3, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=(x, y - 1), epochs=1, verbose=0)
    flat = keras.Sequential([keras.Input(SHAPE), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="feature map"):
        LCRegModel(flat, num_classes=3)(np.zeros((1,) + SHAPE, "float32"))


def test_config_round_trip():
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, alpha=0.2, temperature=0.5)
    clone = LCRegModel.from_config(model.get_config())
    a, b = model.get_config(), clone.get_config()
    a.pop("backbone"), b.pop("backbone")
    assert a == b


def test_mixed_precision_keeps_losses_and_state_in_float32(rng):
    x, y = toy_data(rng, n=32)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = LCRegModel(tiny_backbone(batchnorm=True), num_classes=3, num_latents=4, mixup_alpha=0.5)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
        logs = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    finally:
        keras.config.set_dtype_policy("float32")
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert model.latent_covariance.covariance.dtype == "float32"
    assert ops.convert_to_numpy(model(x[:2])).dtype == np.float32
    assert int(ops.convert_to_numpy(model.lcreg_step)) == 2
