"""Learning-rate schedules against their definitions."""

import math

import keras
import numpy as np
import pytest

from lcreg_keras.training.schedules import WarmupCosine
from lcreg_keras.training.schedules import WarmupStepDecay


def values(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])


def test_cifar_schedule_warmup_then_steps():
    # 200 epochs of 10 steps: warm-up 5 epochs, x0.1 at 160, x0.01 at 180.
    s = WarmupStepDecay(0.1, warmup_steps=50, boundaries=[1600, 1800], factors=[0.1, 0.01])
    steps = [0, 24, 49, 50, 1599, 1600, 1799, 1800, 1999]
    expected = [0.1 * 1 / 50, 0.1 * 25 / 50, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    np.testing.assert_allclose(values(s, steps), expected, rtol=1e-6)


def test_cosine_with_and_without_warmup():
    s = WarmupCosine(0.2, total_steps=100, final_lr=0.02)
    steps = [0, 25, 50, 100, 150]
    expected = [0.02 + 0.18 * 0.5 * (1 + math.cos(math.pi * min(t, 100) / 100)) for t in steps]
    np.testing.assert_allclose(values(s, steps), expected, rtol=1e-6)
    w = WarmupCosine(0.2, total_steps=110, warmup_steps=10)
    np.testing.assert_allclose(values(w, [0, 9, 10, 60, 110]), [0.02, 0.2, 0.2, 0.1, 0.0], rtol=1e-5, atol=1e-7)


def test_serialization_and_bad_arguments():
    for s in (WarmupStepDecay(0.1, 3, [10], [0.5]), WarmupCosine(0.1, 20, 2, 0.001)):
        clone = type(s).from_config(s.get_config())
        np.testing.assert_allclose(values(clone, range(25)), values(s, range(25)))
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
        assert type(again) is type(s)
    with pytest.raises(ValueError, match="boundaries"):
        WarmupStepDecay(0.1, 0, [10, 5], [0.1, 0.01])
    with pytest.raises(ValueError, match="same length"):
        WarmupStepDecay(0.1, 0, [10], [0.1, 0.01])
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosine(0.1, 0)
