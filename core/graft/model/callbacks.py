"""How Keras builds the callbacks a stage's YAML asks for (the table of keys and options is
``graft.spec.callbacks``), for one ``fit``.

Callbacks that write files write them in the stage's training folder (``graft.runs.stagelogs``),
published with the stage.  Keras is passed in; nothing here imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs

from graft.spec.callbacks import CALLBACKS, Callbacks, Checkpoint, CsvLogger, TensorBoard, configured

TENSORBOARD, CSV = "tensorboard", "history.csv"  # what the callbacks write in the stage folder


@attrs.frozen
class FitPlace:
    """Where the callbacks of one ``fit`` work: the folder they write in (None if no callback writes),
    and which round of how many the stage may train (``graft.plugins.rounds``)."""

    folder: str | None
    round: int = 0
    rounds: int = 1

    def path(self, name: str) -> str:
        if self.folder is None:
            raise ValueError("a callback that writes files needs the stage's training folder (graft.runs.stagelogs)")
        return os.path.join(self.folder, name)


@attrs.frozen
class FitCallbacks:
    """The Keras callbacks of one ``fit``; ``checkpoint`` is the one that keeps the best epoch, if any;
    ``restored`` tells which epoch's weights early stopping with ``restore_best_weights`` left."""

    keras: list[Any]
    checkpoint: Any = None
    restored: Any = None
    keeper: str | None = None  # the YAML key of the callback that keeps or restores an epoch
    monitor: str | None = None  # what that epoch was best by

    @property
    def kept_epoch(self) -> int | None:
        """The epoch (0-based) whose weights the model holds after ``fit``, if a callback restored an earlier
        one's or keeps the best; None when the model simply holds the last epoch's."""
        if self.checkpoint is not None:
            return self.checkpoint.kept_epoch
        return None if self.restored is None else self.restored.held_epoch()


def _keras_class(name: str) -> Callable[[Any, Any, FitPlace], Any]:
    return lambda keras, options, _place: getattr(keras.callbacks, name)(**attrs.asdict(options))


def _tensorboard(keras, options: TensorBoard, place: FitPlace):
    log_dir = place.path(TENSORBOARD)
    if place.rounds > 1:  # every round's epochs count from 0 again: a run of its own
        log_dir = os.path.join(log_dir, f"round_{place.round}")
    return keras.callbacks.TensorBoard(
        log_dir=log_dir, histogram_freq=options.histogram_freq, update_freq=options.update_freq,
        write_graph=options.write_graph,
    )


def _csv_logger(keras, options: CsvLogger, place: FitPlace):
    from graft.model.epochlog import epoch_csv

    return epoch_csv(keras, place.path(CSV), place.round, options.separator)


def _checkpoint(keras, options: Checkpoint, _place: FitPlace):
    from graft.model.epochlog import keep_best

    return keep_best(keras, options.monitor, options.maximize)


# YAML key (graft.spec.callbacks.CALLBACKS) -> (keras, options, place) -> a keras.callbacks.Callback
BUILDERS: dict[str, Callable[[Any, Any, FitPlace], Any]] = {
    "early_stopping": _keras_class("EarlyStopping"),
    "reduce_lr": _keras_class("ReduceLROnPlateau"),
    "tensorboard": _tensorboard,
    "csv_logger": _csv_logger,
    "checkpoint": _checkpoint,
}
if BUILDERS.keys() != CALLBACKS.keys():
    raise AssertionError("graft.model.callbacks: BUILDERS differs from the table graft.spec.callbacks.CALLBACKS")


def make_callbacks(keras, callbacks: Callbacks, place: FitPlace) -> FitCallbacks:
    """The Keras callbacks of one ``fit`` of a stage, built from their options as given."""
    built = {key: BUILDERS[key](keras, options, place) for key, options in configured(callbacks)}
    if callbacks.checkpoint is not None:
        return FitCallbacks(list(built.values()), built["checkpoint"], keeper="checkpoint",
                            monitor=callbacks.checkpoint.monitor)
    if callbacks.early_stopping is not None and callbacks.early_stopping.restore_best_weights:
        from graft.model.epochlog import weights_by_epoch

        restored = weights_by_epoch(keras)  # first: it sees each epoch's weights before early stopping restores
        return FitCallbacks([restored, *built.values()], restored=restored, keeper="early_stopping",
                            monitor=callbacks.early_stopping.monitor)
    return FitCallbacks(list(built.values()))

