"""Decoupled stage two: what it freezes, what it trains, and with which loss."""

import keras
import numpy as np
import pytest
from keras import ops

from lcreg_keras.layers import LCRegClassifier
from lcreg_keras.models import LCRegModel
from lcreg_keras.backbones.applications import _with_trainable_bottleneck
from lcreg_keras.training.stage_two import DecoupledStageTwo
from lcreg_keras.training.stage_two import frozen_sublayers
from tests.model_test import mixup_dataset
from tests.model_test import tiny_backbone
from tests.model_test import toy_data

pytestmark = pytest.mark.multibackend


def _numpy(variables):
    return [ops.convert_to_numpy(v).copy() for v in variables]


def _stage_one(rng):
    """Stage one as the recipes run it: mixup in the input pipeline, soft labels."""
    x, y = toy_data(rng, n=64)
    model = LCRegModel(tiny_backbone(batchnorm=True), num_classes=3, num_latents=4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(mixup_dataset(x, y, 3, 0.5, 0, 16), epochs=1, verbose=0, shuffle=False)
    return model, x, y


@pytest.mark.parametrize("shift_bn", [False, True])
def test_stage_two_freezes_backbone_and_latents_and_trains_the_head(shift_bn, rng):
    model, x, y = _stage_one(rng)
    bn = [layer for layer in model.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)][0]
    frozen = _numpy([w for w in model.backbone.weights if "moving" not in w.path])
    frozen += _numpy(model.latent_pool.weights + model.latent_covariance.weights)
    step_before = int(ops.convert_to_numpy(model.lcreg_step))
    moving = _numpy([bn.moving_mean, bn.moving_variance])
    head = _numpy([model.classifier.kernel, model.classifier.bias])

    stage_two = DecoupledStageTwo([40, 16, 8], epochs=2, lr=0.05, lr_factor=0.5, shift_bn=shift_bn,
                                  eps_head=0.3, eps_tail=0.0)
    logs = stage_two.fit(model, x, steps_per_epoch=4, y=y, batch_size=16, verbose=0).history

    after = _numpy([w for w in model.backbone.weights if "moving" not in w.path])
    after += _numpy(model.latent_pool.weights + model.latent_covariance.weights)
    for a, b in zip(frozen, after):
        np.testing.assert_array_equal(a, b)
    assert int(ops.convert_to_numpy(model.lcreg_step)) == step_before
    for a, b in zip(head, _numpy([model.classifier.kernel, model.classifier.bias])):
        assert np.abs(a - b).max() > 1e-6
    scale = ops.convert_to_numpy(model.classifier.scale)
    assert scale.shape == (3,) and np.abs(scale - 1).max() > 1e-6
    moved = [np.abs(a - b).max() > 0 for a, b in zip(moving, _numpy([bn.moving_mean, bn.moving_variance]))]
    assert all(moved) if shift_bn else not any(moved)
    assert "loss_aug" not in logs and "loss_recon" not in logs and "latents_in_use" in logs


@pytest.mark.parametrize("reload", [False, True])
def test_places_trunk_stays_frozen_under_shift_bn(reload, rng, tmp_path):
    """Places-LT: a pretrained trunk frozen in stage one keeps its weights and
    BatchNorm statistics bit-identical through stage two with shifted BN (as
    MiSLAS's `model.eval()`); only the new block's statistics move. `reload`:
    stage two on the saved stage-one model, as `--stage=2` runs it."""
    x, y = toy_data(rng, n=64)
    trunk = tiny_backbone(batchnorm=True)  # stands in for ResNet-152
    backbone = _with_trainable_bottleneck(trunk, True, 4, "places", bn_momentum=0.9, bn_epsilon=1e-5)
    model = LCRegModel(backbone, num_classes=3, num_latents=4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(mixup_dataset(x, y, 3, 0.5, 0, 16), epochs=1, verbose=0, shuffle=False)
    if reload:
        model.save(str(tmp_path / "stage1.keras"))
        model = keras.saving.load_model(str(tmp_path / "stage1.keras"))
    trunk = model.backbone.get_layer("tiny")
    assert [layer.name for layer in frozen_sublayers(model.backbone)] == ["tiny"]
    trunk_bn = [l for l in trunk.layers if isinstance(l, keras.layers.BatchNormalization)]
    head_bn = [l for l in model.backbone.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(trunk_bn) == 1 and len(head_bn) == 3
    trunk_before = _numpy(trunk.weights)
    assert len(trunk_before) == 2 + 2 + 4  # two convs (kernel, bias), BN (4)
    head_weights = [w for l in model.backbone.layers if l is not trunk for w in l.weights]
    fixed = [w for w in head_weights if "moving" not in w.path]
    moving = [w for w in head_weights if "moving" in w.path]
    fixed_before, moving_before = _numpy(fixed), _numpy(moving)

    stage_two = DecoupledStageTwo([40, 16, 8], epochs=2, lr=0.05, shift_bn=True)
    stage_two.fit(model, x, steps_per_epoch=4, y=y, batch_size=16, verbose=0)

    assert not trunk.trainable and all(not l.trainable for l in trunk_bn)
    for a, b in zip(trunk_before, _numpy(trunk.weights)):
        np.testing.assert_array_equal(a, b)  # moving statistics included
    for a, b in zip(fixed_before, _numpy(fixed)):
        np.testing.assert_array_equal(a, b)
    assert len(moving) == 6
    assert all(np.abs(a - b).max() > 0 for a, b in zip(moving_before, _numpy(moving)))
    assert not model.backbone.trainable_weights


def test_stage_two_loss_is_label_aware_smoothing(rng):
    model, x, y = _stage_one(rng)
    stage_two = DecoupledStageTwo([40, 16, 8], eps_head=0.4, eps_tail=0.1, weight_decay=0.0)
    stage_two.apply(model, steps_per_epoch=4)
    out = model(x[:8], training=True)
    loss = float(model.compute_loss(x[:8], y[:8], out, training=True))
    z = ops.convert_to_numpy(out["logits"]).astype(np.float64)
    # No mixup in stage two: the step classifies the images it is given
    # (BatchNorm in inference mode, so the training logits are model(x)'s),
    # and the loss is on the integer labels.
    np.testing.assert_allclose(z, ops.convert_to_numpy(model(x[:8])), rtol=1e-5, atol=1e-6)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    eps = 0.1 + 0.3 * np.sin(np.pi * (np.array([40, 16, 8]) - 8) / (2 * 32))
    e = eps[y[:8]]
    expected = np.mean((1 - e) * -logp[np.arange(8), y[:8]] + e * -logp.mean(-1))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_gradient_scale_equals_a_learning_rate_factor(rng):
    """One SGD step moves a head with gradient_scale f exactly f times as far."""
    x = rng.normal(size=(8, 5)).astype("float32")
    y = rng.integers(0, 3, size=8)
    deltas = []
    for factor in (1.0, 0.25):
        keras.utils.set_random_seed(1)
        inputs = keras.Input((5,))
        model = keras.Model(inputs, LCRegClassifier(3, gradient_scale=factor)(inputs))
        model.compile(keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = _numpy(model.trainable_weights)
        model.train_on_batch(x, y)
        deltas.append([b - a for a, b in zip(before, _numpy(model.trainable_weights))])
    for d1, d2 in zip(*deltas):
        np.testing.assert_allclose(d2, 0.25 * d1, rtol=1e-4, atol=1e-7)


def test_stage_two_model_saves_and_reloads(tmp_path, rng):
    model, x, y = _stage_one(rng)
    DecoupledStageTwo([40, 16, 8], epochs=1).fit(model, x, steps_per_epoch=4, y=y, batch_size=16, verbose=0)
    path = str(tmp_path / "stage2.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded.classifier.scale), ops.convert_to_numpy(model.classifier.scale)
    )
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_bad_arguments(rng):
    with pytest.raises(ValueError, match="class_counts"):
        DecoupledStageTwo([5])
    with pytest.raises(ValueError, match="class_counts"):
        DecoupledStageTwo([0, 0])
    with pytest.raises(ValueError, match="class_counts"):
        DecoupledStageTwo([5, -1])
    # A class without examples (a partial list, a smoke run) is allowed.
    assert DecoupledStageTwo([5, 0, 2]).loss.epsilons.shape == (3,)
    with pytest.raises(ValueError, match="epochs"):
        DecoupledStageTwo([5, 3], epochs=0)
    model, _, _ = _stage_one(rng)
    with pytest.raises(ValueError, match="class_counts"):
        DecoupledStageTwo([5, 3]).apply(model, steps_per_epoch=1)
