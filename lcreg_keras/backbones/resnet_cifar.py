"""CIFAR-style ResNets (ResNet-20/32/44/56/110) as feature extractors.

This is the backbone of the CIFAR-10/100-LT experiments of LDAM (Cao et al.,
2019), MiSLAS (Zhong et al., 2021) and LCReg: the "ResNet-s" of He et al.
(2016, section 4.2) for 32x32 images.

* stem: 3x3 conv with `width` (16) filters, BatchNorm, ReLU;
* three stages of `n = (depth - 2) / 6` basic blocks with `width`, `2 * width`
  and `4 * width` filters (16/32/64); the first block of stages 2 and 3 has
  stride 2;
* basic block: conv3x3-BN-ReLU-conv3x3-BN, add the shortcut, ReLU;
* convolutions have no bias and a He-normal (PyTorch `kaiming_normal_`,
  untruncated) initializer; BatchNorm uses PyTorch's defaults (momentum 0.1
  in PyTorch terms, i.e. `momentum=0.9` in Keras, epsilon 1e-5).

Shortcut of the downsampling blocks (`shortcut=`):

* `"pad"` (default): option A of He et al., the one LDAM's and MiSLAS's
  `resnet_cifar.py` use: the input is subsampled spatially (`x[:, ::2, ::2]`)
  and zero channels are appended on both sides (`planes // 4` each side in
  those repos). No parameters. ResNet-32 then has the classic 464,154
  parameters with a 10-way classifier, i.e. 463,504 without it.
* `"projection"`: option B, a 1x1 conv with stride 2 plus BatchNorm
  (2,752 more parameters for ResNet-32).

Stride-2 3x3 convs pad one pixel on every side explicitly (as PyTorch's
`padding=1`) instead of using `padding="same"`, whose asymmetric padding
would sample odd pixel positions while the shortcut samples even ones.

The models take channels-last images of any size (for example 32x32x3 or
28x28x1) and return the last feature map `(B, ceil(H/4), ceil(W/4),
4 * width)`, without pooling or classifier.

`data_format="channels_first"` runs the layers on `(B, C, H, W)` tensors
inside the same interface: the input is transposed once after the input
layer and the feature map once before the output, and the weights have the
same shapes and meaning in both formats (a checkpoint loads into either).
It exists for Keras' PyTorch backend, whose convolutions otherwise permute
every channels-last tensor to PyTorch's layout and back
(`tools/benchmark.py levers`, `torch_channels_first`, in `docs/results.md`).
"""

import keras

from keras import ops

from lcreg_keras.backbones.batch_norm import batch_norm

SHORTCUTS = ("pad", "projection")
DATA_FORMATS = ("channels_last", "channels_first")


def _conv_initializer():
    # PyTorch `nn.init.kaiming_normal_(w)`: N(0, 2 / fan_in), not truncated.
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="untruncated_normal"
    )


@keras.saving.register_keras_serializable(package="lcreg_keras")
class PadShortcut(keras.layers.Layer):
    """Parameter-free "option A" shortcut of the CIFAR ResNets.

    Subsamples the spatial dimensions by `strides` (keeping pixels 0, s, 2s,
    ...) and pads the channel axis with zeros up to `filters`, half of the
    extra channels before the input channels and the rest after them, as
    `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))` in the
    LDAM / MiSLAS code.

    Args:
        filters: int, number of output channels (at least the input's).
        strides: int, spatial subsampling factor.
        data_format: `"channels_last"` (default, `(B, H, W, C)`) or
            `"channels_first"` (`(B, C, H, W)`).
        **kwargs: base `keras.layers.Layer` arguments (`name`, ...).

    Returns:
        A layer mapping `(B, H, W, C)` to `(B, ceil(H/s), ceil(W/s), filters)`
        (channels last; the same axes permuted for channels first).

    Example:

    >>> layer = PadShortcut(32, strides=2)
    >>> tuple(layer(keras.ops.ones((2, 8, 8, 16))).shape)
    (2, 4, 4, 32)
    """

    def __init__(self, filters, strides=2, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        if self.strides < 1:
            raise ValueError(f"`strides` must be >= 1, got {strides}.")
        if data_format not in DATA_FORMATS:
            raise ValueError(f"`data_format` must be one of {DATA_FORMATS}, got {data_format!r}.")
        self.data_format = data_format
        self._channel_axis = 1 if data_format == "channels_first" else 3

    def build(self, input_shape):
        channels = input_shape[self._channel_axis]
        if channels is not None and channels > self.filters:
            raise ValueError(
                f"PadShortcut cannot reduce channels: input has {channels}, "
                f"filters={self.filters}."
            )
        self.built = True

    def call(self, inputs):
        s = self.strides
        first = self.data_format == "channels_first"
        if s > 1:
            x = inputs[:, :, ::s, ::s] if first else inputs[:, ::s, ::s, :]
        else:
            x = inputs
        extra = self.filters - inputs.shape[self._channel_axis]
        if extra:
            before = extra // 2
            padding = [[0, 0], [0, 0], [0, 0], [0, 0]]
            padding[self._channel_axis] = [before, extra - before]
            x = ops.pad(x, padding)
        return x

    def compute_output_shape(self, input_shape):
        s = self.strides

        def sub(d):
            return None if d is None else -(-d // s)

        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, sub(input_shape[2]), sub(input_shape[3]))
        return (input_shape[0], sub(input_shape[1]), sub(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "strides": self.strides, "data_format": self.data_format}
        )
        return config


def _conv(x, filters, kernel_size, strides, name, regularizer, data_format):
    if strides > 1 and kernel_size > 1:
        # Symmetric padding, as PyTorch's `padding=k // 2`.
        x = keras.layers.ZeroPadding2D(
            kernel_size // 2, data_format=data_format, name=name + "_pad"
        )(x)
        padding = "valid"
    else:
        padding = "same" if kernel_size > 1 else "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=_conv_initializer(),
        kernel_regularizer=regularizer,
        data_format=data_format,
        name=name,
    )(x)


def _basic_block(x, filters, strides, shortcut, name, bn_kwargs, regularizer, data_format):
    in_channels = x.shape[1 if data_format == "channels_first" else -1]
    y = _conv(x, filters, 3, strides, name + "_conv1", regularizer, data_format)
    y = batch_norm(y, name + "_bn1", **bn_kwargs)
    y = keras.layers.ReLU(name=name + "_relu1")(y)
    y = _conv(y, filters, 3, 1, name + "_conv2", regularizer, data_format)
    y = batch_norm(y, name + "_bn2", **bn_kwargs)
    if strides != 1 or in_channels != filters:
        if shortcut == "pad":
            x = PadShortcut(filters, strides, data_format, name=name + "_shortcut")(x)
        else:
            x = _conv(x, filters, 1, strides, name + "_shortcut_conv", regularizer, data_format)
            x = batch_norm(x, name + "_shortcut_bn", **bn_kwargs)
    y = keras.layers.Add(name=name + "_add")([x, y])
    return keras.layers.ReLU(name=name + "_out")(y)


def cifar_resnet(
    depth,
    input_shape=(32, 32, 3),
    width=16,
    shortcut="pad",
    name=None,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    kernel_regularizer=None,
    data_format="channels_last",
):
    """Builds a CIFAR ResNet of depth `6n + 2` returning its last feature map.

    Args:
        depth: int, `6n + 2` with `n >= 1`: 8, 14, 20, 32 (the LDAM / MiSLAS /
            LCReg backbone), 44, 56, 110, ...
        input_shape: channels-last image shape `(H, W, C)`; any size works,
            spatial dimensions may be `None`.
        width: int, filters of the stem and first stage (16 in the paper);
            the stages have `width`, `2 * width`, `4 * width` filters. Small
            values give tiny models for tests and smoke runs.
        shortcut: `"pad"` (option A, parameter-free, as LDAM / MiSLAS) or
            `"projection"` (option B, 1x1 conv stride 2 + BatchNorm) for the
            blocks that change the shape.
        name: model name; defaults to `f"resnet{depth}"`. Also prefixes
            every layer name, so two backbones can share one graph.
        bn_momentum: BatchNorm moving-average momentum (Keras convention;
            0.9 equals PyTorch's default 0.1).
        bn_epsilon: BatchNorm epsilon (PyTorch's default 1e-5).
        kernel_regularizer: optional regularizer for every conv kernel.
        data_format: the layout the layers compute in: `"channels_last"`
            (default) or `"channels_first"` (transposed once in, once out;
            the model's input and output stay channels last, the weights
            are the same).

    Returns:
        A functional `keras.Model` mapping images `(B, H, W, C)` to the last
        feature map `(B, ceil(H/4), ceil(W/4), 4 * width)`, after the final
        ReLU; no pooling, no classifier.

    Raises:
        ValueError: if `depth` is not `6n + 2` with `n >= 1`, `width` is not a
            positive int, or `shortcut` is unknown.

    Example:

    >>> backbone = cifar_resnet(20, input_shape=(32, 32, 3))
    >>> backbone.output_shape
    (None, 8, 8, 64)
    """
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < 8
        or (depth - 2) % 6
    ):
        raise ValueError(
            "CIFAR ResNet depth must be an int 6n + 2 with n >= 1 (8, 14, 20, "
            f"32, 44, 56, 110, ...), got {depth!r}."
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be a positive int, got {width!r}.")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"`shortcut` must be one of {SHORTCUTS}, got {shortcut!r}.")
    if data_format not in DATA_FORMATS:
        raise ValueError(f"`data_format` must be one of {DATA_FORMATS}, got {data_format!r}.")
    if len(tuple(input_shape)) != 3:
        raise ValueError(
            f"`input_shape` must be channels-last (H, W, C), got {input_shape!r}."
        )
    name = name or f"resnet{depth}"
    blocks = (depth - 2) // 6
    first = data_format == "channels_first"
    bn_kwargs = {"momentum": bn_momentum, "epsilon": bn_epsilon, "axis": 1 if first else -1}

    inputs = keras.Input(shape=tuple(input_shape), name=name + "_input")
    x = keras.layers.Permute((3, 1, 2), name=name + "_to_nchw")(inputs) if first else inputs
    x = _conv(x, width, 3, 1, name + "_stem_conv", kernel_regularizer, data_format)
    x = batch_norm(x, name + "_stem_bn", **bn_kwargs)
    x = keras.layers.ReLU(name=name + "_stem_relu")(x)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(
                x,
                filters,
                strides,
                shortcut,
                f"{name}_stage{stage + 1}_block{block + 1}",
                bn_kwargs,
                kernel_regularizer,
                data_format,
            )
    if first:
        x = keras.layers.Permute((2, 3, 1), name=name + "_to_nhwc")(x)
    return keras.Model(inputs, x, name=name)


def resnet32(input_shape=(32, 32, 3), width=16, name="resnet32", **kwargs):
    """ResNet-32 for CIFAR (LDAM / MiSLAS / LCReg backbone), last feature map.

    Equal to `cifar_resnet(32, ...)`: 3x3 conv stem + 3 stages x 5 basic
    blocks with 16/32/64 filters; 463,504 parameters (trainable, `"pad"`
    shortcut) or 466,256 (`"projection"`), plus the BatchNorm moving
    statistics.

    Args:
        input_shape: channels-last image shape `(H, W, C)`.
        width: filters of the first stage (16); stages use x1, x2, x4.
        name: model name and layer-name prefix.
        **kwargs: more `cifar_resnet` arguments (`shortcut`, `bn_momentum`,
            `bn_epsilon`, `kernel_regularizer`, `data_format`).

    Returns:
        A `keras.Model` mapping `(B, H, W, C)` images to
        `(B, ceil(H/4), ceil(W/4), 4 * width)` features (8x8x64 for CIFAR).

    Example:

    >>> backbone = resnet32()
    >>> features = keras.layers.GlobalAveragePooling2D()(backbone.output)
    >>> logits = keras.layers.Dense(100)(features)
    >>> model = keras.Model(backbone.input, logits)
    """
    return cifar_resnet(32, input_shape=input_shape, width=width, name=name, **kwargs)
