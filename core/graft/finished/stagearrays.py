"""Arrays for a finished stage's model, from an ``.npz``: the inputs as ``input``, each head's targets by its name.

The archive is read by the ``npz`` source's own code (headers checked before
anything is read, large uncompressed arrays left on disk) and checked by the
same checks as a stage's data (``graft.data.datacheck``); every problem is reported
at once, naming the file, the array, and what was expected and found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from graft.base.problems import Path, SpecError, SpecProblem
from graft.data.datacheck import HeadTarget, check_dataset
from graft.plugins.arrayfile import ArrayFile
from graft.plugins.datasets import Array, Dataset
from graft.plugins.layers import INPUT_NAME

HOW = "save them with numpy.savez(path, input=inputs{targets})"


def read_inputs(path: str, input_shape: tuple[int, ...], option: str) -> Array:
    """The array ``input`` of the archive at ``path``, checked against the model's ``input_shape``."""
    return check_inputs(open_inputs(path, option), input_shape)


def open_inputs(path: str, option: str) -> Dataset:
    """The array ``input`` of the archive at ``path``, read (or mapped) but not yet checked against a model.

    No TensorFlow: ``graft predict`` calls it before it loads the model, so that a missing or
    misnamed array is reported in a second, not after the model has loaded.
    """
    return _read(path, {}, option)


def check_inputs(dataset: Dataset, input_shape: tuple[int, ...]) -> Array:
    """The inputs ``open_inputs`` read, checked against the model's ``input_shape``."""
    _check(dataset, input_shape, {})
    return dataset.x


def checked_inputs(x: Any, input_shape: tuple[int, ...], what: str) -> Array:
    """Inputs given in memory (or an ``ArrayFile``), checked against the model's ``input_shape``."""
    if not isinstance(x, ArrayFile):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise SpecError(what, [f"not one array (a ragged list?): {exc}"]) from None
    dataset = Dataset(x=x, y={}, description=what)
    _check(dataset, input_shape, {})
    return dataset.x


def read_labelled(path: str, input_shape: tuple[int, ...], heads: Mapping[str, HeadTarget], option: str) -> Dataset:
    """``input`` and one target array per head (named after the head) of the archive at ``path``, checked."""
    dataset = _read(path, heads, option)
    _check(dataset, input_shape, heads)
    return dataset


def labelled_arrays(
    arrays: Mapping[str, Any], input_shape: tuple[int, ...], heads: Mapping[str, HeadTarget], what: str
) -> Dataset:
    """Arrays given in memory (``{"input": x, "level": y, ...}``) as a checked dataset."""
    missing = [name for name in (INPUT_NAME, *heads) if name not in arrays]
    if missing:
        raise SpecError(what, [f"no array '{name}' among {', '.join(map(str, arrays)) or 'none'}; "
                               f"give the inputs as '{INPUT_NAME}' and each head's targets by its name"
                               for name in missing])
    targets = {head: arrays[head] for head in heads}
    dataset = Dataset(x=arrays[INPUT_NAME], y=targets, description=what)
    _check(dataset, input_shape, heads)
    return dataset


def _read(path: str, heads: Mapping[str, HeadTarget], option: str) -> Dataset:
    from graft.data.npz import read_arrays

    targets: dict[str, tuple[str, Path]] = {head: (head, (head,)) for head in heads}
    try:
        x, y, _ = read_arrays(os.path.abspath(path), (INPUT_NAME, (INPUT_NAME,)), targets, option)
    except SpecProblem as problem:
        lines = [message for _, message in problem.items]
        if any(message.startswith("no array ") for message in lines):
            names = "".join(f", {head}=..." for head in heads)
            lines.append(f"the model's inputs are named '{INPUT_NAME}'" + (" and its heads' targets by the heads' "
                         "names" if heads else "") + f": {HOW.format(targets=names)}")
        raise SpecError(f"{option} {path}", lines) from None
    return Dataset(x=x, y=y, description=f"{option} {path}")


def _check(dataset: Dataset, input_shape: tuple[int, ...], heads: Mapping[str, HeadTarget]) -> None:
    """The input shape first (expected and got, per sample), then what ``graft.data.datacheck`` checks of the values."""
    source = dataset.description
    x = dataset.x
    shape = tuple(x.shape) if isinstance(x, ArrayFile) else np.shape(x)
    if len(shape) < 1 or tuple(shape[1:]) != tuple(input_shape):
        raise SpecError(source, [
            f"array '{INPUT_NAME}' has shape {tuple(shape)} but the model takes {_rows(input_shape)}: "
            f"one row per sample, each shaped {tuple(input_shape)}"
        ])
    messages = check_dataset(dataset, input_shape, dict(heads), training="the")
    if messages:
        raise SpecError(source, [message.removeprefix(f"{source}: ") for message in messages])


def _rows(input_shape: tuple[int, ...]) -> str:
    return "(samples, " + ", ".join(str(size) for size in input_shape) + ")"
