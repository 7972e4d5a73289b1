"""ResNet v1.5 (torchvision's / MiSLAS's ResNet): structure, parameter count, numbers."""

import keras
import numpy as np
import pytest

from lcreg_keras.backbones import get_backbone
from lcreg_keras.backbones import resnet_torchvision
from lcreg_keras.backbones import resnet_v1_5


def _n_params(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


# ---------------------------------------------------------------------------
# Parameter counts by hand, from torchvision's architecture. A bias-free
# k x k conv from a to b channels has k * k * a * b weights; a BatchNorm over
# c channels 2 * c trainable (gamma, beta) and 2 * c non-trainable (moving
# statistics, PyTorch's buffers).
# ---------------------------------------------------------------------------
def hand_count(blocks_per_stage, base=64, in_channels=3):
    trainable = 7 * 7 * in_channels * base + 2 * base
    bn_channels = base
    inplanes = base
    for stage, blocks in enumerate(blocks_per_stage):
        planes = base * 2**stage
        for block in range(blocks):
            trainable += inplanes * planes + 9 * planes * planes + planes * 4 * planes
            trainable += 2 * (planes + planes + 4 * planes)
            bn_channels += 6 * planes
            if block == 0:  # stride 2, or 64 -> 256 channels: the downsample
                trainable += inplanes * 4 * planes + 2 * 4 * planes
                bn_channels += 4 * planes
            inplanes = 4 * planes
    return trainable, 2 * bn_channels


def test_hand_count_is_torchvisions():
    # torchvision: resnet50 25,557,032 and resnet152 60,192,808 parameters,
    # minus the 2048 -> 1000 classifier (2,049,000).
    assert hand_count((3, 4, 6, 3))[0] == 25_557_032 - 2_049_000 == 23_508_032
    assert hand_count((3, 8, 36, 3))[0] == 60_192_808 - 2_049_000 == 58_143_808


@pytest.fixture(scope="module")
def resnet50():
    return resnet_v1_5(50, input_shape=(64, 64, 3))


def test_resnet50_v1_5_parameter_count(resnet50):
    trainable, moving = hand_count((3, 4, 6, 3))
    assert _n_params(resnet50.trainable_weights) == trainable == 23_508_032
    assert _n_params(resnet50.non_trainable_weights) == moving
    assert resnet50.count_params() == trainable + moving


def test_resnet50_v1_5_structure(resnet50):
    """Stride in the 3x3, no conv bias, PyTorch's BatchNorm, no zero-init."""
    layers = {layer.name: layer for layer in resnet50.layers}
    convs = [l for l in layers.values() if isinstance(l, keras.layers.Conv2D)]
    bns = [l for l in layers.values() if isinstance(l, keras.layers.BatchNormalization)]
    assert len(convs) == 53 and len(bns) == 53  # 1 + 16 * 3 + 4 downsamples
    assert not any(conv.use_bias for conv in convs)
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)
    for stage in (2, 3, 4):
        block = f"resnet50_v1_5_layer{stage}_0"
        assert layers[block + "_conv1"].strides == (1, 1)
        assert layers[block + "_conv2"].strides == (2, 2)
        assert layers[block + "_downsample_0"].strides == (2, 2)
    assert layers["resnet50_v1_5_layer1_0_conv2"].strides == (1, 1)
    # gamma = 1 everywhere, the last BN of each block included
    # (torchvision's zero_init_residual=False, which MiSLAS keeps).
    for bn in bns:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.gamma), 1.0)
    # Kaiming normal, fan-out: std sqrt(2 / (9 * 256)) in a 3x3 conv of 256.
    kernel = keras.ops.convert_to_numpy(layers["resnet50_v1_5_layer3_1_conv2"].kernel)
    expected = np.sqrt(2.0 / (9 * 256))
    assert abs(kernel.std() - expected) < 0.02 * expected
    assert np.abs(kernel).max() > 3 * expected  # untruncated tails


def test_resnet50_v1_5_forward(resnet50):
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    assert resnet50.output_shape == (None, 2, 2, 2048)
    y = keras.ops.convert_to_numpy(resnet50(x, training=False))
    assert y.shape == (2, 2, 2, 2048) and np.all(np.isfinite(y)) and np.all(y >= 0)
    assert y.std() > 0


@pytest.mark.slow
def test_resnet152_v1_5_parameter_count():
    model = get_backbone("resnet152_v1_5", (32, 32, 3))
    trainable, moving = hand_count((3, 8, 36, 3))
    assert _n_params(model.trainable_weights) == trainable == 58_143_808
    assert _n_params(model.non_trainable_weights) == moving


@pytest.fixture
def cheap_init(monkeypatch):
    """Zero conv init: JAX compiles a random initializer per kernel shape
    (seconds each on CPU); the tests below draw the kernels with NumPy."""
    monkeypatch.setattr(resnet_torchvision, "_conv_initializer", keras.initializers.Zeros)


def _randomize(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            shape = tuple(layer.kernel.shape)
            std = np.sqrt(2.0 / np.prod(shape[:3]))
            layer.kernel.assign((rng.normal(size=shape) * std).astype("float32"))
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.beta.assign(rng.normal(size=c).astype("float32") * 0.1)
            layer.moving_mean.assign(rng.normal(size=c).astype("float32") * 0.1)
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype("float32"))


@pytest.mark.multibackend
def test_matches_a_torch_reference_of_torchvisions_forward(cheap_init):
    """A narrow two-block-a-stage ResNet against torchvision's forward written
    with torch.nn.functional (padding 3 / 1 / 1, -inf max-pool padding), odd
    input sizes included, in inference mode."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    name = "tiny"
    model = resnet_torchvision._resnet((2, 1, 1, 1), (37, 30, 3), 4, name, 0.9, 1e-5)
    rng = np.random.default_rng(5)
    _randomize(model, rng)
    x = rng.normal(size=(2, 37, 30, 3)).astype("float32")
    expected = model.predict(x, verbose=0)  # one compiled call (eager JAX is slow)

    def t(v):
        return torch.from_numpy(np.array(keras.ops.convert_to_numpy(v)))

    def conv(h, layer, stride, padding):
        kernel = t(model.get_layer(f"{name}_{layer}").kernel).permute(3, 2, 0, 1)
        return F.conv2d(h, kernel, stride=stride, padding=padding)

    def bn(h, layer):
        layer = model.get_layer(f"{name}_{layer}")
        return F.batch_norm(
            h, t(layer.moving_mean), t(layer.moving_variance), t(layer.gamma), t(layer.beta),
            training=False, eps=1e-5,
        )

    h = torch.from_numpy(x).permute(0, 3, 1, 2)
    h = F.max_pool2d(F.relu(bn(conv(h, "conv1", 2, 3), "bn1")), 3, stride=2, padding=1)
    for stage, blocks in enumerate((2, 1, 1, 1)):
        for block in range(blocks):
            p = f"layer{stage + 1}_{block}_"
            stride = 2 if stage > 0 and block == 0 else 1
            y = F.relu(bn(conv(h, p + "conv1", 1, 0), p + "bn1"))
            y = F.relu(bn(conv(y, p + "conv2", stride, 1), p + "bn2"))
            y = bn(conv(y, p + "conv3", 1, 0), p + "bn3")
            if block == 0:
                h = bn(conv(h, p + "downsample_0", stride, 0), p + "downsample_1")
            h = F.relu(h + y)
    reference = h.permute(0, 2, 3, 1).numpy()
    # torch: 37x30 -> 19x15 -> 10x8 -> 10x8 -> 5x4 -> 3x2 -> 2x1.
    assert expected.shape == reference.shape == (2, 2, 1, 128)
    np.testing.assert_allclose(expected, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.multibackend
def test_small_model_and_errors(cheap_init):
    small = resnet_torchvision._resnet((1, 1, 1, 1), (32, 32, 3), 4, "small", 0.9, 1e-5)
    assert small.output_shape == (None, 1, 1, 128)
    with pytest.raises(ValueError, match="depth"):
        resnet_v1_5(34)
    with pytest.raises(ValueError, match="no ImageNet checkpoint"):
        get_backbone("resnet50_v1_5", (64, 64, 3), weights="imagenet")
    with pytest.raises(ValueError, match="channels-last"):
        resnet_torchvision._resnet((1, 1, 1, 1), (32, 32), 4, "bad", 0.9, 1e-5)


@pytest.mark.slow
def test_weights_file_and_frozen(resnet50, tmp_path):
    path = str(tmp_path / "r50.weights.h5")
    resnet50.save_weights(path)
    loaded = get_backbone("resnet50_v1_5", (64, 64, 3), weights=path, trainable=False)
    assert not loaded.trainable_weights
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(resnet50(x, training=False)),
        rtol=1e-5, atol=1e-5,
    )
