"""The Keras optimizer of a stage, built from its vetted ``optimizer`` (the table is ``graft.spec.optimizers``)."""

from __future__ import annotations

from graft.spec.optimizers import OPTIMIZERS
from graft.spec.records import Optimizer


def make_optimizer(keras, optimizer: Optimizer):
    """The Keras optimizer a spec's ``optimizer`` names, with its learning rate and options."""
    keras_class = getattr(keras.optimizers, OPTIMIZERS[optimizer.name].keras_class)
    return keras_class(learning_rate=optimizer.learning_rate, **optimizer.options)
