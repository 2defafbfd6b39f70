"""A matplotlib figure saved as a PNG whole or not at all: written beside its path, flushed, renamed."""

from __future__ import annotations

import os
from typing import Any

from graft.base.files import fsync_path


def save_png(figure: Any, path: str) -> None:
    """Save ``figure`` to ``path`` (no software tag, so the same figure gives the same bytes)."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        figure.savefig(temporary, format="png", metadata={"Software": None})
        fsync_path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
