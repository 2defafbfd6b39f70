"""Each classification head's confusion matrix, counted by the validation pass Keras runs anyway.

A stage's report records, per classification head, how its validation samples were
classified (rows: the true class id, columns: the predicted one, the largest output;
for a binary head on one unit, above 0 for logits, else above 0.5).  Running the model
over the validation data once more after ``fit`` would cost a trace of the model and a
pass over the data: instead a metric per head counts the matrix in Keras's own
validation step.  Keras resets every metric before each validation pass, so at the end
of an epoch the metric holds that epoch's validation counts; a callback copies them.
The metric's ``result()`` is empty, so it adds nothing to the logs, the history or the
callbacks' files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from graft.base.classids import tensor_class_ids

Matrix = list[list[int]]


@attrs.frozen
class ConfusionHead:
    """How a head's targets and outputs name a class: ``kind`` as ``graft.base.classids.CLASS_IDS`` reads
    targets (``id``, ``one_hot``, ``binary``), ``classes`` how many, ``threshold`` for a binary head."""

    kind: str
    classes: int
    threshold: float = 0.5


@attrs.frozen
class ConfusionCount:
    """The metrics to compile into one ``fit`` (``{head: [metric]}``) and the callback that keeps each epoch's
    matrices; ``at(epoch)`` gives ``{head: matrix}`` after the validation pass of that epoch (0-based)."""

    metrics: dict[str, list[Any]]
    callback: Any

    def leave_out_of(self, metrics: Any) -> None:
        """Take the counters out of the ``metrics`` given to ``compile``, once ``fit`` is done: Keras keeps that
        object as the compile config it saves, and a saved model must name no class of keras-graft's (plain
        Keras loads ``model.keras``)."""
        ours = {id(metric) for items in self.metrics.values() for metric in items}
        for items in metrics.values() if isinstance(metrics, dict) else [metrics]:
            items[:] = [metric for metric in items if id(metric) not in ours]

    def at(self, epoch: int | None) -> dict[str, Matrix]:
        """The matrices of ``epoch``, or of the last epoch if None; empty if no epoch ran."""
        epochs = self.callback.epochs
        if not epochs:
            return {}
        return epochs[-1 if epoch is None else epoch]


def confusion_count(keras, heads: Mapping[str, ConfusionHead]) -> ConfusionCount:
    """Metrics counting each head's validation confusion matrix, and the callback reading them every epoch.

    The callback also tells the metrics when Keras is validating: the validation step, traced
    then, counts; the training step, traced while training, has no counting in it at all.
    """
    validating = [False]
    metrics = {head: _metric(keras, classes, validating) for head, classes in heads.items()}

    class EpochConfusion(keras.callbacks.Callback):
        """Copies every head's counts at the end of each epoch (after its validation pass)."""

        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[dict[str, Matrix]] = []

        def on_test_begin(self, logs=None):
            validating[0] = True

        def on_test_end(self, logs=None):
            validating[0] = False

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append({head: np.array(metric.matrix).astype(np.int64).tolist()
                                for head, metric in metrics.items()})

    return ConfusionCount({head: [metric] for head, metric in metrics.items()}, EpochConfusion())


def _metric(keras, head: ConfusionHead, validating: list[bool]) -> Any:
    import tensorflow as tf

    count = head.classes

    class ValidationConfusion(keras.metrics.Metric):
        """Counts (true class, predicted class) pairs; reports nothing to the logs."""

        def __init__(self) -> None:
            super().__init__(name="graft_confusion")
            self.matrix = self.add_weight(name="matrix", shape=(count, count), initializer="zeros", dtype="int64")

        def update_state(self, y_true, y_pred, sample_weight=None):
            if not validating[0]:  # traced into the training step: count nothing there
                return
            truth = tensor_class_ids(tf, head.kind, y_true)
            rows = tf.reshape(y_pred, [tf.shape(y_pred)[0], -1])
            if head.kind == "binary":
                predicted = tf.cast(rows[:, 0] > head.threshold, tf.int64)
            else:
                predicted = tf.argmax(rows, axis=1, output_type=tf.int64)
            inside = (truth >= 0) & (truth < count)  # a target outside the classes is not counted
            cells = tf.boolean_mask(truth * count + predicted, inside)
            counts = tf.math.bincount(cells, minlength=count * count, maxlength=count * count, dtype=tf.int64)
            self.matrix.assign_add(tf.reshape(counts, (count, count)))

        def reset_state(self):  # Keras 2 sets every variable to a scalar 0
            self.matrix.assign(tf.zeros((count, count), tf.int64))

        def result(self):
            return {}

    return ValidationConfusion()
