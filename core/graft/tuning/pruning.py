"""Each epoch's value of the sweep's metric, handed to the pruner; a trial it prunes stops after that epoch.

The callback stops ``fit`` (``model.stop_training``) instead of raising, so the stage ends
and is published like any other, with the epochs it ran; the trial is then recorded as
pruned.  Epochs are counted across the stage's rounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from graft.base.backend import import_keras
from graft.runs.observer import RunObserver


class PruningObserver(RunObserver):
    """A ``RunObserver`` whose Keras callback reports ``metric`` after every epoch (``report(value, epoch)``) and
    stops the stage once ``should_prune()`` says so."""

    def __init__(self, metric: str, report: Callable[[float, int], None], should_prune: Callable[[], bool]) -> None:
        self.metric = metric
        self.report, self.should_prune = report, should_prune
        self.epochs = 0
        self.pruned = False
        self.missing = False  # the metric was not in an epoch's logs
        self._callback: Any = None

    def keras_callbacks(self) -> list[Any]:
        if self._callback is None:
            self._callback = _callback_class(import_keras())(self)
        return [self._callback]

    def epoch_ended(self, logs: dict[str, Any]) -> bool:
        """Report one epoch; whether training stops here."""
        value = logs.get(self.metric)
        self.epochs += 1
        if value is None:
            self.missing = True
            return False
        value = float(value)
        if math.isfinite(value):
            self.report(value, self.epochs)
        if self.should_prune():
            self.pruned = True
            return True
        return False


def _callback_class(keras):
    class PruneOnMetric(keras.callbacks.Callback):  # type: ignore[name-defined]
        def __init__(self, observer: PruningObserver) -> None:
            super().__init__()
            self.observer = observer

        def on_epoch_end(self, epoch, logs=None):
            if self.observer.epoch_ended(dict(logs or {})):
                self.model.stop_training = True

    return PruneOnMetric
