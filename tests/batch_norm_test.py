"""The fused batch normalisation against a NumPy reference and against Keras' own layer."""

import numpy as np
import pytest

import keras

from lcreg_keras.backbones.batch_norm import BatchNormalization
from tests.testing import run_layer_test

pytestmark = pytest.mark.multibackend


def _numpy_training_bn(x, gamma, beta, moving_mean, moving_var, momentum, epsilon):
    """Training-mode batch norm over all axes but the last, written out in NumPy."""
    x = x.astype(np.float64)
    flat = x.reshape(-1, x.shape[-1])
    mean = flat.mean(axis=0)
    var = ((flat - mean) ** 2).mean(axis=0)  # biased, as Keras
    y = gamma * (x - mean) / np.sqrt(var + epsilon) + beta
    new_mean = moving_mean * momentum + mean * (1 - momentum)
    new_var = moving_var * momentum + var * (1 - momentum)
    return y, new_mean, new_var


def _layer(cls, x, **kwargs):
    layer = cls(momentum=0.9, epsilon=1e-5, **kwargs)
    layer.build(x.shape)
    rng = np.random.default_rng(1)
    c = x.shape[-1]
    weights = {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(size=c),
               "moving_mean": rng.normal(size=c), "moving_variance": rng.uniform(0.5, 2.0, c)}
    for name, value in weights.items():
        if hasattr(layer, name) and getattr(layer, name) is not None:
            getattr(layer, name).assign(value.astype("float32"))
    return layer, weights


def test_training_step_matches_the_numpy_reference():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(6, 5, 4, 7)).astype("float32")
    layer, w = _layer(BatchNormalization, x)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    ref_y, ref_mean, ref_var = _numpy_training_bn(
        x, w["gamma"], w["beta"], w["moving_mean"], w["moving_variance"], 0.9, 1e-5
    )
    np.testing.assert_allclose(y, ref_y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), ref_mean, rtol=1e-5, atol=1e-5)
    # Biased batch variance: Bessel's factor 120/119 would be off by 0.8 %.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), ref_var, rtol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_gradients_equal_keras_batch_normalization(training):
    x = np.random.default_rng(2).normal(size=(4, 3, 3, 5)).astype("float32")
    ours, _ = _layer(BatchNormalization, x)
    theirs, _ = _layer(keras.layers.BatchNormalization, x)
    upstream = np.random.default_rng(3).normal(size=x.shape).astype("float32")

    def loss_and_grads(layer):
        model_in = keras.Input(x.shape[1:])
        model = keras.Model(model_in, layer(model_in))
        with_grads = _value_and_grads(model, x, upstream, training)
        return with_grads, [keras.ops.convert_to_numpy(v) for v in layer.non_trainable_weights]

    (ours_out, ours_grads), ours_stats = loss_and_grads(ours)
    (theirs_out, theirs_grads), theirs_stats = loss_and_grads(theirs)
    np.testing.assert_allclose(ours_out, theirs_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours_grads, theirs_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(ours_stats, theirs_stats):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _value_and_grads(model, x, upstream, training):
    """`sum(model(x) * upstream)` and its gradients w.r.t. the input, gamma and beta."""
    backend = keras.backend.backend()
    variables = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = model(xt, training=training)
            loss = tf.reduce_sum(out * upstream)
        grads = tape.gradient(loss, [xt] + [v.value for v in variables])
        return out.numpy(), [g.numpy() for g in grads]
    if backend == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        out = model(xt, training=training)
        loss = (out * torch.tensor(upstream)).sum()
        grads = torch.autograd.grad(loss, [xt] + [v.value for v in variables])
        return out.detach().numpy(), [g.numpy() for g in grads]
    import jax

    trainable = [v.value for v in variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def f(xv, tv):
        out, _ = model.stateless_call(tv, non_trainable, xv, training=training)
        return (out * upstream).sum(), out

    (_, out), (gx, gv) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(x, trainable)
    return np.asarray(out), [np.asarray(gx)] + [np.asarray(g) for g in gv]


def test_frozen_layer_uses_the_moving_statistics():
    x = np.random.default_rng(4).normal(size=(4, 3, 3, 2)).astype("float32")
    layer, w = _layer(BatchNormalization, x)
    layer.trainable = False
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    ref = w["gamma"] * (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-5) + w["beta"]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), w["moving_mean"], rtol=1e-6)


def test_layer_harness():
    run_layer_test(
        BatchNormalization,
        dict(momentum=0.9, epsilon=1e-5),
        np.random.default_rng(5).normal(size=(2, 4, 4, 3)).astype("float32"),
        expected_output_shape=(2, 4, 4, 3),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
        call_kwargs={"training": True},
    )
