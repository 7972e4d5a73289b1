"""LCRegModel with a cosine classifier (normalised features and weights), for LDAM."""

import keras

from lcreg_keras.layers.cosine_classifier import CosineClassifier
from lcreg_keras.lcreg.model import LCRegModel


@keras.saving.register_keras_serializable(package="lcreg_keras")
class CosineLCRegModel(LCRegModel):
    """`LCRegModel` whose classifier is a `CosineClassifier`: logits `s * cos(x, w_j)`.

    Everything else (backbone, latent pool, Eq. 7, stage two) is
    `LCRegModel`'s. This is the model LDAM (Cao et al., 2019) trains: their
    CIFAR ResNet-32 ends in `NormedLinear` and their loss scales its
    cosines by `s = 30`; here the scale is part of the classifier, so
    `predict` returns the logits the softmax was trained on. Compile it with
    `LDAMLoss(class_counts, scale=classifier_scale)`.

    Args:
        backbone, num_classes, **kwargs: as `LCRegModel`.
        classifier_scale: `s`, > 0 (30 in Cao et al.).

    Example:

    >>> from lcreg_keras.backbones import resnet32
    >>> model = CosineLCRegModel(resnet32((28, 28, 1)), num_classes=10, latent=False)
    >>> model.compile(optimizer="sgd", loss=LDAMLoss(counts, scale=30.0))  # doctest: +SKIP
    """

    def __init__(self, backbone, num_classes, classifier_scale=30.0, **kwargs):
        # Read by `_make_classifier`, which `LCRegModel.__init__` calls.
        self.classifier_scale = float(classifier_scale)
        super().__init__(backbone, num_classes, **kwargs)

    def _make_classifier(self):
        return CosineClassifier(
            self.num_classes, cosine_scale=self.classifier_scale, name="classifier"
        )

    def get_config(self):
        config = super().get_config()
        config["classifier_scale"] = self.classifier_scale
        return config
