"""Learning-rate schedules of the MiSLAS / LCReg recipes."""

import math

import keras
from keras import ops


def _with_warmup(lr, step, base_lr, warmup_steps):
    """`lr`, except a linear rise to `base_lr` over the first `warmup_steps` steps."""
    if warmup_steps <= 0:
        return lr
    return ops.where(step < warmup_steps, base_lr * (step + 1.0) / warmup_steps, lr)


@keras.saving.register_keras_serializable(package="lcreg_keras")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then step decay: the CIFAR-LT schedule of LDAM / MiSLAS.

    The learning rate rises linearly from `base_lr / warmup_steps` to
    `base_lr` over the first `warmup_steps` steps, then is multiplied by
    `factors[i]` from step `boundaries[i]` on (CIFAR: warm-up 5 epochs,
    x0.1 at epoch 160, x0.01 at epoch 180, given here in steps).

    Args:
        base_lr: float, the peak learning rate.
        warmup_steps: int >= 0.
        boundaries: increasing step indices where the factor changes.
        factors: multipliers of `base_lr` from each boundary on (same length).

    Example:

    >>> s = WarmupStepDecay(0.1, warmup_steps=5, boundaries=[160], factors=[0.1])
    >>> round(float(s(0)), 4), round(float(s(100)), 4), round(float(s(170)), 4)
    (0.02, 0.1, 0.01)
    """

    def __init__(self, base_lr, warmup_steps=0, boundaries=(), factors=()):
        if len(boundaries) != len(factors):
            raise ValueError(
                "`boundaries` and `factors` must have the same length. "
                f"Received: {len(boundaries)} and {len(factors)}"
            )
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"`boundaries` must increase. Received: {boundaries}")
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.factors = [float(f) for f in factors]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.base_lr, "float32")
        for boundary, factor in zip(self.boundaries, self.factors):
            lr = ops.where(step >= boundary, self.base_lr * factor, lr)
        return _with_warmup(lr, step, self.base_lr, self.warmup_steps)

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "warmup_steps": self.warmup_steps,
            "boundaries": self.boundaries,
            "factors": self.factors,
        }


@keras.saving.register_keras_serializable(package="lcreg_keras")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Optional linear warm-up, then cosine decay to `final_lr` at `total_steps`.

    The large-dataset schedule of MiSLAS (and of stage two).

    Args:
        base_lr: float, the peak learning rate.
        total_steps: int > 0, the step where the cosine reaches `final_lr`.
        warmup_steps: int >= 0.
        final_lr: float, the learning rate at and after `total_steps`.

    Example:

    >>> s = WarmupCosine(0.1, total_steps=100)
    >>> round(float(s(0)), 4), round(float(s(50)), 4), round(float(s(100)), 4)
    (0.1, 0.05, 0.0)
    """

    def __init__(self, base_lr, total_steps, warmup_steps=0, final_lr=0.0):
        if not total_steps > 0:
            raise ValueError(f"`total_steps` must be positive. Received: {total_steps}")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.final_lr = float(final_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        lr = self.final_lr + (self.base_lr - self.final_lr) * cosine
        return _with_warmup(lr, step, self.base_lr, self.warmup_steps)

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_lr": self.final_lr,
        }
