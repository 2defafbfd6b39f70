"""The sweep's ``report.md``: a row per trial (its values, the metric, epochs, pruned or not, its folder), the best
marked, and ``params.png``: the metric against each swept value (matplotlib, as a stage's ``curves.png``)."""

from __future__ import annotations

import math
import os
from typing import Any

import attrs

from graft.base.files import fsync_path
from graft.reports.png import save_png
from graft.tuning import study as studies
from graft.tuning.sweepdir import SweepDir
from graft.tuning.vetting import Sweep

REPORT = "report.md"
PLOT = "params.png"


@attrs.frozen
class TrialRow:
    """One trial as the report shows it."""

    number: int
    state: str  # complete | pruned | failed | running
    params: dict[str, Any]
    value: float | None
    epochs: int | None
    folder: str | None


def trial_rows(study: Any) -> list[TrialRow]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(trial.state.name,
                                                                                 trial.state.name.lower())
        value = trial.value if trial.value is not None else (
            trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None)
        rows.append(TrialRow(trial.number, state, dict(trial.params), value, trial.user_attrs.get("epochs"),
                             trial.user_attrs.get("folder")))
    return rows


def markdown(sweep: Sweep, rows: list[TrialRow], best: int | None, plotted: bool) -> str:
    space = sweep.space
    paths = [param.path for param in space.params]
    short = [path.rsplit(".", 2)[-2] + "." + path.rsplit(".", 1)[-1] if path.count(".") else path for path in paths]
    lines = [
        f"# Sweep of stage `{sweep.stage}`", "",
        f"Spec: `{sweep.spec_file.path}`; search space: `{space.path}`; {len(rows)} of {space.trials} trials; "
        f"{space.direction} `{space.metric}`; pruner: {space.pruner}.", "",
    ]
    if best is not None:
        lines += [f"Best: trial {best} (`best/`, marked ★).", ""]
    header = " | ".join(f"`{name}`" for name in short)
    lines += [f"| trial | {header} | {space.metric} | epochs | state | folder |",
              "|---:|" + "---:|" * len(paths) + "---:|---:|---|---|"]
    for row in rows:
        values = [_cell(row.params.get(path)) for path in paths]
        mark = " ★" if row.number == best else ""
        lines.append(f"| {row.number}{mark} | " + " | ".join(values) + f" | {_cell(row.value)} | "
                     f"{row.epochs if row.epochs is not None else ''} | {row.state} | "
                     f"{f'`{row.folder}`' if row.folder else ''} |")
    lines.append("")
    if plotted:
        lines += [f"![{space.metric} against each swept value]({PLOT})", ""]
    lines += ["Pruned trials show the metric of the epoch they were stopped at. Each folder is a run folder: "
              "`graft evaluate`, `predict` and `export` take it.", ""]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def draw(sweep: Sweep, rows: list[TrialRow]):
    """A matplotlib ``Figure``: one panel per swept value, the metric of every trial against it (pruned trials
    hollow)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    params = sweep.space.params
    figure = Figure(figsize=(3.4 * len(params), 2.8), dpi=100, layout="constrained")
    axes = figure.subplots(1, len(params), squeeze=False)[0]
    for ax, param in zip(axes, params, strict=True):
        for state, style in (("complete", {"color": "C0"}), ("pruned", {"facecolors": "none", "edgecolors": "C1"})):
            points = [(row.params[param.path], row.value) for row in rows
                      if row.state == state and param.path in row.params and row.value is not None]
            if points:
                xs = [str(x) for x, _ in points] if param.kind == "choice" else [x for x, _ in points]
                ax.scatter(xs, [y for _, y in points], label=state, **style)
        if param.kind in ("loguniform", "logint"):
            ax.set_xscale("log")
        elif param.kind == "int":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(param.path.rsplit(".", 1)[-1])
        ax.set_ylabel(sweep.space.metric)
        ax.set_title(param.path, fontsize=7)
    axes[0].legend(fontsize=7)
    return figure


def write_sweep_report(sweep_dir: SweepDir, sweep: Sweep, storage: str | None, name: str) -> str | None:
    """Write ``report.md`` (and ``params.png``) of the sweep from its study; its path, or None if the study has no
    trial (or cannot be read)."""
    try:
        study = studies.import_optuna().load_study(study_name=name, storage=storage or sweep_dir.default_storage())
    except Exception:  # noqa: BLE001 -- no study yet (the sweep stopped before it): nothing to tell
        return None
    rows = trial_rows(study)
    if not rows:
        return None
    best = next((row.number for row in rows if row.state == "complete"), None)
    if best is not None:
        best = study.best_trial.number
    plotted = _plot(sweep, rows, os.path.join(sweep_dir.path, PLOT))
    path = os.path.join(sweep_dir.path, REPORT)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(markdown(sweep, rows, best, plotted))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_path(sweep_dir.path)
    return path


def _plot(sweep: Sweep, rows: list[TrialRow], path: str) -> bool:
    if not any(row.value is not None for row in rows):
        return False
    try:
        save_png(draw(sweep, rows), path)
    except Exception:  # noqa: BLE001 -- matplotlib failing costs the plot, not the report
        return False
    return True
