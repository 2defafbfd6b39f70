"""The table ``graft run`` prints at the end: one row per stage, its final held-out metrics."""

from __future__ import annotations

from graft.base.table import format_table
from graft.records.report import StageReport


def summary_table(reports: list[StageReport]) -> str:
    """Stage, policy, start, trainable parameters, epochs, and the final ``val_*`` metrics
    (the training metrics where a stage has no validation data)."""
    return format_table(summary_rows(reports))


def summary_rows(reports: list[StageReport]) -> list[list[str]]:
    """The cells of ``summary_table``, its header first (``report.md`` shows them as a Markdown table)."""
    metrics: list[str] = []
    for report in reports:
        shown = [key for key in report.final_metrics if key.startswith("val_")] or list(report.final_metrics)
        metrics += [key for key in shown if key not in metrics]
    rows = [["stage", "policy", "starts from", "trainable", "epochs", *metrics]]
    for report in reports:
        final = report.final_metrics
        rows.append(
            [
                report.stage,
                report.plan.policy,
                report.plan.source or "fresh",
                f"{report.plan.trainable_params:,}",
                str(report.epochs_run),
                *(f"{final[key]:.4f}" if key in final else "-" for key in metrics),
            ]
        )
    return rows
