"""The files a spec reads (data, weights), and a digest of their content cheap enough for every run.

Any string in a stage's params (or the model's) that names an existing file,
relative to the spec's folder, is an input of that stage: a data source's
``path``, an extractor's weights file, a stage's ``init.weights`` or ``init.model``.  Its digest
goes into the stage's fingerprint, so a data file edited after a stage finished
stops the next ``graft run`` instead of being resumed over.  A folder of data is
an input when its params field says so (``graft.spec.validators.folder_input``): its
digest covers the relative name, size and modification time of every file in it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import attrs

from graft.base.files import sha256_of

FULL_HASH_LIMIT = 64 * 2**20  # files up to this size are hashed whole
SAMPLED_BLOCKS, BLOCK = 64, 64 * 2**10  # larger ones: their size and 64 blocks of 64 KiB spread over the file


def named_inputs(value: Any, resolve: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """Absolute paths of the existing files that strings inside ``value`` name, and of the folders its
    ``folder_input`` fields name; sorted, once each.  ``value`` may hold attrs objects, dicts and lists."""
    from graft.spec.validators import FOLDER_INPUT

    files: set[str] = set()
    folders: set[str] = set()

    def walk(item: Any, folder_field: bool = False) -> None:
        if isinstance(item, str):
            path = resolve(item) if "\0" not in item else ""
            if path and folder_field and os.path.isdir(path):
                folders.add(path)
            elif path and os.path.isfile(path):
                files.add(path)
        elif attrs.has(type(item)):
            for field in attrs.fields(type(item)):
                walk(getattr(item, field.name), bool(field.metadata.get(FOLDER_INPUT)))
        elif isinstance(item, dict):
            for key, child in item.items():
                walk(key)
                walk(child)
        elif isinstance(item, (list, tuple)):
            for child in item:
                walk(child)

    walk(value)
    return sorted(files), sorted(folders)


def content_digest(path: str) -> str:
    """``sha256_of`` the file, or a digest of its size and sampled blocks when it is large."""
    size = os.path.getsize(path)
    if size <= FULL_HASH_LIMIT:
        return sha256_of(path)
    digest = hashlib.sha256(str(size).encode())
    step = (size - BLOCK) // (SAMPLED_BLOCKS - 1)
    with open(path, "rb") as handle:
        for index in range(SAMPLED_BLOCKS):
            handle.seek(index * step)
            digest.update(handle.read(BLOCK))
    return f"sha256:{digest.hexdigest()}"


def folder_digest(path: str) -> str:
    """A digest of the relative name, size and modification time of every file under ``path``."""
    digest = hashlib.sha256()
    for root, folders, files in os.walk(path):
        folders.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(full, path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"folder-sha256:{digest.hexdigest()}"


def input_digests(value: Any, resolve: Callable[[str], str]) -> dict[str, str]:
    """``{path: digest}`` of every file named inside ``value`` and every folder a ``folder_input`` names.

    ``value`` is a structured spec object (attrs instances are walked field by field).
    """
    files, folders = named_inputs(value, resolve)
    return {**{path: content_digest(path) for path in files}, **{path: folder_digest(path) for path in folders}}
