"""A shared layer-test harness, after keras-hub's `TestCase.run_layer_test`.

`run_layer_test` checks, in one call, what every layer of the project must
satisfy: it builds, its outputs have the expected shapes, it owns the
expected numbers of trainable and non-trainable weights, `get_config` /
`from_config` round-trips, a `.keras` file of a model holding it reloads with
the same outputs, and (when it has trainable weights) one SGD step through it
moves them. Layer-specific maths stays in each layer's own test file.
"""

import os
import tempfile

import keras
import numpy as np
from keras import ops


def _leaves(structure):
    return keras.tree.flatten(structure)


def _float_leaves(structure):
    return [v for v in _leaves(structure) if "float" in str(keras.backend.standardize_dtype(v.dtype))]


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    call_kwargs=None,
    run_training_step=True,
):
    """Builds `layer_cls(**init_kwargs)` on `input_data` and runs the common checks.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: a NumPy array, or a tuple of them (positional inputs; the
            first one is the batched one).
        expected_output_shape: the output's shape, or a structure of shapes
            matching the output structure (tuple / dict).
        expected_num_trainable_weights: int.
        expected_num_non_trainable_weights: int.
        call_kwargs: keyword arguments of `call` (e.g. `training`).
        run_training_step: when the layer has trainable weights, check that
            one SGD step on a scalar of its outputs changes them.

    Returns:
        The built layer.
    """
    call_kwargs = dict(call_kwargs or {})
    inputs = input_data if isinstance(input_data, tuple) else (input_data,)

    # Build and output shapes.
    layer = layer_cls(**init_kwargs)
    outputs = layer(*inputs, **call_kwargs)
    got = keras.tree.map_structure(lambda v: tuple(v.shape), outputs)
    want = expected_output_shape
    assert _shapes(got) == _shapes(want), (got, want)

    # Weight counts.
    assert len(layer.trainable_weights) == expected_num_trainable_weights, [
        w.path for w in layer.trainable_weights
    ]
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, [
        w.path for w in layer.non_trainable_weights
    ]

    # get_config / from_config round trip (and the registered name).
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls and revived.get_config() == config

    # .keras round trip inside a functional model: the same outputs.
    symbolic = [keras.Input(batch_shape=v.shape, dtype=str(v.dtype)) for v in inputs]
    fresh = layer_cls(**init_kwargs)
    model = keras.Model(symbolic, fresh(*symbolic, **call_kwargs))
    before = model(list(inputs))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    after = loaded(list(inputs))
    for a, b in zip(_leaves(before), _leaves(after)):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))

    # One training step moves the trainable weights.
    if run_training_step and expected_num_trainable_weights:
        scalar = _scalar_of(fresh(*symbolic, **call_kwargs))
        trainer = keras.Model(symbolic, scalar)
        trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        start = [ops.convert_to_numpy(w).copy() for w in fresh.trainable_weights]
        trainer.train_on_batch(list(inputs), np.ones((1,), "float32"))
        moved = [
            np.abs(ops.convert_to_numpy(w) - s).max() > 0
            for w, s in zip(fresh.trainable_weights, start)
        ]
        assert any(moved), "one SGD step left every trainable weight unchanged"
    return layer


def _scalar_of(outputs):
    """A `(1,)` tensor depending on every float output (its mean, summed)."""
    total = None
    for leaf in _float_leaves(outputs):
        term = ops.mean(ops.cast(leaf, "float32"))
        total = term if total is None else total + term
    return ops.reshape(total, (1,))


def _shapes(structure):
    if isinstance(structure, dict):
        return {k: _shapes(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)) and structure and not all(
        isinstance(d, (int, type(None))) for d in structure
    ):
        return tuple(_shapes(v) for v in structure)
    return tuple(structure)
