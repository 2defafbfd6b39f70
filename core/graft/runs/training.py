"""Training one stage: round after round, each compiled for its decisions, verified when it ends.

A policy's single set of decisions is one round.  A stage with several rounds
stops on a plateau of the validation loss and keeps the best round's weights.
With a ``checkpoint`` callback (or early stopping that restores the best weights)
every round ends at its best epoch's weights, and rounds are compared on the
validation loss of that epoch.
While the extractor is frozen and deterministic, the heads train on its features
computed once and stored on disk (see ``graft.features.cache``).  Samples reach
``fit`` through ``graft.data.pipeline``, the same way for every source.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from graft.data.pipeline import Augment, training_batches, validation_batches
from graft.data.weighting import Weighting
from graft.features.cache import FeatureCache, cached_features, extractor_is_constant
from graft.model.adapters import base_counts
from graft.model.builder import BuiltModel
from graft.model.callbacks import FitPlace, make_callbacks
from graft.model.confusion import ConfusionHead, Matrix, confusion_count
from graft.model.losses import HeadLoss, compile_arguments
from graft.model.lrscale import layer_scales, scale_learning_rates
from graft.model.optimizers import make_optimizer
from graft.model.weights import snapshot
from graft.planning.stageplan import StagePlan, apply_decisions
from graft.plugins.datasets import Data, Dataset
from graft.plugins.rounds import Plateau, Rounds
from graft.records.report import RoundResult
from graft.runs.observer import RunObserver
from graft.runs.verify import verify_frozen
from graft.spec.records import Stage

History = dict[str, list[float]]


@attrs.frozen
class Trained:
    """What training a stage did: one result and one Keras history per round run, the round kept,
    and every layer that trained in some round."""

    rounds: tuple[RoundResult, ...]
    histories: tuple[History, ...]
    ever_trainable: frozenset[str]
    ever_adapted: frozenset[str] = frozenset()  # layers whose adapter trained in some round
    confusion: tuple[dict[str, Matrix], ...] = ()  # per round: each head's matrix at the epoch the round kept

    @property
    def kept_confusion(self) -> dict[str, Matrix]:
        """Each counted head's validation confusion matrix for the weights the model holds; empty if none."""
        return self.confusion[self.kept] if self.confusion else {}

    @property
    def kept(self) -> int:
        return next(result.round for result in self.rounds if result.kept)

    @property
    def epochs_run(self) -> int:
        return sum(len(next(iter(history.values()), [])) for history in self.histories)

    @property
    def kept_epoch(self) -> int | None:
        """With a checkpoint or early stopping's restored weights: the epoch (0-based) of the kept round whose
        weights the model holds."""
        return self.rounds[self.kept].kept_epoch

    @property
    def final_metrics(self) -> dict[str, float]:
        """The logged values of the epoch whose weights the model holds (the kept round's kept or last epoch)."""
        at = -1 if self.kept_epoch is None else self.kept_epoch
        return {key: values[at] for key, values in self.histories[self.kept].items()}


@attrs.frozen
class StageTraining:
    """Everything ``train_stage`` needs besides the model: the stage, its plan and data, how its heads train.

    ``seed`` shuffles the batches; ``augment`` changes training inputs (never
    validation inputs); ``feature_cache`` is where a frozen extractor's features
    are kept, or None to train the whole model every epoch.
    """

    stage: Stage
    plan: StagePlan
    dataset: Data
    losses: Mapping[str, HeadLoss]
    seed: int
    augment: Augment | None = None
    feature_cache: FeatureCache | None = None
    callbacks: tuple[Any, ...] = ()  # Keras callbacks of the runner's own, added to every fit
    logs: str | None = None  # where the stage's callbacks write files (graft.runs.stagelogs), if any does
    quiet: bool = False  # no progress lines (a worker that is not the chief)
    whole_batches: bool = False  # leave out each epoch's partial batch (a distributed run)
    after_fit: Callable[[Any], Any] | None = None  # called with the model after every fit, on every worker
    max_batches: int | None = None  # at most this many training and validation batches an epoch (graft run --smoke)
    weighting: Weighting | None = None  # each head's sample weights (graft.data.weighting); None: all weigh 1
    confusion: Mapping[str, ConfusionHead] = attrs.field(factory=dict)  # heads whose validation matrix is counted


def train_stage(
    keras, built: BuiltModel, rounds: Rounds, job: StageTraining, observer: RunObserver, log: Callable[[str], None]
) -> Trained:
    """Train round after round; stop on a plateau of the validation loss; keep the best round.

    Every round recompiles after applying its decisions, and every layer frozen
    in a round must come out of it bitwise unchanged (an adapted layer: its own weights).
    """
    stage = job.stage
    plateau = Plateau(rounds.min_delta, rounds.patience)
    several = len(rounds.steps) > 1
    results: list[RoundResult] = []
    histories: list[History] = []
    ever_trainable: set[str] = set()
    ever_adapted: set[str] = set()
    confusion: list[dict[str, Matrix]] = []
    counts = base_counts(built.layers)  # of each adapted layer, how many weights are its own
    best = cached = None
    try:
        for number, (step, round_plan) in enumerate(zip(rounds.steps, job.plan.rounds, strict=True)):
            if several:
                log(f"   round {number}: {step.label} ({round_plan.trainable_params:,} parameters trainable)")
            apply_decisions(built, step.decisions)
            model, data = built.model, job.dataset
            if job.feature_cache is not None and job.augment is None and extractor_is_constant(built, step.decisions):
                if cached is None:
                    cached = cached_features(keras, built, job.dataset, stage.batch_size, job.feature_cache, log)
                model, data = cached.heads, cached.data
            optimizer = make_optimizer(keras, stage.optimizer, fit_steps(data, job))
            scale_learning_rates(optimizer, built.layers, layer_scales(step.decisions))
            counting = confusion_count(keras, job.confusion) if job.confusion else None
            arguments = compile_arguments(keras, job.losses, counting.metrics if counting else None)
            model.compile(optimizer=optimizer, **arguments)
            before = snapshot(built.layers)
            observer.before_fit(stage, number, built)
            made = make_callbacks(keras, stage.callbacks, FitPlace(job.logs, number, len(rounds.steps)))
            try:
                history = fit(keras, model, data, job, observer,
                              [*made.keras, *([counting.callback] if counting else [])])
            finally:  # a damaged chunk fails fit from inside the input pipeline: say what it was
                if counting is not None:
                    counting.leave_out_of(arguments["metrics"])
                if cached is not None and model is cached.heads:
                    cached.stop_if_damaged(stage.name)
            if job.after_fit is not None:
                job.after_fit(built.model)
            observer.after_fit(stage, number, built)
            verify_frozen(built, step.decisions, before, stage.name, counts)
            ever_trainable |= {info.name for info in built.layers
                               if step.decisions[info.name].trainable and info.can_train}
            ever_adapted |= {name for name, decision in step.decisions.items() if decision.adapt is not None}
            kept_epoch = made.kept_epoch  # a checkpoint or early stopping restored this epoch's weights
            if kept_epoch is not None:
                assert made.keeper is not None and made.monitor is not None  # only such a callback keeps an epoch
                log(_kept_epoch_line(made.keeper, made.monitor, kept_epoch, history))
            val_loss = history.get("val_loss", [math.nan])[-1 if kept_epoch is None else kept_epoch]
            results.append(
                RoundResult(
                    round=number,
                    label=step.label,
                    unfrozen=list(step.unfrozen),
                    trainable_params=round_plan.trainable_params,
                    val_loss=val_loss,
                    features_cached=model is not built.model,
                    kept=False,
                    kept_epoch=kept_epoch,
                )
            )
            histories.append(history)
            confusion.append(counting.at(kept_epoch) if counting else {})
            stop = plateau.update(val_loss)
            if several and plateau.best_index == number:
                best = snapshot(built.layers)
            if stop:
                break
    finally:
        if cached is not None:
            cached.close()
    kept = plateau.best_index if several and plateau.best_index >= 0 else len(results) - 1
    if best is not None and kept != len(results) - 1:
        for info in built.layers:
            info.layer.set_weights(best[info.name])
    if several:
        log(f"   kept round {kept} ({results[kept].label}), validation loss {results[kept].val_loss:.4f}")
    results = [attrs.evolve(result, kept=result.round == kept) for result in results]
    return Trained(tuple(results), tuple(histories), frozenset(ever_trainable), frozenset(ever_adapted),
                   tuple(confusion))


def fit_steps(data: Data, job: StageTraining) -> int | None:
    """The batches one ``fit`` of the stage trains (its epochs times the batches of an epoch), for a learning-rate
    schedule; None if the source does not say how many samples it has."""
    samples = len(data.x) if isinstance(data, Dataset) else data.samples
    if samples is None:
        return None
    size = job.stage.batch_size
    per_epoch = samples // size if job.whole_batches else -(-samples // size)
    if job.max_batches is not None:
        per_epoch = min(per_epoch, job.max_batches)
    return max(1, per_epoch) * job.stage.epochs


def _kept_epoch_line(keeper: str, monitor: str, kept: int, history: History) -> str:
    """Which epoch's weights the round ends with, 1-based as Keras shows epochs on screen."""
    values = history.get(monitor, [])
    value = f" ({monitor} {values[kept]:.4f})" if kept < len(values) else ""
    return f"   {keeper}: kept epoch {kept + 1}/{len(next(iter(history.values()), []))}{value}"


def fit(keras, model: Any, data: Data, job: StageTraining, observer: RunObserver, callbacks: list[Any]) -> History:
    """One ``model.fit`` over the stage's batches with the stage's ``callbacks``; the Keras history as plain floats."""
    stage = job.stage
    training = training_batches(data, stage.batch_size, job.seed, job.augment, job.whole_batches, job.weighting)
    validation = validation_batches(data, stage.batch_size, job.weighting)
    if job.max_batches is not None:
        training = training.take(job.max_batches)
        validation = validation.take(job.max_batches) if validation is not None else None
    history = model.fit(
        training,
        validation_data=validation,
        epochs=stage.epochs,
        shuffle=False,  # the pipeline reshuffles every epoch
        callbacks=[*callbacks, *job.callbacks, *observer.keras_callbacks()],
        verbose=0 if job.quiet else 1 if sys.stdout.isatty() else 2,
    )
    return {key: [float(value) for value in values] for key, values in history.history.items()}
