"""Notes a plugin attaches to the model its ``build_extractor`` returns; ``graft plan`` shows them.

A note says what the plan's layer table cannot: that Keras 2 names some layers of the
model differently than Keras 3, or which preprocessing the extractor holds.  It is
shown under every stage built with that extractor, and kept in the stage's report.
"""

from __future__ import annotations

import weakref
from typing import Any

_NOTES: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def add_plan_note(model: Any, text: str) -> None:
    """Show ``text`` (one line; whitespace is collapsed) in ``graft plan`` under each stage whose extractor is
    ``model``, the ``keras.Model`` your ``build_extractor`` returns."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a plan note is a non-empty string, got {text!r}")
    _NOTES.setdefault(model, []).append(" ".join(text.split()))


def plan_notes(model: Any) -> tuple[str, ...]:
    """The notes added to ``model``, in order."""
    try:
        return tuple(_NOTES.get(model, ()))
    except TypeError:  # an object that cannot be weakly referenced has no notes
        return ()
