"""The human form of ``graft plan``: per stage, its data, each layer's fate, what happens to the features.

Compacted, a stage of more than ``SHOWN_IN_FULL`` layers folds each run of consecutive
layers with the same fate (same part, trainable or frozen, same starting weights)
that holds at least ``MIN_GROUP`` layers with weights into one row.  A layer without
weights has no fate of its own: it joins the run it sits in (of its own part).
"""

from __future__ import annotations

from collections.abc import Sequence

from graft.base.table import format_table
from graft.planning.records import LOADED, NO_WEIGHTS, DataSummary, LayerPlan, StagePlan

SHOWN_IN_FULL = 30  # a stage of this many layers or fewer keeps a row for every layer
MIN_GROUP = 3  # layers with weights a run needs to fold into one row
HEADER = ("layer", "type", "output shape", "params", "trains", "starting weights")
MAX_SCALES_LISTED = 6  # more layers at scaled rates are summed up in one range in the log and report.md


def render_text(plans: list[StagePlan], data: list[DataSummary] | None = None, compact: bool = False) -> str:
    """The human form of ``graft plan``; with ``data``, each stage's data summary too; ``compact``: runs of
    layers with the same fate in one row (in stages of more than ``SHOWN_IN_FULL`` layers)."""
    lines = []
    for number, plan in enumerate(plans, start=1):
        start = plan.source or "fresh initialisation"
        lines.append(f"stage {number}/{len(plans)} '{plan.name}': policy {plan.policy}, starts from {start}")
        if data is not None:
            lines.extend(f"  {line}" for line in data_lines(data[number - 1]))
        lines.extend(f"  note: {note}" for note in plan.notes)
        rows, grouped = layer_rows(plan.layers, compact)
        lines.append(format_table([HEADER, *rows], indent="  "))
        if grouped:
            lines.append(f"  ({grouped} layers in groups; graft plan --all shows every layer)")
        lines.append(f"  trainable parameters: {plan.trainable_params:,} of {plan.total_params:,}")
        if len(plan.rounds) > 1:
            lines.append(f"  trains in up to {len(plan.rounds)} rounds, until the validation loss stops improving:")
            scales = {layer.name: layer.lr_scale for layer in plan.layers}
            for position, round_ in enumerate(plan.rounds):
                scaled = sorted({f"lr {scale_text(scales[name])}" for name in round_.unfrozen
                                 if scales.get(name, 1.0) != 1.0})
                rate = f", {', '.join(scaled)}" if scaled else ""
                lines.append(f"    round {position}: {round_.label} ({round_.trainable_params:,} trainable{rate})")
        if plan.features:
            lines.append(f"  extractor features: {plan.features}")
        if plan.distribute:
            lines.append(f"  distributed: {plan.distribute}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def layer_rows(layers: Sequence[LayerPlan], compact: bool = False) -> tuple[list[tuple[str, ...]], int]:
    """The table rows of ``layers`` and how many layers share a row: with ``compact``, in a stage of more
    than ``SHOWN_IN_FULL`` layers, one row for each run of ``MIN_GROUP`` or more layers with weights
    and the same fate (and the layers without weights among them)."""
    if not compact or len(layers) <= SHOWN_IN_FULL:
        return [_row(layer) for layer in layers], 0
    rows: list[tuple[str, ...]] = []
    grouped = 0
    for run in _runs(layers):
        if sum(layer.init != NO_WEIGHTS for layer in run) >= MIN_GROUP:
            rows.append(_group_row(run))
            grouped += len(run)
        else:
            rows.extend(_row(layer) for layer in run)
    return rows, grouped


def _fate(layer: LayerPlan) -> tuple | None:
    """What happens to the layer's weights; None for a layer without weights."""
    if layer.init == NO_WEIGHTS:
        return None
    return layer.trainable, layer.init, layer.source, layer.lr_scale, layer.adapter


def _runs(layers: Sequence[LayerPlan]) -> list[list[LayerPlan]]:
    """``layers`` cut where the part or the fate of the layers with weights changes."""
    runs: list[list[LayerPlan]] = []
    fate = None
    for layer in layers:
        own = _fate(layer)
        if runs and runs[-1][0].part == layer.part and (own is None or fate is None or own == fate):
            runs[-1].append(layer)
        else:
            runs.append([layer])
            fate = None
        fate = fate if fate is not None else own
    return runs


def _row(layer: LayerPlan) -> tuple[str, ...]:
    return (layer.name, layer.class_name, _shape(layer), f"{layer.params:,}", *_fate_cells(layer))


def _group_row(run: list[LayerPlan]) -> tuple[str, ...]:
    """One row for ``run``: its first and last names, its types (or ``mixed``), the last layer's output
    shape, the summed params and the fate of its layers with weights."""
    types = list(dict.fromkeys(layer.class_name for layer in run))
    weighted = next(layer for layer in run if layer.init != NO_WEIGHTS)
    return (
        f"{run[0].name} … {run[-1].name} ({len(run)} layers)",
        ", ".join(types) if len(types) <= 2 else "mixed",
        _shape(run[-1]),
        f"{sum(layer.params for layer in run):,}",
        *_fate_cells(weighted),
    )


def _shape(layer: LayerPlan) -> str:
    return "?" if layer.output_shape is None else str(layer.output_shape).replace("None", "batch")


def _fate_cells(layer: LayerPlan) -> tuple[str, str]:
    """The ``trains`` and ``starting weights`` cells."""
    where = f"loaded from {layer.source}" if layer.init == LOADED else layer.init
    if layer.source_layer is not None:
        where += f" (its layer '{layer.source_layer}')"
    rate = "" if layer.lr_scale == 1.0 else f", lr {scale_text(layer.lr_scale)}"
    if layer.adapter is not None:
        return f"adapted (rank {layer.adapter.rank}, {layer.adapter.params:,} parameters{rate})", where
    if not layer.trainable:
        return "FROZEN", where
    return f"yes{rate}", where


def scaled_rates(plan: StagePlan) -> str:
    """The layers that learn at a scaled learning rate, e.g. ``gru_2 ×0, gru_3 ×0.1``, or for many the
    range (``81 layers, from stem_conv ×0.0157 to top_conv ×0.95``); empty if none."""
    scaled = [layer for layer in plan.layers if layer.lr_scale != 1.0]
    if len(scaled) <= MAX_SCALES_LISTED:
        return ", ".join(f"{layer.name} {scale_text(layer.lr_scale)}" for layer in scaled)
    low = min(scaled, key=lambda layer: layer.lr_scale)
    high = max(scaled, key=lambda layer: layer.lr_scale)
    return (f"{len(scaled)} layers, from {low.name} {scale_text(low.lr_scale)} to {high.name} "
            f"{scale_text(high.lr_scale)} (graft plan --all shows each)")


def scale_text(scale: float) -> str:
    """A learning-rate scale as the plan shows it: ``×0.25``, ``×0.0157`` (three significant digits)."""
    return f"×{scale:.3g}"


def data_lines(summary: DataSummary) -> list[str]:
    """A stage's data in a few lines: where from, how many samples, the classes, what was checked, augmentation."""
    counts = [f"{summary.samples:,} training" if summary.samples is not None else "training",
              f"{summary.validation_samples:,} validation" if summary.validation_samples is not None else ""]
    lines = [f"data: {summary.description}: {', '.join(part for part in counts if part)} samples"]
    if summary.classes:
        named = ", ".join(f"{index}={name}" for index, name in enumerate(summary.classes[:20]))
        more = f", ... ({len(summary.classes)} classes)" if len(summary.classes) > 20 else ""
        lines.append(f"  class ids: {named}{more}")
    lines.append(f"  checked: {summary.checked}")
    if summary.augment:
        lines.append(f"  augment (training inputs only): {summary.augment}")
    lines += [f"  {line}" for line in weighting_lines(summary)]
    return lines


MAX_CLASSES_SHOWN = 20


def weighting_lines(summary: DataSummary) -> list[str]:
    """How the stage weighs its samples: each class-weighted head's weight (and training samples) per class
    id, and the heads whose samples the source weighs."""
    lines = []
    for head, classes in summary.heads.items():
        if classes.class_weight is None:
            continue
        counts = classes.counts or []
        shown = [f"{index} ×{weight:.3g}" + (f" ({counts[index]:,})" if index < len(counts) else "")
                 for index, weight in enumerate(classes.weights[:MAX_CLASSES_SHOWN])]
        more = f", ... ({len(classes.weights)} classes)" if len(classes.weights) > MAX_CLASSES_SHOWN else ""
        samples = " (training samples)" if counts else ""
        lines.append(f"class_weight of '{head}' ({classes.class_weight}, training loss only): class id "
                     f"×weight{samples}: {', '.join(shown)}{more}")
    if summary.sample_weights:
        lines.append(f"sample weights from the data source: {', '.join(summary.sample_weights)}")
    return lines
