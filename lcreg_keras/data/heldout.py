"""A held-out split carved from the training data, for choices made after training.

Post-hoc methods with a free parameter (tau-normalisation's `tau`) must pick
it on data the model did not train on, and never on the test set. The
recipes carve this split from the long-tailed training set before stage one,
class by class, so it follows the training distribution; the model trains on
the rest, and the class counts (priors, many / medium / few) are those of the
rest.
"""

import numbers

import numpy as np

from lcreg_keras.data.labels import check_labels

# Folded into the seed so this draw differs from other users of `seed`.
_TAG = 0x484F4C44  # "HOLD"


def heldout_split(labels, fraction, seed=0):
    """Indices of the training part and the held-out part, per class.

    Class `c` with `n_c` examples gives `h_c = round(fraction * n_c)` of them
    to the held-out part, at least 1 when `n_c >= 2` and `fraction > 0`, and
    always keeps at least one for training. Which ones is a seeded random
    choice.

    Args:
        labels: 1-D int array of class ids (>= 0).
        fraction: in `[0, 1)`; 0 holds nothing out.
        seed: int seed of the choice.

    Returns:
        `(train_indices, heldout_indices)`, sorted int64 arrays that partition
        `range(len(labels))`.

    Example:

    >>> labels = np.repeat([0, 1, 2], [100, 10, 2])
    >>> train, held = heldout_split(labels, 0.1, seed=0)
    >>> np.bincount(labels[held]).tolist(), len(train)
    ([10, 1, 1], 100)
    """
    labels = check_labels(labels, allow_empty=False)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0.0 <= float(fraction) < 1.0
    ):
        raise ValueError(f"`fraction` must be a number in [0, 1). Received: {fraction!r}")
    everything = np.arange(len(labels), dtype=np.int64)
    if float(fraction) == 0.0:
        return everything, np.zeros(0, np.int64)
    rng = np.random.default_rng(
        np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, _TAG])
    )
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = len(members)
        take = 0 if n < 2 else min(n - 1, max(1, int(round(float(fraction) * n))))
        if take:
            held.append(rng.permutation(members)[:take])
    held = np.sort(np.concatenate(held)).astype(np.int64) if held else np.zeros(0, np.int64)
    keep = np.ones(len(labels), bool)
    keep[held] = False
    return everything[keep], held
