"""The readings of Eq. 5-6 (spec Sec. 3): part features, explicit draws, loss shares."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.training.callbacks import LossShareMonitor
from lcreg_keras.layers import LatentCovariance
from lcreg_keras.layers import covariance_noise
from lcreg_keras.layers import part_features
from lcreg_keras.models import LCRegModel
from tests.losses_test import backend_grads
from tests.model_test import np_log_softmax
from tests.model_test import tiny_backbone
from tests.model_test import toy_data


def to_np(x):
    return ops.convert_to_numpy(x)


def np_part_features(f, w):
    """g[i, m] = sum_ab w[i,a,b,m] f[i,a,b] / sum_ab w[i,a,b,m], by loops."""
    b, h, wd, _ = f.shape
    m = w.shape[-1]
    g = np.zeros((b, m, f.shape[-1]))
    for i in range(b):
        for k in range(m):
            num = np.zeros(f.shape[-1])
            den = 0.0
            for a in range(h):
                for c in range(wd):
                    num += w[i, a, c, k] * f[i, a, c]
                    den += w[i, a, c, k]
            g[i, k] = num / den
    return g


def np_weights(f, latents, kernel, bias, temperature=1.0):
    """S_hat of Eq. 1-2 in float64 (dot similarity, 1/sqrt(D) scale)."""
    e = latents @ kernel + bias
    z = np.einsum("bhwd,md->bhwm", f, e) / math.sqrt(f.shape[-1])
    s = 1.0 / (1.0 + np.exp(-z))
    s = s / temperature
    s = np.exp(s - s.max(-1, keepdims=True))
    return s / s.sum(-1, keepdims=True)


def np_isda_loss(logits, labels, w, sigma, lam):
    """Eq. 6's bound in float64; `w` (C, D), full (C, D, D) or diagonal (C, D) sigma."""
    diff = w[None, :, :] - w[:, None, :]  # [y, j] = w_j - w_y
    if sigma.ndim == 3:
        q = np.einsum("yjd,yde,yje->yj", diff, sigma, diff)
    else:
        q = np.einsum("yjd,yd->yj", diff**2, sigma)
    z = logits + 0.5 * lam * q[labels]
    return -np_log_softmax(z)[np.arange(len(labels)), labels].mean()


@pytest.mark.multibackend
def test_part_features_match_a_numpy_loop(rng):
    f = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    w = rng.random((3, 4, 5, 7)).astype("float32") + 0.01
    got = to_np(part_features(f, w))
    assert got.shape == (3, 7, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, np_part_features(f, w), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rank 4"):
        part_features(f[0], w)


@pytest.mark.multibackend
@pytest.mark.parametrize("mode", ["full", "diagonal"])
def test_grouped_samples_update_like_labelled_ones(mode, rng):
    """(N, C, D) samples without labels = (N*C, D) samples labelled by column."""
    c, d = 4, 3
    grouped = LatentCovariance(c, mode=mode)
    labelled = LatentCovariance(c, mode=mode)
    grouped.build((c, d))
    labelled.build((c, d))
    seen = []
    for n in (5, 2, 7):  # uneven batches
        x = (rng.normal(size=(n, c, d)) * [1.0, 2.0, 0.5] + 3.0).astype("float32")
        seen.append(x)
        grouped(x, None, training=True)
        labelled(x.reshape(-1, d), np.tile(np.arange(c), n), training=True)
    everything = np.concatenate(seen).astype(np.float64)  # (14, C, D)
    ref = np.stack([np.cov(everything[:, k].T, bias=True) for k in range(c)])
    ref = ref if mode == "full" else np.stack([np.diag(r) for r in ref])
    np.testing.assert_allclose(to_np(grouped.covariance), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_np(grouped.covariance), to_np(labelled.covariance), atol=1e-5)
    np.testing.assert_allclose(to_np(grouped.mean), everything.mean(0), rtol=1e-5)
    assert to_np(grouped.count).tolist() == [14] * c
    with pytest.raises(ValueError, match=r"\(N, C, D\)"):
        grouped(np.zeros((2, c + 1, d), "float32"), None, training=True)


@pytest.mark.multibackend
@pytest.mark.parametrize("mode", ["full", "diagonal"])
def test_parts_loss_is_eq6_over_all_part_features(mode, rng):
    """One training call: L_aug = NumPy Eq. 6 over the B*M part features, label m."""
    x, y = toy_data(rng, n=6)
    model = LCRegModel(
        tiny_backbone(), num_classes=3, num_latents=5, covariance=mode,
        latent_aug_samples="parts", isda_lambda0=0.8, total_steps=2,
    )
    model(x)
    features = to_np(model.backbone(x)).astype(np.float64)
    pool = model.latent_pool
    latents, kernel, bias = (to_np(v).astype(np.float64) for v in (pool.latents, pool.kernel, pool.bias))
    out = model(x, training=True)  # step 1 of 2: lambda 0.4
    model.compute_loss(x, y, out, training=True)
    g = np_part_features(features, np_weights(features, latents, kernel, bias))  # (6, 5, D)
    sigma = np.stack([np.cov(g[:, k].T, bias=True) for k in range(5)])
    if mode == "diagonal":
        sigma = np.stack([np.diag(s) for s in sigma])
    np.testing.assert_allclose(to_np(model.latent_covariance.covariance), sigma, rtol=1e-4, atol=1e-6)
    labels = np.tile(np.arange(5), 6)
    part_logits = g.reshape(-1, g.shape[-1]) @ kernel[:, :5] + bias[:5]
    want = np_isda_loss(part_logits, labels, kernel[:, :5].T, sigma, 0.4)
    np.testing.assert_allclose(float(model.trackers["loss_aug"].result()), want, rtol=1e-4)


@pytest.mark.multibackend
@pytest.mark.parametrize("mode", ["full", "diagonal"])
def test_explicit_draws_have_covariance_lambda_sigma(mode, rng):
    """Monte Carlo: n draws, each entry within 5 standard errors of lam * Sigma."""
    c, d, n, lam = 3, 4, 40000, 0.7
    a = rng.normal(size=(c, d, d))
    sigma = np.einsum("cij,ckj->cik", a, a) / d + 0.1 * np.eye(d)  # SPD, correlated
    if mode == "diagonal":
        sigma = np.stack([np.diag(s) for s in sigma])
    draws = to_np(covariance_noise(sigma.astype("float32"), lam, seed=3, num_draws=n))
    assert draws.shape == (n, c, d) and draws.dtype == np.float32
    target = lam * sigma if mode == "full" else np.stack([np.diag(s) for s in lam * sigma])
    for k in range(c):
        emp = np.cov(draws[:, k].T.astype(np.float64), bias=True)
        var = np.diag(target[k])
        # Var of a sample covariance entry of a Gaussian: (S_ii S_jj + S_ij^2) / n.
        stderr = np.sqrt((np.outer(var, var) + target[k] ** 2) / n)
        assert np.all(np.abs(emp - target[k]) < 5 * stderr + 1e-5 * lam * var.mean()), k
        assert np.all(np.abs(draws[:, k].mean(0)) < 5 * np.sqrt(var / n))
    # One draw a call by default; a fresh one each call of a SeedGenerator.
    seed = keras.random.SeedGenerator(0)
    one, two = (to_np(covariance_noise(sigma.astype("float32"), lam, seed=seed)) for _ in range(2))
    assert one.shape == (c, d) and not np.allclose(one, two)
    zero = to_np(covariance_noise(np.zeros_like(sigma, "float32"), lam, seed=1))
    assert np.all(np.isfinite(zero)) and np.abs(zero).max() < 1e-5


@pytest.mark.multibackend
def test_no_gradient_through_the_covariance_or_the_draw(rng):
    m, d, lam = 4, 6, 0.5
    f = rng.normal(size=(3, 2, 2, d)).astype("float32")
    latents = rng.normal(size=(m, d)).astype("float32")
    kernel = (rng.normal(size=(d, d)) / d).astype("float32")
    a = rng.normal(size=(m, d, d)).astype("float32")
    sigma = np.einsum("cij,ckj->cik", a, a).astype("float32") / d

    def parts_loss(f, latents, kernel, sigma):
        # The "parts" L_aug as the model computes it (zero bias).
        e = ops.matmul(latents, kernel)
        weights = ops.softmax(ops.sigmoid(ops.einsum("bhwd,md->bhwm", f, e) / math.sqrt(d)))
        g = part_features(f, weights)
        logits = ops.reshape(ops.matmul(g, kernel[:, :m]), (-1, m))
        labels = ops.tile(ops.arange(m, dtype="int32"), (3,))
        from lcreg_keras.losses import latent_isda_loss

        return latent_isda_loss(logits, labels, ops.transpose(kernel[:, :m]), sigma, lam)

    g_f, g_lat, g_k, g_sigma = backend_grads(parts_loss, f, latents, kernel, sigma)
    assert np.abs(g_sigma).max() == 0.0
    assert min(np.abs(g).max() for g in (g_f, g_lat, g_k)) > 0

    def explicit(latents, sigma):
        # FC(f' + delta) as in Eq. 3's explicit reading; 0 * sigma keeps torch's graph.
        delta = covariance_noise(sigma, lam, seed=5)
        return ops.sum(ops.matmul(latents + delta, kernel)) + 0.0 * ops.sum(sigma)

    g_lat, g_sigma = backend_grads(explicit, latents, sigma)
    assert np.abs(g_sigma).max() == 0.0
    np.testing.assert_allclose(g_lat, np.broadcast_to(kernel.sum(1), (m, d)), rtol=1e-5)

    def estimator(samples):
        cov = LatentCovariance(m)
        cov.build((m, d))
        return ops.sum(cov.updated_state(samples, None)[1]) + 0.0 * ops.sum(samples)

    (g_samples,) = backend_grads(estimator, rng.normal(size=(5, m, d)).astype("float32"))
    assert np.abs(g_samples).max() == 0.0


@pytest.mark.multibackend
def test_explicit_latents_reach_the_prediction_in_training_only(rng):
    x, _ = toy_data(rng, n=8)
    kwargs = dict(num_classes=3, num_latents=4, isda_lambda0=2.0, total_steps=1, seed=0)
    plain = LCRegModel(tiny_backbone(), latent_aug_samples="parts", **kwargs)
    explicit = LCRegModel(tiny_backbone(), latent_aug_samples="parts", latent_aug_explicit=True, **kwargs)
    plain(x)
    explicit(x)
    explicit.set_weights(plain.get_weights())  # same weights, covariance state and seed
    np.testing.assert_allclose(to_np(explicit(x)), to_np(plain(x)), rtol=1e-6)
    train = [to_np(explicit(x, training=True)["logits"]) for _ in range(3)]
    base = [to_np(plain(x, training=True)["logits"]) for _ in range(3)]
    np.testing.assert_allclose(base[1], base[2], rtol=1e-6)  # no draw: no change
    # The first step's covariance comes from one batch; later draws move f_hat.
    assert not np.allclose(train[1], base[1], rtol=1e-4)
    assert not np.allclose(train[1], train[2], rtol=1e-4)
    np.testing.assert_allclose(to_np(explicit(x)), to_np(plain(x)), rtol=1e-6)
    with pytest.raises(ValueError, match="latent_aug"):
        LCRegModel(tiny_backbone(), num_classes=3, latent_aug=False, latent_aug_explicit=True)
    with pytest.raises(ValueError, match="latent_aug_samples"):
        LCRegModel(tiny_backbone(), num_classes=3, latent_aug_samples="pixels")


@pytest.mark.multibackend
def test_new_options_round_trip(tmp_path, rng):
    x, y = toy_data(rng, n=16)
    model = LCRegModel(
        tiny_backbone(), num_classes=3, num_latents=4, latent_aug_samples="parts",
        latent_aug_explicit=True, covariance="diagonal", seed=4,
    )
    model.compile(keras.optimizers.SGD(0.05))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    config = model.get_config()
    assert config["latent_aug_samples"] == "parts" and config["latent_aug_explicit"] is True
    clone = LCRegModel.from_config(config)
    a, b = dict(config), clone.get_config()
    a.pop("backbone"), b.pop("backbone")
    assert a == b
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.latent_aug_samples == "parts" and loaded.latent_aug_explicit
    np.testing.assert_allclose(to_np(loaded(x)), to_np(model(x)), rtol=1e-5, atol=1e-6)
    assert isinstance(loaded.explicit_seed, keras.random.SeedGenerator)
    np.testing.assert_allclose(
        to_np(loaded.latent_covariance.covariance), to_np(model.latent_covariance.covariance)
    )


@pytest.mark.multibackend
@pytest.mark.parametrize("samples", ["latents", "parts"])
def test_bf16_covariance_equals_float32_recomputation(samples, rng):
    """Under mixed_bfloat16, the estimator sees float32 samples (spec Sec. 3, #13.4)."""
    x, y = toy_data(rng, n=8)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = LCRegModel(
            tiny_backbone(), num_classes=3, num_latents=4, latent_aug_samples=samples, seed=0,
        )
        model.compile(keras.optimizers.SGD(0.5), run_eagerly=True)
        model.build(x.shape)
        seen = []
        for _ in range(3):
            pool = model.latent_pool
            latents, kernel, bias = (to_np(v) for v in (pool.latents, pool.kernel, pool.bias))
            assert latents.dtype == np.float32
            if samples == "latents":
                seen.append(latents[None].astype(np.float64))  # (1, M, D)
            else:
                # The bf16 backbone's output, then the float32 latent branch in NumPy.
                f = to_np(ops.cast(model.backbone(x, training=True), "float32")).astype(np.float64)
                seen.append(np_part_features(f, np_weights(f, latents, kernel, bias)))
            model.train_on_batch(x, y)
        assert model.backbone.layers[-1].compute_dtype == "bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")
    everything = np.concatenate(seen)  # (steps or steps * B, M, D)
    cov = to_np(model.latent_covariance.covariance)
    mean = to_np(model.latent_covariance.mean)
    assert cov.dtype == np.float32
    ref = np.stack([np.cov(everything[:, k].T, bias=True) for k in range(4)])
    np.testing.assert_allclose(mean, everything.mean(0), rtol=1e-5, atol=1e-7)
    rel = np.linalg.norm(cov - ref) / np.linalg.norm(ref)
    assert rel < 1e-5, rel


@pytest.mark.multibackend
def test_loss_shares_are_logged_and_follow_eq7(rng):
    x, y = toy_data(rng, n=8)
    model = LCRegModel(
        tiny_backbone(), num_classes=3, num_latents=5, alpha=0.3, beta=0.7, gamma=1.3,
        latent_aug_samples="parts", total_steps=4,
    )
    model(x)
    out = model(x, training=True)
    model.compute_loss(x, y, out, training=True)
    got = {k: float(model.trackers[k].result()) for k in
           ("loss_cls", "loss_aug", "loss_recon", "share_aug", "share_recon")}
    total = 1.3 * got["loss_cls"] + 0.3 * got["loss_aug"] + 0.7 * got["loss_recon"]
    np.testing.assert_allclose(got["share_aug"], 0.3 * got["loss_aug"] / total, rtol=1e-5)
    np.testing.assert_allclose(got["share_recon"], 0.7 * got["loss_recon"] / total, rtol=1e-5)
    # Hidden with their terms.
    names = lambda m: {t.name for t in m.metrics}  # noqa: E731
    assert {"share_aug", "share_recon"} <= names(model)
    no_aug = LCRegModel(tiny_backbone(), num_classes=3, num_latents=5, latent_aug=False)
    no_recon = LCRegModel(tiny_backbone(), num_classes=3, num_latents=5, latent_recon=False)
    assert "share_aug" not in names(no_aug) and "share_recon" in names(no_aug)
    assert "share_recon" not in names(no_recon) and "share_aug" in names(no_recon)
    baseline = LCRegModel(tiny_backbone(), num_classes=3, latent=False)
    assert not {"share_aug", "share_recon"} & names(baseline)


@pytest.mark.multibackend
def test_short_parts_fit_keeps_a_non_trivial_aug_share(rng):
    x, y = toy_data(rng, n=64)
    model = LCRegModel(
        tiny_backbone(batchnorm=True), num_classes=3, num_latents=6, latent_aug_samples="parts",
        latent_aug_explicit=True, seed=0,
    )
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert {"share_aug", "share_recon"} <= set(history)
    # Above the 1 % that LossShareMonitor calls inert, in every epoch.
    assert min(history["share_aug"]) > 0.01, history["share_aug"]
    assert all(0 < v < 1 for v in history["share_aug"] + history["share_recon"])
    assert all(np.isfinite(v[-1]) for v in history.values())


@pytest.mark.multibackend
def test_isda_lambda0_zero_is_plain_latent_class_ce(rng):
    """Table 4's "latent category only": L_aug at lambda_0 = 0 is the CE on latent classes."""
    x, _ = toy_data(rng, n=4)
    model = LCRegModel(tiny_backbone(), num_classes=3, num_latents=5, isda_lambda0=0.0,
                       latent_recon=False, latent_aug_samples="parts")
    model(x)
    features = to_np(model.backbone(x)).astype(np.float64)
    pool = model.latent_pool
    latents, kernel, bias = (to_np(v).astype(np.float64) for v in (pool.latents, pool.kernel, pool.bias))
    model.latent_covariance.covariance.assign(
        np.full(model.latent_covariance.covariance.shape, 5.0, "float32"))  # irrelevant at lambda 0
    terms = model(x, training=True)  # the logits and the terms
    g = np_part_features(features, np_weights(features, latents, kernel, bias))
    logits = g.reshape(-1, g.shape[-1]) @ kernel[:, :5] + bias[:5]
    labels = np.tile(np.arange(5), 4)
    ce = -np_log_softmax(logits)[np.arange(20), labels].mean()
    assert float(to_np(terms["isda_lambda"])) == 0.0
    np.testing.assert_allclose(float(to_np(terms["loss_aug"])), ce, rtol=1e-4)


def test_loss_share_monitor_warns_once_after_the_first_tenth(capsys):
    monitor = LossShareMonitor()
    monitor.set_params({"epochs": 20})
    monitor.on_epoch_end(0, {"share_aug": 0.001, "share_recon": 0.2})  # first tenth: epochs 1-2
    monitor.on_epoch_end(1, {"share_aug": 0.001, "share_recon": 0.2})
    assert monitor.warned == []
    for epoch in range(2, 20):
        monitor.on_epoch_end(epoch, {"share_aug": 0.004, "share_recon": 0.2, "loss": 1.0})
    assert len(monitor.warned) == 1
    assert "share_aug = 0.40 %" in monitor.warned[0] and "epoch 3 of 20" in monitor.warned[0]
    assert capsys.readouterr().out.count("WARNING") == 1
    # A term that falls later is warned about once too; absent terms never.
    quiet = LossShareMonitor(threshold=0.05)
    quiet.set_params({"epochs": 10})
    for epoch in range(10):
        quiet.on_epoch_end(epoch, {"share_recon": 0.2 if epoch < 5 else 0.01})
    assert len(quiet.warned) == 1 and "share_recon" in quiet.warned[0]
    with pytest.raises(ValueError, match="threshold"):
        LossShareMonitor(threshold=0)


@pytest.mark.multibackend
def test_explicit_draws_of_a_rounded_low_rank_estimate_are_finite(rng):
    """A rank-2 estimate with eigenvalues rounded below the jitter (as the
    `latents` reading's running estimate gets) still factorises: finite draws
    whose covariance is lam * (Sigma + shift I), the shift past its lowest
    eigenvalue; a well-conditioned class beside it keeps its small jitter."""
    d, n, lam = 16, 40000, 0.5
    u = rng.normal(size=(d, 2))
    low_rank = u @ u.T
    w, v = np.linalg.eigh(low_rank)
    w[:-2] = -1e-3 * w[-1]  # indefinite by far more than jitter * mean(diag)
    bad = (v * w) @ v.T
    a = rng.normal(size=(d, d))
    good = a @ a.T / d + 0.1 * np.eye(d)
    sigma = np.stack([bad, good]).astype("float32")
    draws = to_np(covariance_noise(sigma, lam, seed=2, num_draws=n))
    assert np.all(np.isfinite(draws))
    eps = 1e-5 * np.abs(np.diagonal(sigma, axis1=1, axis2=2)).mean(-1) + 1e-12
    lowest = np.linalg.eigvalsh(sigma.astype(np.float64))[:, 0]
    shift = np.where(lowest > -0.5 * eps, eps, eps - 2 * lowest)
    assert shift[1] == pytest.approx(eps[1]) and shift[0] > 1e-3 * w[-1]
    for k in range(2):
        target = lam * (sigma[k].astype(np.float64) + shift[k] * np.eye(d))
        emp = np.cov(draws[:, k].T.astype(np.float64), bias=True)
        var = np.diag(target)
        stderr = np.sqrt((np.outer(var, var) + target ** 2) / n)
        assert np.all(np.abs(emp - target) < 5 * stderr + 1e-4 * var.mean()), k
