"""An array that stays on disk: rows are read a batch at a time, so memory does not grow with the file.

Rows are read with ``os.preadv`` straight into the batch, in file order: the
pages read stay in the system's page cache and never count against the process
(a memory map of rows scattered over the file made all of it resident while a
chunk was checked).  Pure numpy, imported when an array is first opened (``import graft`` stays light).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np

CHUNK_BYTES = 32 * 2**20  # what ``chunks`` reads at a time


def _shape(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _optional_rows(value) -> np.ndarray | None:
    import numpy as np

    return None if value is None else np.asarray(value, dtype=np.int64)


def _dtype(value: Any) -> np.dtype:
    import numpy as np

    return np.dtype(value)


@attrs.frozen(eq=False)
class ArrayFile:
    """Rows of a C-ordered array of ``shape`` (as stored) and ``dtype`` at byte ``offset`` of ``path``.

    ``rows`` keeps a subset of the stored rows, in that order (a validation split
    takes rows without copying the data).  ``len`` is the number of rows kept;
    ``sample_shape`` the shape of one row.
    """

    path: str
    shape: tuple[int, ...] = attrs.field(converter=_shape)
    dtype: np.dtype = attrs.field(converter=_dtype)
    offset: int = 0
    rows: np.ndarray | None = attrs.field(default=None, converter=_optional_rows)

    @classmethod
    def of_npy(cls, path: str) -> ArrayFile:
        """The array of a ``.npy`` file (as ``numpy.save`` writes it)."""
        import numpy as np

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
        import numpy as np

        indices = np.asarray(indices, dtype=np.int64)
        return attrs.evolve(self, rows=indices if self.rows is None else self.rows[indices])

    def read(self, indices) -> np.ndarray:
        """The rows at ``indices`` as an array in memory, in the order given.

        ``ValueError`` if the file is shorter than when it was opened (changed since).
        """
        import numpy as np

        stored = np.asarray(indices, dtype=np.int64)
        if self.rows is not None:
            stored = self.rows[stored]
        row_bytes = math.prod(self.sample_shape) * self.dtype.itemsize
        values = np.empty((len(stored), *self.sample_shape), self.dtype)
        if row_bytes == 0 or len(stored) == 0:
            return values
        buffer = values.reshape(len(stored), row_bytes // self.dtype.itemsize).view(np.uint8)
        with open(self.path, "rb", buffering=0) as handle:
            self._check_open(handle, stored)
            if np.array_equal(stored, np.arange(stored[0], stored[0] + len(stored))):  # one block
                self._read_at(handle, buffer.reshape(-1), int(stored[0]) * row_bytes)
            else:
                for position in np.argsort(stored, kind="stable"):  # front to back
                    self._read_at(handle, buffer[position], int(stored[position]) * row_bytes)
        return values

    def _check_open(self, handle, stored: np.ndarray) -> None:
        """Called by ``read`` with the open file and the stored rows about to be read: a subclass that
        proves what it reads (the feature cache's ``CheckedArrayFile``) checks them here."""

    def _read_at(self, handle, target: np.ndarray, start: int) -> None:
        # numpy's stubs make ndarray a Buffer on Python 3.12+ only, hence the ignores below
        done = os.preadv(handle.fileno(), [target], self.offset + start)  # type: ignore[list-item]
        while 0 < done < target.nbytes:  # a short read: go on where it stopped
            more = os.preadv(handle.fileno(), [target[done:]], self.offset + start + done)  # type: ignore[list-item]
            done = done + more if more else done
            if not more:
                break
        if done != target.nbytes:
            raise ValueError(
                f"{self.path} ended before byte {self.offset + start + target.nbytes:,}: the file changed since it "
                "was loaded; run again"
            )

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Every row kept, in order, a chunk of at most ``chunk_bytes`` at a time."""
        import numpy as np

        row_bytes = max(1, math.prod(self.sample_shape) * self.dtype.itemsize)
        step = max(1, chunk_bytes // row_bytes)
        for start in range(0, len(self), step):
            yield self.read(np.arange(start, min(start + step, len(self))))

    def to_array(self) -> np.ndarray:
        """Every row kept, in memory."""
        import numpy as np

        return self.read(np.arange(len(self)))


def rows_of(values, indices) -> np.ndarray:
    """Rows of an in-memory array or an ``ArrayFile``, as an array in memory."""
    import numpy as np

    if isinstance(values, ArrayFile):
        return values.read(indices)
    return np.take(values, indices, axis=0)
