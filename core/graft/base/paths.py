"""Paths as messages show them: as the user wrote them, relative to the working folder, not made absolute.

keras-graft resolves every path a spec or a command names (relative to the spec's folder, or the
working folder) before it opens it; what it prints shows the path the way the user would write it
again: relative to the working folder when it lies inside it, else absolute.
"""

from __future__ import annotations

import os

FILE_SOURCES = ("file", "model")  # the init sources whose label names a file: "model /x/m.keras"


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as a message shows it: a relative path as given; an absolute one relative to the working folder
    when it lies inside it, else as it is."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text
    try:
        relative = os.path.relpath(text)
    except (ValueError, OSError):  # another drive (Windows), or the working folder is gone
        return text
    return text if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative


def as_written(written: str, resolved: str) -> str:
    """A path a spec gives (``written``, resolved against the spec's folder as ``resolved``) as messages show
    it: as written when absolute (or from ``~``), else relative to the working folder (``shown``)."""
    return written if os.path.isabs(written) or written.startswith("~") else shown(resolved)


def shown_source(kind: str, written: str, resolved: str) -> str:
    """The label of a stage's init source that is a file: ``model models/m.keras``, ``file w.graft.npz``."""
    assert kind in FILE_SOURCES
    return f"{kind} {as_written(written, resolved)}"
