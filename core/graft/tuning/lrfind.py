"""The learning-rate range test (Smith 2015, as fastai's ``lr_find``): train with a rate growing exponentially
batch after batch, follow the smoothed loss, stop when it explodes, and suggest a rate.

``range_test`` runs it on any compiled Keras model; ``graft.tuning.lrstage`` runs it on a
stage's model.  Each batch is one Keras epoch of one step, so the loss logged is that
batch's own (not the running mean Keras logs within an epoch).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

DEFAULT_START, DEFAULT_END, DEFAULT_STEPS = 1e-7, 10.0, 200
SMOOTHING = 0.98  # the loss is smoothed as fastai does: an exponential moving average, bias-corrected
EXPLODES = 4.0  # stop once the smoothed loss is this many times its lowest


@attrs.frozen
class RangeTest:
    """The rates tried, the loss of each batch and its smoothed value; the suggested rate and how it was found."""

    rates: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggested: float  # a tenth of the rate at the lowest smoothed loss: fast, and still well below where it diverges
    lowest: float  # the rate at the lowest smoothed loss
    exploded: bool  # stopped because the loss exploded (else it ran every step)


def rate_at(step: int, steps: int, start: float, end: float) -> float:
    """The rate of batch ``step`` (0-based) of ``steps``, from ``start`` to ``end`` exponentially."""
    return start * (end / start) ** (step / max(1, steps - 1))


def range_test(keras, model: Any, batches: Any, steps: int = DEFAULT_STEPS, start: float = DEFAULT_START,
               end: float = DEFAULT_END) -> RangeTest:
    """Train the compiled ``model`` on ``batches`` (a ``tf.data`` pipeline, repeated as needed) for up to ``steps``
    batches, the rate growing from ``start`` to ``end``.  The model's weights change: run it on a copy."""
    recorder = _recorder(keras)(steps, start, end)
    model.fit(batches.repeat(), epochs=steps, steps_per_epoch=1, callbacks=[recorder], shuffle=False,
              verbose=0)
    return summarise(recorder.rates, recorder.losses, exploded=recorder.exploded)


def summarise(rates: list[float], losses: list[float], exploded: bool) -> RangeTest:
    """The smoothed losses and the suggestion for the losses seen at ``rates``."""
    smoothed = _smoothed(losses)
    finite = [index for index, value in enumerate(smoothed) if math.isfinite(value)]
    if len(finite) < 3:
        raise ValueError("the loss was not a number from the first batches on: lower the start rate")
    lowest_at = min(finite, key=lambda index: smoothed[index])
    lowest = rates[lowest_at]
    return RangeTest(tuple(rates), tuple(losses), tuple(smoothed), lowest / 10, lowest, exploded)


def _smoothed(losses: list[float]) -> list[float]:
    average, smoothed = 0.0, []
    for count, loss in enumerate(losses, start=1):
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smoothed.append(average / (1 - SMOOTHING**count))
    return smoothed


def _set_rate(optimizer: Any, rate: float) -> None:
    variable = optimizer.learning_rate
    if hasattr(variable, "assign"):
        variable.assign(rate)
    else:
        optimizer.learning_rate = rate


def _recorder(keras):
    class RateRecorder(keras.callbacks.Callback):  # type: ignore[name-defined]
        """Sets each batch's rate, records its loss, stops the test once the smoothed loss explodes."""

        def __init__(self, steps: int, start: float, end: float) -> None:
            super().__init__()
            self.steps, self.start, self.end = steps, start, end
            self.rates: list[float] = []
            self.losses: list[float] = []
            self.exploded = False
            self._average, self._best = 0.0, math.inf

        def on_epoch_begin(self, epoch, logs=None):
            _set_rate(self.model.optimizer, rate_at(epoch, self.steps, self.start, self.end))

        def on_epoch_end(self, epoch, logs=None):
            loss = float((logs or {}).get("loss", math.nan))
            self.rates.append(rate_at(epoch, self.steps, self.start, self.end))
            self.losses.append(loss)
            self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
            smoothed = self._average / (1 - SMOOTHING ** len(self.losses))
            if not math.isfinite(smoothed) or (len(self.losses) > 10 and smoothed > EXPLODES * self._best):
                self.exploded = True
                self.model.stop_training = True
            self._best = min(self._best, smoothed)

    return RateRecorder


def draw(test: RangeTest, title: str):
    """A matplotlib ``Figure``: the loss (raw, faint; smoothed) against the rate on a log axis, the suggestion
    marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.6), dpi=100, layout="constrained")
    ax = figure.subplots()
    ax.plot(test.rates, test.losses, color="C0", alpha=0.25, label="loss of each batch")
    ax.plot(test.rates, test.smoothed, color="C0", label="smoothed")
    ax.axvline(test.suggested, color="C3", linestyle="--", label=f"suggested {test.suggested:.2g}")
    ax.axvline(test.lowest, color="C2", linestyle=":", label=f"lowest loss {test.lowest:.2g}")
    finite = [value for value in test.smoothed if math.isfinite(value)]
    if finite:
        ax.set_ylim(min(finite) - 0.05 * abs(min(finite)), min(max(finite), EXPLODES * min(finite)) * 1.1 + 1e-12)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return figure
