"""The files of one feature cache entry: raw ``.bin`` arrays and ``meta.json``, written a batch at a time.

Each array is a file of C-ordered rows, no header: the features, and one file per
head's targets, for the training and the validation samples.  ``meta.json`` (a
``FeaturesMeta``) says every file's dtype and shape; an entry is trusted only
while its meta parses strictly and every file has exactly the size it says
(``read_meta``).  The store (``graft.features.store``) names, publishes and
removes entries.  Pure numpy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np

from graft.base.problems import SpecProblem, format_path
from graft.features.folders import writing
from graft.plugins.arrayfile import ArrayFile
from graft.plugins.datasets import Dataset
from graft.spec.convert import make_converter, structure

META = "meta.json"
FORMAT = 1
NUMERIC_KINDS = "biufc"  # bool, integers, floats, complex

Batch = tuple[np.ndarray, Mapping[str, np.ndarray]]


# -- records -----------------------------------------------------------------------------------


@attrs.frozen
class StoredArray:
    """One ``.bin`` file: C-ordered rows of ``shape`` and ``dtype`` (``numpy.dtype.str``, e.g. ``<f4``)."""

    file: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def array_file(self, folder: str) -> ArrayFile:
        return ArrayFile(os.path.join(folder, self.file), self.shape, np.dtype(self.dtype))


@attrs.frozen
class StoredSplit:
    """The features, and the targets per head name, of the training or the validation samples."""

    samples: int
    features: StoredArray
    targets: dict[str, StoredArray]

    @property
    def arrays(self) -> list[StoredArray]:
        return [self.features, *self.targets.values()]

    def dataset_arrays(self, folder: str) -> tuple[ArrayFile, dict[str, ArrayFile]]:
        return self.features.array_file(folder), {
            head: array.array_file(folder) for head, array in self.targets.items()
        }


@attrs.frozen
class FeaturesMeta:
    """``meta.json`` of an entry.  ``created`` is ISO 8601 UTC; ``versions`` are Keras's and TensorFlow's."""

    key: str
    description: str
    created: str
    versions: dict[str, str]
    train: StoredSplit
    validation: StoredSplit | None = None
    format: int = FORMAT

    @property
    def splits(self) -> list[StoredSplit]:
        return [self.train] if self.validation is None else [self.train, self.validation]

    def to_json(self) -> dict[str, Any]:
        return _CONVERTER.unstructure(self)


@attrs.define(eq=False)
class StoredFeatures:
    """A checked entry.  It holds a shared lock on the entry (``graft cache clear`` leaves it alone)
    until ``close`` (or the end of a ``with`` block)."""

    path: str
    meta: FeaturesMeta
    lock: Any = attrs.field(default=None, repr=False)

    def dataset(self, description: str) -> Dataset:
        """The features as inputs and the targets per head, as ``ArrayFile``s read a batch at a time."""
        x, y = self.meta.train.dataset_arrays(self.path)
        if self.meta.validation is None:
            return Dataset(x=x, y=y, description=description)
        x_val, y_val = self.meta.validation.dataset_arrays(self.path)
        return Dataset(x=x, y=y, description=description, x_val=x_val, y_val=y_val)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def __enter__(self) -> StoredFeatures:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


_CONVERTER = make_converter()


# -- writing -------------------------------------------------------------------------------------


class _Sink:
    """One ``.bin`` file written a batch at a time; every batch must match the first's dtype and shape."""

    def __init__(self, folder: str, file: str, what: str, first: np.ndarray) -> None:
        if first.dtype.kind not in NUMERIC_KINDS or first.ndim == 0:
            raise ValueError(
                f"{what} must be numeric arrays with a sample axis, got {first.dtype} of shape {first.shape}"
            )
        self.file, self.what, self.path = file, what, os.path.join(folder, file)
        self.dtype, self.sample_shape, self.rows = first.dtype, first.shape[1:], 0
        with writing(self.path):
            self.handle = open(self.path, "wb")  # noqa: SIM115 - written batch by batch, closed by close()

    def write(self, values: np.ndarray, number: int) -> None:
        if values.dtype != self.dtype or values.shape[1:] != self.sample_shape:
            raise ValueError(
                f"batch {number} of {self.what} is {values.dtype} {values.shape[1:]} per sample, "
                f"the first batch was {self.dtype} {self.sample_shape}"
            )
        with writing(self.path):
            as_bytes = np.ascontiguousarray(values).reshape(-1).view(np.uint8)
            self.handle.write(memoryview(as_bytes))  # type: ignore[arg-type]  # numpy's stubs: a Buffer on 3.12+ only
        self.rows += len(values)

    def finish(self) -> StoredArray:
        with writing(self.path):
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
        return StoredArray(self.file, self.dtype.str, (self.rows, *self.sample_shape))


def write_split(folder: str, split: str, batches: Iterable[Batch]) -> StoredSplit | None:
    """Write ``(features, {head: targets})`` batches to ``<split>.*.bin`` in ``folder``, flushed to disk.

    One batch is in memory at a time.  ``None`` if there was no batch.
    """
    sinks: dict[str | None, _Sink] = {}  # None: the features; else a head name
    try:
        for number, (features, targets) in enumerate(batches):
            arrays: dict[str | None, np.ndarray] = {
                None: np.asarray(features), **{head: np.asarray(values) for head, values in targets.items()}
            }
            if not sinks:
                for index, (head, array) in enumerate(arrays.items()):
                    name = "features" if head is None else f"target{index}"
                    sinks[head] = _Sink(folder, f"{split}.{name}.bin", f"the {split} {head or 'features'}", array)
            if arrays.keys() != sinks.keys():
                raise ValueError(f"batch {number} of the {split} data has heads {list(targets)}, the first had others")
            for head, array in arrays.items():
                if array.ndim == 0 or len(array) != len(arrays[None]):
                    raise ValueError(
                        f"batch {number} of the {split} data: the {head or 'features'} are not one per sample"
                    )
                sinks[head].write(array, number)
    except BaseException:
        for sink in sinks.values():
            sink.handle.close()
        raise
    if not sinks:
        return None
    stored = {head: sink.finish() for head, sink in sinks.items()}
    stored_features = stored.pop(None)
    stored_targets = {head: array for head, array in stored.items() if head is not None}
    return StoredSplit(stored_features.shape[0], stored_features, stored_targets)


# -- reading -------------------------------------------------------------------------------------


def read_meta(handle, folder: str, key: str) -> tuple[FeaturesMeta | None, str | None]:
    """The meta read from ``handle``, checked against the files in ``folder``, or ``(None, what is wrong)``."""
    try:
        meta = structure(_CONVERTER, json.load(handle), FeaturesMeta)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{META} is not JSON ({exc})"
    except SpecProblem as problem:
        path, message = problem.items[0]
        return None, f"{META} at {format_path(path)}: {message}"
    if meta.format != FORMAT or meta.key != key:
        return None, f"{META} is of format {meta.format} for key {meta.key}, not {FORMAT} for {key}"
    for split in meta.splits:
        for array in split.arrays:
            wrong = _array_problem(folder, array, split.samples)
            if wrong is not None:
                return None, wrong
    return meta, None


def _array_problem(folder: str, array: StoredArray, samples: int) -> str | None:
    if os.path.basename(array.file) != array.file or array.file in (META, "", ".", ".."):
        return f"{META} names the file {array.file!r}"
    try:
        dtype = np.dtype(array.dtype)
    except TypeError:
        return f"{META} gives {array.file} the dtype {array.dtype!r}"
    if dtype.kind not in NUMERIC_KINDS or not array.shape or array.shape[0] != samples or min(array.shape) < 0:
        return f"{META} gives {array.file} the shape {list(array.shape)} of {dtype} for {samples} samples"
    try:
        size = os.stat(os.path.join(folder, array.file)).st_size
    except OSError:
        return f"{array.file} is missing"
    if size != array.nbytes:
        return f"{array.file} has {size:,} bytes, expected {array.nbytes:,}"
    return None
