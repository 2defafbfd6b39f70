"""Built-in data sources: ``npz`` (arrays from files) and ``synthetic`` (a generated demo task).

Pure numpy; no TensorFlow import.
"""

from __future__ import annotations

import os
import zipfile

import attrs
import numpy as np

import graft
from graft.data import Dataset
from graft.problems import SpecProblem, did_you_mean, listing
from graft.validators import fraction, non_empty, non_negative, positive

TARGET_KINDS = ("level", "trend")


# -- npz -----------------------------------------------------------------


@attrs.frozen
class NpzParams:
    """Params of the ``npz`` source; see ``Npz``."""

    path: str
    targets: dict[str, str] = attrs.field(validator=non_empty)
    inputs: str = "x"
    validation_split: float = attrs.field(default=0.0, validator=fraction)
    validation_path: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.validation_path is not None and self.validation_split > 0:
            raise SpecProblem(
                ("validation_path",),
                f"give either validation_path or validation_split, not both "
                f"(validation_split is {self.validation_split})",
            )


def _read_npz(path: str, field: str) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``; problems reported at ``field``."""
    if not os.path.isfile(path):
        raise SpecProblem((field,), f"file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise SpecProblem((field,), f"{path} holds a single array, not an .npz archive (write it with numpy.savez)")
        with loaded as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecProblem((field,), f"cannot read {path} as an .npz archive: {exc}") from None


def _pick(arrays: dict[str, np.ndarray], key: str, path: str, where: tuple) -> np.ndarray:
    if key not in arrays:
        names = sorted(arrays)
        raise SpecProblem(where, f"no array '{key}' in {path}; arrays: {listing(names)}{did_you_mean(key, names)}")
    return arrays[key]


def _arrays_of(params: NpzParams, path: str, field: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Inputs and targets from the archive at ``path``.

    Missing keys are reported at ``inputs``/``targets.<head>`` for the training
    file (``field == "path"``) and at ``field`` for any other file.
    """
    arrays = _read_npz(path, field)
    own = field == "path"
    problems, x, y = [], None, {}
    try:
        x = _pick(arrays, params.inputs, path, ("inputs",) if own else (field,))
    except SpecProblem as problem:
        problems.append(problem)
    for head, key in params.targets.items():
        try:
            y[head] = _pick(arrays, key, path, ("targets", head) if own else (field,))
        except SpecProblem as problem:
            problems.append(problem)
    combined = SpecProblem.combine(problems)
    if combined:
        raise combined
    return x, y


class Npz:
    """Arrays from a numpy ``.npz`` archive (written with ``numpy.savez``)::

        data:
          source: npz
          params:
            path: data/train.npz        # relative to the spec's folder
            inputs: x                   # array key of the inputs (default x)
            targets: {level: y_level, trend: y_trend}   # head name -> array key
            validation_split: 0.2       # or validation_path: data/val.npz (same keys)
    """

    @graft.hookimpl
    def load_data(self, params: NpzParams, base_dir: str) -> Dataset:
        path = os.path.abspath(os.path.join(base_dir, params.path))
        x, y = _arrays_of(params, path, "path")
        dataset = Dataset(x=x, y=y, description=f"npz {params.path}")
        if params.validation_path is not None:
            val_path = os.path.abspath(os.path.join(base_dir, params.validation_path))
            x_val, y_val = _arrays_of(params, val_path, "validation_path")
            return attrs.evolve(dataset, x_val=x_val, y_val=y_val)
        return dataset.split(params.validation_split, seed=0)


# -- synthetic -----------------------------------------------------------


def _target_kinds(_instance, attribute, value: dict[str, str]) -> None:
    problems = [
        SpecProblem(
            (attribute.name, head),
            f"'{kind}' is not one of: {', '.join(TARGET_KINDS)}{did_you_mean(str(kind), TARGET_KINDS)}",
        )
        for head, kind in value.items()
        if kind not in TARGET_KINDS
    ]
    combined = SpecProblem.combine(problems)
    if combined:
        raise combined


@attrs.frozen
class SyntheticParams:
    """Params of the ``synthetic`` source; see ``Synthetic``."""

    targets: dict[str, str] = attrs.field(validator=[non_empty, _target_kinds])
    samples: int = attrs.field(default=256, validator=positive)
    timesteps: int = attrs.field(default=50, validator=positive)
    channels: int = attrs.field(default=8, validator=positive)
    classes: int = attrs.field(default=3, validator=positive)
    frequency: float = attrs.field(default=1.0, validator=non_negative)
    noise: float = attrs.field(default=0.1, validator=non_negative)
    seed: int = attrs.field(default=0, validator=non_negative)
    validation_split: float = attrs.field(default=0.2, validator=fraction)


def generate(params: SyntheticParams) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The synthetic inputs and targets; the same params give bitwise identical arrays."""
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
    x = (components @ mixing + params.noise * noise).astype(np.float32)

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
