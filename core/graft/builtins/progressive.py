"""The ``progressive`` policy: progressive fine-tuning, round by round from the top.

Round 0 trains only the heads. Each next round also unfreezes the next group of
extractor layers from the top — by default the next layer that has weights
(BatchNormalization excepted while ``freeze_batch_norm``), or the next of your
``groups`` patterns — and trains for the stage's ``epochs``, from where the last
round ended. The stage stops when the validation loss has not improved by more
than ``min_delta`` for ``patience`` rounds, or when every group is unfrozen, and
keeps the weights of the best round. Use a low learning rate.

```yaml
policy:
  plugin: progressive
  params:
    groups: ["block_16_*", "block_15_*", "block_14_*"]   # optional, top first
    min_delta: 0.0
    patience: 1
    max_rounds: 4               # optional cap, round 0 included
    layer_decay: 0.5            # optional: the top group trains at 0.5x the rate, the next at 0.25x, ...
    adapt: {rank: 4}            # optional: adapt each group with low-rank adapters instead of training it
optimizer: {name: adam, learning_rate: 1.0e-4}
```

With ``adapt`` each round adapts the next group instead of unfreezing it (only Dense, Conv1D,
Conv2D, GRU and LSTM layers count, by default and in ``groups``): the layers' own weights stay
frozen in every round and a low-rank adapter trains beside each.

With ``layer_decay`` the heads keep the stage's learning rate and each group of
extractor layers trains at ``layer_decay ** n`` times it, n counted from the
top group (1); a group keeps its rate in every round.
"""

from __future__ import annotations

import attrs

from graft import LayerDecision, LayerInfo, SpecProblem, hookimpl, match_pattern
from graft.base.problems import Problems
from graft.builtins.policies import AdaptParams, adaptable, decay_in_range, layer_decay
from graft.plugins.rounds import Round, Rounds
from graft.validators import non_negative, positive


@attrs.frozen
class ProgressiveParams:
    groups: list[str] = attrs.field(factory=list)
    min_delta: float = attrs.field(default=0.0, validator=non_negative)
    patience: int = attrs.field(default=1, validator=positive)
    max_rounds: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive))
    freeze_batch_norm: bool = True
    layer_decay: float | None = attrs.field(default=None, validator=decay_in_range)
    adapt: AdaptParams | None = None


class Progressive:
    """Heads first, then one more group of extractor layers per round, top-down."""

    @hookimpl
    def transfer_policy(self, params: ProgressiveParams, layers: tuple[LayerInfo, ...]) -> Rounds:
        groups = _groups(params, layers)
        if params.max_rounds is not None:
            groups = groups[: params.max_rounds - 1]
        scales = layer_decay(groups, params.layer_decay)
        adapter = params.adapt.adapter() if params.adapt is not None else None
        steps = []
        unfrozen: set[str] = set()
        for index in range(len(groups) + 1):
            new = groups[index - 1] if index else []
            unfrozen.update(new)
            decisions = {
                info.name: LayerDecision(
                    trainable=not info.in_extractor or (info.name in unfrozen and adapter is None),
                    lr_scale=scales.get(info.name, 1.0) if info.name in unfrozen else 1.0,
                    adapt=adapter if info.name in unfrozen else None,
                )
                for info in layers
            }
            steps.append(Round("heads" if not index else "+ " + ", ".join(new), decisions, tuple(new)))
        return Rounds(steps, min_delta=params.min_delta, patience=params.patience)


def _groups(params: ProgressiveParams, layers: tuple[LayerInfo, ...]) -> list[list[str]]:
    """Groups of extractor layer names to unfreeze, top group first."""
    extractor = [info for info in layers if info.in_extractor]
    trainable = [
        info for info in extractor
        if info.has_weights and info.can_train and not (params.freeze_batch_norm and info.is_batch_norm)
        and (params.adapt is None or adaptable(info))
    ]
    if not params.groups:
        return [[info.name] for info in reversed(trainable)]
    allowed = {info.name for info in trainable}
    groups, problems = [], Problems()
    taken: set[str] = set()
    for index, pattern in enumerate(params.groups):
        try:
            # matched against every layer, so that a head's name is not reported as missing from the model
            names = [name for name in match_pattern(pattern, layers, ("groups", index)) if name in allowed]
        except SpecProblem as problem:
            problems.extend(problem)
            continue
        if not names:
            what = "that can be adapted" if params.adapt is not None else "that can train"
            problems.add(("groups", index), f"'{pattern}' matches no extractor layer {what}")
        elif taken & set(names):
            problems.add(("groups", index), f"{', '.join(sorted(taken & set(names)))} is in an earlier group too")
        taken.update(names)
        groups.append(names)
    problems.raise_all()
    return groups
