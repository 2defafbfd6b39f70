"""The feature cache's folders: errors that name the folder and the ways out, making, listing and sizing
folders, the installed Keras and TensorFlow versions, and whether a writer's process is alive.  Pure Python.
"""

from __future__ import annotations

import contextlib
import errno
import os

from graft.base.problems import GraftError


class FeatureStoreError(GraftError):
    """The feature cache cannot be written or read; the message names the folder and the way out."""


def store_error(verb: str, folder: str, exc: OSError) -> FeatureStoreError:
    """What failed where, and the ways out."""
    return FeatureStoreError(
        f"cannot {verb} the feature cache in {folder}: {exc.strerror or exc}; free space there, set "
        "GRAFT_CACHE_DIR to another folder, or run with --no-feature-cache"
    )


class writing:
    """Turns an ``OSError`` while writing ``where`` into a ``FeatureStoreError`` naming its folder."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type, exc, _traceback) -> None:
        if isinstance(exc, OSError):
            raise store_error("write", os.path.dirname(self.where), exc) from None


def make_folder(folder: str) -> None:
    """Create ``folder`` (and its parents) and check that it takes files, or say which and what to do."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise store_error("create", folder, exc) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise store_error("write", folder, PermissionError(errno.EACCES, "not writable"))


def installed_versions() -> dict[str, str]:
    """Keras's and TensorFlow's versions from their distributions' metadata, without importing them."""
    from importlib import metadata

    versions = {}
    for name, distributions in (
        ("keras", ("keras",)),
        ("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-macos")),
    ):
        for distribution in distributions:
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


# -- folders ------------------------------------------------------------------------------------


def listing(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise store_error("read", folder, exc) from None


def tree_size(folder: str) -> int:
    total = 0
    for parent, _dirs, files in os.walk(folder):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, file)).st_size
    return total
