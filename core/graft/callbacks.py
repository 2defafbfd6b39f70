"""The one place that knows the callbacks a stage's YAML can ask for, and how Keras builds them."""

from __future__ import annotations

from typing import Any

import attrs

from graft.spec import Callbacks

# YAML key under a stage's ``callbacks:`` -> the keras.callbacks class it configures.
KERAS_CALLBACKS = {"early_stopping": "EarlyStopping", "reduce_lr": "ReduceLROnPlateau"}


def configured(callbacks: Callbacks) -> list[tuple[str, Any]]:
    """``(yaml key, options)`` of every callback the stage asks for, in table order."""
    return [(key, getattr(callbacks, key)) for key in KERAS_CALLBACKS if getattr(callbacks, key) is not None]


def make_callbacks(keras, callbacks: Callbacks) -> list:
    """The Keras callbacks of a stage, built from their options as given."""
    return [
        getattr(keras.callbacks, KERAS_CALLBACKS[key])(**attrs.asdict(options))
        for key, options in configured(callbacks)
    ]
