"""The one place keras-graft imports Keras, only for commands that build a model."""

from __future__ import annotations

import os

from graft.problems import GraftError


class BackendMissing(GraftError):
    """TensorFlow/Keras is not installed."""


def import_keras():
    """Import Keras on TensorFlow, quietly; say what to install if it is missing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras
        import tensorflow  # noqa: F401 - keras-graft runs on the TensorFlow backend
    except ImportError as exc:
        raise BackendMissing(
            f"this command builds a model and needs TensorFlow ({exc}); install it with "
            "pip install 'keras-graft[cpu]' (CPU-only) or 'keras-graft[gpu]' (NVIDIA GPU), "
            "or keep the tensorflow you already have"
        ) from exc
    return keras


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
