"""Each classification head's confusion matrix on the stage's validation data, counted once the stage trained.

Rows are the true class ids, columns the predicted ones (the largest output; for a
binary head on one unit, above 0 for logits, else above 0.5).  The model runs once
over the validation samples in order, as one more validation epoch would: the
stage's report records the matrices and ``report.md`` shows each class's recall and
precision from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from graft.data.pipeline import batches_in_order
from graft.data.weighting import CLASS_IDS, class_ids
from graft.model.losses import HeadLoss
from graft.planning.stagedata import class_count
from graft.plugins.datasets import Data


def confusion_matrices(
    model: Any, data: Data, losses: Mapping[str, HeadLoss], outputs: Mapping[str, tuple[int, ...]], batch_size: int
) -> dict[str, list[list[int]]]:
    """``{head: matrix}`` for every classification head (one class per sample; ``outputs`` are the heads' output
    shapes) on ``data``'s validation samples; empty without validation data."""
    heads: dict[str, int] = {}
    for name, loss in losses.items():
        count = class_count(loss.loss, tuple(outputs[name]))
        if count:
            heads[name] = count
    if not heads or not data.has_validation:
        return {}
    names = list(model.output_names)
    matrices = {name: np.zeros((count, count), np.int64) for name, count in heads.items()}
    for x, y, _weights in batches_in_order(data, batch_size, validation=True):
        answers = model.predict_on_batch(x)
        by_head = dict(zip(names, answers if isinstance(answers, (list, tuple)) else [answers], strict=True))
        for name, matrix in matrices.items():
            loss = losses[name]
            truth = class_ids(CLASS_IDS[loss.loss], y[name])
            predicted = _predicted(np.asarray(by_head[name]), loss)
            np.add.at(matrix, (truth, predicted), 1)
    return {name: matrix.tolist() for name, matrix in matrices.items()}


def _predicted(outputs: np.ndarray, loss: HeadLoss) -> np.ndarray:
    rows = outputs.reshape(len(outputs), -1)
    if loss.loss == "binary_crossentropy":
        return (rows[:, 0] > (0.0 if loss.from_logits else 0.5)).astype(np.int64)
    return np.argmax(rows, axis=1).astype(np.int64)
