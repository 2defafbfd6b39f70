"""Training data as arrays: ``Dataset``, what every data source returns."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from graft.problems import SpecProblem


@attrs.frozen
class Dataset:
    """Inputs and one target array per head name, with optional validation arrays.

    ``description`` names where the data came from (e.g. ``npz data/train.npz``);
    every data error quotes it.

    Before any stage trains, the runner checks every stage's dataset against
    that stage's model (``graft.datacheck.check_dataset``): numeric, finite,
    non-empty arrays; inputs shaped ``(samples, *model.input_shape)``; exactly
    one target array per head, with as many samples as the inputs and a shape
    and values that fit the head's output and loss.  Sources need not repeat
    these checks; they report what only they know (missing files, keys).
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
        """Hold out a shuffled ``fraction`` of the samples as validation data.

        Samples are never dropped: raises ``SpecProblem`` (at the source's
        params) if the inputs have no sample axis or a target array has a
        different number of samples than the inputs.
        """
        if not 0 < fraction < 1:
            return self
        try:
            x, y = _by_sample(self.x, self.y)
        except ValueError as exc:
            raise SpecProblem((), f"{self.description}: cannot hold out validation data: {exc}") from None
        order = np.random.default_rng(seed).permutation(len(x))
        cut = len(x) - max(1, int(round(len(x) * fraction)))
        train, val = order[:cut], order[cut:]
        return attrs.evolve(
            self,
            x=x[train],
            y={head: target[train] for head, target in y.items()},
            x_val=x[val],
            y_val={head: target[val] for head, target in y.items()},
        )


def _by_sample(x, y) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Inputs and targets as arrays with equally long sample axes, or ``ValueError`` saying why not."""
    if not isinstance(y, Mapping):
        raise ValueError(f"the targets are a {type(y).__name__}, not a mapping of head name to array")
    x = _array("the inputs", x)
    y = {head: _array(f"the targets for head '{head}'", values) for head, values in y.items()}
    for head, values in y.items():
        if len(values) != len(x):
            raise ValueError(
                f"the targets for head '{head}' have {len(values)} samples but the inputs have {len(x)}; "
                "give every target array one row per input sample"
            )
    return x, y


def _array(what: str, values) -> np.ndarray:
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} are not one array: {exc}") from None
    if array.ndim == 0:
        raise ValueError(f"{what} are a single value, not one per sample")
    return array
