"""Run the stages of a spec: vet everything first, then train each unfinished stage and publish it.

Before anything trains: every stage is planned, every stage's data is loaded and
checked against its model, and the run directory is locked and proven writable.
Then per stage: build, decide, load by name (proven bitwise), train
(``graft.training``), verify, and publish the stage folder whole
(``graft.rundir``).  Finished stages are verified and kept (``graft.resume``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import attrs

from graft.backend import import_keras, tf_error_text
from graft.feature_cache import FeatureCache
from graft.interrupts import InterruptWatch
from graft.losses import head_losses
from graft.observer import RunObserver
from graft.plan import StagePlan, build_stage_model, decide, plan_spec, plan_stage
from graft.registry import Registry
from graft.report import StageReport
from graft.resume import data_identity, first_stage_to_run, stage_fingerprints
from graft.rundir import RunDir, RunError, write_json
from graft.specfile import SpecFile
from graft.stagedata import StageData, load_and_check_data
from graft.summary import summary_table
from graft.training import StageTraining, train_stage
from graft.verify import changes, lineage, load_by_name
from graft.weights import FILENAME as WEIGHTS_FILENAME
from graft.weights import save_weights, snapshot

HISTORY, MODEL = "history.json", "model.keras"


class RunInterrupted(RunError):
    """Ctrl-C during a run: finished stages are kept, the interrupted one left nothing behind."""

    exit_code = 130


def default_out_dir(config: str) -> str:
    return os.path.join("runs", os.path.splitext(os.path.basename(config))[0])


@attrs.frozen
class Run:
    """One ``graft run``: the spec, its plugins, its run directory and who is watching."""

    spec_file: SpecFile
    registry: Registry
    run_dir: RunDir
    plans: list[StagePlan]
    log: Callable[[str], None] = print
    observer: RunObserver = attrs.field(factory=RunObserver)
    cache_features: bool = True
    interrupts: InterruptWatch = attrs.field(factory=InterruptWatch)


def run_spec(
    spec_file: SpecFile,
    registry: Registry,
    out_dir: str,
    restart_from: str | None = None,
    log: Callable[[str], None] = print,
    cache_features: bool = True,
    observer: RunObserver | None = None,
    wait: bool = False,
) -> list[StageReport]:
    """Run every unfinished stage of the spec; return the report of every stage.

    ``cache_features=False`` trains the whole model even where the extractor is frozen;
    ``wait`` waits for another run holding ``out_dir`` instead of failing.
    """
    names = [stage.name for stage in spec_file.spec.stages]
    fingerprints = stage_fingerprints(spec_file)
    run_dir = RunDir(out_dir)
    if restart_from is None and all(run_dir.is_finished(name) for name in names):
        with run_dir.locked(wait):  # every stage finished: no model, no data, no TensorFlow to confirm it
            _log_kept(run_dir, names, first_stage_to_run(run_dir, names, fingerprints, None), log)
            return _summary(run_dir, names, log)
    plans = plan_spec(spec_file, registry)
    stage_data = load_and_check_data(spec_file, registry, plans)
    run_dir.check_writable(names)
    run = Run(spec_file, registry, run_dir, plans, log, observer or RunObserver(), cache_features)
    with run_dir.locked(wait), run.interrupts.watching():
        first = first_stage_to_run(run_dir, names, fingerprints, restart_from)
        _log_kept(run_dir, names, first, log)
        for index in range(first, len(names)):
            try:
                run.interrupts.check()
                run_stage(run, index, stage_data[index], fingerprints[index])
            except KeyboardInterrupt:
                raise RunInterrupted(
                    f"interrupted during stage '{names[index]}'; "
                    + (f"the finished stages ({', '.join(names[:index])}) are kept in {out_dir}; " if index else "")
                    + "run the same command again to go on from there"
                ) from None
        return _summary(run_dir, names, log)


def _log_kept(run_dir: RunDir, names: list[str], first: int, log: Callable[[str], None]) -> None:
    for index, name in enumerate(names[:first]):
        log(f"stage {index + 1}/{len(names)} '{name}': finished earlier, kept ({run_dir.stage_path(name)})")


def _summary(run_dir: RunDir, names: list[str], log: Callable[[str], None]) -> list[StageReport]:
    """Every stage's report, verified, and the table of their held-out metrics logged."""
    reports = [run_dir.read_report(name) for name in names]
    log(f"\n{summary_table(reports)}\n\nresults: {run_dir.path}")
    return reports


# -- one stage -------------------------------------------------------------------


def run_stage(run: Run, index: int, stage_data: StageData, fingerprint: str) -> StageReport:
    """Train stage ``index`` from its source and publish it."""
    keras = import_keras()
    spec = run.spec_file.spec
    stage = spec.stages[index]
    started = time.perf_counter()
    built = build_stage_model(run.spec_file, run.registry, index)
    rounds = decide(run.spec_file, run.registry, index, built)
    plan = plan_stage(run.spec_file, index, built, rounds, run.plans)
    losses = head_losses(built.model, spec.heads_of(stage))
    logits = [name for name, head in losses.items() if head.from_logits]
    run.log(
        f"== stage {index + 1}/{len(spec.stages)} '{stage.name}': policy {plan.policy}, "
        f"starts from {plan.source or 'fresh initialisation'}; "
        f"{plan.trainable_params:,} of {plan.total_params:,} parameters trainable"
        + (f"; {', '.join(logits)} trained on logits (linear output)" if logits else "")
    )
    prior = run.run_dir.read_report(stage.init.stage) if stage.init and stage.init.stage else None
    load = load_by_name(built, plan, _source_path(run, index), stage.name)
    start = snapshot(built.layers)
    seed = spec.seed + index
    keras.utils.set_random_seed(seed)
    job = StageTraining(
        stage, plan, stage_data.data, losses, seed, _augmenter(keras, stage, seed), _feature_cache(run, index),
        callbacks=(run.interrupts.keras_callback(keras),),
    )
    trained = _train(keras, built, rounds, job, run)
    kept = trained.histories[trained.kept]
    report = StageReport(
        stage=stage.name,
        fingerprint=fingerprint,
        plan=plan,
        load=load,
        verification=changes(start, snapshot(built.layers), trained.ever_trainable),
        final_metrics={key: values[-1] for key, values in kept.items()},
        epochs_run=trained.epochs_run,
        features_cached=any(result.features_cached for result in trained.rounds),
        lineage=lineage(plan, stage.name, prior, plan.source),
        wall_time_s=round(time.perf_counter() - started, 3),
        versions={"keras": keras.__version__, "tensorflow": _tensorflow_version()},
        rounds=list(trained.rounds),
        kept_round=trained.kept if len(trained.rounds) > 1 else None,
        data=stage_data.summary,
    )
    history = {"rounds": list(trained.histories)} if len(rounds.steps) > 1 else kept

    def write(folder: str) -> None:
        built.model.save(os.path.join(folder, MODEL))
        save_weights(built.layers, os.path.join(folder, WEIGHTS_FILENAME))
        write_json(os.path.join(folder, HISTORY), history)

    report = run.run_dir.publish(stage.name, write, report)
    run.observer.stage_published(report)
    run.log(f"   stage '{stage.name}' done in {report.wall_time_s:.1f} s: {run.run_dir.stage_path(stage.name)}")
    return report


def _train(keras, built, rounds, job: StageTraining, run: Run):
    """``train_stage``; TensorFlow failing to read the data mid-epoch is a ``RunError`` naming the stage."""
    import tensorflow as tf

    try:
        return train_stage(keras, built, rounds, job, run.observer, run.log)
    except tf.errors.OpError as exc:
        raise RunError(
            f"stage '{job.stage.name}' stopped: TensorFlow failed while training on {job.dataset.description}: "
            f"{tf_error_text(exc)}; nothing of this stage was written (finished stages are kept)"
        ) from exc


def _augmenter(keras, stage, seed: int):
    if not stage.data.augment:
        return None
    from graft.augment import make_augmenter

    return make_augmenter(keras, stage.data.augment, seed)


def _feature_cache(run: Run, index: int) -> FeatureCache | None:
    if not run.cache_features:
        return None
    from graft.feature_store import FeatureStore, cache_root

    return FeatureCache(FeatureStore(cache_root(), warn=run.log), data_identity(run.spec_file, index))


def _source_path(run: Run, index: int) -> str | None:
    """The weights file stage ``index`` starts from (a verified earlier stage's, or the spec's file)."""
    init = run.spec_file.spec.stages[index].init
    if init is None:
        return None
    if init.stage is not None:
        return os.path.join(run.run_dir.stage_path(init.stage), WEIGHTS_FILENAME)
    return run.spec_file.resolve(init.weights)


def _tensorflow_version() -> str:
    import tensorflow

    return tensorflow.__version__
