"""``graft report OUT``: a run folder's ``report.md`` and missing ``curves.png``, rebuilt from disk (no TensorFlow)."""

from __future__ import annotations

import os


def add_parser(commands) -> None:
    """``graft report OUT [--force]`` under ``commands``."""
    report = commands.add_parser(
        "report", help="rebuild OUT/report.md from the finished stages in OUT, draw their missing curves.png and the "
        "figure comparing stages on the same validation data "
        "(graft run draws none)"
    )
    report.add_argument("out", metavar="OUT", help="the run folder (graft run --out)")
    report.add_argument("--force", action="store_true",
                        help="replace a report.md that keras-graft did not write, or that was edited since")


def run(args) -> int:
    from graft.records.rundir import RunDir, RunError
    from graft.reports.writer import finished_stages, write_report

    run_dir = RunDir(args.out)
    if not os.path.isdir(args.out):
        raise RunError(f"{args.out} is not a folder; name the --out of a graft run")
    with run_dir.locked():  # not while a graft run is writing there
        reports = [run_dir.read_report(name) for name in finished_stages(run_dir)]
        written = write_report(run_dir, reports, force=args.force)
    for stage in written.drawn:
        print(f"drew {os.path.join(run_dir.stage_path(stage), 'curves.png')}")
    for stage, why in written.no_curves.items():
        print(f"no curves.png for stage '{stage}': {why}")
    stages = ", ".join(report.stage for report in reports)
    print(f"{written.path}: {'written' if written.changed else 'up to date'} ({stages})")
    return 0
