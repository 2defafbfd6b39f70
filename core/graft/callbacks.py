"""The one place that knows the callbacks a stage's YAML can ask for: YAML key -> options -> how Keras builds them.

``CALLBACKS`` is the table.  Each entry names the attrs class of its options
(vetted when the spec is loaded, errors at their YAML line) and the function that
builds the Keras callback for one ``fit``.  Callbacks that write files write them
in the stage's training folder (``graft.stagelogs``), published with the stage.
No TensorFlow here: ``graft validate`` and ``graft schema`` read the options.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any, Literal

import attrs

from graft.problems import SpecProblem
from graft.validators import finite, non_negative, one_of

TENSORBOARD, CSV = "tensorboard", "history.csv"  # what the callbacks write in the stage folder


def _shrink_factor(_instance, _attribute, value) -> None:
    finite(_instance, _attribute, value)
    if not 0 < value < 1:
        raise SpecProblem((), f"must be greater than 0 and below 1 (it multiplies the learning rate), got {value}")


def _update_freq(_instance, _attribute, value) -> None:
    if value != "epoch" and value < 1:
        raise SpecProblem((), f"must be 'epoch' or a number of batches of 1 or more, got {value}")


@attrs.frozen
class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs (keras.callbacks.EarlyStopping)."""

    monitor: str = "val_loss"
    patience: int = attrs.field(default=3, validator=non_negative)
    min_delta: float = attrs.field(default=0.0, validator=non_negative)
    restore_best_weights: bool = True


@attrs.frozen
class ReduceLR:
    """Multiply the learning rate by ``factor`` on a plateau of ``monitor`` (keras.callbacks.ReduceLROnPlateau)."""

    monitor: str = "val_loss"
    factor: float = attrs.field(default=0.5, validator=_shrink_factor)
    patience: int = attrs.field(default=2, validator=non_negative)
    min_lr: float = attrs.field(default=0.0, validator=non_negative)


@attrs.frozen
class TensorBoard:
    """TensorBoard logs in the stage folder's ``tensorboard/`` (keras.callbacks.TensorBoard; needs the
    ``tensorboard`` package)."""

    histogram_freq: int = attrs.field(default=0, validator=non_negative)  # every N epochs; 0: none
    update_freq: int | Literal["epoch"] = attrs.field(default="epoch", validator=_update_freq)  # or every N batches
    write_graph: bool = True

    def __attrs_post_init__(self) -> None:
        if importlib.util.find_spec("tensorboard") is None:  # TensorFlow 2.16 and later do not install it
            raise SpecProblem((), "needs the tensorboard package, which is not installed: pip install tensorboard")


@attrs.frozen
class CsvLogger:
    """``history.csv`` in the stage folder: one row per epoch (and round) with every logged metric."""

    separator: str = attrs.field(default=",", validator=one_of([",", ";", "\t"]))


@attrs.frozen
class Checkpoint:
    """Keep the weights of the best epoch by ``monitor`` and restore them when training ends, so the
    stage publishes the best epoch's weights (held in memory; no file per epoch)."""

    monitor: str = "val_loss"
    mode: str = attrs.field(default="auto", validator=one_of(["auto", "min", "max"]))  # auto: max for accuracies

    @property
    def maximize(self) -> bool:
        return self.mode == "max" or (self.mode == "auto" and self.monitor.endswith("accuracy"))


@attrs.frozen
class Callbacks:
    """A stage's ``callbacks``: each one is off unless given (``csv_logger: {}`` turns one on with its defaults)."""

    early_stopping: EarlyStopping | None = None
    reduce_lr: ReduceLR | None = None
    tensorboard: TensorBoard | None = None
    csv_logger: CsvLogger | None = None
    checkpoint: Checkpoint | None = None


@attrs.frozen
class FitPlace:
    """Where the callbacks of one ``fit`` work: the folder they write in (None if no callback writes),
    and which round of how many the stage may train (``graft.rounds``)."""

    folder: str | None
    round: int = 0
    rounds: int = 1

    def path(self, name: str) -> str:
        if self.folder is None:
            raise ValueError("a callback that writes files needs the stage's training folder (graft.stagelogs)")
        return os.path.join(self.folder, name)


@attrs.frozen
class CallbackKind:
    """One entry of the table: the options class, how Keras builds the callback, whether it writes files."""

    options: type
    build: Callable[[Any, Any, FitPlace], Any]  # (keras, options, place) -> a keras.callbacks.Callback
    writes_files: bool = False


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
    from graft.epochlog import epoch_csv

    return epoch_csv(keras, place.path(CSV), place.round, options.separator)


def _checkpoint(keras, options: Checkpoint, _place: FitPlace):
    from graft.epochlog import keep_best

    return keep_best(keras, options.monitor, options.maximize)


# YAML key under a stage's ``callbacks:`` -> its options and how Keras builds it, in the order they run
CALLBACKS: dict[str, CallbackKind] = {
    "early_stopping": CallbackKind(EarlyStopping, _keras_class("EarlyStopping")),
    "reduce_lr": CallbackKind(ReduceLR, _keras_class("ReduceLROnPlateau")),
    "tensorboard": CallbackKind(TensorBoard, _tensorboard, writes_files=True),
    "csv_logger": CallbackKind(CsvLogger, _csv_logger, writes_files=True),
    "checkpoint": CallbackKind(Checkpoint, _checkpoint),  # last: it restores once the others have seen the epoch
}
if {field.name: field.type for field in attrs.fields(attrs.resolve_types(Callbacks))} != {
    key: kind.options | None for key, kind in CALLBACKS.items()
}:
    raise AssertionError("graft.callbacks: the fields of Callbacks differ from the table CALLBACKS")

# Callbacks keras-graft 0.1 had: a stage's fingerprint keeps their keys when unset, as it always did; the
# others count only once set, so runs made before they existed stay resumable (graft.resume).
FIRST_CALLBACKS = ("early_stopping", "reduce_lr")


def configured(callbacks: Callbacks) -> list[tuple[str, Any]]:
    """``(yaml key, options)`` of every callback the stage asks for, in table order."""
    return [(key, getattr(callbacks, key)) for key in CALLBACKS if getattr(callbacks, key) is not None]


def monitored(callbacks: Callbacks) -> list[tuple[str, Any]]:
    """``(yaml key, options)`` of the configured callbacks that watch a logged quantity (``monitor``)."""
    return [(key, options) for key, options in configured(callbacks) if "monitor" in attrs.fields_dict(type(options))]


def writes_files(callbacks: Callbacks) -> bool:
    """True if a configured callback writes files into the stage folder."""
    return any(CALLBACKS[key].writes_files for key, _ in configured(callbacks))


def fingerprint_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``attrs.asdict`` of a stage's ``Callbacks`` as its fingerprint hashes it."""
    return {key: value for key, value in fields.items() if value is not None or key in FIRST_CALLBACKS}


def make_callbacks(keras, callbacks: Callbacks, place: FitPlace) -> FitCallbacks:
    """The Keras callbacks of one ``fit`` of a stage, built from their options as given."""
    built = {key: CALLBACKS[key].build(keras, options, place) for key, options in configured(callbacks)}
    if callbacks.checkpoint is not None:
        return FitCallbacks(list(built.values()), built["checkpoint"], keeper="checkpoint",
                            monitor=callbacks.checkpoint.monitor)
    if callbacks.early_stopping is not None and callbacks.early_stopping.restore_best_weights:
        from graft.epochlog import weights_by_epoch

        restored = weights_by_epoch(keras)  # first: it sees each epoch's weights before early stopping restores
        return FitCallbacks([restored, *built.values()], restored=restored, keeper="early_stopping",
                            monitor=callbacks.early_stopping.monitor)
    return FitCallbacks(list(built.values()))

