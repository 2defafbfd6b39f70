"""The confusion matrices counted in Keras's own validation pass (``graft.model.confusion``).

Checked against the matrices counted here from ``model.predict`` with the weights of the
epoch asked for, for every kind of classification head (class ids, one-hot, binary on
probabilities and on logits), and the logs: the counters add no key to the history.
"""

from __future__ import annotations

import numpy as np
import pytest

from graft.base.backend import import_keras
from graft.base.classids import class_ids
from graft.model.confusion import ConfusionHead, confusion_count
from graft.model.losses import HeadLoss, compile_arguments

HEADS = {
    "ids": (HeadLoss("ids", "sparse_categorical_crossentropy", False, ("accuracy",), 1.0), 3, "softmax"),
    "onehot": (HeadLoss("onehot", "categorical_crossentropy", False, ("accuracy",), 1.0), 4, "softmax"),
    "binary": (HeadLoss("binary", "binary_crossentropy", False, ("accuracy",), 1.0), 1, "sigmoid"),
    "logits": (HeadLoss("logits", "binary_crossentropy", True, ("accuracy",), 1.0), 1, None),
}
KINDS = {"ids": ConfusionHead("id", 3), "onehot": ConfusionHead("one_hot", 4), "binary": ConfusionHead("binary", 2),
         "logits": ConfusionHead("binary", 2, threshold=0.0)}


def _data(seed: int, samples: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 6)).astype("float32")
    y = {"ids": rng.integers(0, 3, samples), "onehot": np.eye(4, dtype="float32")[rng.integers(0, 4, samples)],
         "binary": rng.integers(0, 2, (samples, 1)).astype("float32"),
         "logits": rng.integers(0, 2, (samples, 1)).astype("float32")}
    return x, y


def _model(keras):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = [keras.layers.Dense(units, activation=activation, name=name)(hidden)
               for name, (_loss, units, activation) in HEADS.items()]
    return keras.Model(inputs, outputs)


def _fit(keras, counting):
    model = _model(keras)
    losses = {name: loss for name, (loss, _units, _activation) in HEADS.items()}
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  **compile_arguments(keras, losses, counting.metrics if counting else None))
    weights = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))
    x, y = _data(1, 64)
    validation = _data(2, 40)  # batches of 16: a partial last batch is counted too
    history = model.fit(x, y, validation_data=validation, epochs=3, batch_size=16, verbose=0, shuffle=False,
                        callbacks=[keep, *([counting.callback] if counting else [])])
    return model, weights, validation, history.history


def _counted(model, validation) -> dict[str, list[list[int]]]:
    x, y = validation
    answers = dict(zip(model.output_names, model.predict(x, batch_size=16, verbose=0), strict=True))
    matrices = {}
    for name, head in KINDS.items():
        rows = answers[name].reshape(len(x), -1)
        predicted = (rows[:, 0] > head.threshold).astype(int) if head.kind == "binary" else rows.argmax(axis=1)
        matrix = np.zeros((head.classes, head.classes), int)
        np.add.at(matrix, (class_ids(head.kind, y[name]), predicted), 1)
        matrices[name] = matrix.tolist()
    return matrices


def test_each_epochs_matrices_are_those_of_its_weights_on_the_validation_data_only():
    keras = import_keras()
    counting = confusion_count(keras, KINDS)
    model, weights, validation, _history = _fit(keras, counting)
    model.fit(*_data(1, 64), epochs=1, batch_size=16, verbose=0)  # the training step, as traced, counts nothing
    assert all(not np.array(metric.matrix).any() for (metric,) in counting.metrics.values())
    for epoch in range(3):
        model.set_weights(weights[epoch])
        assert counting.at(epoch) == _counted(model, validation), epoch
        assert all(sum(map(sum, matrix)) == 40 for matrix in counting.at(epoch).values())
    assert counting.at(None) == counting.at(2)
    assert counting.at(0) != counting.at(2)  # the weights moved: a matrix of the wrong epoch would show


def test_the_counters_add_nothing_to_the_logs_and_change_no_value():
    keras = import_keras()
    _model_, _weights, _validation, plain = _fit(keras, None)
    _model_, _weights, _validation, counted = _fit(keras, confusion_count(keras, KINDS))
    assert counted.keys() == plain.keys()
    assert not any("confusion" in key for key in counted)
    for key, values in plain.items():
        assert counted[key] == pytest.approx(values, rel=1e-6), key
