"""``report.md``: a run told for people, from its stages' ``report.json`` (and their ``curves.png``).

Per stage: the plan (policy, start, what is frozen and what trains, where the
starting weights came from, the layer table as ``graft plan`` shows it, compact),
the data, the final metrics, the curves, the rounds, the lineage and the wall time.

The first line marks the file as keras-graft's: it lists the stages in order and
the SHA-256 of the rest, so a file that anyone else wrote or edited is recognised
(and never overwritten, see ``graft.reports.writer``).  The text depends only on the
reports and on which curves exist: rebuilt from the same run, it is the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote

import attrs

from graft.planning.records import LOADED, NEW, NO_WEIGHTS, REINIT
from graft.planning.view import HEADER, data_lines, layer_rows, scaled_rates
from graft.records.report import StageReport
from graft.reports.compare import Comparison
from graft.reports.summary import summary_rows

FILENAME = "report.md"
MARKER = re.compile(r"<!-- keras-graft report; stages: (\w+(?:, \w+)*); sha256 of the rest: ([0-9a-f]{64}) -->")
STARTS = {NEW: "initialised fresh", REINIT: "re-initialised"}
LISTED = 12  # a list of more layer names than this shows its first and last few and the count


@attrs.frozen
class StageView:
    """A finished stage as ``report.md`` shows it: its report, and its ``curves.png`` (a path relative to the
    run folder) or why there is none."""

    report: StageReport
    curves: str | None = None
    curves_missing: str = ""


@attrs.frozen
class ComparisonView:
    """The figure that compares stages as ``report.md`` shows it: what it shows, and its file (relative to the
    run folder) or None when it is not drawn."""

    comparison: Comparison
    figure: str | None = None


def render(title: str, views: Sequence[StageView], compared: ComparisonView | None = None) -> str:
    """The whole of ``report.md``, its marker line first."""
    reports = [view.report for view in views]
    wall = sum(report.wall_time_s for report in reports)
    versions = {_versions(report) for report in reports}
    lines = [f"# keras-graft run: {title}", ""]
    lines.append(f"{len(reports)} stage{'s' if len(reports) != 1 else ''}, {_seconds(wall)} of training in all"
                 + (f"; {versions.pop()}" if len(versions) == 1 else "") + ".")
    spec_files = {report.spec_file for report in reports if report.spec_file is not None}
    if spec_files:
        lines.append(f"Spec: {', '.join(f'`{path}`' for path in sorted(spec_files))}.")
    lines += ["", *_table(summary_rows(reports))]
    if compared is not None and compared.comparison.groups:
        lines += ["", *_comparison(compared)]
    for number, view in enumerate(views, start=1):
        lines += ["", *_stage(number, len(views), view, len(versions) > 1)]
    body = "\n".join(lines).rstrip() + "\n"
    return marker_line([report.stage for report in reports], body) + "\n" + body


def marker_line(stages: Sequence[str], body: str) -> str:
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f"<!-- keras-graft report; stages: {', '.join(stages)}; sha256 of the rest: {digest} -->"


def written_stages(text: str) -> list[str] | None:
    """The stages of a ``report.md`` that keras-graft wrote and nobody changed since; None for any other text."""
    first, _, body = text.partition("\n")
    found = MARKER.fullmatch(first)
    if found is None or hashlib.sha256(body.encode("utf-8")).hexdigest() != found.group(2):
        return None
    return found.group(1).split(", ")


# -- one stage ------------------------------------------------------------------------------------


def _stage(number: int, count: int, view: StageView, own_versions: bool) -> list[str]:
    report, plan = view.report, view.report.plan
    weighted = [layer for layer in plan.layers if layer.init != NO_WEIGHTS]
    rounds = len(report.rounds) > 1
    when = " in round 0" if rounds else ""
    lines = [
        f"## {number}/{count} `{report.stage}`",
        "",
        f"Policy `{plan.policy}`, starts from {plan.source or 'fresh initialisation'}; "
        f"{plan.trainable_params:,} of {plan.total_params:,} parameters trainable"
        + (" in round 0" if rounds else "")
        + f"; {report.epochs_run} epoch{'s' if report.epochs_run != 1 else ''} in {_seconds(report.wall_time_s)}"
        + (f"; seed {report.seed}" if report.seed is not None else "")
        + (f"; {_versions(report)}" if own_versions else "") + ".",
        "",
        f"- frozen{when}: {_names([layer.name for layer in weighted if not layer.trainable])}",
        f"- trains{when}: {_names([layer.name for layer in weighted if layer.trainable])}",
        *([f"- learning rate scaled for: {scaled_rates(plan)}"] if scaled_rates(plan) else []),
        *(f"- weights {where}: {_names(names)}" for where, names in _starts(view).items()),
        f"- verified after training: {_verified(report)}",
    ]
    if report.data is not None:
        first, *rest = data_lines(report.data)
        lines += [f"- {first}", *(f"  - {line.strip()}" for line in rest)]
    if plan.features:
        lines.append(f"- extractor features: {plan.features}" + (" (cached)" if report.features_cached else ""))
    if plan.distribute:
        lines.append(f"- distributed: {plan.distribute}")
    lines += ["", "### Final metrics", ""]
    if rounds and report.kept_round is not None:
        lines += [f"Of round {report.kept_round}, whose weights were kept.", ""]
    lines += [*_table(_metric_rows(report)), ""]
    if view.curves is not None:
        lines += [f"![loss and metrics per epoch, stage {report.stage}]({quote(view.curves)})", ""]
    else:
        lines += [f"No curves.png: {view.curves_missing}.", ""]
    for head, matrix in report.confusion.items():
        lines += [f"### Per class: `{head}` (validation)", "", *_table(per_class_rows(report, head, matrix)), ""]
    if rounds:
        lines += ["### Rounds", "", *_table(_round_rows(report)), ""]
    lines += ["### Lineage", "", "Where each layer's weights have been, oldest first:", ""]
    lines += [f"- {' → '.join(path)}: {_names(names)}" for path, names in _lineage(report).items()]
    rows, grouped = layer_rows(plan.layers, compact=True)
    lines += ["", f"<details><summary>Layers ({len(plan.layers)}"
              + (f"; {grouped} in groups of the same fate" if grouped else "") + ")</summary>", ""]
    lines += [*_table([list(HEADER), *rows]), "", "</details>"]
    return lines


def _comparison(compared: ComparisonView) -> list[str]:
    """The comparison section: the figure (or how to draw it), and per group its stages and chance levels."""
    lines = ["## Stages compared", ""]
    if compared.figure is not None:
        lines += [f"![validation metrics of the stages that share validation data]({quote(compared.figure)})", ""]
    else:
        lines += ["The figure that compares them is not drawn: graft run leaves plots out (they would cost the "
                  "run's time); graft report OUT draws it.", ""]
    for group in compared.comparison.groups:
        chances = {panel.head: panel.chance for panel in group.panels if panel.chance is not None}
        said = "; ".join(f"chance level of `{head}` {chance:.4f} (the majority-class rate)"
                         for head, chance in chances.items())
        lines.append(f"- {', '.join(f'`{stage}`' for stage in group.stages)} on {group.validation}"
                     + (f": {said}" if said else ""))
    return lines


def per_class_rows(report: StageReport, head: str, matrix: Sequence[Sequence[int]]) -> list[list[str]]:
    """Per class id of ``head``: its name (if the data named classes), its validation samples, how many were
    predicted as it, recall and precision, from the confusion matrix (rows true, columns predicted)."""
    names = report.data.classes if report.data is not None else []
    rows = [["class", "samples", "predicted as it", "recall", "precision"]]
    for index, row in enumerate(matrix):
        samples, predicted = sum(row), sum(line[index] for line in matrix)
        hit = row[index]
        label = f"{index} {names[index]}" if index < len(names) else str(index)
        rows.append([label, f"{samples:,}", f"{predicted:,}", number(hit / samples) if samples else "-",
                     number(hit / predicted) if predicted else "-"])
    return rows


def _starts(view: StageView) -> dict[str, list[str]]:
    """The layers with weights by where their starting weights came from."""
    starts: dict[str, list[str]] = {}
    for layer in view.report.plan.layers:
        if layer.init == NO_WEIGHTS:
            continue
        load = view.report.load.get(layer.name)
        where = f"loaded from {layer.source}" if layer.init == LOADED else STARTS.get(layer.init, layer.init)
        if load is not None and load.equal_to_source is not None:
            where += " (equal to it bitwise)" if load.equal_to_source else " (NOT equal to it)"
        starts.setdefault(where, []).append(layer.name)
    return starts


def _verified(report: StageReport) -> str:
    checks = report.verification
    frozen_kept = sum(not check.trainable and not check.changed for check in checks.values())
    trained_changed = sum(check.trainable and check.changed for check in checks.values())
    parts = [f"{frozen_kept} frozen layer{'s' if frozen_kept != 1 else ''} unchanged bitwise",
             f"{trained_changed} trained layer{'s' if trained_changed != 1 else ''} changed"]
    unchanged = [name for name, check in checks.items() if check.trainable and not check.changed]
    moved = [name for name, check in checks.items() if not check.trainable and check.changed]
    if unchanged:
        parts.append(f"trainable but unchanged: {_names(unchanged)}")
    if moved:
        parts.append(f"FROZEN BUT CHANGED: {_names(moved)}")
    return ", ".join(parts)


def _metric_rows(report: StageReport) -> list[list[str]]:
    final = report.final_metrics
    names = [key for key in final if not key.startswith("val_")]
    names += [key[4:] for key in final if key.startswith("val_") and key[4:] not in names]
    names.sort(key=lambda name: name != "loss")  # the total loss first, the rest in Keras's order
    rows = [["metric", "training", "validation"]]
    for name in names:
        rows.append([name, *(number(final[key]) if key in final else "-" for key in (name, f"val_{name}"))])
    return rows


def _round_rows(report: StageReport) -> list[list[str]]:
    rows = [["round", "unfreezes", "trainable", "val_loss", "kept"]]
    for result in report.rounds:
        rows.append([str(result.round), result.label, f"{result.trainable_params:,}", number(result.val_loss),
                     "kept" if result.kept else ""])
    return rows


def _lineage(report: StageReport) -> dict[tuple[str, ...], list[str]]:
    paths: dict[tuple[str, ...], list[str]] = {}
    for layer in report.plan.layers:
        if layer.init != NO_WEIGHTS and layer.name in report.lineage:
            paths.setdefault(tuple(report.lineage[layer.name]), []).append(layer.name)
    return paths


# -- small pieces ---------------------------------------------------------------------------------


def number(value: float) -> str:
    """A metric as ``report.md`` shows it: 4 decimals, or 4 significant digits where that would hide it."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.4g}"


def _names(names: Sequence[str]) -> str:
    if not names:
        return "none"
    shown = [f"`{name}`" for name in names]
    if len(shown) > LISTED:
        shown = [*shown[:8], "…", *shown[-2:]]
        return ", ".join(shown) + f" ({len(names)} layers)"
    return ", ".join(shown)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown (GitHub) table, the first row its header."""
    cells = [[str(cell).replace("|", "\\|") for cell in row] for row in rows]
    return [_row(cells[0]), _row(["---"] * len(cells[0])), *(_row(row) for row in cells[1:])]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{int(value // 60)} min {value % 60:.0f} s"


def _versions(report: StageReport) -> str:
    """``tensorflow 2.21.0, keras 3.15.0, ...``: every version the report records, in its order."""
    versions = report.versions
    data = versions if isinstance(versions, Mapping) else attrs.asdict(versions)
    parts = []
    for name, value in data.items():
        if isinstance(value, Mapping):  # the plugins' distributions
            parts += [f"{distribution} {version}" for distribution, version in value.items()]
        elif value is not None:
            parts.append(f"{name.replace('_', '-')} {value}")
    return ", ".join(parts)
