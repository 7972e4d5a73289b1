"""The one check of integer class labels that the data, sampler and model code share."""

import numpy as np


def check_labels(labels, num_classes=None, name="labels", allow_empty=True, integral_floats=False):
    """Labels as a 1-D int64 array of class ids in `[0, num_classes)`, or a clear `ValueError`.

    Args:
        labels: array-like of class ids.
        num_classes: the number of classes C (`None`: only `>= 0` is checked).
        name: the argument's name in the messages.
        allow_empty: False raises on an empty array.
        integral_floats: accept float arrays whose values are whole numbers
            (labels read back from float storage).

    Returns:
        The labels as an int64 NumPy array.

    Example:

    >>> check_labels([0, 2, 1], num_classes=3).tolist()
    [0, 2, 1]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of integer class ids. Received shape {labels.shape}."
        )
    if not labels.size:
        if not allow_empty:
            raise ValueError(f"`{name}` is empty: there is nothing to sample.")
        return labels.astype(np.int64)
    integral = np.issubdtype(labels.dtype, np.integer) or (
        integral_floats
        and np.issubdtype(labels.dtype, np.floating)
        and bool(np.all(np.equal(np.mod(labels, 1), 0)))
    )
    if not integral:
        raise ValueError(f"`{name}` must hold integer class ids. Received dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        bad = int(labels[labels < 0][0])
        raise ValueError(
            f"`{name}` must lie in [0, num_classes). Found the negative label {bad}."
        )
    if num_classes is not None and labels.max() >= num_classes:
        bad = int(labels[labels >= num_classes][0])
        raise ValueError(
            f"`{name}` must lie in [0, num_classes) = [0, {num_classes}). Found the label {bad}."
        )
    return labels
