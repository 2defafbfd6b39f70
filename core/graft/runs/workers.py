"""What the chief and the other workers of a ``multi_worker`` run do differently; in one process, the chief's part.

Only the chief touches the run directory: it locks it, decides where the run
starts and publishes each stage.  The other workers learn where to start from the
chief, read the finished stages they start from (so ``--out`` is on storage every
worker shares), write their copy of a stage's files into a scratch folder they
delete (saving reads every variable, which on Keras 2 is a collective every worker
must join), and wait until the chief has published before they go on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from graft.base.problems import GraftError
from graft.distribute.strategy import Distribution, chief_says
from graft.records.report import StageReport
from graft.records.rundir import RunDir, RunError
from graft.runs.resume import first_stage_to_run


def first_stage(
    distribution: Distribution | None, run_dir: RunDir, held: contextlib.ExitStack, names: list[str],
    fingerprints: list[str], restart_from: str | None, wait: bool,
) -> int:
    """The chief locks the run directory (held until ``held`` closes) and finds the first stage to run;
    every worker learns it from the chief."""
    if distribution is not None and not distribution.is_chief:
        first = chief_says(distribution, 0)
        if first < 0:
            assert distribution.cluster is not None  # a worker that is not the chief is in a cluster
            raise RunError(f"{distribution.cluster.me}: the chief stopped before training; see its output")
        return first
    try:
        run_dir.check_writable(names)
        held.enter_context(run_dir.locked(wait))
        first = first_stage_to_run(run_dir, names, fingerprints, restart_from)
    except GraftError:
        chief_says(distribution, -1)  # the other workers stop too, instead of waiting for a chief that left
        raise
    return chief_says(distribution, first)


def check_source_shared(distribution: Distribution | None, source: str | None) -> None:
    """A worker other than the chief needs the file a stage starts from at the same path."""
    if source is None or distribution is None or distribution.is_chief or os.path.exists(source):
        return
    assert distribution.cluster is not None  # a worker that is not the chief is in a cluster
    raise RunError(
        f"{distribution.cluster.me}: {source} is not there; every worker reads the finished stage it starts "
        "from in --out (only the chief writes it): put --out on storage every worker shares, at the same path"
    )


def publish(
    distribution: Distribution | None, run_dir: RunDir, stage: str, write: Callable[[str], None], report: StageReport
) -> StageReport | None:
    """The chief publishes the stage; the others write it into a scratch folder and delete it.  Every worker
    returns only once the stage is published, so the next stage may load from it."""
    if distribution is not None and not distribution.is_chief:
        import shutil  # here: re-running a finished run publishes nothing
        import tempfile

        scratch = tempfile.mkdtemp(prefix="graft-worker-")
        try:
            write(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        chief_says(distribution, 1)
        return None
    published = run_dir.publish(stage, write, report)
    chief_says(distribution, 1)
    return published
