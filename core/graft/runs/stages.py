"""Run the stages of a spec: vet everything first, then train each unfinished stage and publish it.

Before anything trains: every stage is planned, every stage's data is loaded and
checked against its model, and the run directory is locked and proven writable.
Then per stage (``graft.runs.stagerun``): build, decide, load by name (proven bitwise), train
(``graft.runs.training``), verify, and publish the stage folder whole
(``graft.records.rundir``).  Finished stages are verified and kept (``graft.runs.resume``);
a run whose every stage is finished is confirmed from their digests alone, without
importing the training machinery or TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from graft.base.signals import exit_code, what
from graft.plugins.registry import Registry
from graft.records.report import StageReport
from graft.records.rundir import RunDir, RunError
from graft.runs.observer import RunObserver
from graft.runs.provenance import write_resolved_spec
from graft.runs.resume import first_stage_to_run, stage_fingerprints
from graft.spec.specfile import SpecFile

if TYPE_CHECKING:
    from graft.distribute.cluster import Cluster
    from graft.planning.stageplan import PlannedStage


class RunInterrupted(RunError):
    """Ctrl-C or SIGTERM during a run: finished stages are kept, the interrupted one left nothing behind."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # 130 for Ctrl-C, 143 for SIGTERM


def default_out_dir(config: str) -> str:
    return os.path.join("runs", os.path.splitext(os.path.basename(config))[0])


def run_spec(
    spec_file: SpecFile,
    registry: Registry,
    out_dir: str,
    restart_from: str | None = None,
    log: Callable[[str], None] = print,
    cache_features: bool = True,
    observer: RunObserver | None = None,
    wait: bool = False,
    cluster: Cluster | None = None,
    max_batches: int | None = None,
) -> list[StageReport]:
    """Run every unfinished stage of the spec; return the report of every stage (none on a non-chief worker).

    ``cache_features=False`` trains the whole model even where the extractor is frozen;
    ``wait`` waits for another run holding ``out_dir`` instead of failing; ``cluster``
    makes this process one worker of a ``multi_worker`` run (``graft.distribute.strategy``); ``max_batches``
    trains and validates on at most that many batches an epoch (a smoke run).
    """
    names = [stage.name for stage in spec_file.spec.stages]
    fingerprints = stage_fingerprints(spec_file)
    run_dir = RunDir(out_dir)
    if cluster is None and restart_from is None and all(run_dir.is_finished(name) for name in names):
        with run_dir.locked(wait):  # every stage finished: no model, no data, no TensorFlow to confirm it
            _log_kept(run_dir, names, first_stage_to_run(run_dir, names, fingerprints, None), log)
            return _summary(run_dir, names, log)
    from graft.distribute.strategy import WorkerLost, check_batches, peers_watched
    from graft.distribute.strategy import start as start_distribution

    distribution = start_distribution(spec_file.spec.distribute, cluster, log)  # checks the cluster first
    chief = distribution is None or distribution.is_chief
    if not chief:
        assert cluster is not None  # a worker that is not the chief is in a cluster
        log(f"{cluster.me}: the chief reports progress and writes {out_dir}; this worker writes nothing there")
    from graft.planning.stagedata import load_and_check_data
    from graft.planning.stageplan import plan_stages
    from graft.runs.stagerun import Run, run_stage  # the training machinery: not needed to confirm a finished run
    from graft.runs.workers import first_stage

    planned = plan_stages(spec_file, registry)
    plans = [stage.plan for stage in planned]
    stage_data = load_and_check_data(spec_file, registry, plans)
    if distribution is not None:
        check_batches(distribution, spec_file, [loaded.summary.samples for loaded in stage_data])
    models: list[PlannedStage | None] = list(planned)  # each stage trains the model its plan was made on ...
    if distribution is not None:
        models = [None] * len(planned)  # ... but a strategy builds it again, in its scope
    run = Run(spec_file, registry, run_dir, plans, log if chief else _quiet, observer or RunObserver(),
              cache_features and not (distribution and distribution.multi_worker), distribution=distribution,
              models=models, max_batches=max_batches)
    with contextlib.ExitStack() as held, run.interrupts.watching():
        with peers_watched(distribution, "the start of the run"):
            first = first_stage(distribution, run_dir, held, names, fingerprints, restart_from, wait)
        if chief and first < len(names):  # the spec as it will have run, at the run directory's root
            write_resolved_spec(run_dir, spec_file)
        _log_kept(run_dir, names, first, run.log)
        run.models[:first] = [None] * first  # kept stages do not train: their planned models go
        for index in range(first, len(names)):
            try:
                run.interrupts.check()
                try:
                    with peers_watched(distribution, f"stage '{names[index]}'"):
                        run_stage(run, index, stage_data[index], fingerprints[index])
                except WorkerLost:  # a peer that stopped first; if this worker was told to stop too, say that
                    run.interrupts.check()
                    raise
            except KeyboardInterrupt as interrupt:
                raise RunInterrupted(
                    f"{what(interrupt)} during stage '{names[index]}'; "
                    + (f"the finished stages ({', '.join(names[:index])}) are kept in {out_dir}; " if index else "")
                    + "run the same command again to go on from there",
                    exit_code=exit_code(interrupt),
                ) from None
        if not chief:
            assert cluster is not None  # a worker that is not the chief is in a cluster
            log(f"{cluster.me}: every stage done; the chief published them in {out_dir}")
            return []
        return _summary(run_dir, names, log)


def _quiet(_line: str) -> None:
    """A non-chief worker's log: the chief reports progress."""


def _log_kept(run_dir: RunDir, names: list[str], first: int, log: Callable[[str], None]) -> None:
    for index, name in enumerate(names[:first]):
        log(f"stage {index + 1}/{len(names)} '{name}': finished earlier, kept ({run_dir.stage_path(name)})")


def _summary(run_dir: RunDir, names: list[str], log: Callable[[str], None]) -> list[StageReport]:
    """Every stage's report, verified, ``report.md`` written (``graft.reports.writer``), and the table of their
    held-out metrics logged."""
    from graft.reports.summary import summary_table
    from graft.reports.writer import report_after_run

    reports = [run_dir.read_report(name) for name in names]
    written = report_after_run(run_dir, reports, log)
    log(f"\n{summary_table(reports)}\n\n" + (f"report: {written}\n" if written else "") + f"results: {run_dir.path}")
    return reports


