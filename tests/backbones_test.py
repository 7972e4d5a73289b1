"""Tests for lcreg_keras.backbones (CIFAR ResNets and keras.applications ResNets)."""

import warnings

import keras
import numpy as np
import pytest

from lcreg_keras import backbones
from lcreg_keras.backbones import PadShortcut
from lcreg_keras.backbones import cifar_resnet
from lcreg_keras.backbones import get_backbone
from lcreg_keras.backbones import places_resnet152
from lcreg_keras.backbones import resnet32
from lcreg_keras.backbones import resnet50
from lcreg_keras.backbones import resnet152
from lcreg_keras.backbones.applications import CaffeInput
from lcreg_keras.backbones.applications import _with_trainable_bottleneck
from tests.testing import run_layer_test

pytestmark = pytest.mark.multibackend


def _n_params(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _n_convs(model):
    return sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)


# ---------------------------------------------------------------------------
# Expected ResNet-32 sizes, by hand from the architecture.
# A 3x3 conv without bias from c_in to c_out has 9 * c_in * c_out weights; a
# BatchNorm over c channels has 2 * c trainable (gamma, beta) and 2 * c
# non-trainable (moving mean, moving variance) weights.
#
# stem: conv 3->16 = 432, BN 32                                  ->     464
# stage 1, 5 blocks 16->16: 2 * (2,304 + 32) = 4,672 each        ->  23,360
# stage 2, block 1 16->32: 4,608 + 64 + 9,216 + 64 = 13,952
#          4 blocks 32->32: 2 * (9,216 + 64) = 18,560 each        ->  88,192
# stage 3, block 1 32->64: 18,432 + 128 + 36,864 + 128 = 55,552
#          4 blocks 64->64: 2 * (36,864 + 128) = 73,984 each      -> 351,488
# total (option A, "pad" shortcut)                               -> 463,504
# + a 64 -> 10 Dense classifier (640 + 10 = 650) = 464,154, the classic
# ResNet-32 count of the LDAM / akamaster code.
# "projection" adds 1x1 conv 16->32 (512) + BN (64) and 1x1 conv 32->64
# (2,048) + BN (128): 2,752 more -> 466,256.
# BatchNorm channels: 16 + 10 * 16 + 10 * 32 + 10 * 64 = 1,136 (+ 32 + 64
# with projection) -> 2,272 (2,464) non-trainable moving statistics.
# ---------------------------------------------------------------------------
STEM = 9 * 3 * 16 + 2 * 16
STAGE1 = 5 * 2 * (9 * 16 * 16 + 2 * 16)
STAGE2 = (9 * 16 * 32 + 2 * 32 + 9 * 32 * 32 + 2 * 32) + 4 * 2 * (9 * 32 * 32 + 2 * 32)
STAGE3 = (9 * 32 * 64 + 2 * 64 + 9 * 64 * 64 + 2 * 64) + 4 * 2 * (9 * 64 * 64 + 2 * 64)
RESNET32_PAD = STEM + STAGE1 + STAGE2 + STAGE3
PROJECTION = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
BN_CHANNELS = 16 + 10 * 16 + 10 * 32 + 10 * 64


def test_hand_counted_numbers_match_the_classic_resnet32():
    assert RESNET32_PAD == 463_504
    assert RESNET32_PAD + (64 * 10 + 10) == 464_154
    assert PROJECTION == 2_752
    assert BN_CHANNELS == 1_136


@pytest.mark.parametrize(
    "shortcut, trainable, non_trainable, convs",
    [
        ("pad", RESNET32_PAD, 2 * BN_CHANNELS, 31),
        ("projection", RESNET32_PAD + PROJECTION, 2 * (BN_CHANNELS + 32 + 64), 33),
    ],
)
def test_resnet32_parameter_and_conv_counts(shortcut, trainable, non_trainable, convs):
    model = resnet32(shortcut=shortcut)
    assert _n_params(model.trainable_weights) == trainable
    assert _n_params(model.non_trainable_weights) == non_trainable
    assert model.count_params() == trainable + non_trainable
    assert _n_convs(model) == convs
    with_fc = keras.Sequential(
        [model, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    )
    if shortcut == "pad":
        assert _n_params(with_fc.trainable_weights) == 464_154


def test_resnet32_is_cifar_resnet_32():
    a = resnet32()
    b = cifar_resnet(32)
    assert a.name == b.name == "resnet32"
    assert a.count_params() == b.count_params()
    assert [type(layer).__name__ for layer in a.layers] == [
        type(layer).__name__ for layer in b.layers
    ]


@pytest.mark.parametrize("shortcut", ["pad", "projection"])
@pytest.mark.parametrize(
    "input_shape, expected",
    [((32, 32, 3), (8, 8, 64)), ((28, 28, 1), (7, 7, 64))],
)
def test_resnet32_output_shapes(shortcut, input_shape, expected):
    model = resnet32(input_shape=input_shape, shortcut=shortcut, name="backbone")
    assert model.name == "backbone"
    assert model.output_shape == (None,) + expected
    x = np.random.default_rng(0).normal(size=(2,) + input_shape).astype("float32")
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (2,) + expected
    assert np.all(np.isfinite(y))
    assert np.all(y >= 0.0)  # ends with a ReLU


def test_cifar_resnet_depths():
    for depth, blocks in ((8, 1), (20, 3), (32, 5), (44, 7), (56, 9), (110, 18)):
        model = cifar_resnet(depth)
        assert model.name == f"resnet{depth}"
        # stem + 2 convs per block; "pad" shortcuts have no conv.
        assert _n_convs(model) == 1 + 3 * blocks * 2 == depth - 1
        assert model.output_shape == (None, 8, 8, 64)


def test_width_and_odd_sizes():
    model = cifar_resnet(8, input_shape=(15, 9, 3), width=8)
    assert model.output_shape == (None, 4, 3, 32)
    dynamic = cifar_resnet(8, input_shape=(None, None, 3))
    assert dynamic.output_shape == (None, None, None, 64)
    y = dynamic.predict(np.ones((1, 15, 9, 3), "float32"), verbose=0)
    assert y.shape == (1, 4, 3, 64)


def test_bad_depth_raises():
    for depth in (0, 2, 7, 9, 31, 33, 32.0, "32", None, True):
        with pytest.raises(ValueError, match="6n \\+ 2"):
            cifar_resnet(depth)


def test_bad_width_shortcut_and_shape_raise():
    with pytest.raises(ValueError, match="width"):
        cifar_resnet(8, width=0)
    with pytest.raises(ValueError, match="shortcut"):
        cifar_resnet(8, shortcut="B")
    with pytest.raises(ValueError, match="channels-last"):
        cifar_resnet(8, input_shape=(32, 32))


def test_pad_shortcut_matches_option_a():
    """x[:, ::2, ::2] and zero channels on both sides (planes // 4 each)."""
    x = np.random.default_rng(1).normal(size=(2, 7, 6, 16)).astype("float32")
    y = keras.ops.convert_to_numpy(PadShortcut(32, strides=2)(x))
    expected = np.pad(x[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (8, 8)])
    np.testing.assert_array_equal(y, expected)
    assert PadShortcut(32, 2).compute_output_shape((None, 7, 6, 16)) == (None, 4, 3, 32)
    odd = keras.ops.convert_to_numpy(PadShortcut(7, strides=1)(x[..., :4]))
    np.testing.assert_array_equal(odd, np.pad(x[..., :4], [(0, 0)] * 3 + [(1, 2)]))
    with pytest.raises(ValueError, match="cannot reduce"):
        PadShortcut(8)(x)


def test_conv_init_and_no_bias():
    model = resnet32()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not conv.use_bias for conv in convs)
    layer = model.get_layer("resnet32_stage3_block5_conv2")
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    fan_in = 3 * 3 * 64
    assert abs(kernel.std() - np.sqrt(2.0 / fan_in)) < 0.05 * np.sqrt(2.0 / fan_in)
    # Untruncated normal (like torch kaiming_normal_): tails beyond 2 sigma.
    assert np.abs(kernel).max() > 2.5 * np.sqrt(2.0 / fan_in)


@pytest.mark.parametrize(
    "shortcut", ["pad", pytest.param("projection", marks=pytest.mark.slow)]
)
def test_trainable_with_head(shortcut):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, size=(16,))
    # Default width 16: the kernel shapes of ResNet-32, so JAX compiles no new
    # initializers (about a second per new shape on CPU).
    backbone = cifar_resnet(8, input_shape=(8, 8, 3), shortcut=shortcut)
    features = keras.layers.GlobalAveragePooling2D()(backbone.output)
    logits = keras.layers.Dense(4)(features)
    model = keras.Model(backbone.input, logits)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    losses = [float(model.train_on_batch(x, y)) for _ in range(10)]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("shortcut", ["pad", "projection"])
def test_save_load_round_trip(tmp_path, shortcut):
    model = cifar_resnet(8, input_shape=(28, 28, 3), shortcut=shortcut)
    x = np.random.default_rng(2).normal(size=(3, 28, 28, 3)).astype("float32")
    before = keras.ops.convert_to_numpy(model(x, training=False))
    path = str(tmp_path / "backbone.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = keras.ops.convert_to_numpy(loaded(x, training=False))
    assert loaded.name == model.name
    assert loaded.output_shape == (None, 7, 7, 64)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


def test_get_backbone():
    model = get_backbone("resnet8", (28, 28, 3))
    assert model.name == "resnet8"
    assert model.output_shape == (None, 7, 7, 64)
    assert get_backbone("ResNet32", width=8).output_shape == (None, 8, 8, 32)
    assert get_backbone("resnet20", (32, 32, 3), model_name="x").name == "x"
    assert set(backbones.BACKBONES) >= {
        "resnet8",
        "resnet32",
        "resnet50",
        "resnet152",
        "places_resnet152",
    }
    with pytest.raises(ValueError, match="resnet32.*places_resnet152"):
        get_backbone("resnet33", (32, 32, 3))


def test_trainable_bottleneck_head_freezes_trunk():
    """The places_resnet152 logic, on a tiny trunk."""
    trunk = cifar_resnet(8, input_shape=(16, 16, 3), name="trunk")
    model = _with_trainable_bottleneck(
        trunk, True, 16, "places", bn_momentum=0.9, bn_epsilon=1e-5
    )
    assert model.output_shape == (None, 4, 4, 64)
    assert not trunk.trainable
    trainable = [w.path for w in model.trainable_weights]
    assert trainable and all(p.startswith("places_head") for p in trainable)
    # 1x1 64->16, 3x3 16->16, 1x1 16->64, BN gammas/betas of 16 + 16 + 64.
    expected = 64 * 16 + 9 * 16 * 16 + 16 * 64 + 2 * 96
    assert _n_params(model.trainable_weights) == expected
    # The frozen trunk does not move when training.
    x = np.random.default_rng(3).normal(size=(8, 16, 16, 3)).astype("float32")
    trunk_before = [keras.ops.convert_to_numpy(w) for w in trunk.weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(x, np.ones((8, 4, 4, 64), "float32"))
    for before, w in zip(trunk_before, trunk.weights):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(w))


@pytest.mark.slow
def test_resnet50_feature_map():
    model = resnet50(input_shape=(64, 64, 3), weights=None, name="r50")
    assert model.name == "r50"
    assert model.output_shape == (None, 2, 2, 2048)
    y = model(np.zeros((1, 64, 64, 3), "float32"), training=False)
    assert tuple(y.shape) == (1, 2, 2, 2048)
    frozen = resnet50(input_shape=(64, 64, 3), trainable=False)
    assert not frozen.trainable_weights


@pytest.mark.slow
def test_resnet152_feature_map():
    model = resnet152(input_shape=(64, 64, 3), weights=None)
    assert model.output_shape == (None, 2, 2, 2048)
    assert model.name == "resnet152"


@pytest.mark.slow
def test_places_resnet152_freezes_trunk():
    with pytest.warns(UserWarning, match="randomly"):
        model = places_resnet152(input_shape=(64, 64, 3), weights=None)
    assert model.output_shape == (None, 2, 2, 2048)
    trunk = model.get_layer("places_resnet152_trunk")
    assert not trunk.trainable
    paths = [w.path for w in model.trainable_weights]
    assert all(p.startswith("places_resnet152_head") for p in paths)
    # 1x1 2048->512, 3x3 512->512, 1x1 512->2048, BN gamma/beta on 512+512+2048.
    expected = 2048 * 512 + 9 * 512 * 512 + 512 * 2048 + 2 * (512 + 512 + 2048)
    assert _n_params(model.trainable_weights) == expected == 4_462_592
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unfrozen = places_resnet152(input_shape=(64, 64, 3), freeze_trunk=False)
    assert _n_params(unfrozen.trainable_weights) > expected


@pytest.mark.parametrize("shortcut", ["pad", "projection"])
def test_matches_pytorch_reference(shortcut):
    """Same numbers as the LDAM / MiSLAS PyTorch ResNet (padding=1 convs,
    option-A shortcut `F.pad(x[:, :, ::2, ::2], ...)`), in inference mode."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = cifar_resnet(8, input_shape=(12, 10, 3), shortcut=shortcut)
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.beta.assign(rng.normal(size=c).astype("float32"))
            layer.moving_mean.assign(rng.normal(size=c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype("float32"))
    x = rng.normal(size=(2, 12, 10, 3)).astype("float32")
    expected = model.predict(x, verbose=0)

    def t(v):
        return torch.from_numpy(np.array(keras.ops.convert_to_numpy(v)))

    def conv(h, layer_name, stride):
        kernel = t(model.get_layer(layer_name).kernel).permute(3, 2, 0, 1)
        return F.conv2d(h, kernel, stride=stride, padding=kernel.shape[-1] // 2)

    def bn(h, layer_name):
        layer = model.get_layer(layer_name)
        return F.batch_norm(
            h, t(layer.moving_mean), t(layer.moving_variance), t(layer.gamma),
            t(layer.beta), training=False, eps=1e-5,
        )

    p = "resnet8_"
    h = torch.from_numpy(x).permute(0, 3, 1, 2)
    h = F.relu(bn(conv(h, p + "stem_conv", 1), p + "stem_bn"))
    for stage, planes in ((1, 16), (2, 32), (3, 64)):
        b = f"{p}stage{stage}_block1"
        stride = 1 if stage == 1 else 2
        y = F.relu(bn(conv(h, b + "_conv1", stride), b + "_bn1"))
        y = bn(conv(y, b + "_conv2", 1), b + "_bn2")
        if stage > 1 and shortcut == "pad":
            h = F.pad(h[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
        elif stage > 1:
            h = bn(conv(h, b + "_shortcut_conv", 2), b + "_shortcut_bn")
        h = F.relu(h + y)
    reference = h.permute(0, 2, 3, 1).numpy()
    assert reference.shape == expected.shape == (2, 3, 3, 64)
    np.testing.assert_allclose(expected, reference, rtol=1e-4, atol=1e-4)


def test_caffe_input_matches_keras_preprocess_input():
    from lcreg_keras.backbones.applications import IMAGENET_MEAN
    from lcreg_keras.backbones.applications import IMAGENET_STD

    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3)).astype("float32")
    ours = (rgb / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    expected = keras.applications.resnet.preprocess_input(rgb.copy())
    got = keras.ops.convert_to_numpy(CaffeInput()(ours.astype("float32")))
    np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.slow
def test_pretrained_weights_from_a_file_get_the_caffe_adapter(tmp_path):
    from lcreg_keras.backbones import resnet50

    plain = resnet50(input_shape=(64, 64, 3), weights=None)
    path = str(tmp_path / "resnet50.weights.h5")
    plain.save_weights(path)
    pretrained = resnet50(input_shape=(64, 64, 3), weights=path)
    assert any(type(layer).__name__ == "CaffeInput" for layer in pretrained.layers)
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    # The same weights behind the adapter: feeding the adapter's output to the
    # plain trunk reproduces the pretrained model.
    adapter = [layer for layer in pretrained.layers if type(layer).__name__ == "CaffeInput"][0]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pretrained(x)),
        keras.ops.convert_to_numpy(plain(adapter(x))),
        rtol=1e-4, atol=1e-4,
    )


@pytest.mark.multibackend
def test_pad_shortcut_layer_harness():
    run_layer_test(
        PadShortcut, dict(filters=6, strides=2),
        np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32"),
        expected_output_shape=(2, 2, 2, 6),
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
    )


@pytest.mark.multibackend
def test_pad_shortcut_channels_first_layer_harness():
    run_layer_test(
        PadShortcut, dict(filters=6, strides=2, data_format="channels_first"),
        np.random.default_rng(0).normal(size=(2, 2, 4, 4)).astype("float32"),
        expected_output_shape=(2, 6, 2, 2),
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
    )


def test_pad_shortcut_channels_first_is_the_transposed_channels_last():
    x = np.random.default_rng(2).normal(size=(2, 7, 6, 16)).astype("float32")
    last = keras.ops.convert_to_numpy(PadShortcut(30, strides=2)(x))
    first = PadShortcut(30, strides=2, data_format="channels_first")(np.transpose(x, (0, 3, 1, 2)))
    np.testing.assert_array_equal(np.transpose(keras.ops.convert_to_numpy(first), (0, 2, 3, 1)), last)
    with pytest.raises(ValueError, match="data_format"):
        PadShortcut(30, data_format="NCHW")


@pytest.mark.parametrize("shortcut", ["pad", "projection"])
def test_channels_first_backbone_computes_the_channels_last_one(shortcut):
    """Same interface, same weights, same features (forward, batch statistics and gradients)."""
    last = cifar_resnet(8, input_shape=(9, 10, 3), width=4, shortcut=shortcut)
    first = cifar_resnet(8, input_shape=(9, 10, 3), width=4, shortcut=shortcut,
                         data_format="channels_first")
    assert [w.shape for w in first.weights] == [w.shape for w in last.weights]
    assert first.output_shape == last.output_shape == (None, 3, 3, 16)
    rng = np.random.default_rng(3)
    first.set_weights([w + rng.normal(0, 0.1, w.shape).astype("float32") for w in last.get_weights()])
    last.set_weights(first.get_weights())
    x = rng.normal(size=(4, 9, 10, 3)).astype("float32")
    for training in (False, True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(first(x, training=training)),
            keras.ops.convert_to_numpy(last(x, training=training)), rtol=1e-4, atol=1e-5,
        )
    # One SGD step on a squared-feature loss moves both models' weights alike.
    for model in (first, last):
        model_in = keras.Input((9, 10, 3))
        head = keras.Model(model_in, keras.ops.mean(keras.ops.square(model(model_in)), axis=(1, 2, 3)))
        head.compile(keras.optimizers.SGD(0.1), loss="mse")
        head.train_on_batch(x, np.zeros((4,), "float32"))
    for a, b in zip(first.get_weights(), last.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="data_format"):
        cifar_resnet(8, data_format="NCHW")


@pytest.mark.multibackend
def test_caffe_input_layer_harness():
    run_layer_test(
        CaffeInput, {},
        np.random.default_rng(1).normal(size=(2, 3, 3, 3)).astype("float32"),
        expected_output_shape=(2, 3, 3, 3),
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
    )
