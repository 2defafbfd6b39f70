"""What a transfer policy sees of a model, what it decides, and name matching."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from graft.base.problems import Path, Problems, SpecProblem, did_you_mean, listing

EXTRACTOR = "extractor"
INPUT_NAME = "input"  # the composed model's input layer


@attrs.frozen
class LayerInfo:
    """One addressable layer of a built model.

    ``part`` is ``"extractor"`` or the name of the head the layer belongs to.
    ``layer`` is the Keras layer itself, for policies that need more.  ``can_train``
    is False for a layer whose weights are all non-trainable, such as a
    ``Normalization`` layer's statistics: training never changes them, trainable
    or not (BatchNormalization counts as trainable: its moving statistics change
    while it trains).
    """

    name: str
    part: str
    class_name: str
    has_weights: bool
    is_batch_norm: bool
    layer: Any = attrs.field(default=None, eq=False, repr=False)
    can_train: bool = True  # False if every weight is non-trainable (a Normalization layer's statistics)

    @property
    def in_extractor(self) -> bool:
        return self.part == EXTRACTOR


@attrs.frozen
class DeclaredLayer:
    """A layer a plugin says its model will have, known from its params alone (no TensorFlow).

    ``graft validate`` checks the spec's layer names against these; the conformance kit
    checks that they equal the built layers (name, class, weights, batch norm, can train).
    """

    name: str
    class_name: str
    has_weights: bool = True
    is_batch_norm: bool = False
    can_train: bool = True

    def info(self, part: str) -> LayerInfo:
        """The ``LayerInfo`` a policy sees of this layer at ``graft validate`` (``layer`` is None)."""
        return LayerInfo(self.name, part, self.class_name, self.has_weights, self.is_batch_norm, None, self.can_train)

    @classmethod
    def of(cls, info: LayerInfo) -> DeclaredLayer:
        """What a built layer's ``LayerInfo`` says, to compare with a declaration."""
        return cls(info.name, info.class_name, info.has_weights, info.is_batch_norm, info.can_train)


# The layer kinds a low-rank adapter can adapt, and the kernels of each it adapts (``graft.model.adapters``).
ADAPTABLE: dict[str, tuple[str, ...]] = {
    "Dense": ("kernel",),
    "Conv1D": ("kernel",),
    "Conv2D": ("kernel",),
    "GRU": ("kernel", "recurrent_kernel"),
    "LSTM": ("kernel", "recurrent_kernel"),
}


def _positive_int(_instance, attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number >= 1, got {value!r}")


def _positive_number(_instance, attribute, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


@attrs.frozen
class Adapter:
    """A low-rank adapter (LoRA) for one layer: its kernels stay frozen and ``W + (alpha / rank)·A·B`` is used.

    ``A`` (rows of the kernel × ``rank``) starts He-uniform, ``B`` (``rank`` × columns) at zero, so the
    adapted layer starts out computing exactly what the layer computed.  ``alpha`` defaults to ``rank``
    (a scale of 1, as Keras's ``enable_lora``).  Only the kinds in ``ADAPTABLE`` can be adapted, with a
    rank below both dimensions of every kernel adapted.
    """

    rank: int = attrs.field(validator=_positive_int)
    alpha: float | None = attrs.field(default=None, validator=_positive_number)

    @property
    def scale(self) -> float:
        """``alpha / rank``: how much of ``A·B`` is added to the kernel."""
        return (self.rank if self.alpha is None else self.alpha) / self.rank

    @property
    def alpha_value(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)


def _not_with_trainable(instance: LayerDecision, _attribute, value: Adapter | None) -> None:
    if value is not None and not isinstance(value, Adapter):
        raise ValueError(f"adapt must be a graft.Adapter or None, got {type(value).__name__}")
    if value is not None and instance.trainable:
        raise ValueError("a layer is either trained (trainable=True) or adapted (adapt=...), not both")


@attrs.frozen
class LayerDecision:
    """A policy's decision for one layer.

    ``init="load"`` starts the layer from the stage's ``init`` source (a layer
    the source lacks, or with other shapes, is then an error); ``"reinit"``
    starts it freshly initialised.  ``lr_scale`` multiplies the stage's learning
    rate for a trained or adapted layer (discriminative fine-tuning: ``0.1`` trains it ten
    times slower, ``0`` not at all); it must stay ``1.0`` for a frozen layer.
    ``adapt`` (a ``graft.Adapter``, with ``trainable=False``) keeps the layer's weights frozen and trains
    a low-rank update beside them; the stage publishes the merged weights.
    """

    trainable: bool
    init: Literal["load", "reinit"] = attrs.field(
        default="load", validator=attrs.validators.in_(("load", "reinit"))
    )
    lr_scale: float = attrs.field(default=1.0, kw_only=True, validator=lambda _i, _a, value: _check_scale(value))
    adapt: Adapter | None = attrs.field(default=None, kw_only=True, validator=_not_with_trainable)

    @property
    def learns(self) -> bool:
        """True if the layer changes in training: trained, or adapted."""
        return self.trainable or self.adapt is not None


def _check_scale(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"lr_scale must be a finite number >= 0, got {value!r}")


def is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def match_pattern(pattern: str, layers: Sequence[LayerInfo], path: Path = ()) -> list[str]:
    """Names of ``layers`` that ``pattern`` (a name or a glob) matches, in model order.

    Matching nothing raises a ``SpecProblem`` at ``path`` that lists the layers
    and suggests the closest name.
    """
    names = [info.name for info in layers]
    hits = fnmatch.filter(names, pattern)
    if not hits:
        what = f"pattern '{pattern}' matches no layer" if is_pattern(pattern) else f"no layer '{pattern}' in the model"
        raise SpecProblem(path, f"{what}; layers: {listing(names)}{did_you_mean(pattern, names)}")
    return hits


def match_layers(patterns: Sequence[str], layers: Sequence[LayerInfo], path: Path = ()) -> list[str]:
    """Names matched by any of ``patterns``, in model order; every pattern that
    matches nothing is reported at ``path + (index,)``."""
    matched: set[str] = set()
    problems = Problems()
    for index, pattern in enumerate(patterns):
        with problems.collect():
            matched.update(match_pattern(pattern, layers, (*path, index)))
    problems.raise_all()
    return [info.name for info in layers if info.name in matched]


