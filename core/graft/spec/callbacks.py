"""The callbacks a stage's YAML can ask for: YAML key -> the attrs class of its options.

``CALLBACKS`` is the table, in the order the callbacks run; the options are vetted when the
spec is loaded (errors at their YAML line).  How Keras builds each one is ``graft.model.callbacks``.
No TensorFlow here: ``graft validate`` and ``graft schema`` read the options.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

import attrs

from graft.base.problems import SpecProblem
from graft.spec.validators import finite, non_negative, one_of


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


# YAML key under a stage's ``callbacks:`` -> its options, in the order they run (checkpoint last: it
# restores once the others have seen the epoch)
CALLBACKS: dict[str, type] = {
    "early_stopping": EarlyStopping,
    "reduce_lr": ReduceLR,
    "tensorboard": TensorBoard,
    "csv_logger": CsvLogger,
    "checkpoint": Checkpoint,
}
if {field.name: field.type for field in attrs.fields(attrs.resolve_types(Callbacks))} != {
    key: options | None for key, options in CALLBACKS.items()
}:
    raise AssertionError("graft.spec.callbacks: the fields of Callbacks differ from the table CALLBACKS")

WRITE_FILES = frozenset({"tensorboard", "csv_logger"})  # callbacks that write into the stage folder

# Callbacks keras-graft 0.1 had: a stage's fingerprint keeps their keys when unset, as it always did; the
# others count only once set, so runs made before they existed stay resumable (graft.runs.resume).
FIRST_CALLBACKS = ("early_stopping", "reduce_lr")


def configured(callbacks: Callbacks) -> list[tuple[str, Any]]:
    """``(yaml key, options)`` of every callback the stage asks for, in table order."""
    return [(key, getattr(callbacks, key)) for key in CALLBACKS if getattr(callbacks, key) is not None]


def monitored(callbacks: Callbacks) -> list[tuple[str, Any]]:
    """``(yaml key, options)`` of the configured callbacks that watch a logged quantity (``monitor``)."""
    return [(key, options) for key, options in configured(callbacks) if "monitor" in attrs.fields_dict(type(options))]


def writes_files(callbacks: Callbacks) -> bool:
    """True if a configured callback writes files into the stage folder."""
    return any(key in WRITE_FILES for key, _ in configured(callbacks))


def fingerprint_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``attrs.asdict`` of a stage's ``Callbacks`` as its fingerprint hashes it."""
    return {key: value for key, value in fields.items() if value is not None or key in FIRST_CALLBACKS}
