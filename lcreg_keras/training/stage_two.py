"""Decoupled stage two (MiSLAS), the classifier re-balancing LCReg builds on (Sec. 3.4)."""

import numpy as np

import keras

from lcreg_keras.losses import LabelAwareSmoothing
from lcreg_keras.training.schedules import WarmupCosine


def frozen_sublayers(model):
    """The outermost frozen layers inside a trainable `model`, recursively.

    A layer with `trainable=False` is listed (not its own sublayers: Keras
    freezes those with it); a trainable one with `layers` is searched. An
    untrainable `model` has no frozen part of its own, so the list is empty:
    its whole-model flag is what stage two sets.

    Args:
        model: a `keras.Model` (or a layer with `layers`).

    Returns:
        A list of layers, in `model.layers` order.

    Example:
        >>> [layer.name for layer in frozen_sublayers(places_backbone)]  # doctest: +SKIP
        ['places_resnet152_trunk']
    """
    if not model.trainable:
        return []
    found = []
    for layer in getattr(model, "layers", []):
        if not layer.trainable:
            found.append(layer)
        else:
            found.extend(frozen_sublayers(layer))
    return found


class DecoupledStageTwo:
    """Switches a trained stage-one `LCRegModel` to stage two and trains it.

    What changes (spec Sec. 5):

    - the backbone and the latent pool are frozen: their weights stay
      bit-identical. With `shift_bn=True` the backbone's BatchNorm layers
      keep running in training mode, so their moving statistics re-estimate
      on the balanced batches while every weight, the affine parameters
      included, stays fixed (MiSLAS's shifted BN); otherwise BatchNorm runs in
      inference mode. A part of the backbone that stage one had frozen
      (`trainable=False` inside a trainable backbone: the ImageNet-pretrained
      trunk of `places_resnet152`) stays frozen, explicitly, BatchNorm in
      inference mode included: MiSLAS keeps the Places-LT trunk in `eval()`
      and re-estimates only the new block's statistics;
    - the classifier keeps training at `lr * lr_factor` (a gradient scale on
      its kernel and bias, equal to a per-group learning rate for SGD with
      momentum), and gets MiSLAS's learnable per-class logit scaling
      (initialised to ones) trained at `lr`;
    - the loss is label-aware smoothing (`LabelAwareSmoothing`, concave by
      default) on integer labels, without mixup (the model never mixes; give
      it a pipeline that does not either: the recipes' stage-two pipelines
      have `mixup_alpha=0`); L_aug and L_recon drop out because nothing they
      could train is trainable;
    - SGD with momentum, coupled weight decay, cosine decay over `epochs`.

    The input must be class-balanced: build it with the class-aware sampler
    (`lcreg_keras.data`, `sampler="class_aware"`), as the recipes do.

    This is a plain object, not a `keras.callbacks.Callback`: stage two
    changes the trainable set, the loss and the dataset, which a callback
    cannot do inside a running `fit`.

    Args:
        class_counts: training examples per class (the long-tailed counts).
        epochs: stage-two epochs (MiSLAS: 10).
        lr: base learning rate of the logit scaling; the classifier uses
            `lr * lr_factor`.
        lr_factor: the classifier's learning-rate factor (spec Sec. 6).
        eps_head, eps_tail: label-aware smoothing of the largest and the
            smallest class.
        smoothing_shape: `"concave"`, `"linear"` or `"convex"`.
        shift_bn: re-estimate BatchNorm statistics on the balanced batches.
        weight_decay: coupled weight decay of the trained parameters.
        momentum: SGD momentum.
        logit_scaling: add the learnable per-class logit scaling.
        reinitialize_classifier: start the classifier afresh (kernel from its
            initializer, bias 0, scaling 1) before training, as cRT does
            (Kang et al., 2020; `lcreg_keras.training.decoupling.ClassifierRetraining`).
        train_classifier: train the classifier's kernel and bias; False keeps
            them bit-identical and trains only the logit scaling, as LWS does
            (`lcreg_keras.training.decoupling.LearnableWeightScaling`).

    Example:

    >>> stage_two = DecoupledStageTwo(class_counts, lr=0.1, lr_factor=0.5)
    >>> stage_two.fit(model, balanced_dataset, steps_per_epoch=100)  # doctest: +SKIP
    """

    def __init__(
        self,
        class_counts,
        epochs=10,
        lr=0.1,
        lr_factor=0.2,
        eps_head=0.3,
        eps_tail=0.0,
        smoothing_shape="concave",
        shift_bn=False,
        weight_decay=5e-4,
        momentum=0.9,
        logit_scaling=True,
        reinitialize_classifier=False,
        train_classifier=True,
    ):
        counts = np.asarray(class_counts)
        if counts.ndim != 1 or counts.size < 2 or (counts < 0).any() or not (counts > 0).any():
            raise ValueError(
                "`class_counts` must be a 1-D array of counts >= 0, one per class, "
                f"not all zero. Received: {class_counts}"
            )
        if not epochs >= 1:
            raise ValueError(f"`epochs` must be >= 1. Received: {epochs}")
        if not lr > 0 or not lr_factor > 0:
            raise ValueError(f"`lr` and `lr_factor` must be positive. Received: {lr}, {lr_factor}")
        self.class_counts = counts
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.lr_factor = float(lr_factor)
        self.eps_head = float(eps_head)
        self.eps_tail = float(eps_tail)
        self.smoothing_shape = smoothing_shape
        self.shift_bn = bool(shift_bn)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.logit_scaling = bool(logit_scaling)
        self.reinitialize_classifier = bool(reinitialize_classifier)
        self.train_classifier = bool(train_classifier)
        if not self.train_classifier and not self.logit_scaling:
            raise ValueError(
                "With `train_classifier=False` and `logit_scaling=False` stage two "
                "would train nothing."
            )
        # Built here so that bad smoothing arguments fail before any work. A
        # class without training examples is smoothed like the smallest.
        self.loss = LabelAwareSmoothing(
            np.maximum(counts, 1).tolist(), head=self.eps_head, tail=self.eps_tail,
            shape=smoothing_shape,
        )

    def apply(self, model, steps_per_epoch, metrics=None):
        """Freezes, re-heads and re-compiles `model` for stage two; returns it."""
        if not model.built:
            raise ValueError("`model` must be a trained (built) LCRegModel.")
        if len(self.class_counts) != model.num_classes:
            raise ValueError(
                f"`class_counts` has {len(self.class_counts)} classes, the model "
                f"{model.num_classes}."
            )
        backbone = model.backbone
        if self.shift_bn:
            # Recorded before `trainable = True`, which (on JAX and PyTorch;
            # TensorFlow skips setting an attribute to its current value)
            # would unfreeze every sublayer, the pretrained trunk included.
            frozen = frozen_sublayers(backbone)
            backbone.trainable = True
            for layer in frozen:
                layer.trainable = False
            for variable in backbone.weights:
                variable.trainable = False
        else:
            backbone.trainable = False
        if model.latent:
            model.latent_pool.trainable = False
        classifier = model.classifier
        if self.reinitialize_classifier:
            classifier.kernel.assign(_fresh_draw(classifier.kernel_initializer, classifier.kernel))
            classifier.bias.assign(np.zeros(classifier.bias.shape, classifier.bias.dtype))
            classifier.scale.assign(np.ones(classifier.scale.shape, classifier.scale.dtype))
        if not self.train_classifier:
            classifier.kernel.trainable = False
            classifier.bias.trainable = False
        if self.logit_scaling:
            classifier.enable_logit_scaling()
        schedule = WarmupCosine(self.lr, total_steps=self.epochs * int(steps_per_epoch))
        model.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=self.momentum),
            loss=self.loss,
            metrics=metrics,
            weight_decay=self.weight_decay,
            classifier_lr_factor=self.lr_factor,
        )
        return model

    def fit(self, model, dataset, steps_per_epoch, metrics=None, **fit_kwargs):
        """`apply`, then `model.fit(dataset, epochs=self.epochs, ...)`; returns the History."""
        self.apply(model, steps_per_epoch, metrics=metrics)
        fit_kwargs.setdefault("shuffle", False)
        # A new training from epoch 0: Keras' BackupAndRestore leaves the
        # epoch it restored in stage one on the model, where `fit` would
        # start stage two (a stage-two backup sets its own epoch again).
        model._initial_epoch = None
        return model.fit(
            dataset, epochs=self.epochs, steps_per_epoch=steps_per_epoch, **fit_kwargs
        )


def _fresh_draw(initializer, variable):
    """New values for `variable` from `initializer`'s distribution.

    An unseeded Keras 3 initializer fixes a seed when it is made, so calling
    the one that built the variable would return its initial values again; a
    copy with a new default seed (from the seeded Python RNG) draws afresh.
    """
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = None
        initializer = type(initializer).from_config(config)
    return initializer(variable.shape, variable.dtype)
