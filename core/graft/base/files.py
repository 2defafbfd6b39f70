"""Files made durable and digested: flushed to disk before anyone relies on them, hashed to be proven later."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def fsync_path(path: str) -> None:
    """Flush a file or a folder to disk (a folder: its entries, so a rename survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
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
