"""The human form of ``graft plan``: per stage, its data, each layer's fate, what happens to the features."""

from __future__ import annotations

from graft.plan import LOADED, StagePlan
from graft.report import DataSummary
from graft.table import format_table


def render_text(plans: list[StagePlan], data: list[DataSummary] | None = None) -> str:
    """The human form of ``graft plan``; with ``data``, each stage's data summary too."""
    lines = []
    for number, plan in enumerate(plans, start=1):
        start = plan.source or "fresh initialisation"
        lines.append(f"stage {number}/{len(plans)} '{plan.name}': policy {plan.policy}, starts from {start}")
        if data is not None:
            lines.extend(f"  {line}" for line in data_lines(data[number - 1]))
        rows = [("layer", "type", "output shape", "params", "trains", "starting weights")]
        for layer in plan.layers:
            shape = "?" if layer.output_shape is None else str(layer.output_shape).replace("None", "batch")
            where = f"loaded from {layer.source}" if layer.init == LOADED else layer.init
            rows.append(
                (layer.name, layer.class_name, shape, f"{layer.params:,}", "yes" if layer.trainable else "FROZEN", where)
            )
        lines.append(format_table(rows, indent="  "))
        lines.append(f"  trainable parameters: {plan.trainable_params:,} of {plan.total_params:,}")
        if len(plan.rounds) > 1:
            lines.append(f"  trains in up to {len(plan.rounds)} rounds, until the validation loss stops improving:")
            for position, round_ in enumerate(plan.rounds):
                lines.append(f"    round {position}: {round_.label} ({round_.trainable_params:,} trainable)")
        if plan.features:
            lines.append(f"  extractor features: {plan.features}")
        if plan.distribute:
            lines.append(f"  distributed: {plan.distribute}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


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
    return lines
