"""Training data as arrays, and the checks that run against the model before any training."""

from __future__ import annotations

import attrs
import numpy as np


@attrs.frozen
class Dataset:
    """Inputs and one target array per head name, with optional validation arrays.

    ``description`` names where the data came from (e.g. ``npz data/train.npz``);
    every data error quotes it.
    """

    x: np.ndarray
    y: dict[str, np.ndarray]
    description: str
    x_val: np.ndarray | None = None
    y_val: dict[str, np.ndarray] | None = None

    @property
    def has_validation(self) -> bool:
        return self.x_val is not None

    def split(self, fraction: float, seed: int = 0) -> Dataset:
        """Hold out a shuffled ``fraction`` of the samples as validation data."""
        if not 0 < fraction < 1:
            return self
        order = np.random.default_rng(seed).permutation(len(self.x))
        cut = len(self.x) - max(1, int(round(len(self.x) * fraction)))
        train, val = order[:cut], order[cut:]
        return attrs.evolve(
            self,
            x=self.x[train],
            y={head: target[train] for head, target in self.y.items()},
            x_val=self.x[val],
            y_val={head: target[val] for head, target in self.y.items()},
        )
