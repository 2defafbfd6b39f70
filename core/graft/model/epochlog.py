"""keras-graft's own Keras callbacks, built by ``graft.model.callbacks`` for the YAML keys ``csv_logger``
and ``checkpoint``, and the one that tells which epoch's weights early stopping restored.

They are made for a given ``keras`` module (Keras 2 or 3) when a ``fit`` starts, as
``graft.runs.interrupts`` makes its callback; the first two read only the epoch's ``logs``,
which are the values Keras's History records, so they agree with ``history.json``.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from typing import Any

import numpy as np


def epoch_csv(keras, path: str, round_number: int, separator: str) -> Any:
    """A callback appending one row per epoch to ``path`` (``round``, ``epoch``, then every logged value by name),
    written and closed at every epoch's end.  A later round appends under the first round's header."""

    class EpochCsv(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.header: list[str] | None = None

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            rows = []
            if self.header is None:
                self.header = _header_of(path, separator)
                if self.header is None:
                    self.header = ["round", "epoch", *sorted(logs)]
                    rows.append(self.header)
            values = {"round": str(round_number), "epoch": str(epoch)}
            values.update({name: repr(float(value)) for name, value in logs.items()})  # repr: the float exactly
            rows.append([values.get(name, "") for name in self.header])
            with open(path, "a", newline="", encoding="utf-8") as handle:
                csv.writer(handle, delimiter=separator, lineterminator="\n").writerows(rows)

    return EpochCsv()


def _header_of(path: str, separator: str) -> list[str] | None:
    if not os.path.exists(path):
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle, delimiter=separator), None)


def keep_best(keras, monitor: str, maximize: bool) -> Any:
    """A callback holding a copy of the weights of the best epoch by ``monitor`` (NaN never counts) and
    restoring them when ``fit`` ends; ``kept_epoch`` is that epoch (0-based), or the last one if none counted."""

    class KeepBest(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best: float | None = None
            self.best_epoch: int | None = None
            self.last_epoch: int | None = None
            self.weights: list[np.ndarray] | None = None

        def on_epoch_end(self, epoch, logs=None):
            self.last_epoch = epoch
            value = (logs or {}).get(monitor)
            if value is None or math.isnan(float(value)):
                return
            value = float(value)
            if self.best is None or (value > self.best if maximize else value < self.best):
                self.best, self.best_epoch = value, epoch
                self.weights = [np.array(weight, copy=True) for weight in self.model.get_weights()]

        def on_train_end(self, logs=None):
            if self.weights is not None and self.best_epoch != self.last_epoch:
                self.model.set_weights(self.weights)
            self.weights = None

        @property
        def kept_epoch(self) -> int | None:
            return self.best_epoch if self.best_epoch is not None else self.last_epoch

    return KeepBest()


def weights_by_epoch(keras) -> Any:
    """A callback that records a digest of the model's weights at every epoch's end, before any callback
    after it restores other weights; ``held_epoch()`` after ``fit``: the last epoch (0-based) whose
    weights the model holds, or None if it holds none of them.

    Keras 2 and 3 restore early stopping's best weights at different moments (when stopping, or when
    training ends); comparing weights tells which epoch's the model holds without depending on either.
    """

    class WeightsByEpoch(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.digests: list[str] = []

        def on_epoch_end(self, epoch, logs=None):
            self.digests.append(_digest(self.model.get_weights()))

        def held_epoch(self) -> int | None:
            now = _digest(self.model.get_weights())
            return next((epoch for epoch in reversed(range(len(self.digests))) if self.digests[epoch] == now), None)

    return WeightsByEpoch()


def _digest(weights: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
