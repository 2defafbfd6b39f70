"""Each head's loss, metrics and weight as Keras compiles them.

A cross-entropy on a head whose output layer is linear (the ``dense`` head's
default activation) would treat raw scores as probabilities.  keras-graft makes
that correct by construction: such a head trains on logits (``from_logits=True``,
as the Keras guides recommend) and its accuracy metrics read logits too.  The
saved model then outputs logits; apply a softmax (or sigmoid) to get
probabilities, or give the head a ``softmax``/``sigmoid`` activation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from graft.base.backend import per_head
from graft.spec.records import HeadSpec

# YAML loss name -> the keras.losses class that takes ``from_logits``
CROSS_ENTROPY = {
    "binary_crossentropy": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
}
BINARY_ACCURACY_NAMES = ("accuracy", "binary_accuracy")


@attrs.frozen
class HeadLoss:
    """How one head is trained: ``from_logits`` when its output layer is linear under a cross-entropy."""

    head: str
    loss: str
    from_logits: bool
    metrics: tuple[str, ...]
    weight: float


def outputs_logits(layer: Any) -> bool:
    """True if the layer's activation is linear (``Dense`` without an activation, for instance)."""
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "linear"


def head_losses(model: Any, heads: Mapping[str, HeadSpec]) -> dict[str, HeadLoss]:
    """The training setup of every head of ``model`` (a built keras-graft model)."""
    return {
        name: HeadLoss(
            head=name,
            loss=head.loss,
            from_logits=head.loss in CROSS_ENTROPY and outputs_logits(model.get_layer(name)),
            metrics=tuple(head.metrics),
            weight=head.loss_weight,
        )
        for name, head in heads.items()
    }


def compile_arguments(
    keras, losses: Mapping[str, HeadLoss], extra_metrics: Mapping[str, list[Any]] | None = None
) -> dict[str, Any]:
    """``loss``, ``metrics`` and ``loss_weights`` for ``model.compile``; ``extra_metrics`` are metric objects
    added to a head's own (``graft.model.confusion``'s counters)."""
    extra = extra_metrics or {}
    loss, metrics = per_head(
        {name: _loss(keras, head) for name, head in losses.items()},
        {name: [*(_metric(keras, head, metric) for metric in head.metrics), *extra.get(name, [])]
         for name, head in losses.items()},
    )
    weights = {name: head.weight for name, head in losses.items()}
    return {"loss": loss, "metrics": metrics, "loss_weights": weights if len(weights) > 1 else list(weights.values())}


def _loss(keras, head: HeadLoss):
    if not head.from_logits:
        return head.loss
    return getattr(keras.losses, CROSS_ENTROPY[head.loss])(from_logits=True)


def _metric(keras, head: HeadLoss, metric: str):
    """Accuracy on logits: argmax-based ones read logits as they are; a binary one thresholds at 0."""
    if head.from_logits and head.loss == "binary_crossentropy" and metric in BINARY_ACCURACY_NAMES:
        return keras.metrics.BinaryAccuracy(name=metric, threshold=0.0)
    return metric
