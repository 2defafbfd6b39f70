"""One stage of a run: build its model, decide, load by name (proven bitwise), train, verify, publish.

``graft.runs.stages`` calls it for every stage that is not finished yet; it is imported only
then, so confirming a finished run imports none of the training machinery.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable

import attrs

from graft.base.backend import clear_session, import_keras, tf_error_text
from graft.base.files import write_json
from graft.base.problems import GraftError, SpecProblem
from graft.distribute.strategy import Distribution, average_moving_statistics, check_identical, lost_peer
from graft.features.cache import FeatureCache
from graft.model.adapterfile import FILENAME as ADAPTERS_FILENAME
from graft.model.adapterfile import AdapterFile, save_adapters
from graft.model.adapters import attach_all, base_digest, merge_all
from graft.model.initsource import source_path, source_weights
from graft.model.losses import head_losses
from graft.model.weights import FILENAME as WEIGHTS_FILENAME
from graft.model.weights import save_weights, snapshot
from graft.planning.stagedata import StageData
from graft.planning.stageplan import (
    LOADED,
    PlannedStage,
    StagePlan,
    adapted_layers,
    build_stage_model,
    decide,
    plan_stage,
)
from graft.planning.view import scaled_rates, weighting_lines
from graft.plugins.registry import Registry
from graft.records.report import LayerLoad, StageReport
from graft.records.rundir import RunDir, RunError
from graft.runs.confusion import classification_heads
from graft.runs.interrupts import InterruptWatch
from graft.runs.observer import RunObserver
from graft.runs.provenance import spec_path, stage_versions
from graft.runs.resume import data_identity
from graft.runs.stagelogs import move_into, training_folder
from graft.runs.training import StageTraining, train_stage
from graft.runs.verify import changes, lineage, load_by_name, verify_merged
from graft.runs.workers import check_source_shared, publish
from graft.spec.callbacks import writes_files
from graft.spec.specfile import SpecFile

HISTORY, MODEL = "history.json", "model.keras"


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
    models: list[PlannedStage | None] = attrs.field(factory=list)  # per stage: the model planned, until it trains
    max_batches: int | None = None  # a smoke run's batches per epoch (graft run --smoke)

    @property
    def is_chief(self) -> bool:
        return self.distribution is None or self.distribution.is_chief

    def scope(self):
        """Where the stage's variables are made: the strategy's scope, if the run is distributed."""
        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()


def run_stage(run: Run, index: int, stage_data: StageData, fingerprint: str) -> StageReport | None:
    """Train stage ``index`` from its source and publish it (the chief; other workers train alongside)."""
    if run.distribution is not None:
        clear_session(import_keras())  # as the builder does, but outside the scope it would drop
    stage = run.spec_file.spec.stages[index]
    with run.scope(), training_folder(run.run_dir, stage.name, run.is_chief, writes_files(stage.callbacks)) as logs:
        return _run_stage(run, index, stage_data, fingerprint, logs)


def _run_stage(run: Run, index: int, stage_data: StageData, fingerprint: str, logs: str | None) -> StageReport | None:
    keras = import_keras()
    spec = run.spec_file.spec
    stage = spec.stages[index]
    started = time.perf_counter()
    planned = run.models[index] if index < len(run.models) else None
    if planned is not None:  # built and decided while planning: trained as it is
        run.models[index] = None  # not kept alive past its stage
        built, rounds, plan = planned.built, planned.rounds, planned.plan
    else:
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
    for line in weighting_lines(stage_data.summary):
        run.log(f"   {line}")
    scaled = scaled_rates(plan)
    if scaled:
        run.log(f"   learning rate {stage.optimizer.learning_rate:g}, scaled for {scaled}")
    prior = run.run_dir.read_report(stage.init.stage) if stage.init and stage.init.stage else None
    load = _load(run, index, built, plan)
    start = snapshot(built.layers)
    seed = spec.seed_of(index)
    attach_all(keras, built.layers, adapted_layers(rounds), seed)  # low-rank adapters beside frozen layers
    keras.utils.set_random_seed(seed)
    job = StageTraining(
        stage, plan, stage_data.data, losses, seed, _augmenter(keras, stage, seed), _feature_cache(run, index),
        callbacks=(run.interrupts.keras_callback(keras),), quiet=not run.is_chief,
        whole_batches=run.distribution is not None,
        after_fit=lambda model: average_moving_statistics(run.distribution, keras, model), logs=logs,
        max_batches=run.max_batches, weighting=stage_data.weighting,
        # distributed or a smoke run: no matrices (a smoke run sees a few batches, workers a shard each)
        confusion=classification_heads(losses, plan.outputs, stage_data.data)
        if run.distribution is None and run.max_batches is None else {},
    )
    trained = _train(keras, built, rounds, job, run)
    adapters = merge_all(built.model, built.layers)  # the model is plain again, with W + (alpha/r)·A·B
    end = snapshot(built.layers)
    verify_merged(start, end, adapters, stage.name)
    worker_digests = check_identical(run.distribution, end, stage.name)
    kept = trained.histories[trained.kept]
    report = StageReport(
        stage=stage.name,
        fingerprint=fingerprint,
        plan=plan,
        load=load,
        verification=changes(start, end, trained.ever_trainable, trained.ever_adapted),
        final_metrics=trained.final_metrics,
        epochs_run=trained.epochs_run,
        features_cached=any(result.features_cached for result in trained.rounds),
        lineage=lineage(plan, stage.name, prior, plan.source),
        wall_time_s=round(time.perf_counter() - started, 3),
        versions=stage_versions(run.registry, spec, stage, keras),
        rounds=list(trained.rounds),
        kept_round=trained.kept if len(trained.rounds) > 1 else None,
        kept_epoch=trained.kept_epoch,
        data=attrs.evolve(stage_data.summary, identity=_digest(data_identity(run.spec_file, index))),
        worker_digests=worker_digests,
        heads=losses,
        seed=seed,
        spec_file=spec_path(run.spec_file),
        confusion=trained.kept_confusion,
    )
    history = {"rounds": list(trained.histories)} if len(rounds.steps) > 1 else kept

    def write(folder: str) -> None:
        built.model.save(os.path.join(folder, MODEL))
        save_weights(built.layers, os.path.join(folder, WEIGHTS_FILENAME))
        if adapters:
            classes = {info.name: info.class_name for info in built.layers if info.name in adapters}
            save_adapters(os.path.join(folder, ADAPTERS_FILENAME), AdapterFile(
                base_digest(start, adapters), adapters, classes,
                {name: end[name] for name in sorted(trained.ever_trainable)},
            ))
        write_json(os.path.join(folder, HISTORY), history)
        move_into(logs, folder)  # what the callbacks wrote: tensorboard/, history.csv

    published = publish(run.distribution, run.run_dir, stage.name, write, report)
    if published is None:  # a worker other than the chief
        return None
    run.observer.stage_published(published)
    run.log(f"   stage '{stage.name}' done in {published.wall_time_s:.1f} s: {run.run_dir.stage_path(stage.name)}")
    return published


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
