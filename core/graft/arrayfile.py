"""An array that stays on disk: rows are read a batch at a time, so memory does not grow with the file.

The file is memory-mapped only while a batch is read and unmapped right after,
so the pages read count against the page cache, not the process.  Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import attrs
import numpy as np

CHUNK_BYTES = 32 * 2**20  # what ``chunks`` reads at a time


def _optional_rows(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.int64)


@attrs.frozen(eq=False)
class ArrayFile:
    """Rows of a C-ordered array of ``shape`` and ``dtype`` stored at byte ``offset`` of ``path``.

    ``rows`` keeps a subset of the stored rows, in that order (a validation split
    takes rows without copying the data).  ``len`` is the number of rows kept.
    """

    path: str
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    dtype: np.dtype = attrs.field(converter=np.dtype)
    offset: int = 0
    rows: np.ndarray | None = attrs.field(default=None, converter=_optional_rows)

    @classmethod
    def of_npy(cls, path: str) -> ArrayFile:
        """The array of a ``.npy`` file (as ``numpy.save`` writes it)."""
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            if fortran and len(shape) > 1:
                raise ValueError(f"{path} holds a Fortran-ordered array; save it C-ordered (numpy.ascontiguousarray)")
            return cls(path, shape, dtype, handle.tell())

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else self.shape[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def nbytes(self) -> int:
        return len(self) * math.prod(self.sample_shape) * self.dtype.itemsize

    def take(self, indices) -> ArrayFile:
        """The rows at ``indices`` (positions among the rows kept), without reading them."""
        indices = np.asarray(indices, dtype=np.int64)
        return attrs.evolve(self, rows=indices if self.rows is None else self.rows[indices])

    def read(self, indices) -> np.ndarray:
        """The rows at ``indices`` as an array in memory, in the order given."""
        stored = np.asarray(indices, dtype=np.int64)
        if self.rows is not None:
            stored = self.rows[stored]
        order = np.argsort(stored, kind="stable")  # read the file front to back
        mapped = self._map()
        try:
            values = np.empty((len(stored), *self.sample_shape), self.dtype)
            values[order] = mapped[stored[order]]
            return values
        finally:
            del mapped

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Every row kept, in order, a chunk of at most ``chunk_bytes`` at a time."""
        row_bytes = max(1, math.prod(self.sample_shape) * self.dtype.itemsize)
        step = max(1, chunk_bytes // row_bytes)
        for start in range(0, len(self), step):
            yield self.read(np.arange(start, min(start + step, len(self))))

    def to_array(self) -> np.ndarray:
        """Every row kept, in memory."""
        return self.read(np.arange(len(self)))

    def _map(self) -> np.ndarray:
        if math.prod(self.shape) == 0:
            return np.empty(self.shape, self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)


def rows_of(values, indices) -> np.ndarray:
    """Rows of an in-memory array or an ``ArrayFile``, as an array in memory."""
    if isinstance(values, ArrayFile):
        return values.read(indices)
    return np.take(values, indices, axis=0)
