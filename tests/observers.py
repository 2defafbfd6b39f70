"""Test helpers that watch real runs through the runner's observer seam (no patching of Keras)."""

from __future__ import annotations

import json
import os

import numpy as np

from graft.base.backend import import_keras
from graft.runs.observer import RunObserver


class Crash(Exception):
    """A simulated crash."""


class FitSpy(RunObserver):
    """Records, before every ``fit``, each layer's trainable flag and starting weights (of the stage's
    whole model, also when ``fit`` trains only the heads on cached features); with ``crash`` set,
    training fails after its first batch."""

    def __init__(self) -> None:
        self.calls: list[dict[str, tuple[bool, list[np.ndarray]]]] = []
        self.crash = False

    def before_fit(self, stage, round, built) -> None:
        self.calls.append(
            {
                info.name: (bool(info.layer.trainable), [np.array(w, copy=True) for w in info.layer.get_weights()])
                for info in built.layers
            }
        )

    def keras_callbacks(self) -> list:
        if not self.crash:
            return []
        keras = import_keras()

        class CrashAfterFirstBatch(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                raise Crash("simulated crash inside training")

        return [CrashAfterFirstBatch()]

    def start(self, call: int, layer: str) -> list[np.ndarray]:
        return self.calls[call][layer][1]

    def trainable(self, call: int) -> dict[str, bool]:
        return {name: flag for name, (flag, weights) in self.calls[call].items() if weights}


def read_report(out: str, stage: str) -> dict:
    """``report.json`` of a finished stage, as the JSON a user's script reads."""
    with open(os.path.join(out, stage, "report.json"), encoding="utf-8") as handle:
        return json.load(handle)


def bitwise(left: list[np.ndarray], right: list[np.ndarray]) -> bool:
    return len(left) == len(right) and all(
        a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        for a, b in zip(left, right, strict=True)
    )
