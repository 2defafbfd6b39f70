"""One trial: the swept stage trained with the trial's values, in its own run folder, on the shared stages.

The stages before the swept one are trained once into ``<out>/shared`` (``train_shared``)
and linked into every trial's folder, where the run proves them by their digests and
keeps them, exactly as ``graft run`` keeps the finished stages of a run it resumes.  A
trial whose extractor is frozen finds its features in the feature cache the first trial
filled (``graft.features``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from graft.plugins.registry import Registry
from graft.records.report import StageReport
from graft.runs.stages import run_spec
from graft.spec.specfile import SpecFile
from graft.tuning.pruning import PruningObserver
from graft.tuning.space import SweepError
from graft.tuning.sweepdir import SweepDir
from graft.tuning.vetting import Sweep


@attrs.frozen
class TrialRun:
    """What one trial's stage did: its report, the metric's value, epochs run, whether the pruner stopped it."""

    number: int
    report: StageReport
    value: float
    epochs: int
    pruned: bool


def first_stages(spec_file: SpecFile, count: int) -> SpecFile:
    """The spec cut after its first ``count`` stages (their fingerprints are those of the whole spec)."""
    spec = attrs.evolve(spec_file.spec, stages=spec_file.spec.stages[:count])
    data = dict(spec_file.document.data)
    data["stages"] = list(data["stages"])[:count]
    return attrs.evolve(spec_file, spec=spec, document=attrs.evolve(spec_file.document, data=data))


def train_shared(sweep: Sweep, registry: Registry, sweep_dir: SweepDir, log: Callable[[str], None]) -> list[str]:
    """Train (or keep, if finished) the stages before the swept one in ``<out>/shared``; their names.  Another
    worker training them is waited for."""
    if sweep.index == 0:
        return []
    shared = first_stages(sweep.spec_file, sweep.index)
    log(f"stages before '{sweep.stage}', trained once for every trial: {sweep_dir.shared.path}")
    run_spec(shared, registry, sweep_dir.shared.path, log=log, wait=True)
    return [stage.name for stage in shared.spec.stages]


def run_trial(sweep: Sweep, registry: Registry, sweep_dir: SweepDir, number: int, values: dict[str, Any],
              report: Callable[[float, int], None], should_prune: Callable[[], bool], shared: list[str],
              log: Callable[[str], None]) -> TrialRun:
    """Train the swept stage of trial ``number`` with ``values`` into its folder; every epoch's metric goes to
    ``report`` and the stage stops once ``should_prune()``."""
    spec_file = first_stages(sweep.trial_spec(registry, values), sweep.index + 1)
    folder = sweep_dir.trial(number)
    sweep_dir.link_shared(folder, shared)
    observer = PruningObserver(sweep.space.metric, report, should_prune)
    reports = run_spec(spec_file, registry, folder.path, log=log, observer=observer)
    stage = reports[sweep.index]
    value = stage.final_metrics.get(sweep.space.metric)
    if value is None or observer.missing:
        logged = ", ".join(stage.final_metrics)
        raise SweepError(f"{sweep.space.path}: stage '{sweep.stage}' did not log '{sweep.space.metric}' (it logged "
                         f"{logged}); a val_ metric needs the stage's data to hold validation samples")
    return TrialRun(number, stage, float(value) if math.isfinite(value) else math.nan, stage.epochs_run,
                    observer.pruned)
