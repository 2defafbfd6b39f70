"""The proofs a stage gives at the level of weights: loaded layers equal their source bitwise,
frozen layers come out of training bitwise unchanged; and the lineage of every layer."""

from __future__ import annotations

from collections.abc import Mapping

from graft.model.adapters import AdapterWeights
from graft.model.builder import BuiltModel
from graft.model.weights import Weights, bitwise_equal, read_weights, snapshot
from graft.planning.records import LOADED, StagePlan
from graft.plugins.layers import LayerDecision
from graft.records.report import LayerCheck, LayerLoad, StageReport
from graft.records.rundir import RunError


def load_by_name(built: BuiltModel, plan: StagePlan, source: str | Weights | None, stage: str) -> dict[str, LayerLoad]:
    """Load every layer the plan loads from ``source`` (a weights.graft.npz path, or the weights read by
    the names they load as), by name, and prove each equals its source; the report keeps the file's own
    name of a renamed layer (``init.rename``) from the plan."""
    report = {layer.name: LayerLoad(layer.init, layer.source) for layer in plan.layers}
    to_load = [layer for layer in plan.layers if layer.init == LOADED]
    if not to_load:
        return report
    if source is None:  # plain code, not assert: a guard must hold under python -O too
        raise RunError(f"stage '{stage}': its plan loads layers but it was given no source to load them from")
    weights = read_weights(source) if isinstance(source, str) else source
    for layer in to_load:
        target = built.layer(layer.name)
        target.set_weights(weights[layer.name])
        if not bitwise_equal(target.get_weights(), list(weights[layer.name])):
            raise RunError(f"stage '{stage}': layer '{layer.name}' differs from {layer.source} after loading")
        report[layer.name] = LayerLoad(layer.init, layer.source, True, layer.source_layer)
    return report


def verify_frozen(built: BuiltModel, decisions: Mapping[str, LayerDecision], before: Weights, stage: str,
                  base_counts: Mapping[str, int] | None = None) -> None:
    """Every frozen layer must be bitwise unchanged (BatchNormalization statistics included); of an adapted
    layer, its own weights (the first ``base_counts[name]`` of its weights; the adapter's follow)."""
    after = snapshot(built.layers)
    counts = base_counts or {}
    for name, decision in decisions.items():
        if decision.trainable:
            continue
        count = counts.get(name, len(after[name])) if decision.adapt is not None else len(after[name])
        if not bitwise_equal(before[name][:count], after[name][:count]) or len(before[name]) != len(after[name]):
            what = f"adapted layer '{name}' changed its own weights" if decision.adapt is not None else (
                f"frozen layer '{name}' changed")
            raise RunError(f"stage '{stage}': {what} during training; nothing was published for this stage")


def verify_merged(start: Weights, end: Weights, trained: Mapping[str, AdapterWeights], stage: str) -> None:
    """Every adapted layer's published weights equal its starting weights plus ``(alpha / rank)·A·B`` (within
    float32 rounding) in the adapted kernels, and bitwise elsewhere."""
    import numpy as np

    for name, adapter in trained.items():
        adapted = {position: kernel for kernel, position in adapter.positions.items()}
        for position, (before, after) in enumerate(zip(start[name], end[name], strict=True)):
            if position in adapted:
                expected = before + adapter.delta(adapted[position])
                good = np.allclose(after, expected, rtol=1e-5, atol=1e-6)
            else:
                good = bitwise_equal([before], [after])
            if not good:
                raise RunError(f"stage '{stage}': adapted layer '{name}' does not hold its weights plus the adapter's "
                               "update after merging; nothing was published for this stage")


def changes(start: Weights, end: Weights, ever_trainable: frozenset[str],
            adapted: frozenset[str] = frozenset()) -> dict[str, LayerCheck]:
    """Per layer with weights: did it train in some round (or an adapter beside it), did its weights change."""
    return {
        name: LayerCheck(trainable=name in ever_trainable, changed=not bitwise_equal(start[name], end[name]),
                         adapted=name in adapted)
        for name in start
        if start[name]
    }


def lineage(plan: StagePlan, stage: str, prior: StageReport | None, file_label: str | None) -> dict[str, list[str]]:
    """Per layer, the stages (or the file) its weights passed through, oldest first.

    ``prior`` is the report of the stage this one starts from; ``file_label`` names
    the file it starts from instead (``file <weights.graft.npz>``, ``model <Keras file>``).
    """
    result = {}
    for layer in plan.layers:
        if layer.init != LOADED:
            result[layer.name] = [stage]
        elif prior is not None:
            result[layer.name] = [*prior.lineage.get(layer.name, [prior.stage]), stage]
        else:
            result[layer.name] = [str(file_label), stage]
    return result
