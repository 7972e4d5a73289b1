"""lcreg_keras.data.labels.check_labels: the one label check."""

import numpy as np
import pytest

from lcreg_keras.data.labels import check_labels


def test_valid_labels_come_back_as_int64():
    out = check_labels(np.array([2, 0, 1], "int32"), num_classes=3)
    assert out.dtype == np.int64 and out.tolist() == [2, 0, 1]
    assert check_labels(np.array([], "int64")).size == 0
    assert check_labels(np.array([1.0, 0.0]), integral_floats=True).tolist() == [1, 0]


@pytest.mark.parametrize(
    "labels,kwargs,match",
    [
        (np.zeros((2, 2), "int64"), {}, "1-D"),
        (np.array([0.5, 1.0]), {"integral_floats": True}, "integer class ids"),
        (np.array([1.0, 0.0]), {}, "integer class ids"),
        (np.array([0, -1]), {"num_classes": 3}, "negative label -1"),
        (np.array([0, 3, 4]), {"num_classes": 3}, r"\[0, 3\). Found the label 3"),
        (np.array([], "int64"), {"allow_empty": False}, "empty"),
    ],
)
def test_bad_labels_raise_with_the_reason(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_labels(labels, **kwargs)


def test_the_name_appears_in_the_message():
    with pytest.raises(ValueError, match="`y_train`"):
        check_labels(np.array([5]), num_classes=2, name="y_train")
