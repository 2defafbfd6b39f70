"""The built-in transfer policies: ``continue``, ``replace_head``, ``layers``, ``fine_tune_top``.

Each is a plugin like any other, registered through the ``graft`` entry points
of the keras-graft distribution.
"""

from __future__ import annotations

from typing import Literal

import attrs

from graft import LayerDecision, LayerInfo, SpecProblem, hookimpl, match_pattern
from graft.base.problems import Problems
from graft.plugins.layers import is_pattern
from graft.validators import non_negative, one_of, positive, unless

Decisions = dict[str, LayerDecision]


class Continue:
    """Load every layer from the stage's ``init`` and train every layer.

    ```yaml
    policy: {plugin: continue}
    ```
    """

    @hookimpl
    def transfer_policy(self, layers: tuple[LayerInfo, ...]) -> Decisions:
        return {info.name: LayerDecision(trainable=True) for info in layers}


@attrs.frozen
class ReplaceHeadParams:
    train_extractor: bool = False


class ReplaceHead:
    """Feature extraction: load and freeze the extractor, start every head fresh.

    The heads may differ in size from the prior stage's.

    ```yaml
    policy: {plugin: replace_head, params: {train_extractor: false}}
    ```
    """

    @hookimpl
    def transfer_policy(self, params: ReplaceHeadParams, layers: tuple[LayerInfo, ...]) -> Decisions:
        return {
            info.name: LayerDecision(trainable=params.train_extractor)
            if info.in_extractor
            else LayerDecision(trainable=True, init="reinit")
            for info in layers
        }


def _scales(_instance, _attribute, value: dict[str, float]) -> None:
    problems = Problems()
    for key, scale in value.items():
        with problems.collect():
            try:
                non_negative(None, None, scale)
            except SpecProblem as problem:
                raise SpecProblem.of([((key, *path), message) for path, message in problem.items]) from None
    problems.raise_all()


def decay_in_range(_instance, _attribute, value: float | None) -> None:
    if value is not None and not 0 < value <= 1:
        raise SpecProblem((), f"must be greater than 0 and at most 1, got {value}")


def layer_decay(names_top_first: list[list[str]], decay: float | None) -> dict[str, float]:
    """``decay ** n`` for every name in the n-th group from the top (n = 1, 2, ...); nothing without a decay."""
    if decay is None:
        return {}
    return {name: decay**number for number, names in enumerate(names_top_first, start=1) for name in names}


@attrs.frozen
class LayersParams:
    freeze: list[str] = attrs.field(factory=list)
    train: list[str] = attrs.field(factory=list)
    reinit: list[str] = attrs.field(factory=list)
    default: str = attrs.field(default="train", validator=one_of(("train", "freeze")))
    freeze_batch_norm: bool = True
    lr_scale: dict[str, float] = attrs.field(factory=dict, validator=_scales)


class Layers:
    """Explicit lists of layer names or glob patterns; every other layer follows ``default``.

    ```yaml
    policy:
      plugin: layers
      params:
        freeze: [gru_1, gru_2]      # frozen, loaded from init
        train: [gru_3, "head_*"]    # trained, loaded from init
        reinit: []                  # trained from a fresh initialisation
        default: train              # or freeze
        freeze_batch_norm: true     # BatchNormalization layers stay frozen (inference mode)
        lr_scale: {gru_3: 0.1}      # learning-rate multipliers of trained layers (names or patterns)
    ```

    In ``lr_scale`` an exact name wins over a pattern, and the first pattern that
    matches a layer wins over later ones; a layer no entry matches trains at 1.0.
    """

    @hookimpl
    def transfer_policy(self, params: LayersParams, layers: tuple[LayerInfo, ...]) -> Decisions:
        problems = Problems()
        hits = {key: _match_each(getattr(params, key), layers, key, problems) for key in ("freeze", "train", "reinit")}
        frozen = set().union(*hits["freeze"])
        batch_norm = {info.name for info in layers if info.is_batch_norm}
        for index, names in enumerate(hits["train"]):
            if names & frozen:
                problems.add(("train", index), f"{_names(names & frozen)} also listed under freeze")
            if params.freeze_batch_norm and names & batch_norm:
                problems.add(
                    ("train", index),
                    f"{_names(names & batch_norm)}: BatchNormalization stays frozen while freeze_batch_norm "
                    "is true; set freeze_batch_norm: false to train it",
                )
        for index, names in enumerate(hits["reinit"]):
            if names & frozen:
                problems.add(
                    ("reinit", index),
                    f"{_names(names & frozen)} would stay frozen at random values; remove it from freeze",
                )
        problems.raise_all()
        train = set().union(*hits["train"], *hits["reinit"])
        reinit = set().union(*hits["reinit"])

        def trainable(name: str) -> bool:
            if name in frozen or (params.freeze_batch_norm and name in batch_norm):
                return False
            return name in train or params.default == "train"

        trained = {info.name for info in layers if trainable(info.name)}
        scales = _lr_scales(params.lr_scale, layers, trained)
        return {
            info.name: LayerDecision(
                info.name in trained, "reinit" if info.name in reinit else "load", lr_scale=scales.get(info.name, 1.0)
            )
            for info in layers
        }


def _lr_scales(lr_scale: dict[str, float], layers, trained: set[str]) -> dict[str, float]:
    """Each trained layer's scale: exact names first, then patterns in the order given (the first match wins).

    An entry that matches no trained layer is a problem at ``lr_scale.<entry>``.
    """
    problems = Problems()
    scales: dict[str, float] = {}
    ordered = sorted(lr_scale.items(), key=lambda item: is_pattern(item[0]))  # stable: exact names first
    for key, scale in ordered:
        with problems.collect():
            names = match_pattern(key, layers, ("lr_scale", key))
            if not set(names) & trained:
                raise SpecProblem(
                    ("lr_scale", key),
                    f"{_names(set(names))} does not train in this stage (frozen); a learning-rate scale applies "
                    "to trained layers: remove the entry or train the layer",
                )
            for name in names:
                if name in trained:
                    scales.setdefault(name, scale)
    problems.raise_all()
    return scales


def _match_each(patterns, layers, key, problems: Problems) -> list[set[str]]:
    """One set of names per pattern (empty where it matches nothing); problems collected, so all are reported."""
    found: list[set[str]] = []
    for index, pattern in enumerate(patterns):
        found.append(set())
        with problems.collect():
            found[-1].update(match_pattern(pattern, layers, (key, index)))
    return found


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names))


@attrs.frozen
class FineTuneTopParams:
    layers: int | Literal["all"] = attrs.field(validator=unless(["all"], positive))
    freeze_batch_norm: bool = True
    layer_decay: float | None = attrs.field(default=None, validator=decay_in_range)


class FineTuneTop:
    """Load everything; train the heads and the top ``layers`` weighted layers of the extractor (``all``: every one).

    Only layers with trainable weights count (an Activation, a Dropout or a Normalization layer's
    statistics unfreeze nothing).
    With ``freeze_batch_norm`` (the default, as the Keras guide advises)
    BatchNormalization layers stay frozen and are not counted.  Pair it with a
    low learning rate.  With ``layer_decay`` (discriminative fine-tuning) the
    heads train at the stage's learning rate, the top extractor layer at
    ``layer_decay`` times it, the next at ``layer_decay**2``, and so on.

    ```yaml
    policy: {plugin: fine_tune_top, params: {layers: 2, layer_decay: 0.5}}
    optimizer: {name: adam, learning_rate: 1.0e-4}
    ```
    """

    @hookimpl
    def transfer_policy(self, params: FineTuneTopParams, layers: tuple[LayerInfo, ...]) -> Decisions:
        candidates = [
            info.name
            for info in layers
            if info.in_extractor and info.has_weights and info.can_train
            and not (params.freeze_batch_norm and info.is_batch_norm)
        ]
        count = len(candidates) if params.layers == "all" else params.layers
        if count > len(candidates):
            raise SpecProblem(
                ("layers",),
                f"the extractor has only {len(candidates)} weighted layers that can train; use at most that, "
                "or all",
            )
        top = candidates[len(candidates) - count:]
        scales = layer_decay([[name] for name in reversed(top)], params.layer_decay)
        return {
            info.name: LayerDecision(
                trainable=(not info.in_extractor) or info.name in top, lr_scale=scales.get(info.name, 1.0)
            )
            for info in layers
        }
