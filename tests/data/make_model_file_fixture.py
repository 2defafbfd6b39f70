"""The Keras model a user brings to ``init: {model: ...}`` in ``tests/test_init_model.py``, and the weights
files only one Keras can write, kept in ``tests/data``.

Run it once under Keras 2 (TensorFlow 2.15) and once under Keras 3::

    /path/to/tf215-venv/bin/python tests/data/make_model_file_fixture.py  # by_name_keras2.h5, weights_keras2.weights.h5
    /path/to/tf2xx-venv/bin/python tests/data/make_model_file_fixture.py  # weights_keras3.weights.h5

``by_name_keras2.h5`` is Keras 2's ``save_weights`` to an ``.h5`` name: weights keyed by layer name (Keras 3
refuses that name).  The ``.weights.h5`` files are what ``save_weights`` writes for that name: keyed by position.
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BY_NAME = os.path.join(HERE, "by_name_keras2.h5")
NAMES = ("gru_1", "gru_2", "gru_3")


def source_model(keras, names=NAMES, units=(4, 4, 4), seed: int = 0, lambda_mark: str | None = None):
    """A model with the layers of ``tests.conftest.TINY_GRU_SPEC``: its first two GRUs in a nested ``encoder``
    model, as users' models often are, every weight set to seeded random values.  ``lambda_mark``: a Lambda
    before the last GRU that creates that file whenever Keras runs it."""
    inputs = keras.Input((12, 3), name="source_input")
    encoder_in = keras.Input((12, 3), name="encoder_input")
    x = keras.layers.GRU(units[0], return_sequences=True, name=names[0])(encoder_in)
    x = keras.layers.GRU(units[1], return_sequences=True, name=names[1])(x)
    features = keras.Model(encoder_in, x, name="encoder")(inputs)
    if lambda_mark is not None:
        code = f"lambda t: (__import__('pathlib').Path({lambda_mark!r}).touch(), t)[1]"
        features = keras.layers.Lambda(eval(code), name="mark")(features)  # noqa: S307 - the point of the test
    features = keras.layers.GRU(units[2], name=names[2])(features)
    level = keras.layers.Dense(1, name="level")(features)
    trend = keras.layers.Dense(3, activation="softmax", name="trend")(features)
    model = keras.Model(inputs, [level, trend], name="users_model")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def main() -> None:
    import keras

    major = int(keras.__version__.split(".")[0])
    model = source_model(keras, seed=7)
    if major == 2:
        model.save_weights(BY_NAME)
    model.save_weights(os.path.join(HERE, f"weights_keras{major}.weights.h5"))
    print(f"Keras {keras.__version__}: written")


if __name__ == "__main__":
    main()
