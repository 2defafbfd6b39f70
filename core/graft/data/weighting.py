"""How much each sample counts in each head's loss: the spec's ``class_weight`` and a source's sample weights.

Keras's own ``class_weight`` refuses models with several outputs and has been
ignored with ``tf.data``; keras-graft gives every head a per-sample weight in the
input pipeline instead (``graft.data.pipeline``), the same way for arrays, streams
and cached features.  A head's weight of a sample is the source's sample weight (1
if it gives none) times the head's class weight of the sample's class (training
only, as Keras does).  Keras multiplies each sample's loss by it and averages over
the batch; metrics stay unweighted.  Counting classes and resolving ``balanced``
is pure numpy; ``batch_weights`` runs inside ``tf.data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from graft.base.classids import class_ids, tensor_class_ids
from graft.spec.records import BALANCED


@attrs.frozen
class ClassWeights:
    """One head's weight per class id (``weights[i]`` for class id ``i``), its targets read as ``kind`` says."""

    kind: str
    weights: tuple[float, ...]


@attrs.frozen
class Weighting:
    """The per-sample loss weights of a stage: ``heads`` in the model's output order, the class weights of
    some, and the heads whose samples the data source weighs (``source``)."""

    heads: tuple[str, ...]
    classes: Mapping[str, ClassWeights] = attrs.field(factory=dict)
    source: frozenset[str] = frozenset()

    def weighs(self, training: bool) -> bool:
        """True if some head's samples do not all weigh 1 (class weights count in training only)."""
        return bool(self.source or (training and self.classes))


def count_classes(kind: str, targets: Any, classes: int) -> list[int]:
    """How many samples of ``targets`` (an array, or an ``ArrayFile`` read a chunk at a time) each class id has."""
    import numpy as np

    from graft.plugins.arrayfile import ArrayFile

    counts = np.zeros(classes, np.int64)
    chunks = targets.chunks() if isinstance(targets, ArrayFile) else [targets]
    for chunk in chunks:
        if len(chunk):
            counts += np.bincount(class_ids(kind, chunk), minlength=classes)[:classes]
    return [int(count) for count in counts]


def resolve(class_weight: str | Mapping[int, float], counts: Sequence[int] | None, classes: int) -> tuple[float, ...]:
    """The weight of every class id: ``balanced`` (``samples / (classes present * samples of the class)``, as
    scikit-learn's ``compute_class_weight``; 1.0 for a class without samples) or the mapping given (ids left
    out weigh 1.0)."""
    if class_weight == BALANCED:
        assert counts is not None  # counted before weights are resolved (graft.planning.stagedata)
        total, present = sum(counts), sum(1 for count in counts if count)
        return tuple(total / (present * count) if count else 1.0 for count in counts)
    assert isinstance(class_weight, Mapping)
    return tuple(float(class_weight.get(index, 1.0)) for index in range(classes))


def batch_weights(y: Mapping[str, Any], given: Mapping[str, Any] | None, weighting: Weighting, training: bool) -> Any:
    """The weights of one batch as Keras takes them: a tensor per head in output order (a tuple; one head: the
    bare tensor).  ``given`` are the source's weights of the batch, by head."""
    import tensorflow as tf

    weights = []
    for head in weighting.heads:
        targets = y[head]
        if given is not None and head in given:
            weight = tf.cast(tf.reshape(given[head], [-1]), tf.float32)
        else:
            weight = tf.ones([tf.shape(targets)[0]], tf.float32)
        own = weighting.classes.get(head) if training else None
        if own is not None:
            weight = weight * tf.gather(tf.constant(own.weights, tf.float32), tensor_class_ids(tf, own.kind, targets))
        weights.append(weight)
    return weights[0] if len(weights) == 1 else tuple(weights)
