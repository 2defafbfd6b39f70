"""The files of one feature cache entry: raw ``.bin`` arrays and ``meta.json``, written a batch at a time.

Each array is a file of C-ordered rows, no header: the features, and one file per
head's targets, for the training and the validation samples.  ``meta.json`` (a
``FeaturesMeta``) says every file's dtype and shape and the sha256 of each of its
chunks (``graft.features.digests``); an entry is considered only while its meta
parses strictly and every file has exactly the size it says (``read_meta``), and
trusted only as far as its chunks are proven against their digests
(``StoredFeatures.prove``, and every read of ``StoredFeatures.dataset``).  Entries
of the first format (no digests) are stale: they cannot be proven.  The store
(``graft.features.store``) names, publishes and removes entries.  Pure numpy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np
from cattrs.gen import make_dict_unstructure_fn, override

from graft.base.problems import SpecProblem, format_path
from graft.features.digests import (
    CHUNK_BYTES,
    HEX_LENGTH,
    CheckedArrayFile,
    ChunkDigests,
    ChunkProof,
    ProvenFile,
    chunk_count,
)
from graft.features.folders import writing
from graft.plugins.arrayfile import ArrayFile
from graft.plugins.datasets import Dataset
from graft.spec.convert import make_converter, structure

META = "meta.json"
FORMAT = 2  # 1: without chunk digests (before keras-graft 0.2.0)
MAX_CHUNK_BYTES = 1 << 30
NUMERIC_KINDS = "biufc"  # bool, integers, floats, complex

# (features, {head: targets}) or (features, {head: targets}, {head: sample weights})
Targets = Mapping[str, np.ndarray]
Batch = tuple[np.ndarray, Targets] | tuple[np.ndarray, Targets, Targets]


# -- records -----------------------------------------------------------------------------------


@attrs.frozen
class StoredArray:
    """One ``.bin`` file: C-ordered rows of ``shape`` and ``dtype`` (``numpy.dtype.str``, e.g. ``<f4``), and the
    sha256 (hex) of each chunk of the entry's ``chunk_bytes``, in order."""

    file: str
    dtype: str
    shape: tuple[int, ...]
    digests: tuple[str, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def array_file(self, folder: str, proof: ChunkProof) -> ArrayFile:
        """The file as an ``ArrayFile`` whose reads prove the chunks they touch."""
        return CheckedArrayFile(
            os.path.join(folder, self.file), self.shape, np.dtype(self.dtype), digests=self.digests, proof=proof
        )

    def proven_file(self, folder: str) -> ProvenFile:
        return ProvenFile(os.path.join(folder, self.file), self.nbytes, self.digests)


@attrs.frozen
class StoredSplit:
    """The features, the targets per head name and the source's sample weights per head name (if it gave
    any) of the training or the validation samples."""

    samples: int
    features: StoredArray
    targets: dict[str, StoredArray]
    weights: dict[str, StoredArray] = attrs.field(factory=dict)

    @property
    def arrays(self) -> list[StoredArray]:
        return [self.features, *self.targets.values(), *self.weights.values()]

    def dataset_arrays(
        self, folder: str, proof: ChunkProof
    ) -> tuple[ArrayFile, dict[str, ArrayFile], dict[str, ArrayFile] | None]:
        def files(arrays: dict[str, StoredArray]) -> dict[str, ArrayFile]:
            return {head: array.array_file(folder, proof) for head, array in arrays.items()}

        return self.features.array_file(folder, proof), files(self.targets), files(self.weights) or None


@attrs.frozen
class FeaturesMeta:
    """``meta.json`` of an entry.  ``created`` is ISO 8601 UTC; ``versions`` are Keras's and TensorFlow's;
    every file is digested in chunks of ``chunk_bytes``."""

    key: str
    description: str
    created: str
    versions: dict[str, str]
    train: StoredSplit
    validation: StoredSplit | None = None
    chunk_bytes: int = CHUNK_BYTES
    format: int = FORMAT

    @property
    def splits(self) -> list[StoredSplit]:
        return [self.train] if self.validation is None else [self.train, self.validation]

    def to_json(self) -> dict[str, Any]:
        return _CONVERTER.unstructure(self)

    @property
    def files(self) -> list[StoredArray]:
        return [array for split in self.splits for array in split.arrays]


@attrs.frozen
class EntryProblem:
    """Why an entry is not used: damaged, or ``stale`` (written in another format: it cannot be proven)."""

    what: str
    stale: bool = False

    def warning(self, folder: str) -> str:
        """The one line a run prints when it removes the entry."""
        state = "are stale" if self.stale else "are damaged"
        return f"the cached features {folder} {state} ({self.what}): removed, they are computed again"


@attrs.define(eq=False)
class StoredFeatures:
    """An entry whose meta checked out.  It holds a shared lock on the entry (``graft cache clear`` leaves it
    alone) until ``close`` (or the end of a ``with`` block).  ``proof`` says which chunks were proven."""

    path: str
    meta: FeaturesMeta
    lock: Any = attrs.field(default=None, repr=False)
    proof: ChunkProof = attrs.field(repr=False)

    @proof.default
    def _new_proof(self) -> ChunkProof:
        return ChunkProof(self.path, self.meta.chunk_bytes)

    def prove(self) -> str | None:
        """Read every file whole and compare each chunk with its digest: what is wrong, or None."""
        return self.proof.prove_files(array.proven_file(self.path) for array in self.meta.files)

    @property
    def damage(self) -> str | None:
        """The first chunk found damaged by a read of ``dataset``'s arrays, if any."""
        return self.proof.damage

    def dataset(self, description: str) -> Dataset:
        """The features as inputs and the targets per head, as ``ArrayFile``s read a batch at a time; every
        read proves the chunks it touches (``FeatureCacheDamaged`` if one does not match its digest)."""
        x, y, w = self.meta.train.dataset_arrays(self.path, self.proof)
        if self.meta.validation is None:
            return Dataset(x=x, y=y, description=description, sample_weight=w)
        x_val, y_val, w_val = self.meta.validation.dataset_arrays(self.path, self.proof)
        return Dataset(x=x, y=y, description=description, x_val=x_val, y_val=y_val, sample_weight=w,
                       sample_weight_val=w_val)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def __enter__(self) -> StoredFeatures:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


_CONVERTER = make_converter()
_CONVERTER.register_unstructure_hook(  # a split without sample weights is written as before they existed
    StoredSplit, make_dict_unstructure_fn(StoredSplit, _CONVERTER, weights=override(omit_if_default=True))
)


# -- writing -------------------------------------------------------------------------------------


class _Sink:
    """One ``.bin`` file written a batch at a time; every batch must match the first's dtype and shape."""

    def __init__(self, folder: str, file: str, what: str, first: np.ndarray, chunk_bytes: int) -> None:
        if first.dtype.kind not in NUMERIC_KINDS or first.ndim == 0:
            raise ValueError(
                f"{what} must be numeric arrays with a sample axis, got {first.dtype} of shape {first.shape}"
            )
        self.file, self.what, self.path = file, what, os.path.join(folder, file)
        self.dtype, self.sample_shape, self.rows = first.dtype, first.shape[1:], 0
        self.digests = ChunkDigests(chunk_bytes)
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
        self.digests.update(memoryview(as_bytes))  # type: ignore[arg-type]  # as above
        self.rows += len(values)

    def finish(self) -> StoredArray:
        with writing(self.path):
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
        return StoredArray(self.file, self.dtype.str, (self.rows, *self.sample_shape), self.digests.finish())


def write_split(
    folder: str, split: str, batches: Iterable[Batch], chunk_bytes: int = CHUNK_BYTES
) -> StoredSplit | None:
    """Write ``(features, {head: targets}[, {head: sample weights}])`` batches to ``<split>.*.bin`` in ``folder``,
    flushed to disk, each file's chunks of ``chunk_bytes`` digested as they are written.

    One batch is in memory at a time.  ``None`` if there was no batch.
    """
    # None: the features; a head name: its targets; (head name,): its sample weights
    sinks: dict[str | tuple[str] | None, _Sink] = {}
    try:
        for number, (features, targets, *given) in enumerate(batches):
            weights = given[0] if given else {}
            arrays: dict[str | tuple[str] | None, np.ndarray] = {
                None: np.asarray(features),
                **{head: np.asarray(values) for head, values in targets.items()},
                **{(head,): np.asarray(values) for head, values in weights.items()},
            }
            if not sinks:
                for index, (head, array) in enumerate(arrays.items()):
                    name = "features" if head is None else f"target{index}" if isinstance(head, str) else \
                        f"weight{index}"
                    what = f"the {split} {'features' if head is None else head}"
                    sinks[head] = _Sink(folder, f"{split}.{name}.bin", what, array, chunk_bytes)
            if arrays.keys() != sinks.keys():
                raise ValueError(f"batch {number} of the {split} data has heads {list(targets)} and weights "
                                 f"{list(weights)}, the first had others")
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
    stored_targets = {head: array for head, array in stored.items() if isinstance(head, str)}
    stored_weights = {head[0]: array for head, array in stored.items() if isinstance(head, tuple)}
    return StoredSplit(stored_features.shape[0], stored_features, stored_targets, stored_weights)


# -- reading -------------------------------------------------------------------------------------


def read_meta(handle, folder: str, key: str) -> tuple[FeaturesMeta | None, EntryProblem | None]:
    """The meta read from ``handle``, checked against the files in ``folder`` (their sizes, not yet their
    contents), or ``(None, what is wrong)``."""
    try:
        raw = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, EntryProblem(f"{META} is not JSON ({exc})")
    written = raw.get("format") if isinstance(raw, dict) else None
    if isinstance(written, int) and not isinstance(written, bool) and written != FORMAT:
        when = "an earlier keras-graft, without chunk digests" if written < FORMAT else "a newer keras-graft"
        return None, EntryProblem(f"written by {when} (format {written}, this keras-graft uses {FORMAT})", stale=True)
    try:
        meta = structure(_CONVERTER, raw, FeaturesMeta)
    except SpecProblem as problem:
        path, message = problem.items[0]
        return None, EntryProblem(f"{META} at {format_path(path)}: {message}")
    if meta.key != key:
        return None, EntryProblem(f"{META} is for key {meta.key}, not {key}")
    if not 1 <= meta.chunk_bytes <= MAX_CHUNK_BYTES:
        return None, EntryProblem(f"{META} gives chunk_bytes {meta.chunk_bytes}")
    for split in meta.splits:
        for array in split.arrays:
            wrong = _array_problem(folder, array, split.samples, meta.chunk_bytes)
            if wrong is not None:
                return None, EntryProblem(wrong)
    return meta, None


def _array_problem(folder: str, array: StoredArray, samples: int, chunk_bytes: int) -> str | None:
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
    chunks = chunk_count(array.nbytes, chunk_bytes)
    if len(array.digests) != chunks:
        return f"{META} gives {array.file} {len(array.digests)} chunk digests, expected {chunks}"
    if not all(len(digest) == HEX_LENGTH and _is_hex(digest) for digest in array.digests):
        return f"{META} gives {array.file} a chunk digest that is not {HEX_LENGTH} hex digits"
    return None


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)
