"""One figure that compares stages: those that share validation data, side by side, metric by metric.

Each stage's ``curves.png`` shows one stage; the point of a transfer run is how
stages compare (transfer against scratch).  Stages that read the same data (the
same source, params and files: ``DataSummary.identity``) form a group; a group of two or more
gets a row of panels, one per validation metric the stages share (the loss of each
head, each metric), with each stage's value per epoch and its final value (the
epoch whose weights it kept) marked and labelled.  An accuracy panel draws the
chance level of its head (the majority-class rate: the validation accuracy of always
answering the training data's most frequent class) and its axis starts at 0.
``comparison`` computes all of it from the reports and histories (``Comparison``,
what tests check); ``draw`` makes the figure.  matplotlib is imported only by
``draw``.  The file is named by a digest of what it shows (``compare-<digest>.png``)
so ``report.md`` links it only while it shows the stages it has.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from graft.records.report import StageReport
from graft.reports.curves import DPI, HISTORY, NOT_METRICS, PANEL_SIZE, VALIDATION, head_of, joined_history
from graft.reports.png import save_png

NAME = re.compile(r"compare-[0-9a-f]{12}\.png\Z")
CHANCE_LINE = "graft-chance-level"  # the gid of a chance level's line (tests find them by it)


@attrs.frozen
class StageSeries:
    """One stage's validation values per epoch (its rounds end to end) and its final value."""

    stage: str
    values: tuple[float, ...]
    final: float | None


@attrs.frozen
class ComparedPanel:
    """One metric of one head (``head`` empty: the total loss) across the stages of a group."""

    head: str
    metric: str
    series: tuple[StageSeries, ...]
    chance: float | None = None

    @property
    def title(self) -> str:
        return f"{self.head}: {self.metric}" if self.head else f"total: {self.metric}"

    @property
    def is_accuracy(self) -> bool:
        return self.metric.endswith("accuracy")


@attrs.frozen
class ComparedGroup:
    """Stages that share validation data (``validation`` says which) and their panels."""

    validation: str
    stages: tuple[str, ...]
    panels: tuple[ComparedPanel, ...]


@attrs.frozen
class Comparison:
    groups: tuple[ComparedGroup, ...]

    @property
    def digest(self) -> str:
        """What the figure shows, as 12 hex digits (its file name)."""
        text = json.dumps(attrs.asdict(self), sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def filename(self) -> str:
        return f"compare-{self.digest}.png"


def comparison(reports: Sequence[StageReport], histories: Mapping[str, Any]) -> Comparison:
    """The groups of ``reports`` that share validation data (two stages or more) and their panels;
    ``histories`` maps a stage to its ``history.json`` content (a stage without one is left out)."""
    groups: dict[tuple[str, str, int | None], list[StageReport]] = {}
    for report in reports:
        if report.data is None or report.stage not in histories:
            continue
        if not any(key.startswith(VALIDATION) for key in report.final_metrics):
            continue
        # the same source, params and files (reports before keras-graft recorded it: the same description)
        key = (report.data.identity or "", report.data.description, report.data.validation_samples)
        groups.setdefault(key, []).append(report)
    found = []
    for (_identity, description, samples), members in groups.items():
        if len(members) < 2:
            continue
        panels = _panels(members, histories)
        if panels:
            where = f"{description}" + (f", {samples:,} validation samples" if samples is not None else "")
            found.append(ComparedGroup(where, tuple(report.stage for report in members), panels))
    return Comparison(tuple(found))


def _panels(members: Sequence[StageReport], histories: Mapping[str, Any]) -> tuple[ComparedPanel, ...]:
    by_key: dict[tuple[str, str], list[StageSeries]] = {}
    for report in members:
        heads = list(report.plan.outputs)
        try:
            joined, _lengths = joined_history(histories[report.stage])
        except ValueError:
            continue  # a damaged history: the stage's own curves.png says so
        for key, values in joined.items():
            name = key[len(VALIDATION):]
            if not key.startswith(VALIDATION) or name in NOT_METRICS:
                continue
            head, metric = _split(name, heads)
            final = report.final_metrics.get(key)
            by_key.setdefault((head, metric), []).append(StageSeries(report.stage, tuple(values), final))
    panels = []
    for (head, metric), series in by_key.items():
        if len(series) < 2:
            continue
        chance = _chance(members, head) if metric.endswith("accuracy") else None
        panels.append(ComparedPanel(head, metric, tuple(series), chance))
    panels.sort(key=lambda panel: (panel.head != "", panel.head, panel.metric != "loss"))
    return tuple(panels)


def _split(name: str, heads: Sequence[str]) -> tuple[str, str]:
    """A Keras metric name as (head, metric): with one head, every name is that head's."""
    if len(heads) == 1:
        return heads[0], name
    if name == "loss":
        return "", "loss"
    head = head_of(name, heads)
    return (head, name[len(head) + 1:]) if head else ("", name)


def _chance(members: Sequence[StageReport], head: str) -> float | None:
    """The majority-class rate of ``head`` on the shared validation data, from the first report that knows it."""
    for report in members:
        classes = report.data.heads.get(head) if report.data is not None else None
        if classes is not None and classes.chance is not None:
            return classes.chance
    return None


# -- drawing -----------------------------------------------------------------------------------


def draw(found: Comparison):
    """A matplotlib ``Figure``: a row per group, a panel per metric, a line per stage."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = max(len(group.panels) for group in found.groups)
    rows = len(found.groups)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.6), dpi=DPI, layout="constrained")
    figure.suptitle("stages on the same validation data")
    for row, group in enumerate(found.groups):
        for column, panel in enumerate(group.panels):
            axes = figure.add_subplot(rows, columns, row * columns + column + 1)
            for series in panel.series:
                epochs = range(1, len(series.values) + 1)
                (line,) = axes.plot(epochs, series.values, marker="o", markersize=3, label=series.stage)
                if series.final is not None and math.isfinite(series.final):
                    axes.axhline(series.final, color=line.get_color(), linewidth=0.6, alpha=0.5)
                    axes.annotate(f"{series.final:.3g}", (len(series.values), series.final), fontsize=7,
                                  color=line.get_color(), xytext=(3, 3), textcoords="offset points")
            if panel.chance is not None:
                axes.axhline(panel.chance, color="0.3", linestyle="--", linewidth=1, gid=CHANCE_LINE,
                             label=f"chance {panel.chance:.3g}")
            if panel.is_accuracy:
                axes.set_ylim(0, 1.02)
            axes.set_title(f"{panel.title} (validation)" + (f"\n{group.validation}" if column == 0 else ""),
                           fontsize=8)
            axes.set_xlabel("epoch", fontsize=8)
            axes.tick_params(labelsize=7)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            axes.legend(fontsize=6)
    return figure


def write_png(found: Comparison, path: str) -> None:
    """Draw ``found`` into ``path`` (PNG), whole or absent."""
    save_png(draw(found), path)


def read_histories(run_path: str, reports: Sequence[StageReport]) -> dict[str, Any]:
    """Each stage's ``history.json`` content; a stage whose history cannot be read is left out."""
    found = {}
    for report in reports:
        try:
            with open(os.path.join(run_path, report.stage, HISTORY), encoding="utf-8") as handle:
                found[report.stage] = json.load(handle)
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return found


def ensure_comparison(run_path: str, found: Comparison, draw_it: bool) -> str:
    """The figure's file name if it is there (drawn now if ``draw_it``; older figures of this run removed),
    else ``""``.  Never raises: a plot is not worth a run."""
    if not found.groups:
        return ""
    path = os.path.join(run_path, found.filename)
    if os.path.lexists(path):
        return found.filename
    if not draw_it:
        return ""
    try:
        write_png(found, path)
    except Exception:  # noqa: BLE001 -- matplotlib missing or failing, a full disk: report.md says it is not there
        return ""
    for name in os.listdir(run_path):
        if NAME.match(name) and name != found.filename:
            os.remove(os.path.join(run_path, name))
    return found.filename
