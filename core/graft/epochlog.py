"""keras-graft's own Keras callbacks, built by ``graft.callbacks`` for the YAML keys ``csv_logger`` and ``checkpoint``.

Both are made for a given ``keras`` module (Keras 2 or 3) when a ``fit`` starts, as
``graft.interrupts`` makes its callback; both read only the epoch's ``logs``, which
are the values Keras's History records, so they agree with ``history.json``.
"""

from __future__ import annotations

import csv
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
