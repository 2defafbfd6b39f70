"""Which heads of a stage get a confusion matrix in its report: those predicting one class per sample.

The matrices are counted during the validation pass of ``fit`` (``graft.model.confusion``);
rows are the true class ids, columns the predicted ones, and ``report.md`` shows each
class's recall and precision from them.
"""

from __future__ import annotations

from collections.abc import Mapping

from graft.base.classids import CLASS_IDS
from graft.model.confusion import ConfusionHead
from graft.model.losses import HeadLoss
from graft.planning.stagedata import class_count
from graft.plugins.datasets import Data


def classification_heads(
    losses: Mapping[str, HeadLoss], outputs: Mapping[str, tuple[int, ...]], data: Data
) -> dict[str, ConfusionHead]:
    """``{head: classes}`` for every classification head (``outputs`` are the heads' output shapes); empty
    without validation data."""
    if not data.has_validation:
        return {}
    heads: dict[str, ConfusionHead] = {}
    for name, loss in losses.items():
        count = class_count(loss.loss, tuple(outputs[name]))
        if count:
            threshold = 0.0 if loss.loss == "binary_crossentropy" and loss.from_logits else 0.5
            heads[name] = ConfusionHead(CLASS_IDS[loss.loss], count, threshold)
    return heads
