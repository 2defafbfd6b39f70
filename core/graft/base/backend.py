"""The one place keras-graft imports Keras, only for commands that build a model; and what Keras 2 and 3
disagree on that every wing meets (``per_head``)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from graft.base.problems import GraftError
from graft.base.tfbanners import TENSORFLOW_BANNERS, fd2_lines_hidden

__all__ = ["TENSORFLOW_BANNERS", "BackendMissing", "clear_session", "fd2_lines_hidden", "import_keras", "keras_major",
           "tf_error_text", "verbose"]

VERBOSE_VARIABLE = "GRAFT_VERBOSE"


class BackendMissing(GraftError):
    """TensorFlow/Keras is not installed."""


def verbose(environ=os.environ) -> bool:
    """True when ``GRAFT_VERBOSE`` is set (not empty, not 0): TensorFlow's banners are shown."""
    return environ.get(VERBOSE_VARIABLE, "") not in ("", "0")


_FIRST_IMPORT = threading.RLock()


def import_keras():
    """Import Keras on TensorFlow, quietly; say what to install if it is missing.

    The first import hides TensorFlow's banners (``TENSORFLOW_BANNERS``) from fd 2
    unless ``GRAFT_VERBOSE`` is set; anything else it writes there is shown.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        with _FIRST_IMPORT:
            first = not ("keras" in sys.modules and "tensorflow" in sys.modules)
            with fd2_lines_hidden(TENSORFLOW_BANNERS) if first and not verbose() else contextlib.nullcontext():
                import keras
                import tensorflow  # noqa: F401 - keras-graft runs on the TensorFlow backend
    except ImportError as exc:
        raise BackendMissing(
            f"this command builds a model and needs TensorFlow ({exc}); install it with "
            "pip install 'keras-graft[cpu]' (CPU-only) or 'keras-graft[gpu]' (NVIDIA GPU), "
            "or keep the tensorflow you already have"
        ) from exc
    return keras


def clear_session(keras) -> None:
    """``keras.backend.clear_session`` without the full garbage collection Keras 3 adds to it (``free_memory``):
    Keras's own names and state restart, and a build does not pay a collection over TensorFlow's whole heap
    (Python's own collector frees the old models' cycles as usual)."""
    import inspect

    clear = keras.backend.clear_session
    if "free_memory" in inspect.signature(clear).parameters:
        clear(free_memory=False)
    else:  # Keras 2 collects nothing
        clear()


def keras_major() -> int:
    return int(import_keras().__version__.split(".")[0])


NOISE = ("Graph execution error", "Detected at node", "[[", "<stack traces unavailable>", "File ")


def tf_error_text(exc: BaseException) -> str:
    """The line of a TensorFlow error that says what failed, without graph-execution noise."""
    import re

    text = getattr(exc, "message", None) or str(exc) or ""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    for line in text.splitlines():
        if not line.strip() or line[0].isspace() or line.startswith(NOISE):
            continue
        return re.sub(r"\s*\[Op:[^\]]*\]$", "", line).strip()
    return type(exc).__name__


def per_head(*by_head: dict) -> tuple:
    """Per-head compile/fit arguments as Keras wants them: a dict keyed by head name for
    several heads, the bare value for a single head (Keras 2 and 3 disagree on a
    one-element list or dict, and both accept the bare value)."""
    return tuple(mapping if len(mapping) > 1 else next(iter(mapping.values())) for mapping in by_head)
