"""The built-in ``npz`` data source: arrays from numpy ``.npz`` archives, checked before they are read.

Large arrays stored uncompressed (``numpy.savez``) stay on disk as ``graft.ArrayFile``
(read a batch at a time while training, so memory does not grow with the file); smaller
ones, and those that cannot be read in place, are read into memory, which the dataset's
description says for large ones (the archive is read by ``graft.data.npz``, imported when
data is loaded, so ``graft validate`` does without numpy).  Pure numpy; no TensorFlow import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar

import attrs

import graft
from graft.base.problems import Problems, listing
from graft.plugins.datasets import Dataset
from graft.validators import existing_file, fraction, non_empty

if TYPE_CHECKING:
    from graft.plugins.datasets import Array


@attrs.frozen
class NpzParams:
    """Params of the ``npz`` source; see ``Npz``."""

    STARTER: ClassVar[dict] = {"path": "data/train.npz", "targets": {"label": "y"}, "validation_split": 0.2}

    path: str = attrs.field(validator=existing_file)
    targets: dict[str, str] = attrs.field(validator=non_empty)
    inputs: str = "x"
    validation_split: float = attrs.field(default=0.0, validator=fraction)
    validation_path: str | None = attrs.field(default=None, validator=attrs.validators.optional(existing_file))
    sample_weights: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        problems = Problems()
        if self.validation_path is not None and self.validation_split > 0:
            problems.add(
                ("validation_path",),
                f"give either validation_path or validation_split, not both "
                f"(validation_split is {self.validation_split})",
            )
        for head in self.sample_weights:
            if head not in self.targets:
                problems.add(("sample_weights", head), f"'{head}' has no targets here; weigh the samples of a head "
                                                       f"in targets: {listing(list(self.targets))}")
        problems.raise_all()


WEIGHTS = "\0weights of "  # read_arrays names a head's sample weights so: no head name starts with NUL


def _arrays_of(
    params: NpzParams, path: str, field: str
) -> tuple[Array, dict[str, Array], dict[str, Array] | None, dict[str, str]]:
    """Inputs, targets, sample weights (None without) and the large arrays read into memory, from the archive
    at ``path``.

    Problems of the training file (``field == "path"``) are reported at
    ``inputs``/``targets.<head>``/``sample_weights.<head>``, those of any other file at ``field``.
    """
    own = field == "path"
    inputs_at = ("inputs",) if own else (field,)
    targets = {head: (key, ("targets", head) if own else (field,)) for head, key in params.targets.items()}
    targets |= {f"{WEIGHTS}{head}": (key, ("sample_weights", head) if own else (field,))
                for head, key in params.sample_weights.items()}
    from graft.data.npz import read_arrays

    x, arrays, in_memory = read_arrays(path, (params.inputs, inputs_at), targets, field)
    y = {head: values for head, values in arrays.items() if not head.startswith(WEIGHTS)}
    weights = {head.removeprefix(WEIGHTS): values for head, values in arrays.items() if head.startswith(WEIGHTS)}
    return x, y, weights or None, in_memory


def _resolve(base_dir: str, path: str) -> str:
    """``path`` relative to the spec's folder ``base_dir``, ``~`` expanded."""
    return os.path.abspath(os.path.join(base_dir, os.path.expanduser(path)))


class Npz:
    """Arrays from a numpy ``.npz`` archive (written with ``numpy.savez``; see the module for what stays on disk)::

        data:
          source: npz
          params:
            path: data/train.npz        # relative to the spec's folder
            inputs: x                   # array key of the inputs (default x)
            targets: {level: y_level, trend: y_trend}   # head name -> array key
            validation_split: 0.2       # or validation_path: data/val.npz (same keys)
            sample_weights: {trend: w}  # optional: head name -> array key of one weight per sample
    """

    @graft.hookimpl
    def load_data(self, params: NpzParams, base_dir: str) -> Dataset:
        x, y, w, in_memory = _arrays_of(params, _resolve(base_dir, params.path), "path")
        notes = _notes(in_memory, "")
        if params.validation_path is not None:
            x_val, y_val, w_val, in_memory = _arrays_of(
                params, _resolve(base_dir, params.validation_path), "validation_path"
            )
            notes += _notes(in_memory, f" in {params.validation_path}")
            return Dataset(x=x, y=y, description=_description(params.path, notes), x_val=x_val, y_val=y_val,
                           sample_weight=w, sample_weight_val=w_val)
        dataset = Dataset(x=x, y=y, description=_description(params.path, notes), sample_weight=w)
        return dataset.split(params.validation_split, seed=0)


def _notes(in_memory: dict[str, str], where: str) -> list[str]:
    """``x is compressed: read into memory; save it with numpy.savez to stream it``, one per array."""
    fixes = {"compressed": "with numpy.savez", "Fortran-ordered": "C-ordered (numpy.ascontiguousarray)"}
    return [
        f"{key}{where} is {why}: read into memory; save it {fixes[why]} to stream it"
        for key, why in in_memory.items()
    ]


def _description(path: str, notes: list[str]) -> str:
    """``npz data/train.npz``, and which large arrays were read into memory: ``(x is compressed: ...)``."""
    return f"npz {path}" + (f" ({'. '.join(notes)})" if notes else "")
