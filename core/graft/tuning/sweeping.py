"""``graft sweep``: the trials of a search space, one after another, until the study has as many as it asks.

Any number of workers may run this on one study (the same ``--out``, or the same
``--storage``): each claims its next trial from the study, so no trial is run twice
and together they run the space's ``trials``.  After every trial the best one is marked.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from graft.base.problems import GraftError
from graft.plugins.registry import Registry
from graft.tuning import study as studies
from graft.tuning.sweepdir import BestTrial, SweepDir
from graft.tuning.trials import run_trial, train_shared
from graft.tuning.vetting import Sweep

DEFAULT_STUDY = "graft-sweep"


@attrs.frozen
class SweepResult:
    """What a worker did: the trials it ran, and the study's best trial when it stopped (None if none finished)."""

    ran: tuple[int, ...]
    best: BestTrial | None
    total: int  # trials in the study that count (finished, pruned, running)


def identity(sweep: Sweep) -> dict:
    """What a study records about its sweep, to refuse being mixed with another."""
    space = sweep.space
    return {"stage": sweep.stage, "metric": space.metric,
            "params": {param.path: [param.kind, param.low, param.high, list(param.choices)] for param in space.params},
            "overrides": [override.text for override in sweep.overrides]}


def run_sweep(sweep: Sweep, registry: Registry, out: str, storage: str | None = None, study_name: str = DEFAULT_STUDY,
              log: Callable[[str], None] = print, max_trials: int | None = None) -> SweepResult:
    """Run trials of ``sweep`` into the sweep folder ``out`` until the study holds ``sweep.space.trials`` of them
    (or this worker has run ``max_trials``)."""
    optuna = studies.import_optuna()  # before anything trains: a missing extra is said at once
    sweep_dir = SweepDir(out)
    sweep_dir.create()
    with sweep_dir.claiming():  # workers starting at once on one SQLite file: one creates the study's tables
        study = studies.open_study(storage or sweep_dir.default_storage(), study_name, sweep.space, identity(sweep))
    shared = train_shared(sweep, registry, sweep_dir, log)
    space = sweep.space
    ran: list[int] = []
    while max_trials is None or len(ran) < max_trials:
        with sweep_dir.claiming():
            lost = studies.fail_dead_local(study)
            if lost:
                log(f"trials {', '.join(map(str, lost))}: their worker was killed; recorded as failed")
            if studies.counted(study) >= space.trials:
                break
            trial = studies.ask(study, space)
        values = {param.path: studies.suggest(trial, param) for param in space.params}
        shown = ", ".join(f"{path}={value:g}" if isinstance(value, float) else f"{path}={value}"
                          for path, value in values.items())
        log(f"== trial {trial.number} ({studies.counted(study)}/{space.trials}): {shown}")
        try:
            done = run_trial(sweep, registry, sweep_dir, trial.number, values, trial.report, trial.should_prune,
                             shared, log)
        except BaseException:  # Ctrl-C, SIGTERM, an error: the trial failed, the finished ones stay
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        trial.set_user_attr("epochs", done.epochs)
        trial.set_user_attr("folder", sweep_dir.trial_folder(trial.number))
        ran.append(trial.number)
        if done.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            log(f"   trial {trial.number} pruned after {done.epochs} epochs ({space.metric} {done.value:.4g})")
        elif math.isnan(done.value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log(f"   trial {trial.number} failed: {space.metric} is not a number")
        else:
            study.tell(trial, done.value)
            log(f"   trial {trial.number}: {space.metric} {done.value:.4g} after {done.epochs} epochs")
        mark_best(study, sweep, sweep_dir, log)
    return SweepResult(tuple(ran), best_trial(study, sweep, sweep_dir), studies.counted(study))


def best_trial(study, sweep: Sweep, sweep_dir: SweepDir) -> BestTrial | None:
    """The study's best finished trial, or None."""
    try:
        best = study.best_trial
    except ValueError:  # no finished trial yet
        return None
    params = {param.path: param for param in sweep.space.params}
    overrides = [*(override.text for override in sweep.overrides),  # the user's --set, then the trial's values
                 *(params[path].override(value).text for path, value in best.params.items() if path in params)]
    return BestTrial(best.number, sweep_dir.trial_folder(best.number), float(best.value), sweep.space.metric,
                     overrides)


def mark_best(study, sweep: Sweep, sweep_dir: SweepDir, log: Callable[[str], None]) -> None:
    best = best_trial(study, sweep, sweep_dir)
    if best is None:
        return
    try:
        sweep_dir.mark_best(best)
    except (GraftError, OSError) as exc:
        log(f"   the best trial ({best.number}) could not be marked: {exc}")

