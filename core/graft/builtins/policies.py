"""The built-in transfer policies: ``continue``, ``replace_head``, ``layers``, ``fine_tune_top``.

Each is a plugin like any other, registered through the ``graft`` entry points
of the keras-graft distribution.
"""

from __future__ import annotations

from typing import Literal

import attrs

from graft import Adapter, LayerDecision, LayerInfo, SpecProblem, hookimpl, match_pattern
from graft.base.problems import Problems
from graft.plugins.layers import ADAPTABLE, is_pattern
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


def _alpha(_instance, _attribute, value: float | None) -> None:
    if value is not None:
        positive(_instance, _attribute, value)


@attrs.frozen
class AdaptParams:
    """A low-rank adapter's size: ``rank`` and ``alpha`` (default: the rank, a scale of 1)."""

    rank: int = attrs.field(validator=positive)
    alpha: float | None = attrs.field(default=None, validator=_alpha)

    def adapter(self) -> Adapter:
        return Adapter(self.rank, self.alpha)


def adaptable(info: LayerInfo) -> bool:
    return info.class_name in ADAPTABLE


def _unfit(names: set[str], layers: tuple[LayerInfo, ...]) -> str:
    """The layers of ``names`` that cannot be adapted, with their kinds, for a problem's message ('' if none)."""
    kinds = {info.name: info.class_name for info in layers}
    unfit = sorted(name for name in names if kinds[name] not in ADAPTABLE)
    if not unfit:
        return ""
    return (f"{', '.join(f'{name} ({kinds[name]})' for name in unfit)} cannot be adapted; "
            f"adaptable kinds: {', '.join(ADAPTABLE)}")


@attrs.frozen
class LayersParams:
    freeze: list[str] = attrs.field(factory=list)
    train: list[str] = attrs.field(factory=list)
    reinit: list[str] = attrs.field(factory=list)
    default: str = attrs.field(default="train", validator=one_of(("train", "freeze")))
    freeze_batch_norm: bool = True
    lr_scale: dict[str, float] = attrs.field(factory=dict, validator=_scales)
    adapt: dict[str, AdaptParams] = attrs.field(factory=dict)


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
        adapt: {}                   # low-rank adapters: {"gru_*": {rank: 4, alpha: 8}}
    ```

    In ``lr_scale`` and ``adapt`` an exact name wins over a pattern, and the first pattern that
    matches a layer wins over later ones; a layer no ``lr_scale`` entry matches trains at 1.0.
    A layer under ``adapt`` keeps its weights frozen and trains a low-rank adapter (LoRA) beside
    them; it must not be listed under ``freeze``, ``train`` or ``reinit``.  A pattern under
    ``adapt`` adapts the Dense, Conv1D, Conv2D, GRU and LSTM layers it matches and leaves the
    others (batch norms, depthwise convolutions) to ``default``; a name must be one of those kinds.
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
        adapters = _adapters(params.adapt, layers, hits, problems)
        problems.raise_all()
        train = set().union(*hits["train"], *hits["reinit"])
        reinit = set().union(*hits["reinit"])

        def trainable(name: str) -> bool:
            if name in frozen or name in adapters or (params.freeze_batch_norm and name in batch_norm):
                return False
            return name in train or params.default == "train"

        trained = {info.name for info in layers if trainable(info.name)}
        scales = _lr_scales(params.lr_scale, layers, trained | set(adapters))
        return {
            info.name: LayerDecision(
                info.name in trained, "reinit" if info.name in reinit else "load", lr_scale=scales.get(info.name, 1.0),
                adapt=adapters.get(info.name),
            )
            for info in layers
        }


def _adapters(adapt: dict[str, AdaptParams], layers: tuple[LayerInfo, ...], hits: dict[str, list[set[str]]],
              problems: Problems) -> dict[str, Adapter]:
    """Each adapted layer's adapter: exact names first, then patterns in the order given (the first match wins).

    An entry that matches no layer, a layer that cannot be adapted, or one also listed under ``freeze``,
    ``train`` or ``reinit`` is a problem at ``adapt.<entry>``.
    """
    found: dict[str, Adapter] = {}
    for key, size in sorted(adapt.items(), key=lambda item: is_pattern(item[0])):
        try:
            names = set(match_pattern(key, layers, ("adapt", key)))
        except SpecProblem as problem:
            problems.extend(problem)
            continue
        if is_pattern(key):  # a pattern adapts the adaptable layers it matches (``block_16_*``: the convolutions)
            names = {info.name for info in layers if info.name in names and adaptable(info)}
            if not names:
                problems.add(("adapt", key), f"pattern '{key}' matches no layer that can be adapted; "
                             f"adaptable kinds: {', '.join(ADAPTABLE)}")
        unfit = _unfit(names, layers)
        if unfit:
            problems.add(("adapt", key), unfit)
        for other in ("freeze", "train", "reinit"):
            listed = names & set().union(*hits[other])
            if listed:
                problems.add(("adapt", key), f"{_names(listed)} also listed under {other}; a layer under adapt "
                             "keeps its weights frozen and trains an adapter: list it in one place")
        for name in sorted(names):
            found.setdefault(name, size.adapter())
    return found


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
                    "to trained or adapted layers: remove the entry or train the layer",
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
    adapt: AdaptParams | None = None


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

    With ``adapt: {rank: 4}`` the top ``layers`` adaptable layers (Dense, Conv1D, Conv2D, GRU, LSTM)
    of the extractor are adapted instead of trained: their weights stay frozen and a low-rank
    adapter trains beside each.
    """

    @hookimpl
    def transfer_policy(self, params: FineTuneTopParams, layers: tuple[LayerInfo, ...]) -> Decisions:
        candidates = [
            info.name
            for info in layers
            if info.in_extractor and info.has_weights and info.can_train
            and not (params.freeze_batch_norm and info.is_batch_norm)
            and (params.adapt is None or adaptable(info))
        ]
        count = len(candidates) if params.layers == "all" else params.layers
        if count > len(candidates):
            what = "adaptable layers" if params.adapt is not None else "weighted layers that can train"
            raise SpecProblem(
                ("layers",),
                f"the extractor has only {len(candidates)} {what}; use at most that, or all",
            )
        top = candidates[len(candidates) - count:]
        scales = layer_decay([[name] for name in reversed(top)], params.layer_decay)
        adapter = params.adapt.adapter() if params.adapt is not None else None
        return {
            info.name: LayerDecision(
                trainable=(not info.in_extractor) or (info.name in top and adapter is None),
                lr_scale=scales.get(info.name, 1.0),
                adapt=adapter if info.name in top else None,
            )
            for info in layers
        }
