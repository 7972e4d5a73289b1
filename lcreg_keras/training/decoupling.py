"""Kang et al. (2020)'s classifier re-balancing: cRT and LWS, on `DecoupledStageTwo`.

"Decoupling representation and classifier for long-tailed recognition"
trains the representation with plain instance-balanced cross-entropy, then
re-balances only the classifier on class-balanced batches, the backbone
frozen:

- cRT (classifier re-training): the classifier is re-initialised and
  trained from scratch with cross-entropy;
- LWS (learnable weight scaling): the classifier's weights stay as they
  are; only a per-class scale `f_j` of its logits is learned.

Both are `DecoupledStageTwo` with other switches (no label smoothing, the
one classifier learning rate, no mixup, frozen backbone and latent pool), so
they share MiSLAS's stage-two machinery: `apply` / `fit`, the class-aware
sampler for the input (`lcreg_keras.data`, `sampler="class_aware"`), coupled
weight decay and the cosine schedule. The third method of the paper,
tau-normalisation, trains nothing: `lcreg_keras.posthoc.TauNormalization`.
"""

from lcreg_keras.training.stage_two import DecoupledStageTwo


class ClassifierRetraining(DecoupledStageTwo):
    """cRT: re-initialise the classifier and re-train it on class-balanced batches.

    The classifier's kernel is drawn afresh from its initializer, its bias set
    to 0 and its per-class scaling to 1 (not trained); backbone and latents
    are frozen (BatchNorm in inference mode); the loss is cross-entropy on
    integer labels; SGD with momentum at `lr`, cosine decay over `epochs`.

    Args:
        class_counts: training examples per class.
        epochs: epochs (Kang et al.: 10).
        lr: the classifier's learning rate.
        weight_decay: coupled weight decay of the classifier.
        momentum: SGD momentum.

    Example:

    >>> crt = ClassifierRetraining(class_counts, epochs=10, lr=0.2)
    >>> crt.fit(model, balanced_dataset, steps_per_epoch=100)  # doctest: +SKIP
    """

    def __init__(self, class_counts, epochs=10, lr=0.2, weight_decay=5e-4, momentum=0.9):
        super().__init__(
            class_counts, epochs=epochs, lr=lr, lr_factor=1.0, eps_head=0.0, eps_tail=0.0,
            shift_bn=False, weight_decay=weight_decay, momentum=momentum, logit_scaling=False,
            reinitialize_classifier=True, train_classifier=True,
        )


class LearnableWeightScaling(DecoupledStageTwo):
    """LWS: learn only a per-class scale of the logits on class-balanced batches.

    `logits_j = f_j * (x . w_j + b_j)` with `f` initialised to ones (the
    classifier's logit scaling); kernel and bias stay bit-identical, backbone
    and latents frozen; cross-entropy on integer labels; SGD with momentum at
    `lr`, cosine decay over `epochs`.

    Args:
        class_counts: training examples per class.
        epochs: epochs (Kang et al.: 10).
        lr: the learning rate of `f`.
        weight_decay: coupled weight decay of `f`.
        momentum: SGD momentum.

    Example:

    >>> lws = LearnableWeightScaling(class_counts, epochs=10, lr=0.2)
    >>> lws.fit(model, balanced_dataset, steps_per_epoch=100)  # doctest: +SKIP
    """

    def __init__(self, class_counts, epochs=10, lr=0.2, weight_decay=5e-4, momentum=0.9):
        super().__init__(
            class_counts, epochs=epochs, lr=lr, lr_factor=1.0, eps_head=0.0, eps_tail=0.0,
            shift_bn=False, weight_decay=weight_decay, momentum=momentum, logit_scaling=True,
            reinitialize_classifier=False, train_classifier=False,
        )
