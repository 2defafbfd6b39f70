"""Arrays from numpy ``.npz`` archives, checked from their headers before anything is read.

Arrays stored uncompressed (``numpy.savez``) of ``MAP_FROM_BYTES`` or more stay on disk as
``graft.ArrayFile`` (read a batch at a time while training); smaller ones, and those that cannot
be read in place (``numpy.savez_compressed``, Fortran order), are read into memory.  Used by the
``npz`` data source and by ``graft evaluate``/``predict`` for their ``.npz`` files.  Pure numpy.
"""

from __future__ import annotations

import math
import os
import tokenize
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from graft.base.files import not_a_file
from graft.base.memory import check_allocation, human_bytes
from graft.base.problems import Path, Problems, SpecProblem, did_you_mean, listing
from graft.data.npzfile import Member, array_file, check_crc, read_member
from graft.plugins.datasets import Array

MAP_FROM_BYTES = 2**20  # arrays this large (or larger) that can be read in place stay on disk
SAVEZ = "write it with numpy.savez(path, x=inputs, y=targets)"
SIGNATURES = {  # how files that are not zip archives begin, to say what the file is
    b"\x93NUMPY": "a single .npy array",
    b"PK": "a damaged or truncated zip archive",
    b"\x89HDF": "an HDF5 file",
    b"\x80": "a Python pickle",
    b"\x1f\x8b": "a gzip file",
}
READ_ERRORS = (  # what a damaged archive or member can raise while being read
    OSError, EOFError, ValueError, TypeError, SyntaxError, RecursionError,
    zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, tokenize.TokenError,
)


def _what_file(path: str) -> str:
    """``an HDF5 file``, ``a text file (it begins 'a,b')``, ...: what a file that is not a zip is."""
    with open(path, "rb") as handle:
        start = handle.read(40)
    for magic, kind in SIGNATURES.items():
        if start.startswith(magic):
            return kind
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in start):
        return f"a text file (it begins {start.decode('ascii')!r})"
    return "not a zip archive"


def _open_archive(path: str, field: str) -> zipfile.ZipFile:
    """The zip archive at ``path``; any problem reported at ``field``."""
    if os.path.isdir(path):
        raise SpecProblem((field,), f"{path} is a folder; give the path of an .npz file")
    if not os.path.exists(path):
        raise SpecProblem((field,), f"file not found: {path}")
    kind = not_a_file(path)
    if kind is not None:
        raise SpecProblem((field,), f"{path} is {kind}, not a file; give the path of an .npz file")
    try:
        if os.path.getsize(path) == 0:
            raise SpecProblem((field,), f"{path} is empty (0 bytes), not an .npz archive; {SAVEZ}")
        if not zipfile.is_zipfile(path):
            raise SpecProblem((field,), f"{path} is {_what_file(path)}, not an .npz archive; {SAVEZ}")
        return zipfile.ZipFile(path)
    except READ_ERRORS as exc:
        raise SpecProblem((field,), f"cannot read {path} as an .npz archive ({exc}); {SAVEZ}") from None


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> zip member, named as ``numpy.load`` names them (``x.npy`` is ``x``)."""
    return {info.filename.removesuffix(".npy"): info for info in archive.infolist() if not info.is_dir()}


def _declared(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, path: str) -> Member:
    """Array ``name`` as its header declares it, checked against the file and, if it is read, the memory."""
    try:
        member = read_member(archive, info)
    except READ_ERRORS as exc:
        raise SpecProblem((), f"array '{name}' in {path} is not a readable .npy array ({exc}); {SAVEZ}") from None
    shape, dtype = member.shape, member.dtype
    if dtype.hasobject:
        raise SpecProblem(
            (),
            f"array '{name}' in {path} is an object array ({dtype}); object arrays need pickle, which is not "
            "safe to load, so they are not supported: save plain numeric arrays",
        )
    if min(shape, default=0) < 0:
        raise SpecProblem(
            (), f"array '{name}' in {path} declares the impossible shape {shape}: the file is damaged; {SAVEZ}"
        )
    if member.nbytes > member.held_bytes:
        raise SpecProblem(
            (),
            f"array '{name}' in {path} declares shape {shape} of {dtype} ({human_bytes(member.nbytes)}) "
            f"but the file holds only {human_bytes(member.held_bytes)} of it: the file is damaged "
            f"or truncated; {SAVEZ}",
        )
    if not _stays_on_disk(member):
        check_allocation(math.prod(shape), f"array '{name}' in {path} (shape {shape}, {dtype})", (), dtype.itemsize)
    return member


def _stays_on_disk(member: Member) -> bool:
    """Whether the array is left on disk (an ``ArrayFile``) rather than read into memory."""
    return member.nbytes >= MAP_FROM_BYTES and member.in_place_blocker is None


def _read_although_large(member: Member) -> str | None:
    """Why a large array is read into memory (``compressed``, ``Fortran-ordered``); ``None`` if it is not."""
    return member.in_place_blocker if member.nbytes >= MAP_FROM_BYTES else None


def _load(archive: zipfile.ZipFile, handle, member: Member, name: str, path: str) -> Array:
    """The array: on disk if it can stay there (its CRC checked by reading it through), else in memory."""
    try:
        if not _stays_on_disk(member):
            with archive.open(member.info) as opened:
                return np.lib.format.read_array(opened, allow_pickle=False)
        check_crc(archive, member.info)
        return array_file(path, handle, member)
    except READ_ERRORS as exc:
        raise SpecProblem((), f"cannot read array '{name}' from {path} ({exc}): the file is damaged; {SAVEZ}") from None


def read_arrays(
    path: str, inputs: tuple[str, Path], targets: Mapping[str, tuple[str, Path]], field: str
) -> tuple[Array, dict[str, Array], dict[str, str]]:
    """The inputs and each head's targets from the archive at ``path``, and the large arrays read into memory.

    ``inputs`` is the array's name and the path its problems are reported at;
    ``targets`` the same per head (none: only the inputs are read).  Each array is
    checked from its header before any is read; problems of the file itself are
    reported at ``field``.  Only the arrays used are read; targets must have as
    many samples as the inputs.  The last result names the large arrays that
    could not stay on disk, and why (``{"x": "compressed"}``).
    """
    inputs_key, inputs_at = inputs
    keys = {head: key for head, (key, _) in targets.items()}
    targets_at = {head: at for head, (_, at) in targets.items()}
    uses = [(inputs_at, inputs_key)] + [(targets_at[head], key) for head, key in keys.items()]
    problems, declared, first_use = Problems(), {}, {}
    with _open_archive(path, field) as archive:
        members = _members(archive)
        for where, key in uses:
            with problems.collect(where):
                if key not in members:
                    names = sorted(members)
                    hint = did_you_mean(key, names)
                    raise SpecProblem((), f"no array '{key}' in {path}; arrays: {listing(names)}{hint}")
                if key not in first_use:
                    first_use[key] = where
                    declared[key] = _declared(archive, members[key], key, path)
        problems.raise_all()
        shapes = {key: member.shape for key, member in declared.items()}
        _check_samples(inputs_key, keys, path, shapes, inputs_at, targets_at)
        arrays = {}
        with _open_file(path, field) as handle:
            for key, where in first_use.items():
                with problems.collect(where):
                    arrays[key] = _load(archive, handle, declared[key], key, path)
        problems.raise_all()
    in_memory = {key: why for key, member in declared.items() if (why := _read_although_large(member))}
    return arrays[inputs_key], {head: arrays[key] for head, key in keys.items()}, in_memory


def _open_file(path: str, field: str):
    """The archive file itself, for the offsets of its members; any problem reported at ``field``."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SpecProblem((field,), f"cannot read {path} ({exc.strerror or exc})") from None


def _check_samples(
    inputs: str, targets: dict[str, str], path: str, shapes: dict, inputs_at: Path, targets_at: dict
) -> None:
    """Every array used has a sample axis and every target as many samples as the inputs (from the headers)."""
    problems = Problems()
    single = "is a single value (shape ()), not one row per sample"
    samples = shapes[inputs][:1]
    if not samples:
        problems.add(inputs_at, f"array '{inputs}' in {path} {single}")
    for head, key in targets.items():
        if not shapes[key]:
            problems.add(targets_at[head], f"array '{key}' in {path} {single}")
        elif samples and shapes[key][0] != samples[0]:
            problems.add(
                targets_at[head],
                f"array '{key}' in {path} has {shapes[key][0]} samples but the inputs '{inputs}' have "
                f"{samples[0]}; give every target array one row per input sample",
            )
    problems.raise_all()
