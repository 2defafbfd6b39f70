"""Chunk digests of a feature cache entry's files: recorded as they are written, proven as they are read.

Every ``.bin`` file of an entry is cut into chunks of ``chunk_bytes`` (the last one
shorter) and ``meta.json`` records the sha256 of each (``ChunkDigests``, while the
file is written).  An entry being used holds a ``ChunkProof``: which chunks of
which file were read back and found equal to their digest in this process.  A
reused entry is proven whole before its stage trains (``prove_files``); while the
heads train, every read checks that the file is still the one proven (same inode,
size, modification and change times) and proves the chunks it touches that were not
proven yet, or that belong to a file changed since (``CheckedArrayFile``).  The
first mismatch is kept (``ChunkProof.damage``) and raised as
``FeatureCacheDamaged``.  Pure numpy.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from graft.base.problems import GraftError
from graft.plugins.arrayfile import ArrayFile

if TYPE_CHECKING:
    import numpy as np

CHUNK_BYTES = 1 << 20  # each file is digested in chunks of this many bytes
HASH = "sha256"
HEX_LENGTH = 64


class FeatureCacheDamaged(GraftError):
    """A chunk of a cached features file does not match the digest recorded when it was written."""


class ChunkDigests:
    """The sha256 of every ``chunk_bytes`` of what is fed to ``update``, in order."""

    def __init__(self, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes
        self._current = hashlib.sha256()
        self._filled = 0
        self._done: list[str] = []

    def update(self, data: memoryview) -> None:
        data = data.cast("B")
        while len(data):
            take = min(len(data), self.chunk_bytes - self._filled)
            self._current.update(data[:take])
            self._filled += take
            data = data[take:]
            if self._filled == self.chunk_bytes:
                self._done.append(self._current.hexdigest())
                self._current, self._filled = hashlib.sha256(), 0

    def finish(self) -> tuple[str, ...]:
        if self._filled:
            self._done.append(self._current.hexdigest())
            self._current, self._filled = hashlib.sha256(), 0
        return tuple(self._done)


def chunk_count(nbytes: int, chunk_bytes: int) -> int:
    """How many chunks a file of ``nbytes`` has."""
    return math.ceil(nbytes / chunk_bytes)


def _identity(status: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is replaced or written to: device, inode, size, modification and change times."""
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


@attrs.frozen
class ProvenFile:
    """One file of an entry: its path, size in bytes and the digest of each chunk."""

    path: str
    nbytes: int
    digests: tuple[str, ...]


class ChunkProof:
    """Which chunks of an entry's files were proven in this process; the first damage found, if any.

    Shared by the entry's ``CheckedArrayFile``s; safe to use from the input
    pipeline's threads.
    """

    def __init__(self, folder: str, chunk_bytes: int) -> None:
        self.folder = folder
        self.chunk_bytes = chunk_bytes
        self.damage: str | None = None
        self.proven_bytes = 0  # read back and digested in this process (for the log and the benchmarks)
        self._lock = threading.Lock()
        self._proven: dict[str, tuple[tuple[int, ...], set[int]]] = {}  # path -> (identity, chunks proven)

    def prove_files(self, files: Iterable[ProvenFile]) -> str | None:
        """Read every chunk of ``files`` and compare it with its digest; what is wrong, or None."""
        try:
            for file in files:
                with open(file.path, "rb", buffering=0) as handle:
                    self.prove(handle, file, range(chunk_count(file.nbytes, self.chunk_bytes)))
        except FeatureCacheDamaged:
            return self.damage
        except OSError as exc:
            return f"{os.path.basename(file.path)} cannot be read ({exc.strerror or exc})"
        return None

    def prove(self, handle, file: ProvenFile, chunks: Iterable[int]) -> None:
        """Prove ``chunks`` of the open ``file`` unless proven before (and the file unchanged since);
        ``FeatureCacheDamaged`` at the first mismatch."""
        identity = _identity(os.fstat(handle.fileno()))
        with self._lock:
            known = self._proven.get(file.path)
            if known is None or known[0] != identity:
                known = self._proven[file.path] = (identity, set())
            missing = [chunk for chunk in chunks if chunk not in known[1]]
        if not missing:
            return
        buffer = bytearray(self.chunk_bytes)
        for chunk in missing:
            start = chunk * self.chunk_bytes
            length = min(self.chunk_bytes, file.nbytes - start)
            view = memoryview(buffer)[:length]
            done = 0
            while done < length:
                more = os.preadv(handle.fileno(), [view[done:]], start + done)
                if not more:
                    break
                done += more
            if done != length or hashlib.sha256(view).hexdigest() != file.digests[chunk]:
                self._damaged(file, chunk, start, length, short=done != length)
            with self._lock:
                known[1].add(chunk)
                self.proven_bytes += length

    def _damaged(self, file: ProvenFile, chunk: int, start: int, length: int, short: bool) -> None:
        name = os.path.basename(file.path)
        what = "ends before it" if short else f"does not match its {HASH} recorded when it was written"
        message = (
            f"{name}: chunk {chunk + 1} of {len(file.digests)} (bytes {start:,} to {start + length:,}) {what}"
        )
        with self._lock:
            if self.damage is None:
                self.damage = message
        raise FeatureCacheDamaged(message)


def chunks_of_rows(stored_rows: np.ndarray, row_bytes: int, chunk_bytes: int) -> np.ndarray:
    """The chunk numbers holding any byte of the rows ``stored_rows`` (positions in the file), sorted."""
    import numpy as np  # imported here: confirming a finished run imports this module, and needs no numpy

    if len(stored_rows) == 0 or row_bytes == 0:
        return np.zeros(0, np.int64)
    starts = stored_rows.astype(np.int64) * row_bytes
    first, last = starts // chunk_bytes, (starts + row_bytes - 1) // chunk_bytes
    if row_bytes <= chunk_bytes:  # a row spans one chunk or two
        return np.unique(np.concatenate([first, last]))
    return np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)]))


@attrs.frozen(eq=False)
class CheckedArrayFile(ArrayFile):
    """An ``ArrayFile`` of a cache entry whose reads prove the chunks they touch (see ``ChunkProof``)."""

    digests: tuple[str, ...] = attrs.field(default=(), kw_only=True)
    proof: ChunkProof | None = attrs.field(default=None, kw_only=True)

    def _check_open(self, handle, stored: np.ndarray) -> None:
        if self.proof is None:
            return
        row_bytes = math.prod(self.sample_shape) * self.dtype.itemsize
        nbytes = self.shape[0] * row_bytes
        chunks = chunks_of_rows(stored, row_bytes, self.proof.chunk_bytes)
        self.proof.prove(handle, ProvenFile(self.path, nbytes, self.digests), chunks.tolist())
