"""Backbones: image -> last feature map `(B, H', W', C)`, no pooling, no head.

* CIFAR ResNets (`resnet32`, `cifar_resnet`) for CIFAR-10/100-LT;
* ResNet v1.5, torchvision's structure as MiSLAS trains it
  (`resnet50_v1_5` for ImageNet-LT and iNaturalist 2018, `resnet152_v1_5`);
* ImageNet ResNets (v1) from `keras.applications`, for their ImageNet
  weights (`resnet50`, `resnet152`, and `places_resnet152` for Places-LT).

`get_backbone(name, input_shape, **kwargs)` builds one by name.
"""

from lcreg_keras.backbones.applications import places_resnet152
from lcreg_keras.backbones.batch_norm import BatchNormalization
from lcreg_keras.backbones.applications import resnet50
from lcreg_keras.backbones.applications import resnet152
from lcreg_keras.backbones.resnet_cifar import PadShortcut
from lcreg_keras.backbones.resnet_cifar import cifar_resnet
from lcreg_keras.backbones.resnet_cifar import resnet32
from lcreg_keras.backbones.resnet_torchvision import resnet50_v1_5
from lcreg_keras.backbones.resnet_torchvision import resnet152_v1_5
from lcreg_keras.backbones.resnet_torchvision import resnet_v1_5


def _cifar(depth):
    def build(input_shape=(32, 32, 3), **kwargs):
        kwargs.setdefault("name", f"resnet{depth}")
        return cifar_resnet(depth, input_shape=input_shape, **kwargs)

    build.__name__ = f"resnet{depth}"
    build.__doc__ = f"`cifar_resnet({depth}, input_shape, **kwargs)`."
    return build


BACKBONES = {
    "resnet8": _cifar(8),  # tiny, for tests and smoke runs
    "resnet20": _cifar(20),
    "resnet32": resnet32,
    "resnet44": _cifar(44),
    "resnet56": _cifar(56),
    "resnet110": _cifar(110),
    "resnet50_v1_5": resnet50_v1_5,
    "resnet152_v1_5": resnet152_v1_5,
    "resnet50": resnet50,
    "resnet152": resnet152,
    "places_resnet152": places_resnet152,
}


def get_backbone(name, input_shape=None, **kwargs):
    """Builds a backbone by name.

    Args:
        name: one of `"resnet8"` (tiny CIFAR ResNet), `"resnet20"`,
            `"resnet32"`, `"resnet44"`, `"resnet56"`, `"resnet110"` (CIFAR
            ResNets, see `cifar_resnet`), `"resnet50_v1_5"`,
            `"resnet152_v1_5"` (torchvision's ResNet, see `resnet_v1_5`),
            `"resnet50"`, `"resnet152"`, `"places_resnet152"`
            (`keras.applications` ResNets, see `applications`).
            Case-insensitive.
        input_shape: channels-last image shape `(H, W, C)`; `None` keeps the
            builder's default (32x32x3 for CIFAR ResNets, 224x224x3 else).
        **kwargs: passed to the builder (`width`, `shortcut`, `weights`,
            `trainable`, ...); `model_name=` sets the builder's `name`
            (the model name), since `name` here is the backbone name.

    Returns:
        A `keras.Model` mapping images to the last feature map.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.

    Example:

    >>> backbone = get_backbone("resnet32", (32, 32, 3))
    >>> backbone.output_shape
    (None, 8, 8, 64)
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in BACKBONES:
        raise ValueError(
            f"Unknown backbone {name!r}; valid names: {', '.join(BACKBONES)}."
        )
    if "model_name" in kwargs:
        kwargs["name"] = kwargs.pop("model_name")
    if input_shape is not None:
        kwargs["input_shape"] = input_shape
    return BACKBONES[key](**kwargs)


__all__ = [
    "BACKBONES",
    "BatchNormalization",
    "PadShortcut",
    "cifar_resnet",
    "get_backbone",
    "places_resnet152",
    "resnet32",
    "resnet50",
    "resnet50_v1_5",
    "resnet152",
    "resnet152_v1_5",
    "resnet_v1_5",
]
