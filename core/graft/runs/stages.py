"""Run the stages of a spec: vet everything first, then train each unfinished stage and publish it.

Before anything trains: every stage is planned, every stage's data is loaded and
checked against its model, and the run directory is locked and proven writable.
Then per stage: build, decide, load by name (proven bitwise), train
(``graft.runs.training``), verify, and publish the stage folder whole
(``graft.records.rundir``).  Finished stages are verified and kept (``graft.runs.resume``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

import attrs

from graft.base.backend import import_keras, tf_error_text
from graft.base.files import write_json
from graft.base.problems import GraftError, SpecProblem
from graft.base.signals import exit_code, what
from graft.distribute.cluster import Cluster
from graft.distribute.strategy import (
    Distribution,
    average_moving_statistics,
    check_batches,
    check_identical,
    lost_peer,
    peers_watched,
)
from graft.distribute.strategy import start as start_distribution
from graft.features.cache import FeatureCache
from graft.model.initsource import source_path, source_weights
from graft.model.losses import head_losses
from graft.model.weights import FILENAME as WEIGHTS_FILENAME
from graft.model.weights import save_weights, snapshot
from graft.planning.stagedata import StageData, load_and_check_data
from graft.planning.stageplan import LOADED, StagePlan, build_stage_model, decide, plan_spec, plan_stage
from graft.planning.view import scaled_rates
from graft.plugins.registry import Registry
from graft.records.report import LayerLoad, StageReport
from graft.records.rundir import RunDir, RunError
from graft.reports.curves import ensure_curves
from graft.reports.summary import summary_table
from graft.reports.writer import report_after_run
from graft.runs.interrupts import InterruptWatch
from graft.runs.observer import RunObserver
from graft.runs.provenance import spec_path, stage_versions, write_resolved_spec
from graft.runs.resume import data_identity, first_stage_to_run, stage_fingerprints
from graft.runs.stagelogs import move_into, training_folder
from graft.runs.training import StageTraining, train_stage
from graft.runs.verify import changes, lineage, load_by_name
from graft.runs.workers import check_source_shared, first_stage, publish
from graft.spec.callbacks import writes_files
from graft.spec.specfile import SpecFile

HISTORY, MODEL = "history.json", "model.keras"


class RunInterrupted(RunError):
    """Ctrl-C or SIGTERM during a run: finished stages are kept, the interrupted one left nothing behind."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # 130 for Ctrl-C, 143 for SIGTERM


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
    distribution: Distribution | None = None
    max_batches: int | None = None  # a smoke run's batches per epoch (graft run --smoke)

    @property
    def is_chief(self) -> bool:
        return self.distribution is None or self.distribution.is_chief

    def scope(self):
        """Where the stage's variables are made: the strategy's scope, if the run is distributed."""
        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()


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
    distribution = start_distribution(spec_file.spec.distribute, cluster, log)  # checks the cluster first
    chief = distribution is None or distribution.is_chief
    if not chief:
        assert cluster is not None  # a worker that is not the chief is in a cluster
        log(f"{cluster.me}: the chief reports progress and writes {out_dir}; this worker writes nothing there")
    plans = plan_spec(spec_file, registry)
    stage_data = load_and_check_data(spec_file, registry, plans)
    if distribution is not None:
        check_batches(distribution, spec_file, [loaded.summary.samples for loaded in stage_data])
    run = Run(spec_file, registry, run_dir, plans, log if chief else _quiet, observer or RunObserver(),
              cache_features and not (distribution and distribution.multi_worker), distribution=distribution,
              max_batches=max_batches)
    with contextlib.ExitStack() as held, run.interrupts.watching():
        with peers_watched(distribution, "the start of the run"):
            first = first_stage(distribution, run_dir, held, names, fingerprints, restart_from, wait)
        if chief and first < len(names):  # the spec as it will have run, at the run directory's root
            write_resolved_spec(run_dir, spec_file)
        _log_kept(run_dir, names, first, run.log)
        for index in range(first, len(names)):
            try:
                run.interrupts.check()
                with peers_watched(distribution, f"stage '{names[index]}'"):
                    run_stage(run, index, stage_data[index], fingerprints[index])
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
    reports = [run_dir.read_report(name) for name in names]
    written = report_after_run(run_dir, reports, log)
    log(f"\n{summary_table(reports)}\n\n" + (f"report: {written}\n" if written else "") + f"results: {run_dir.path}")
    return reports


# -- one stage -------------------------------------------------------------------


def run_stage(run: Run, index: int, stage_data: StageData, fingerprint: str) -> StageReport | None:
    """Train stage ``index`` from its source and publish it (the chief; other workers train alongside)."""
    if run.distribution is not None:
        import_keras().backend.clear_session()  # as the builder does, but outside the scope it would drop
    stage = run.spec_file.spec.stages[index]
    with run.scope(), training_folder(run.run_dir, stage.name, run.is_chief, writes_files(stage.callbacks)) as logs:
        return _run_stage(run, index, stage_data, fingerprint, logs)


def _run_stage(run: Run, index: int, stage_data: StageData, fingerprint: str, logs: str | None) -> StageReport | None:
    keras = import_keras()
    spec = run.spec_file.spec
    stage = spec.stages[index]
    started = time.perf_counter()
    built = build_stage_model(run.spec_file, run.registry, index)
    rounds = decide(run.spec_file, run.registry, index, built)
    plan = plan_stage(run.spec_file, index, built, rounds, run.plans)
    if run.distribution is not None:
        plan = attrs.evolve(plan, distribute=run.distribution.describe(stage.batch_size, stage_data.summary.samples))
    losses = head_losses(built.model, spec.heads_of(stage))
    logits = [name for name, head in losses.items() if head.from_logits]
    run.log(
        f"== stage {index + 1}/{len(spec.stages)} '{stage.name}': policy {plan.policy}, "
        f"starts from {plan.source or 'fresh initialisation'}; "
        f"{plan.trainable_params:,} of {plan.total_params:,} parameters trainable"
        + (f"; {', '.join(logits)} trained on logits (linear output)" if logits else "")
    )
    if plan.distribute:
        run.log(f"   distributed: {plan.distribute}")
    scaled = scaled_rates(plan)
    if scaled:
        run.log(f"   learning rate {stage.optimizer.learning_rate:g}, scaled for {scaled}")
    prior = run.run_dir.read_report(stage.init.stage) if stage.init and stage.init.stage else None
    load = _load(run, index, built, plan)
    start = snapshot(built.layers)
    seed = spec.seed_of(index)
    keras.utils.set_random_seed(seed)
    job = StageTraining(
        stage, plan, stage_data.data, losses, seed, _augmenter(keras, stage, seed), _feature_cache(run, index),
        callbacks=(run.interrupts.keras_callback(keras),), quiet=not run.is_chief,
        whole_batches=run.distribution is not None,
        after_fit=lambda model: average_moving_statistics(run.distribution, keras, model), logs=logs,
        max_batches=run.max_batches,
    )
    trained = _train(keras, built, rounds, job, run)
    end = snapshot(built.layers)
    worker_digests = check_identical(run.distribution, end, stage.name)
    kept = trained.histories[trained.kept]
    report = StageReport(
        stage=stage.name,
        fingerprint=fingerprint,
        plan=plan,
        load=load,
        verification=changes(start, end, trained.ever_trainable),
        final_metrics=trained.final_metrics,
        epochs_run=trained.epochs_run,
        features_cached=any(result.features_cached for result in trained.rounds),
        lineage=lineage(plan, stage.name, prior, plan.source),
        wall_time_s=round(time.perf_counter() - started, 3),
        versions=stage_versions(run.registry, spec, stage, keras),
        rounds=list(trained.rounds),
        kept_round=trained.kept if len(trained.rounds) > 1 else None,
        kept_epoch=trained.kept_epoch,
        data=stage_data.summary,
        worker_digests=worker_digests,
        heads=losses,
        seed=seed,
        spec_file=spec_path(run.spec_file),
    )
    history = {"rounds": list(trained.histories)} if len(rounds.steps) > 1 else kept

    def write(folder: str) -> None:
        built.model.save(os.path.join(folder, MODEL))
        save_weights(built.layers, os.path.join(folder, WEIGHTS_FILENAME))
        write_json(os.path.join(folder, HISTORY), history)
        move_into(logs, folder)  # what the callbacks wrote: tensorboard/, history.csv

    published = publish(run.distribution, run.run_dir, stage.name, write, report)
    if published is None:  # a worker other than the chief
        return None
    run.observer.stage_published(published)
    run.log(f"   stage '{stage.name}' done in {published.wall_time_s:.1f} s: {run.run_dir.stage_path(stage.name)}")
    missing = ensure_curves(run.run_dir.stage_path(stage.name), published)  # after publishing: never costs the stage
    if missing:
        run.log(f"   no curves.png for stage '{stage.name}': {missing}")
    return published


def _train(keras, built, rounds, job: StageTraining, run: Run):
    """``train_stage``; TensorFlow failing to read the data mid-epoch is a ``RunError`` naming the stage."""
    import tensorflow as tf

    try:
        return train_stage(keras, built, rounds, job, run.observer, run.log)
    except tf.errors.OpError as exc:
        if run.distribution is not None and run.distribution.multi_worker and lost_peer(exc):
            raise  # graft.distribute.strategy.peers_watched says which worker was lost
        raise RunError(
            f"stage '{job.stage.name}' stopped: TensorFlow failed while training on {job.dataset.description}: "
            f"{tf_error_text(exc)}; nothing of this stage was written (finished stages are kept)"
        ) from exc


def _augmenter(keras, stage, seed: int):
    if not stage.data.augment:
        return None
    from graft.data.augment import make_augmenter

    return make_augmenter(keras, stage.data.augment, seed)


def _feature_cache(run: Run, index: int) -> FeatureCache | None:
    if not run.cache_features:  # off by request, or under multi_worker
        return None
    from graft.features.store import FeatureStore, cache_root

    return FeatureCache(FeatureStore(cache_root(), warn=run.log), data_identity(run.spec_file, index))


def _load(run: Run, index: int, built, plan: StagePlan) -> dict[str, LayerLoad]:
    """Load the layers the plan loads from the stage's source (a verified earlier stage's weights, the spec's
    file), by the names they load as, each proven bitwise equal to its source."""
    init = run.spec_file.spec.stages[index].init
    folder = run.run_dir.stage_path(init.stage) if init is not None and init.stage is not None else None
    path = source_path(run.spec_file, index, folder)
    check_source_shared(run.distribution, path)
    loaded = [layer.name for layer in plan.layers if layer.init == LOADED]
    if path is None or not loaded:
        return load_by_name(built, plan, None, run.spec_file.spec.stages[index].name)
    try:
        weights = source_weights(run.spec_file, index, path, loaded)
    except (SpecProblem, GraftError) as exc:  # the file changed or vanished since the plan read it
        raise RunError(f"stage '{plan.name}': cannot read {path} again: {exc}") from None
    return load_by_name(built, plan, weights, plan.name)
