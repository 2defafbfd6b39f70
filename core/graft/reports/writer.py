"""Writing a run folder's ``report.md``, and any ``curves.png`` a stage lacks, from what is on disk.

``graft run`` writes ``report.md`` after its last stage (the chief only, under
``multi_worker``) and leaves the plots out: drawing them (importing matplotlib) would cost
the user's time for a view.  ``graft report OUT`` draws the missing ``curves.png`` and
writes ``report.md`` again, showing them; neither needs TensorFlow.  The file is
written beside itself and renamed (whole or absent), and a ``report.md`` that
keras-graft did not write, or that was edited since, is never replaced unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import attrs

from graft.base.files import fsync_path
from graft.base.problems import GraftError
from graft.records.report import StageReport
from graft.records.rundir import REPORT, RunDir, RunError
from graft.reports.compare import comparison, ensure_comparison, read_histories
from graft.reports.curves import FILENAME as CURVES
from graft.reports.curves import ensure_curves
from graft.reports.markdown import FILENAME, ComparisonView, StageView, render, written_stages
from graft.spec.validators import is_name


class ForeignReport(RunError):
    """A ``report.md`` keras-graft did not write (or that was edited): it is left as it is."""


@attrs.frozen
class WrittenReport:
    """What ``write_report`` did: the file, whether its bytes changed, the stages whose curves it drew, and
    those left without curves (why)."""

    path: str
    changed: bool
    drawn: list[str]
    no_curves: dict[str, str]


NOT_DRAWN = "graft run does not draw it (it would cost the run's time); graft report OUT draws it"


def write_report(
    run_dir: RunDir, reports: Sequence[StageReport], force: bool = False, draw: bool = True
) -> WrittenReport:
    """Draw the missing ``curves.png`` of the stages (unless not ``draw``), then write ``report.md`` for them,
    in their order.

    ``ForeignReport`` if a ``report.md`` is there that keras-graft did not write, unless ``force``."""
    views, drawn = [], []
    for report in reports:
        folder = run_dir.stage_path(report.stage)
        there = os.path.lexists(os.path.join(folder, CURVES))
        missing = ensure_curves(folder, report) if draw or there else NOT_DRAWN
        if not there and not missing:
            drawn.append(report.stage)
        views.append(StageView(report, None if missing else f"{report.stage}/{CURVES}", missing.rstrip(".")))
    compared = comparison(reports, read_histories(run_dir.path, reports))
    figure = ensure_comparison(run_dir.path, compared, draw)
    text = render(os.path.basename(os.path.abspath(run_dir.path)), views, ComparisonView(compared, figure or None))
    path = os.path.join(run_dir.path, FILENAME)
    changed = _write(path, text, force, run_dir.path)
    no_curves = {view.report.stage: view.curves_missing for view in views if view.curves is None}
    return WrittenReport(path, changed, drawn, no_curves)


def report_after_run(run_dir: RunDir, reports: Sequence[StageReport], log: Callable[[str], None]) -> str | None:
    """``graft run``'s end: ``write_report`` without drawing, its problems logged and never raised (the stages
    are published already); the path of ``report.md`` if it is the run's."""
    try:
        written = write_report(run_dir, reports, draw=False)
    except (GraftError, OSError) as exc:
        log(f"   report.md not written: {exc}")
        return None
    if written.changed and written.no_curves:  # once, not at every confirmation of a finished run
        log(f"   curves.png (loss and metrics per epoch) of {', '.join(written.no_curves)}: "
            f"graft report {run_dir.path} draws them")
    return written.path


def finished_stages(run_dir: RunDir) -> list[str]:
    """The finished stages in ``run_dir``: in the order of the ``report.md`` keras-graft wrote there, the
    others after them in the order they finished (their ``report.json``'s time)."""
    try:
        entries = os.listdir(run_dir.path)
    except OSError as exc:
        raise RunError(f"{run_dir.path} is not a run folder: {exc.strerror or exc}") from None
    found = [name for name in entries if is_name(name) and run_dir.is_finished(name)]
    if not found:
        raise RunError(f"{run_dir.path} holds no finished stage (a folder with a {REPORT}); graft run writes them")
    listed = _listed_stages(os.path.join(run_dir.path, FILENAME))
    found.sort(key=lambda name: (os.stat(os.path.join(run_dir.stage_path(name), REPORT)).st_mtime_ns, name))
    return [name for name in listed if name in found] + [name for name in found if name not in listed]


def _listed_stages(path: str) -> list[str]:
    if os.path.islink(path) or not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return written_stages(handle.read()) or []
    except (OSError, UnicodeDecodeError):
        return []


def _write(path: str, text: str, force: bool, out: str) -> bool:
    """Write ``text`` to ``path`` atomically; False if it holds those bytes already."""
    if os.path.lexists(path):
        existing = _existing(path)
        if existing == text:
            return False
        if not force and (existing is None or written_stages(existing) is None):
            raise ForeignReport(
                f"{path} was not written by keras-graft, or was edited since: it is left as it is; "
                f"move it away, or let graft report {out} --force replace it"
            )
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_path(os.path.dirname(path) or ".")
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
    return True


def _existing(path: str) -> str | None:
    """The text of the regular file at ``path``; None for a link, a folder or what is not UTF-8 text."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None
