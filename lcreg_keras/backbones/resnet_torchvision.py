"""ResNet v1.5 (torchvision's ResNet) as a feature extractor: MiSLAS's ImageNet backbone.

MiSLAS trains ImageNet-LT and iNaturalist 2018 with torchvision's
`resnet50` (its `models/resnet.py` is a copy of torchvision's), the
"v1.5" ResNet. `keras.applications.ResNet50` is the original v1 and differs
in three ways that change what is trained:

| | v1.5 (torchvision, here) | v1 (`keras.applications`) |
|---|---|---|
| stride of a downsampling bottleneck | in the 3x3 conv | in the first 1x1 conv |
| convolution bias | none | every conv has one |
| BatchNorm momentum (Keras terms) / eps | 0.9 / 1e-5 | 0.99 / 1.001e-5 |

The structure built here, layer for layer as torchvision's:

* stem: 7x7 conv, 64 filters, stride 2, padding 3; BatchNorm; ReLU;
  3x3 max pooling, stride 2, padding 1;
* four stages of bottleneck blocks with `planes` = 64, 128, 256, 512 and
  (3, 4, 6, 3) blocks for ResNet-50, (3, 4, 23, 3) for ResNet-101,
  (3, 8, 36, 3) for ResNet-152; the first block of stages 2-4 has stride 2;
* bottleneck: 1x1 conv `planes` - BN - ReLU - 3x3 conv `planes` (the
  block's stride) - BN - ReLU - 1x1 conv `4 * planes` - BN, plus the
  shortcut, ReLU. The shortcut is the identity, or (first block of a stage)
  a 1x1 conv `4 * planes` with the block's stride + BN ("downsample");
* convolutions: no bias, He-normal initialisation with fan-out
  (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`, untruncated);
  BatchNorm: gamma 1, beta 0, momentum 0.9 (PyTorch's 0.1), eps 1e-5. The
  last BN of a block keeps gamma = 1: torchvision's `zero_init_residual`
  defaults to False and MiSLAS does not set it.

Strided convolutions and the max pooling pad symmetrically (explicit
`ZeroPadding2D`, as PyTorch's `padding=`) instead of Keras' `"same"`, which
pads only after for even sizes and would shift every sampled position. The
max pooling's zero padding equals PyTorch's `-inf` padding because its input
has passed a ReLU.

ResNet-50 without its classifier has 23,508,032 trainable parameters, as
torchvision's `resnet50` minus `fc` (25,557,032 - 2,049,000); ResNet-152
58,143,808. The BatchNorm moving statistics add non-trainable weights (what
PyTorch keeps as buffers).

The models return the last feature map `(B, H/32, W/32, 2048)`, `(B, 7, 7,
2048)` for 224x224 inputs, without pooling or classifier; channels last.
No pretrained weights are bundled (MiSLAS trains these from scratch);
`weights=` loads a Keras weights file of the same architecture.
"""

import keras

from lcreg_keras.backbones.batch_norm import batch_norm

# Blocks per stage.
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXPANSION = 4


def _conv_initializer():
    # torch `kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`:
    # N(0, 2 / (k * k * out_channels)), not truncated.
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _conv(x, filters, kernel_size, strides, name, padding):
    """A bias-free conv with PyTorch's symmetric `padding`."""
    if padding:
        x = keras.layers.ZeroPadding2D(padding, data_format="channels_last", name=name + "_pad")(x)
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",
        use_bias=False,
        kernel_initializer=_conv_initializer(),
        data_format="channels_last",
        name=name,
    )(x)


def bottleneck_v1_5(x, planes, strides, name, bn_momentum=0.9, bn_epsilon=1e-5):
    """One torchvision `Bottleneck` (stride in the 3x3 conv) on a Keras tensor.

    Args:
        x: channels-last Keras tensor `(B, H, W, C_in)`.
        planes: inner width; the block outputs `4 * planes` channels.
        strides: stride of the 3x3 conv and of the downsample shortcut.
        name: prefix of the block's layer names (`_conv1`, `_bn1`, ...,
            `_downsample_0` / `_downsample_1` for the projection shortcut).
        bn_momentum: BatchNorm momentum, Keras convention.
        bn_epsilon: BatchNorm epsilon.

    Returns:
        The block's output tensor `(B, ceil(H/s), ceil(W/s), 4 * planes)`.
    """
    bn = {"momentum": bn_momentum, "epsilon": bn_epsilon}
    out_channels = EXPANSION * planes
    y = _conv(x, planes, 1, 1, name + "_conv1", 0)
    y = keras.layers.ReLU(name=name + "_relu1")(batch_norm(y, name + "_bn1", **bn))
    y = _conv(y, planes, 3, strides, name + "_conv2", 1)
    y = keras.layers.ReLU(name=name + "_relu2")(batch_norm(y, name + "_bn2", **bn))
    y = _conv(y, out_channels, 1, 1, name + "_conv3", 0)
    y = batch_norm(y, name + "_bn3", **bn)
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = _conv(x, out_channels, 1, strides, name + "_downsample_0", 0)
        shortcut = batch_norm(shortcut, name + "_downsample_1", **bn)
    y = keras.layers.Add(name=name + "_add")([shortcut, y])
    return keras.layers.ReLU(name=name + "_out")(y)


def resnet_v1_5(
    depth=50,
    input_shape=(224, 224, 3),
    weights=None,
    trainable=True,
    name=None,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
):
    """torchvision's ResNet (v1.5) of `depth` 50, 101 or 152, last feature map.

    Args:
        depth: 50, 101 or 152.
        input_shape: channels-last image shape `(H, W, C)`, at least 32x32
            for a non-empty feature map; spatial sizes may be `None`.
        weights: `None` (random initialisation, the default; nothing is
            downloaded) or the path of a Keras weights file
            (`.weights.h5`) saved from a model of the same depth.
        trainable: `False` freezes every layer (BatchNorm then also runs in
            inference mode).
        name: model name and layer-name prefix; default
            `f"resnet{depth}_v1_5"`.
        bn_momentum: BatchNorm momentum, Keras convention (0.9 = PyTorch's
            0.1).
        bn_epsilon: BatchNorm epsilon (PyTorch's 1e-5).

    Returns:
        A functional `keras.Model` mapping `(B, H, W, C)` images to
        `(B, H / 32, W / 32, 2048)` features for sizes that are multiples
        of 32 (7x7 for 224x224), after the last ReLU.

    Raises:
        ValueError: for an unknown depth, a non-channels-last shape, or
            `weights="imagenet"` (no v1.5 ImageNet checkpoint ships with
            Keras; the Places-LT recipe uses `keras.applications` for that).

    Example:

    >>> backbone = resnet_v1_5(50, input_shape=(224, 224, 3))
    >>> backbone.output_shape
    (None, 7, 7, 2048)
    """
    if depth not in DEPTHS:
        raise ValueError(f"`depth` must be one of {sorted(DEPTHS)}. Received: depth={depth!r}")
    if isinstance(weights, str) and weights.lower() == "imagenet":
        raise ValueError(
            "resnet_v1_5 has no ImageNet checkpoint (MiSLAS trains it from scratch). "
            "Pass weights=None, a .weights.h5 file of the same architecture, or use "
            "the keras.applications ResNets (`resnet50`, `resnet152`) for ImageNet weights."
        )
    model = _resnet(
        DEPTHS[depth], input_shape, 64, name or f"resnet{depth}_v1_5", bn_momentum, bn_epsilon
    )
    if weights is not None:
        model.load_weights(weights)
    model.trainable = trainable
    return model


def _resnet(blocks_per_stage, input_shape, base_planes, name, bn_momentum, bn_epsilon):
    """The torchvision ResNet graph; `base_planes` 64 is torchvision's (tests shrink it)."""
    if input_shape is None or len(tuple(input_shape)) != 3:
        raise ValueError(
            f"`input_shape` must be channels-last (H, W, C). Received: {input_shape!r}"
        )
    inputs = keras.Input(shape=tuple(input_shape), name=name + "_input")
    x = _conv(inputs, base_planes, 7, 2, name + "_conv1", 3)
    x = batch_norm(x, name + "_bn1", bn_momentum, bn_epsilon)
    x = keras.layers.ReLU(name=name + "_relu")(x)
    x = keras.layers.ZeroPadding2D(1, data_format="channels_last", name=name + "_maxpool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, data_format="channels_last", name=name + "_maxpool")(x)
    for stage, blocks in enumerate(blocks_per_stage):
        planes = base_planes * 2**stage
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = bottleneck_v1_5(
                x, planes, strides, f"{name}_layer{stage + 1}_{block}", bn_momentum, bn_epsilon
            )
    return keras.Model(inputs, x, name=name)


def resnet50_v1_5(input_shape=(224, 224, 3), weights=None, trainable=True, name="resnet50_v1_5"):
    """ResNet-50 v1.5 (torchvision's / MiSLAS's), the ImageNet-LT and iNaturalist backbone.

    `resnet_v1_5(50, ...)`: 23,508,032 trainable parameters.

    Args:
        input_shape: channels-last image shape `(H, W, 3)`.
        weights: `None` or a Keras weights file (see `resnet_v1_5`).
        trainable: `False` freezes every layer.
        name: model name and layer-name prefix.

    Returns:
        A `keras.Model`: images `(B, H, W, 3)` -> `(B, H/32, W/32, 2048)`.

    Example:

    >>> resnet50_v1_5(input_shape=(224, 224, 3)).output_shape
    (None, 7, 7, 2048)
    """
    return resnet_v1_5(50, input_shape, weights=weights, trainable=trainable, name=name)


def resnet152_v1_5(input_shape=(224, 224, 3), weights=None, trainable=True, name="resnet152_v1_5"):
    """ResNet-152 v1.5 (torchvision's / MiSLAS's), trained from scratch.

    `resnet_v1_5(152, ...)`: 58,143,808 trainable parameters. (The Places-LT
    recipe uses the ImageNet-pretrained `keras.applications` ResNet-152
    instead, `places_resnet152`.)

    Args, Returns: as `resnet50_v1_5` (the same arguments; the same
    `(B, H/32, W/32, 2048)` feature map).

    Example:

    >>> resnet152_v1_5(input_shape=(160, 160, 3)).output_shape
    (None, 5, 5, 2048)
    """
    return resnet_v1_5(152, input_shape, weights=weights, trainable=trainable, name=name)
