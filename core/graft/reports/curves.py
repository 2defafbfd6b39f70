"""``curves.png`` of a finished stage: loss and metrics per epoch, training against validation.

One row of panels per head (its loss, then each metric), after a row for the total
loss when the model has several heads; anything else Keras recorded (a learning
rate) gets a row of its own.  A stage trained in rounds has its epochs laid end to
end, a dotted line where each round starts, the rounds labelled and the kept one
shaded.  ``stage_curves`` reads what a stage wrote; ``draw`` makes a matplotlib
``Figure`` (never pyplot, never a GUI); ``write_png`` writes it atomically.
matplotlib is imported only by ``draw``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from graft.records.report import StageReport
from graft.records.rundir import RunError
from graft.reports.png import save_png

FILENAME = "curves.png"
HISTORY = "history.json"  # as graft.runs.stagerun writes it
VALIDATION = "val_"
NOT_METRICS = frozenset({"learning_rate", "lr"})  # what callbacks add to a history (Keras 3, Keras 2)
ROUND_LINE = "graft-round-start"  # the gid of the dotted line where a round starts (tests find them by it)
PANEL_SIZE = (3.4, 2.4)  # inches
DPI = 100

History = Mapping[str, Sequence[float]]


@attrs.frozen
class Panel:
    """One plot: a series over epochs, from training and (where there is validation data) validation."""

    title: str
    train: tuple[float, ...] | None
    validation: tuple[float, ...] | None


@attrs.frozen
class RoundMark:
    """Where a round's epochs start (1-based), its label, and whether its weights were kept."""

    start: int
    epochs: int
    label: str
    kept: bool


@attrs.frozen
class Curves:
    """Everything ``curves.png`` shows: rows of panels (a row per head) and the rounds, if any."""

    stage: str
    rows: tuple[tuple[Panel, ...], ...]
    rounds: tuple[RoundMark, ...] = ()

    @property
    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row]


def curves_of(stage: str, history: Any, heads: Sequence[str], round_labels: Sequence[tuple[str, bool]] = ()) -> Curves:
    """The curves of one stage from its ``history.json`` content (a Keras history, or ``{"rounds": [...]}``
    of one per round), the names of its heads and, per round, its label and whether it was kept.
    ``ValueError`` if ``history`` is neither."""
    joined, lengths = joined_history(history)
    marks = []
    start = 1
    for index, epochs in enumerate(lengths):
        label, kept = round_labels[index] if index < len(round_labels) else (f"round {index}", False)
        marks.append(RoundMark(start, epochs, f"r{index} {label}".strip(), kept))
        start += epochs
    return Curves(stage, _rows(joined, heads), tuple(marks) if len(lengths) > 1 else ())


def joined_history(history: Any) -> tuple[dict[str, list[float]], list[int]]:
    """A stage's ``history.json`` content as one series per Keras key, its rounds end to end (NaN where a round
    did not log a key), and the epochs of each round.  ``ValueError`` if it is not a history."""
    if isinstance(history, Mapping) and set(history) == {"rounds"}:
        parts = history["rounds"]
        if not isinstance(parts, list) or not parts:
            raise ValueError("'rounds' is not a non-empty list of Keras histories")
    else:
        parts = [history]
    parts = [_checked(part) for part in parts]
    joined: dict[str, list[float]] = {}
    lengths = []
    start = 1
    for part in parts:
        epochs = max((len(values) for values in part.values()), default=0)
        for key in dict.fromkeys([*joined, *part]):
            joined.setdefault(key, [math.nan] * (start - 1))
            joined[key].extend(part.get(key, [math.nan] * epochs))
        lengths.append(epochs)
        start += epochs
    return joined, lengths


def stage_curves(folder: str, report: StageReport) -> Curves:
    """The curves of the finished stage in ``folder`` (its ``history.json``, its report for the heads and rounds)."""
    path = os.path.join(folder, HISTORY)
    try:
        with open(path, encoding="utf-8") as handle:
            history = json.load(handle)
        return curves_of(report.stage, history, list(report.plan.outputs),
                         [(result.label, result.kept) for result in report.rounds])
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(
            f"cannot draw the curves of stage '{report.stage}': {path} is not a Keras history ({exc})"
        ) from None


def ensure_curves(folder: str, report: StageReport) -> str:
    """Draw ``curves.png`` into the finished stage's ``folder`` unless something of that name is there;
    ``""`` when it is there, else why it could not be drawn (matplotlib missing or failing, a damaged
    history, a full disk).  Never raises: a plot is not worth a trained stage."""
    path = os.path.join(folder, FILENAME)
    if os.path.lexists(path):
        return ""
    try:
        write_png(stage_curves(folder, report), path)
    except RunError as exc:
        return str(exc)
    except ImportError as exc:
        return f"matplotlib cannot be imported ({exc}); pip install matplotlib"
    except Exception as exc:  # noqa: BLE001 -- matplotlib (or its fonts, or the disk) failing in any way
        return f"drawing it failed ({type(exc).__name__}: {exc})"
    return ""


def _checked(part: Any) -> dict[str, list[float]]:
    if not isinstance(part, Mapping):
        raise ValueError(f"expected a mapping of metric names to lists of numbers, got {type(part).__name__}")
    checked = {}
    for key, values in part.items():
        if not isinstance(values, list) or not all(
            isinstance(value, (int, float)) and not isinstance(value, bool) for value in values
        ):
            raise ValueError(f"'{key}' is not a list of numbers")
        checked[str(key)] = [float(value) for value in values]
    return checked


def _rows(history: dict[str, list[float]], heads: Sequence[str]) -> tuple[tuple[Panel, ...], ...]:
    """A row per head (loss first, then its metrics in the history's order), after the total loss row of a
    model with several heads; what belongs to no head in a last row."""
    names = [key for key in history if not key.startswith(VALIDATION)]
    validation_only = [key[len(VALIDATION):] for key in history if key.startswith(VALIDATION)]
    names += [name for name in validation_only if name not in names]
    single = heads[0] if len(heads) == 1 else None
    owned: dict[str, list[tuple[str, str]]] = {head: [] for head in heads}
    total: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for name in names:
        head = None if name in NOT_METRICS else single or head_of(name, heads)
        if name == "loss":
            (owned[single] if single else total).append((name, "loss"))
        elif head is None:
            other.append((name, name))
        else:
            owned[head].append((name, name if single else name[len(head) + 1:]))
    rows = []
    for title, series in [("total", total), *owned.items(), ("other", other)]:
        series.sort(key=lambda item: item[1] != "loss")  # the loss first, metrics in their order
        if series:
            rows.append(tuple(
                Panel(f"{title}: {label}", _series(history, name), _series(history, VALIDATION + name))
                for name, label in series
            ))
    return tuple(rows)


def head_of(name: str, heads: Sequence[str]) -> str | None:
    """The head a Keras history key of a multi-output model belongs to (``trend_accuracy`` -> ``trend``):
    the longest head name it starts with, followed by ``_``."""
    found = [head for head in heads if name.startswith(head + "_")]
    return max(found, key=len) if found else None


def _series(history: dict[str, list[float]], key: str) -> tuple[float, ...] | None:
    return tuple(history[key]) if key in history else None


# -- drawing -----------------------------------------------------------------------------------


def draw(curves: Curves):
    """A matplotlib ``Figure`` (not registered with pyplot) with one Axes per panel, a row per head."""
    from matplotlib.figure import Figure

    columns = max((len(row) for row in curves.rows), default=1)
    rows = max(len(curves.rows), 1)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.5), dpi=DPI, layout="constrained")
    figure.suptitle(f"stage '{curves.stage}'" + (f", {len(curves.rounds)} rounds" if curves.rounds else ""))
    for row_index, row in enumerate(curves.rows):
        for column, panel in enumerate(row):
            axes = figure.add_subplot(rows, columns, row_index * columns + column + 1)
            _draw_panel(axes, panel, curves.rounds, labelled=row_index == 0)
    return figure


def _draw_panel(axes, panel: Panel, rounds: Sequence[RoundMark], labelled: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    for values, label, style in [(panel.train, "training", "-"), (panel.validation, "validation", "--")]:
        if values is not None:
            axes.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3, label=label)
    axes.set_title(panel.title, fontsize=9)
    axes.set_xlabel("epoch", fontsize=8)
    axes.tick_params(labelsize=7)
    epochs = max((len(values) for values in (panel.train, panel.validation) if values is not None), default=1)
    axes.set_xlim(0.5, epochs + 0.5)  # whole epochs, one epoch included
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    for mark in rounds:
        if mark.start > 1:
            axes.axvline(mark.start - 0.5, color="0.5", linestyle=":", linewidth=1, gid=ROUND_LINE)
        if mark.kept:
            axes.axvspan(mark.start - 0.5, mark.start + mark.epochs - 0.5, color="tab:green", alpha=0.08)
    if rounds and labelled:  # the rounds named above the first row, each over its own epochs
        top = axes.secondary_xaxis("top")
        top.set_xticks([mark.start + (mark.epochs - 1) / 2 for mark in rounds],
                       [mark.label + (" (kept)" if mark.kept else "") for mark in rounds])
        top.tick_params(labelsize=6, length=0, labelrotation=30)
    axes.legend(fontsize=7)


def write_png(curves: Curves, path: str) -> None:
    """Draw ``curves`` into ``path`` (PNG): written beside it and renamed, so it is whole or absent."""
    save_png(draw(curves), path)
