"""ImageNet ResNets from `keras.applications` as feature extractors.

* `resnet50`: the ImageNet-LT backbone;
* `resnet152`: the plain ResNet-152 trunk;
* `places_resnet152`: the Places-LT backbone of the paper (following OLTR /
  Decoupling): ResNet-152 pretrained on ImageNet and frozen, plus one fresh
  trainable bottleneck block on top.

All return the last feature map, `(B, 7, 7, 2048)` for 224x224 inputs, with
no pooling and no classifier.

Weights: `weights=None` (the default) builds randomly initialised models and
never touches the network. `weights="imagenet"` makes Keras download the
ImageNet checkpoint once (into `~/.keras/models`, or `$KERAS_HOME/models`)
and reuse the cached file afterwards; on machines without network access,
copy the file there beforehand or pass a local weights-file path as
`weights`. Pretrained weights expect inputs preprocessed with
`keras.applications.resnet.preprocess_input` (caffe style: RGB->BGR, ImageNet
mean subtracted, no scaling) on 0..255 images, while every pipeline of this
library feeds torchvision-style inputs (`(x / 255 - mean) / std` with
ImageNet's mean and std); so a pretrained trunk starts with `CaffeInput`,
which converts one into the other inside the model.
"""

import warnings

import keras

from keras import ops

from lcreg_keras.backbones.batch_norm import BatchNormalization
from lcreg_keras.backbones.resnet_cifar import _conv_initializer
from lcreg_keras.data.normalization import IMAGENET_MEAN
from lcreg_keras.data.normalization import IMAGENET_STD

# The caffe means (BGR, 0..255) the keras.applications checkpoints expect.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="lcreg_keras")
class CaffeInput(keras.layers.Layer):
    """Turns torchvision-normalised RGB input into caffe-style BGR input.

    `x = (rgb / 255 - mean) / std` becomes `bgr * 255 - caffe_mean`, what the
    pretrained `keras.applications` ResNets were trained on.

    Call arguments:
        inputs: `(B, H, W, 3)` normalised RGB images.

    Returns:
        `(B, H, W, 3)` caffe-style BGR images.
    """

    def call(self, inputs):
        mean = ops.convert_to_tensor(IMAGENET_MEAN, inputs.dtype)
        std = ops.convert_to_tensor(IMAGENET_STD, inputs.dtype)
        rgb = (inputs * std + mean) * 255.0
        return ops.flip(rgb, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def _keras_resnet(builder, input_shape, weights, trainable, name):
    model = builder(
        include_top=False,
        weights=weights,
        input_shape=None if input_shape is None else tuple(input_shape),
        pooling=None,
        name=name if weights is None else name + "_caffe",
    )
    if weights is not None:
        inputs = keras.Input(shape=model.input_shape[1:], name=name + "_input")
        model = keras.Model(inputs, model(CaffeInput(name=name + "_to_caffe")(inputs)), name=name)
    model.trainable = trainable
    return model


def resnet50(input_shape=(224, 224, 3), weights=None, trainable=True, name="resnet50"):
    """ResNet-50 (`keras.applications.ResNet50`) returning the last feature map.

    Args:
        input_shape: channels-last image shape `(H, W, 3)`, at least 32x32;
            `None` accepts any size.
        weights: `None` (random init, default), `"imagenet"` (downloaded once
            and cached by Keras; see the module docstring) or a path to a
            weights file.
        trainable: `False` freezes every layer (BatchNorm then also runs in
            inference mode).
        name: model name.

    Returns:
        A `keras.Model` mapping images `(B, H, W, 3)` to features
        `(B, H/32, W/32, 2048)`: `(B, 7, 7, 2048)` for 224x224 inputs.

    Example:

    >>> backbone = resnet50(input_shape=(224, 224, 3), weights=None)
    >>> backbone.output_shape
    (None, 7, 7, 2048)
    """
    return _keras_resnet(
        keras.applications.ResNet50, input_shape, weights, trainable, name
    )


def resnet152(
    input_shape=(224, 224, 3), weights=None, trainable=True, name="resnet152"
):
    """ResNet-152 (`keras.applications.ResNet152`) returning the last feature map.

    Args:
        input_shape: channels-last image shape `(H, W, 3)`, at least 32x32;
            `None` accepts any size.
        weights: `None` (random init, default), `"imagenet"` (downloaded once
            and cached by Keras) or a path to a weights file.
        trainable: `False` freezes every layer.
        name: model name.

    Returns:
        A `keras.Model` mapping images `(B, H, W, 3)` to features
        `(B, H/32, W/32, 2048)`.

    Example:

    >>> backbone = resnet152(weights="imagenet", trainable=False)
    >>> backbone.output_shape
    (None, 7, 7, 2048)
    """
    return _keras_resnet(
        keras.applications.ResNet152, input_shape, weights, trainable, name
    )


def _bottleneck_head(x, filters, name, bn_momentum, bn_epsilon):
    """Bottleneck block 1x1 -> 3x3 -> 1x1 (x4) with an identity shortcut."""
    out_channels = x.shape[-1]

    def conv_bn(y, f, k, suffix):
        y = keras.layers.Conv2D(
            f,
            k,
            padding="same",
            use_bias=False,
            kernel_initializer=_conv_initializer(),
            data_format="channels_last",
            name=f"{name}_{suffix}_conv",
        )(y)
        return BatchNormalization(
            axis=-1,
            momentum=bn_momentum,
            epsilon=bn_epsilon,
            name=f"{name}_{suffix}_bn",
        )(y)

    y = conv_bn(x, filters, 1, "1")
    y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
    y = conv_bn(y, filters, 3, "2")
    y = keras.layers.ReLU(name=f"{name}_2_relu")(y)
    y = conv_bn(y, out_channels, 1, "3")
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _with_trainable_bottleneck(
    trunk, freeze_trunk, bottleneck_filters, name, bn_momentum, bn_epsilon
):
    """Nests `trunk` (frozen or not) and adds one fresh bottleneck block."""
    trunk.trainable = not freeze_trunk
    inputs = keras.Input(shape=trunk.input_shape[1:], name=name + "_input")
    x = trunk(inputs)
    x = _bottleneck_head(x, bottleneck_filters, name + "_head", bn_momentum, bn_epsilon)
    return keras.Model(inputs, x, name=name)


def places_resnet152(
    input_shape=(224, 224, 3),
    weights=None,
    freeze_trunk=True,
    bottleneck_filters=512,
    name="places_resnet152",
    bn_momentum=0.9,
    bn_epsilon=1e-5,
):
    """Places-LT backbone: frozen ResNet-152 trunk + one trainable bottleneck.

    The paper (like OLTR and Decoupling) uses ResNet-152 pretrained on
    ImageNet for Places-LT, frozen, and learns one extra residual bottleneck
    block on top: 1x1 conv `bottleneck_filters` -> BN -> ReLU -> 3x3 conv
    `bottleneck_filters` -> BN -> ReLU -> 1x1 conv 2048 -> BN, plus the
    identity, -> ReLU. Its convs have no bias and a He-normal init.

    The trunk is nested as the layer `f"{name}_trunk"`; unfreeze it later with
    `model.get_layer(f"{name}_trunk").trainable = True`. A frozen trunk runs
    its BatchNorm layers in inference mode.

    Args:
        input_shape: channels-last image shape `(H, W, 3)`.
        weights: trunk weights: `"imagenet"` is what the paper uses
            (downloaded once and cached by Keras; see the module docstring);
            `None` (default, so that nothing is downloaded implicitly) gives
            a random trunk and warns when it is also frozen; or a path to a
            weights file.
        freeze_trunk: whether the ResNet-152 trunk is frozen (paper: yes).
        bottleneck_filters: width of the new block's inner convs (512).
        name: model name and prefix of the new layers.
        bn_momentum: BatchNorm momentum of the new block (Keras convention).
        bn_epsilon: BatchNorm epsilon of the new block.

    Returns:
        A `keras.Model` mapping images `(B, H, W, 3)` to `(B, H/32, W/32,
        2048)` features, `(B, 7, 7, 2048)` for 224x224 inputs; with a frozen
        trunk, its trainable weights are only those of the new block.

    Example:

    >>> backbone = places_resnet152(weights="imagenet")
    >>> backbone.output_shape
    (None, 7, 7, 2048)
    """
    if weights is None and freeze_trunk:
        warnings.warn(
            "places_resnet152(weights=None, freeze_trunk=True) freezes a randomly "
            "initialised trunk; the paper uses weights='imagenet'.",
            stacklevel=2,
        )
    trunk = resnet152(
        input_shape=input_shape, weights=weights, trainable=True, name=name + "_trunk"
    )
    return _with_trainable_bottleneck(
        trunk, freeze_trunk, bottleneck_filters, name, bn_momentum, bn_epsilon
    )
