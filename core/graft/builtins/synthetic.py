"""The built-in ``synthetic`` data source: a generated multichannel time-series task, so demos run anywhere.

Pure numpy (imported when data is generated, so ``graft validate`` does without it); no TensorFlow import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs

import graft
from graft.base.memory import check_allocation
from graft.base.problems import Problems, did_you_mean
from graft.plugins.datasets import Dataset
from graft.validators import fraction, non_empty, non_negative, positive

if TYPE_CHECKING:
    import numpy as np

TARGET_KINDS = ("level", "trend")



def _target_kinds(_instance, attribute, value: dict[str, str]) -> None:
    problems = Problems()
    for head, kind in value.items():
        if kind not in TARGET_KINDS:
            problems.add(
                (attribute.name, head),
                f"'{kind}' is not one of: {', '.join(TARGET_KINDS)}{did_you_mean(str(kind), TARGET_KINDS)}",
            )
    problems.raise_all()


@attrs.frozen
class SyntheticParams:
    """Params of the ``synthetic`` source; see ``Synthetic``."""

    STARTER: ClassVar[dict] = {"targets": {"label": "trend"}}  # a 3-class label per series
    STARTER_INPUT_SHAPE: ClassVar[tuple] = (50, 8)  # its default timesteps and channels

    targets: dict[str, str] = attrs.field(validator=[non_empty, _target_kinds])
    samples: int = attrs.field(default=256, validator=positive)
    timesteps: int = attrs.field(default=50, validator=positive)
    channels: int = attrs.field(default=8, validator=positive)
    classes: int = attrs.field(default=3, validator=positive)
    frequency: float = attrs.field(default=1.0, validator=non_negative)
    noise: float = attrs.field(default=0.1, validator=non_negative)
    seed: int = attrs.field(default=0, validator=non_negative)
    validation_split: float = attrs.field(default=0.2, validator=fraction)

    def __attrs_post_init__(self) -> None:
        """Refuse sizes the machine cannot hold before anything is generated.

        Per value of ``samples x timesteps x (channels + 4)`` ``generate`` holds
        about 16 bytes at its peak: float64 noise and mixed signal, float32
        inputs, and four float64 components per timestep.
        """
        problems = Problems()
        with problems.collect():
            check_allocation(
                self.samples * self.timesteps * (self.channels + 4),
                f"synthetic data of {self.samples:,} samples x {self.timesteps:,} timesteps "
                f"x {self.channels:,} channels",
                ("samples",),
                itemsize=16,
            )
        with problems.collect():
            check_allocation(self.classes, f"{self.classes:,} classes", ("classes",), itemsize=8)
        problems.raise_all()


def generate(params: SyntheticParams) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The synthetic inputs and targets; the same params give bitwise identical arrays."""
    import numpy as np

    rng = np.random.default_rng(params.seed)
    n, steps = params.samples, params.timesteps
    # Draws do not depend on frequency, so changing it keeps labels and mixing: a related task.
    mixing = rng.uniform(0.5, 1.5, (3, params.channels)) * rng.choice([-1.0, 1.0], (3, params.channels))
    classes = rng.integers(0, params.classes, n)
    intercept = rng.normal(0.0, 0.5, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    noise = rng.normal(0.0, 1.0, (n, steps, params.channels))

    slopes = np.linspace(-1.0, 1.0, params.classes) if params.classes > 1 else np.zeros(1)
    t = np.linspace(0.0, 1.0, steps)
    trend = intercept[:, None] + slopes[classes][:, None] * t
    angle = 2 * np.pi * params.frequency * t + phase[:, None]
    components = np.stack([trend, np.sin(angle), np.cos(angle)], axis=-1)  # (n, steps, 3)
    noise *= params.noise  # in place: the same values as components @ mixing + noise * draws, in less memory
    noise += components @ mixing
    x = noise.astype(np.float32)

    tail = max(1, int(round(steps * 0.1)))
    made = {
        "level": x[:, -tail:, 0].mean(axis=1, keepdims=True).astype(np.float32),
        "trend": classes.astype(np.int64),
    }
    return x, {head: made[kind].copy() for head, kind in params.targets.items()}


class Synthetic:
    """A generated multichannel time-series task, so demos run anywhere.

    Each series is a linear trend (its slope is one of ``classes`` evenly spaced
    values in [-1, 1]) plus a sine of ``frequency`` cycles with a random phase,
    plus gaussian ``noise``; every channel is a fixed random mix of these.
    Inputs are float32 ``(samples, timesteps, channels)``.  Target kinds:
    ``level`` (float32 ``(samples, 1)``: mean of channel 0 over the last 10% of
    timesteps) and ``trend`` (int64 ``(samples,)``: the slope class id).
    A different ``frequency`` or ``seed`` makes a different, related task::

        data:
          source: synthetic
          params:
            targets: {level: level, trend: trend}   # head name -> level | trend
            samples: 256
            timesteps: 50
            channels: 8
            classes: 3
            frequency: 1.0
            noise: 0.1
            seed: 0
            validation_split: 0.2
    """

    @graft.hookimpl
    def load_data(self, params: SyntheticParams, base_dir: str) -> Dataset:
        x, y = generate(params)
        dataset = Dataset(x=x, y=y, description=f"synthetic (seed {params.seed})")
        return dataset.split(params.validation_split, seed=params.seed)
