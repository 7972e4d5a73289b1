"""LatentPool (Eq. 1) and LatentReconstruction (Eq. 2-4) against NumPy."""

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.layers import LatentPool, LatentReconstruction
from tests.testing import run_layer_test

pytestmark = pytest.mark.multibackend


# ----------------------------------------------------------- NumPy reference
def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_latent_pool(f, latents, kernel, bias, similarity="dot", scale=None):
    """Eq. 1 written position by position."""
    encoded = latents @ kernel + bias  # FC(f'_m) for every m
    b, h, w, d = f.shape
    m = latents.shape[0]
    z = np.zeros((b, h, w, m))
    for i in range(b):
        for a in range(h):
            for c in range(w):
                vec = f[i, a, c]
                for k in range(m):
                    e = encoded[k]
                    if similarity == "cosine":
                        z[i, a, c, k] = scale * vec @ e / np.linalg.norm(vec) / np.linalg.norm(e)
                    else:
                        z[i, a, c, k] = vec @ e * (scale or 1 / np.sqrt(d))
    return z, np_sigmoid(z), encoded


def np_reconstruction(s, encoded, f, tau=1.0, scale=None):
    """Eq. 2-4: softmax over M, weighted sum of latents, CE on diag(C_f)."""
    s_hat = np_softmax(s / tau, axis=-1)
    f_hat = np.einsum("bhwm,md->bhwd", s_hat, encoded)
    b, h, w, d = f.shape
    scale = scale or 1 / np.sqrt(d)
    losses = []
    for i in range(b):
        fh = f_hat[i].reshape(h * w, d)
        fo = f[i].reshape(h * w, d)
        corr = fh @ fo.T * scale  # rows: reconstructed positions
        for j in range(h * w):
            row = corr[j]
            logsum = np.log(np.exp(row - row.max()).sum()) + row.max()
            losses.append(logsum - row[j])
    return s_hat, f_hat, float(np.mean(losses))


def _pool_weights(pool):
    return [ops.convert_to_numpy(v).astype(np.float64) for v in (pool.latents, pool.kernel, pool.bias)]


# ------------------------------------------------------------------ Eq. 1
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_latent_pool_matches_numpy(similarity, rng):
    f = rng.normal(size=(2, 3, 4, 8)).astype("float32")
    pool = LatentPool(num_latents=5, similarity=similarity, cosine_scale=7.0)
    z, s, e = pool(f)
    latents, kernel, bias = _pool_weights(pool)
    bias = rng.normal(size=bias.shape)  # a non-zero bias must enter E
    pool.bias.assign(bias.astype("float32"))
    z, s, e = pool(f)
    z_ref, s_ref, e_ref = np_latent_pool(
        f.astype(np.float64), latents, kernel, bias, similarity,
        scale=7.0 if similarity == "cosine" else None,
    )
    np.testing.assert_allclose(ops.convert_to_numpy(e), e_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(z), z_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(s), s_ref, rtol=1e-4, atol=1e-5)
    assert z.shape == (2, 3, 4, 5)


def test_latent_classes_are_first_m_channels(rng):
    pool = LatentPool(num_latents=4)
    pool(rng.normal(size=(1, 2, 2, 6)).astype("float32"))
    latents, kernel, bias = _pool_weights(pool)
    logits = ops.convert_to_numpy(pool.latent_class_logits())
    weights = ops.convert_to_numpy(pool.latent_class_weights())
    np.testing.assert_allclose(logits, (latents @ kernel + bias)[:, :4], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(weights, kernel[:, :4].T, rtol=1e-6)
    # w_j^T f'_m + b_j reproduces the latent-class logits (Eq. 6's linear part).
    np.testing.assert_allclose(latents @ weights.T + bias[:4], logits, rtol=1e-4, atol=1e-4)


def test_latent_init_is_standard_normal():
    pool = LatentPool(num_latents=64)
    pool.build((None, 4, 4, 256))
    latents = ops.convert_to_numpy(pool.latents)
    assert abs(latents.mean()) < 0.02 and abs(latents.std() - 1.0) < 0.02


# ---------------------------------------------------------------- Eq. 2-4
@pytest.mark.parametrize("tau,scale", [(1.0, None), (0.5, 0.3)])
def test_reconstruction_matches_numpy(tau, scale, rng):
    f = np.maximum(rng.normal(size=(2, 3, 3, 6)), 0).astype("float32")
    s = np_sigmoid(rng.normal(size=(2, 3, 3, 4))).astype("float32")
    encoded = rng.normal(size=(4, 6)).astype("float32")
    layer = LatentReconstruction(temperature=tau, loss_scale=scale)
    out = layer(s, encoded, features=f)
    s_hat, f_hat, loss = np_reconstruction(
        s.astype(np.float64), encoded.astype(np.float64), f.astype(np.float64), tau, scale
    )
    np.testing.assert_allclose(ops.convert_to_numpy(out["weights"]), s_hat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(out["reconstruction"]), f_hat, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(out["loss"]), loss, rtol=1e-4)


def test_reconstruction_loss_rewards_matching_positions(rng):
    """Eq. 4 is low when f_hat(j) matches f(j) best, and high when shuffled."""
    f = rng.normal(size=(1, 4, 4, 32)).astype("float32") * 3
    layer = LatentReconstruction(loss_scale=1.0)
    good = float(layer.reconstruction_loss(f, f))
    shuffled = f.reshape(16, 32)[rng.permutation(16)].reshape(1, 4, 4, 32)
    bad = float(layer.reconstruction_loss(f, shuffled))
    assert good < 0.1 < np.log(16) < bad


def test_no_loss_without_features(rng):
    out = LatentReconstruction()(np.full((1, 2, 2, 3), 0.5, "float32"), np.eye(3, dtype="float32"))
    assert set(out) == {"reconstruction", "weights"}
    # Equal similarities give uniform weights (1/M) and the mean latent.
    np.testing.assert_allclose(ops.convert_to_numpy(out["weights"]), 1 / 3, rtol=1e-6)


# ---------------------------------------------------------------- bad input
def test_latent_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="num_latents"):
        LatentPool(num_latents=1)
    with pytest.raises(ValueError, match="num_latents"):
        LatentPool(num_latents=2.5)
    with pytest.raises(ValueError, match="features"):
        LatentPool(num_latents=2)(np.zeros((2, 4, 8), "float32"))
    with pytest.raises(ValueError, match="num_latents"):
        LatentPool(num_latents=9)(np.zeros((1, 2, 2, 8), "float32"))
    pool = LatentPool(num_latents=2)
    pool(np.zeros((1, 2, 2, 8), "float32"))
    with pytest.raises(ValueError, match="channels"):
        pool(np.zeros((1, 2, 2, 4), "float32"))
    with pytest.raises(ValueError, match="similarity"):
        LatentPool(num_latents=2, similarity="l1")


def test_reconstruction_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        LatentReconstruction(temperature=0)
    layer = LatentReconstruction()
    with pytest.raises(ValueError, match="encoded_latents"):
        layer(np.zeros((1, 2, 2, 3), "float32"), np.zeros((4, 5), "float32"))
    with pytest.raises(ValueError, match="similarity"):
        layer(np.zeros((1, 2, 3), "float32"), np.zeros((3, 5), "float32"))


# ------------------------------------------------------------ serialization
def test_layers_serialize(tmp_path, rng):
    pool = LatentPool(num_latents=3, similarity="cosine", cosine_scale=5.0, logit_scale=None)
    clone = LatentPool.from_config(pool.get_config())
    assert clone.get_config() == pool.get_config()
    recon = LatentReconstruction(temperature=0.5, loss_scale=2.0)
    assert LatentReconstruction.from_config(recon.get_config()).get_config() == recon.get_config()

    inputs = keras.Input((3, 3, 6))
    z, s, e = LatentPool(num_latents=3, name="pool")(inputs)
    outputs = LatentReconstruction(name="recon")(s, e)["reconstruction"]
    model = keras.Model(inputs, [z, outputs])
    x = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    path = str(tmp_path / "layers.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_latent_pool_layer_harness(rng):
    x = rng.normal(size=(2, 4, 4, 6)).astype("float32")
    run_layer_test(
        LatentPool, dict(num_latents=3, similarity="cosine", cosine_scale=5.0), x,
        expected_output_shape=((2, 4, 4, 3), (2, 4, 4, 3), (3, 6)),
        expected_num_trainable_weights=3, expected_num_non_trainable_weights=0,
    )


def test_latent_reconstruction_layer_harness(rng):
    s = rng.uniform(size=(2, 4, 4, 3)).astype("float32")
    e = rng.normal(size=(3, 6)).astype("float32")
    f = rng.normal(size=(2, 4, 4, 6)).astype("float32")
    run_layer_test(
        LatentReconstruction, dict(temperature=0.5, loss_scale=2.0), (s, e, f),
        expected_output_shape={"reconstruction": (2, 4, 4, 6), "weights": (2, 4, 4, 3), "loss": ()},
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
    )
