"""LCRegModel: Eq. 7, the lambda ramp, training, ablation switches, saving."""

import json
import warnings
import zipfile

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.data import mixup_batch
from lcreg_keras.losses import latent_isda_loss
from lcreg_keras.models import LCRegModel
from lcreg_keras.lcreg.diagnostics import latent_usage
from lcreg_keras.lcreg.model import TERMS

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


def to_np(value):
    return ops.convert_to_numpy(value)


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def mixup_dataset(x, y, num_classes, alpha, seed, batch_size):
    """`(x, y)` in batches mixed by `mixup_batch` in a tf.data map, as a user would.

    Batch `k` is mixed with the stateless seed `(seed, k)`; the labels become
    soft `(B, C)` float32.
    """
    import tensorflow as tf

    onehot = np.eye(num_classes, dtype="float32")[y]
    ds = tf.data.Dataset.from_tensor_slices((x, onehot)).batch(batch_size)
    return ds.enumerate().map(
        lambda step, xy: mixup_batch(xy[0], xy[1], alpha, seed=(seed, step))
    )


def test_eq7_total_is_weighted_sum_of_terms(rng):
    model = LCRegModel(
        tiny_backbone(), num_classes=3, num_latents=5, alpha=0.3, beta=0.7, gamma=1.3,
        isda_lambda0=0.8, total_steps=4,
    )
    x, y = toy_data(rng, n=8)
    model(x)  # build
    out = model(x, training=True)  # step 1 of 4: lambda = 0.8 / 4
    logits = out["logits"]
    total = float(model.compute_loss(x, y, out, training=True))

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
    # Every term of `call`'s output reaches the logs, on every backend.
    assert set(TERMS) <= set(history.history), sorted(history.history)
    assert history.history["loss_aug"][-1] > 0 and history.history["loss_recon"][-1] > 0
    assert all(0 < v < 1 for v in history.history["share_aug"] + history.history["share_recon"])
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
        fusion="replace", similarity="cosine", weight_decay=1e-4, seed=3,
    )
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(mixup_dataset(x, y, 3, 0.4, 3, 16), epochs=1, verbose=0, shuffle=False)
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


def test_training_output_carries_the_terms_and_inference_the_logits(rng):
    """`call` hands the terms to `compute_loss` in its output, not on the model."""
    x, y = toy_data(rng, n=16)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, seed=0)
    logits = model(x)
    assert not isinstance(logits, dict) and tuple(logits.shape) == (16, 3)
    out = model(x, training=True)
    assert out.keys() == {"logits"} | set(TERMS) - {"loss_cls", "share_aug", "share_recon"}
    # fusion="residual" without explicit draws: training changes no logit.
    np.testing.assert_allclose(to_np(out["logits"]), to_np(logits), rtol=1e-5, atol=1e-6)
    assert model.predict(x, verbose=0).shape == (16, 3)
    # Nothing is kept on the model between `call` and `compute_loss`: the
    # loss of an output is that output's, whatever ran in between.
    model(x[:4] * 3.0, training=True)
    loss = float(model.compute_loss(x, y, out))
    plain = float(model.compute_loss(x, y, out["logits"]))  # logits only: gamma L_cls
    terms = {k: float(to_np(v)) for k, v in out.items() if k != "logits"}
    np.testing.assert_allclose(loss, plain + 0.1 * terms["loss_aug"] + 0.1 * terms["loss_recon"],
                               rtol=1e-5)
    assert terms["loss_aug"] > 0 and terms["loss_recon"] > 0
    base = LCRegModel(tiny_backbone(), num_classes=3, latent=False)
    assert base(x, training=True).keys() == {"logits"}


def test_compiled_metrics_see_only_the_logits(rng):
    """A compiled metric gets `(B, C)` logits in `fit` and `evaluate`, not `call`'s dict."""
    x, y = toy_data(rng, n=32)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, seed=0)
    model.compile(keras.optimizers.SGD(0.0), metrics=[keras.metrics.SparseCategoricalAccuracy("acc")])
    logs = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False).history
    expected = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    np.testing.assert_allclose(logs["acc"][0], expected, atol=1e-6)
    result = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["acc"], expected, atol=1e-6)
    assert result["loss_aug"] > 0 and "latents_in_use" in result


def test_pipeline_mixup_soft_labels_reach_the_loss(rng):
    """Mixup by `mixup_batch` in a tf.data map: `fit`'s L_cls is CE on those soft labels.

    With lr 0 the logged loss of the epoch is the mean over its two batches of
    the NumPy CE of the model's logits on the mixed images against the mixed
    labels, both recomputed from the same seeds (the same draw).
    """
    x, y = toy_data(rng, n=32)
    model = LCRegModel(tiny_backbone(), num_classes=3, latent=False, seed=7)
    model.compile(keras.optimizers.SGD(0.0))
    logs = model.fit(mixup_dataset(x, y, 3, 0.4, 5, 16), epochs=1, verbose=0, shuffle=False).history
    onehot = np.eye(3, dtype="float32")[y]
    soft_ce, hard_ce = [], []
    for step in range(2):
        part = slice(16 * step, 16 * step + 16)
        xm, ym, lam, order = (to_np(t) for t in mixup_batch(
            x[part], onehot[part], 0.4, seed=(5, step), return_lam=True))
        np.testing.assert_allclose(xm, lam * x[part] + (1 - lam) * x[part][order], rtol=1e-5, atol=1e-6)
        logp = np_log_softmax(model.predict(xm, verbose=0).astype(np.float64))
        soft_ce.append(-(ym * logp).sum(-1).mean())
        hard_ce.append(-(onehot[part] * logp).sum(-1).mean())
    np.testing.assert_allclose(logs["loss"][0], np.mean(soft_ce), rtol=1e-4)
    np.testing.assert_allclose(logs["loss_cls"][0], np.mean(soft_ce), rtol=1e-4)
    assert abs(np.mean(soft_ce) - np.mean(hard_ce)) > 1e-2  # the mixing matters
    # The same seed gives the same batches; another seed other ones.
    first = [to_np(b[1]) for b in mixup_dataset(x, y, 3, 0.4, 5, 16)]
    again = [to_np(b[1]) for b in mixup_dataset(x, y, 3, 0.4, 5, 16)]
    other = [to_np(b[1]) for b in mixup_dataset(x, y, 3, 0.4, 6, 16)]
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).max() > 1e-3


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_pipeline_mixup_lam_follows_beta(alpha):
    """lam ~ Beta(alpha, alpha): mean 1/2, variance 1 / (4 (2 alpha + 1)).

    600 draws of `mixup_batch` in one tf.data map, batch k with seed (11, k).
    """
    import tensorflow as tf

    x = np.zeros((4,) + SHAPE, "float32")
    onehot = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    lams = tf.data.Dataset.range(600).map(
        lambda k: mixup_batch(x, onehot, alpha, seed=(11, k), return_lam=True)[2]
    ).batch(600)
    draws = to_np(next(iter(lams))).astype(np.float64)
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    variance = 1 / (4 * (2 * alpha + 1))
    assert abs(draws.mean() - 0.5) < 4 * np.sqrt(variance / draws.size)
    # The tolerance is over 4 SE of the sample variance for both alphas and
    # under the 0.056 gap between Beta(0.4, 0.4) and a uniform.
    assert abs(draws.var() - variance) < 4 * np.sqrt(2 / draws.size) * variance * 1.5
    # A new draw every batch (float32 rounds some Beta(0.4, 0.4) draws next
    # to 0 or 1 to the same value; the inner ones must all differ).
    inner = draws[(draws > 1e-3) & (draws < 1 - 1e-3)]
    assert inner.size > 0.8 * draws.size and len(np.unique(inner)) == inner.size


def test_the_model_does_not_mix(tmp_path, rng):
    """`mixup_alpha` other than 0 is refused with how to mix instead; saved models still load."""
    with pytest.raises(ValueError, match="mixup_batch"):
        LCRegModel(tiny_backbone(), num_classes=3, latent=False, mixup_alpha=0.4)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, mixup_alpha=0.0)
    with pytest.raises(ValueError, match="mixup_batch"):
        model.compile(keras.optimizers.SGD(0.01), mixup_alpha=1.0)
    model.compile(keras.optimizers.SGD(0.01), mixup_alpha=0)
    assert "mixup_alpha" not in model.get_config()
    # A model saved while the model could mix (its config.json names
    # mixup_alpha): it loads, predicts the same, and says the value is dropped.
    x, _ = toy_data(rng, n=4)
    model(x)
    path, old = str(tmp_path / "new.keras"), str(tmp_path / "old.keras")
    model.save(path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["mixup_alpha"] = 1.0
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.warns(UserWarning, match="mixup_batch"):
        loaded = keras.saving.load_model(old)
    np.testing.assert_array_equal(to_np(loaded(x)), to_np(model(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        LCRegModel.from_config(dict(model.get_config(), mixup_alpha=0.0))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's XLA")
def test_tensorflow_xla_with_pipeline_mixup(rng):
    """The model compiles with XLA (Keras' default `supports_jit`); the Beta draw stays in tf.data."""
    x, y = toy_data(rng, n=32)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=4, seed=0)
    assert model.supports_jit
    model.compile(keras.optimizers.SGD(0.01), jit_compile=True)
    assert model.jit_compile is True
    logs = model.fit(mixup_dataset(x, y, 3, 0.4, 0, 16), epochs=1, verbose=0, shuffle=False).history
    assert np.isfinite(logs["loss"][0]) and logs["loss_aug"][0] > 0


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
        model = LCRegModel(tiny_backbone(batchnorm=True), num_classes=3, num_latents=4)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
        logs = model.fit(mixup_dataset(x, y, 3, 0.5, 0, 16), epochs=1, verbose=0, shuffle=False).history
    finally:
        keras.config.set_dtype_policy("float32")
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert model.latent_covariance.covariance.dtype == "float32"
    assert ops.convert_to_numpy(model(x[:2])).dtype == np.float32
    assert int(ops.convert_to_numpy(model.lcreg_step)) == 2
