"""Files made durable and digested: flushed to disk before anyone relies on them, hashed to be proven later."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import Any


def fsync_path(path: str, best_effort: bool = False) -> None:
    """Flush a file or a folder to disk (a folder: its entries, so a rename survives a power cut).

    ``best_effort``: an ``OSError`` (a filesystem that cannot flush a folder, a path gone) is ignored,
    for output the user asked for whose content is already complete.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if best_effort:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not best_effort:
            raise
    finally:
        os.close(fd)


def write_json(path: str, value: Any) -> None:
    """Write JSON and flush it to disk."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def sha256_of(path: str) -> str:
    """``sha256:<hex>`` of the whole file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def file_kind(mode: int) -> str | None:
    """None for a regular file, else what it is in words (``a folder``, ``a named pipe (FIFO)``, ...)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def not_a_file(path: str) -> str | None:
    """What ``path`` is, in words, if it exists (links followed) but is not a regular file; None if it is one
    or does not exist (its reader says that).  Only ``stat``: a FIFO is never opened."""
    try:
        return file_kind(os.stat(path).st_mode)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None


def open_regular(path: str):
    """``open(path, "rb")`` of a regular file, never blocking on a FIFO; ``OSError`` (``IsADirectoryError``
    for a folder, ``errno.EINVAL`` with the kind in words for anything else that is not a file)."""
    kind = file_kind(os.stat(path).st_mode)
    if kind is None:
        # O_NONBLOCK: if the path became a FIFO since stat, opening it does not wait for a writer
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        handle = os.fdopen(descriptor, "rb")
        kind = file_kind(os.fstat(descriptor).st_mode)
        if kind is None:
            os.set_blocking(descriptor, True)
            return handle
        handle.close()
    raise NotRegularFile(path, kind)


class NotRegularFile(OSError):
    """A path that is not a regular file: ``kind`` says what it is (``a folder``, ``a device``, ...)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a file")
        self.path, self.kind = path, kind
        self.strerror = f"it is {kind}, not a file"
