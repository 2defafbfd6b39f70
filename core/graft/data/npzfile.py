"""Where an array of an ``.npz`` archive lies in the file, so that it can be read in place.

``numpy.savez`` stores its members uncompressed (``ZIP_STORED``): the bytes of
a member's ``.npy`` file lie in the archive as they are, after the member's
*local* file header (30 bytes, the name, an extra field whose length only the
local header says: ``numpy.savez`` puts a zip64 field there).  The array's rows
begin after the ``.npy`` header and can be memory-mapped a batch at a time
(``graft.ArrayFile``).  Members of ``numpy.savez_compressed`` (deflated) and
Fortran-ordered arrays cannot be: they are read into memory.

Pure numpy and zipfile; every function raises only what reading a damaged
archive raises (``OSError``, ``ValueError``, ``zipfile.BadZipFile``, ...).
"""

from __future__ import annotations

import math
import os
import struct
import zipfile

import attrs
import numpy as np

from graft.plugins.arrayfile import ArrayFile

LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip member's local file header (zipfile.structFileHeader)
LOCAL_SIGNATURE = b"PK\x03\x04"
CRC_CHUNK = 2**20  # bytes read at a time while a member's CRC is checked


@attrs.frozen
class Member:
    """One array of an archive, as its ``.npy`` header declares it.

    ``header_bytes`` is the length of the ``.npy`` header: the array's values
    begin that many bytes into the member.
    """

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    header_bytes: int

    @property
    def nbytes(self) -> int:
        """Bytes of the values the header declares."""
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def held_bytes(self) -> int:
        """Bytes of the member after its ``.npy`` header (what the archive holds of the values)."""
        return max(0, self.info.file_size - self.header_bytes)

    @property
    def in_place_blocker(self) -> str | None:
        """Why the values cannot be read in place: ``"compressed"``, ``"Fortran-ordered"``, or ``None``."""
        if self.info.compress_type != zipfile.ZIP_STORED:
            return "compressed"
        if self.fortran and len(self.shape) > 1:
            return "Fortran-ordered"
        return None


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    """A member's ``.npy`` header; ``ValueError`` (or what zipfile raises) if it has none."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f".npy format version {version} is not supported")
        return Member(info, tuple(shape), np.dtype(dtype), bool(fortran), member.tell())


def check_crc(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Read the member through, a chunk at a time: ``zipfile.BadZipFile`` if its CRC-32 does not match.

    What is read is dropped at once, so memory does not grow with the member.
    """
    with archive.open(info) as member:
        while member.read(CRC_CHUNK):
            pass


def values_offset(handle, member: Member) -> int:
    """Byte offset in the archive file (open as ``handle``) of the first value of a stored ``member``.

    The local header is read for the lengths of the name and the extra field,
    which may differ from the central directory's (zip64 fields).  ``ValueError``
    if the local header is not one or the values run past the end of the file.
    """
    info = member.info
    handle.seek(info.header_offset)
    raw = handle.read(LOCAL_HEADER.size)
    if len(raw) != LOCAL_HEADER.size:
        raise ValueError(f"the local header of {info.filename} is truncated")
    fields = LOCAL_HEADER.unpack(raw)
    if fields[0] != LOCAL_SIGNATURE:
        raise ValueError(f"the local header of {info.filename} is not one (bad signature)")
    name_length, extra_length = fields[-2], fields[-1]
    start = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
    end = start + member.header_bytes + member.nbytes
    size = os.fstat(handle.fileno()).st_size
    if end > size or member.header_bytes + member.nbytes > info.file_size:
        raise ValueError(f"the values of {info.filename} run past the end of the file ({end:,} > {size:,} bytes)")
    return start + member.header_bytes


def array_file(path: str, handle, member: Member) -> ArrayFile:
    """The values of a stored, C-ordered ``member`` of the archive at ``path``, left on disk."""
    return ArrayFile(path, member.shape, member.dtype, values_offset(handle, member))
