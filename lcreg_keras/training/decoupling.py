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
tau-normalisation, trains nothing: `lcreg_keras.evaluation.posthoc.TauNormalization`.
"""

from lcreg_keras.training.stage_two import DecoupledStageTwo


class _ClassifierRebalancing(DecoupledStageTwo):
    """`DecoupledStageTwo` with Kang et al.'s switches; subclasses name which classifier parts train.

    Common to cRT and LWS: no label smoothing, one learning rate (`lr_factor`
    1), no mixup, frozen backbone and latents (BatchNorm in inference mode),
    cross-entropy on integer labels, SGD with momentum at `lr`, cosine decay
    over `epochs`, coupled weight decay of what trains.

    Args:
        class_counts: training examples per class.
        epochs: epochs (Kang et al.: 10).
        lr: the learning rate of what trains.
        weight_decay: coupled weight decay of what trains.
        momentum: SGD momentum.
    """

    # (logit_scaling, reinitialize_classifier, train_classifier)
    SWITCHES = None

    def __init__(self, class_counts, epochs=10, lr=0.2, weight_decay=5e-4, momentum=0.9):
        logit_scaling, reinitialize, train_classifier = self.SWITCHES
        super().__init__(
            class_counts, epochs=epochs, lr=lr, lr_factor=1.0, eps_head=0.0, eps_tail=0.0,
            shift_bn=False, weight_decay=weight_decay, momentum=momentum,
            logit_scaling=logit_scaling, reinitialize_classifier=reinitialize,
            train_classifier=train_classifier,
        )


class ClassifierRetraining(_ClassifierRebalancing):
    """cRT: re-initialise the classifier and re-train it on class-balanced batches.

    The classifier's kernel is drawn afresh from its initializer, its bias set
    to 0 and its per-class scaling to 1 (not trained); the rest as in
    `_ClassifierRebalancing`, with `lr` the classifier's learning rate.

    Args: as `_ClassifierRebalancing` (`class_counts`, `epochs`, `lr`,
        `weight_decay`, `momentum`).

    Example:

    >>> crt = ClassifierRetraining(class_counts, epochs=10, lr=0.2)
    >>> crt.fit(model, balanced_dataset, steps_per_epoch=100)  # doctest: +SKIP
    """

    SWITCHES = (False, True, True)


class LearnableWeightScaling(_ClassifierRebalancing):
    """LWS: learn only a per-class scale of the logits on class-balanced batches.

    `logits_j = f_j * (x . w_j + b_j)` with `f` initialised to ones (the
    classifier's logit scaling); kernel and bias stay bit-identical; the rest
    as in `_ClassifierRebalancing`, with `lr` the learning rate of `f`.

    Args: as `_ClassifierRebalancing` (`class_counts`, `epochs`, `lr`,
        `weight_decay`, `momentum`).

    Example:

    >>> lws = LearnableWeightScaling(class_counts, epochs=10, lr=0.2)
    >>> lws.fit(model, balanced_dataset, steps_per_epoch=100)  # doctest: +SKIP
    """

    SWITCHES = (True, False, False)
