"""The Keras optimizer of a stage, built from its vetted ``optimizer`` (the table is ``graft.spec.optimizers``)."""

from __future__ import annotations

from graft.spec.optimizers import OPTIMIZERS, Schedule
from graft.spec.records import Optimizer


def make_optimizer(keras, optimizer: Optimizer, steps: int | None = None):
    """The Keras optimizer a spec's ``optimizer`` names, with its learning rate and options; with a ``schedule``,
    the rate follows it over ``steps`` (the batches the fit trains; without them, the plain rate)."""
    keras_class = getattr(keras.optimizers, OPTIMIZERS[optimizer.name].keras_class)
    rate = optimizer.learning_rate
    if optimizer.schedule is not None and steps:
        rate = one_cycle(keras, optimizer.learning_rate, optimizer.schedule, steps)
    return keras_class(learning_rate=rate, **optimizer.options)


def one_cycle(keras, peak: float, schedule: Schedule, steps: int):
    """Warm-up then cosine over ``steps``: Keras's ``CosineDecay`` with its linear warm-up (Keras 3, TF >= 2.13)."""
    warmup = round(schedule.warmup * steps)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=steps, alpha=schedule.end)
    return keras.optimizers.schedules.CosineDecay(
        peak * schedule.start, decay_steps=max(1, steps - warmup), alpha=schedule.end, warmup_target=peak,
        warmup_steps=warmup,
    )
