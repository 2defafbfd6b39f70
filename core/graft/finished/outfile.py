"""Writing what a command makes for the user (predictions, an exported model): whole, never over what is there.

The file or folder is written beside its destination under a temporary name,
flushed to disk, and only then moved into place.  An existing destination is
refused unless ``force``; then it is replaced only once the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

from graft.base.files import fsync_path
from graft.base.paths import shown
from graft.base.problems import GraftError


class OutputExists(GraftError):
    """The destination is already there and the user did not ask to replace it."""


def check_free(path: str, force: bool, option: str) -> None:
    """Refuse an existing ``path`` unless ``force`` (``option`` names the CLI option that chose it); refuse a
    destination whose folder does not exist."""
    if os.path.lexists(path) and not force:
        what = "folder" if os.path.isdir(path) else "file"
        raise OutputExists(
            f"{shown(path)} exists ({what}); nothing was written. Choose another {option} "
            "or add --force to replace it"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise GraftError(f"cannot write {shown(path)}: the folder {shown(folder)} does not exist; create it first")


def write_file(path: str, write: Callable[[str], None], force: bool, option: str) -> str:
    """Call ``write(temporary_path)``, then move the file to ``path``; the path as messages show it."""
    return _publish(path, write, force, option, folder=False)


def write_folder(path: str, write: Callable[[str], None], force: bool, option: str) -> str:
    """Call ``write(temporary_folder)`` (which does not exist yet), then move it to ``path``; the path as messages
    show it."""
    return _publish(path, write, force, option, folder=True)


def _publish(path: str, write: Callable[[str], None], force: bool, option: str, folder: bool) -> str:
    path = os.path.abspath(path)
    check_free(path, force, option)
    parent, name = os.path.split(path)
    try:
        scratch = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    except OSError as exc:
        raise GraftError(f"cannot write in {parent}: {exc.strerror or exc}; choose another {option}") from None
    try:
        made = os.path.join(scratch, name)
        write(made)
        if not folder:
            fsync_path(made, best_effort=True)
        _publish_made(made, path, force, option, made + ".replaced")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fsync_path(parent, best_effort=True)
    return shown(path)


def _publish_made(made: str, path: str, force: bool, option: str, aside: str) -> None:
    """Move the finished ``made`` to ``path``: only into a free place, unless ``force`` (then what was there
    goes to ``aside``, in the scratch folder that is removed afterwards)."""
    if not os.path.lexists(path):
        os.rename(made, path)
        return
    check_free(path, force, option)  # something appeared while it was written
    os.rename(path, aside)
    os.rename(made, path)
