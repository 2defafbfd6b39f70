"""The one place keras-graft imports Keras, only for commands that build a model; and what Keras 2 and 3
disagree on that every wing meets (``per_head``)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from graft.base.problems import GraftError
from graft.base.tfbanners import TENSORFLOW_BANNERS, fd2_lines_hidden

__all__ = ["TENSORFLOW_BANNERS", "BackendMissing", "BackendRefused", "TrainingCapped", "check_backend", "check_caps",
           "clear_session", "fd2_lines_hidden", "import_keras", "keras_major", "tf_error_text", "verbose"]

VERBOSE_VARIABLE = "GRAFT_VERBOSE"
BACKEND_VARIABLE = "KERAS_BACKEND"
BACKEND = "tensorflow"  # the one Keras backend keras-graft trains on


class BackendMissing(GraftError):
    """TensorFlow/Keras is not installed."""


class BackendRefused(GraftError):
    """Keras is told to run on a backend other than TensorFlow (``KERAS_BACKEND``, or ``keras.json`` for a
    Keras imported before keras-graft)."""


class TrainingCapped(GraftError):
    """Keras 3 is told to cap every ``fit``, ``evaluate`` and ``predict`` (``KERAS_MAX_EPOCHS``,
    ``KERAS_MAX_STEPS_PER_EPOCH`` or ``keras.config.set_max_*``)."""


CAPS = {"KERAS_MAX_EPOCHS": "max_epochs", "KERAS_MAX_STEPS_PER_EPOCH": "max_steps_per_epoch"}


def check_backend(environ=os.environ) -> None:
    """Refuse, before anything is built or trained, a Keras backend other than TensorFlow.

    ``KERAS_BACKEND`` set to another backend is refused; so is a Keras already imported in this
    process (a notebook that imported ``keras`` first) on another backend, naming where that
    came from (the variable, else ``keras.json``).  Unset, keras-graft sets ``KERAS_BACKEND=tensorflow``
    before it imports Keras, so a ``keras.json`` that names another backend is not used.
    Nothing is imported here.
    """
    chosen = environ.get(BACKEND_VARIABLE, "")
    if chosen and chosen != BACKEND:
        raise BackendRefused(
            f"{BACKEND_VARIABLE}={chosen}: keras-graft trains on Keras's TensorFlow backend only (it records "
            f"and verifies TensorFlow's weights); unset {BACKEND_VARIABLE} or set {BACKEND_VARIABLE}={BACKEND} "
            "for graft"
        )
    keras = sys.modules.get("keras")
    running = _running_backend(keras) if keras is not None else None
    if running is not None and running != BACKEND:
        config = keras_config_path(environ)
        where = (f"as \"backend\" in {config} says" if _configured_backend(config) == running
                 else f"as {BACKEND_VARIABLE} said when it was imported")
        raise BackendRefused(
            f"Keras was imported in this process on the {running} backend ({where}); keras-graft trains on "
            f"Keras's TensorFlow backend only: set {BACKEND_VARIABLE}={BACKEND} before Keras is first imported "
            f"(or make \"backend\" \"{BACKEND}\" in {config}) and start the process again"
        )


def _configured_backend(config: str) -> str | None:
    """The ``"backend"`` a ``keras.json`` names; None if it cannot be read."""
    import json

    try:
        with open(config, encoding="utf-8") as handle:
            value = json.load(handle).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _running_backend(keras) -> str | None:
    """The backend an imported Keras runs on; None while it is only partly imported."""
    try:
        return str(keras.backend.backend())
    except AttributeError:
        return None


def keras_config_path(environ=os.environ) -> str:
    """The ``keras.json`` Keras 3 reads its default backend from: ``$KERAS_HOME/keras.json``, else
    ``~/.keras/keras.json`` (``/tmp/.keras`` when the home folder cannot be written), as Keras finds it."""
    if "KERAS_HOME" in environ:
        home = environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.expanduser(os.path.join(home, "keras.json"))


def verbose(environ=os.environ) -> bool:
    """True when ``GRAFT_VERBOSE`` is set (not empty, not 0): TensorFlow's banners are shown."""
    return environ.get(VERBOSE_VARIABLE, "") not in ("", "0")


_FIRST_IMPORT = threading.RLock()
_FREEZE_AFTER_IMPORT = [False]


def freeze_heap_after_import() -> None:
    """Have the first ``import_keras`` move everything alive then out of the garbage collector's reach
    (``gc.freeze``).  The ``graft`` command does this for its own process: the hundreds of thousands of
    objects TensorFlow and Keras create at import live as long as the process, and every full
    collection while training would walk them all again (about 1 CPU s of the seed scenario).  The
    Python API leaves the caller's collector as it is."""
    _FREEZE_AFTER_IMPORT[0] = True


def import_keras():
    """Import Keras on TensorFlow, quietly; say what to install if it is missing, and refuse another
    backend (``check_backend``).

    The first import hides TensorFlow's banners (``TENSORFLOW_BANNERS``) from fd 2
    unless ``GRAFT_VERBOSE`` is set; anything else it writes there is shown.
    """
    check_backend()
    check_caps(None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault(BACKEND_VARIABLE, BACKEND)
    try:
        with _FIRST_IMPORT:
            first = not ("keras" in sys.modules and "tensorflow" in sys.modules)
            with fd2_lines_hidden(TENSORFLOW_BANNERS) if first and not verbose() else contextlib.nullcontext():
                import keras
                import tensorflow  # noqa: F401 - keras-graft runs on the TensorFlow backend
            if first and _FREEZE_AFTER_IMPORT[0]:
                import gc

                gc.freeze()
    except ImportError as exc:
        raise BackendMissing(
            f"this command builds a model and needs TensorFlow ({exc}); install it with "
            "pip install 'keras-graft[cpu]' (CPU-only) or 'keras-graft[gpu]' (NVIDIA GPU), "
            "or keep the tensorflow you already have"
        ) from exc
    check_backend()  # a Keras imported earlier, by the caller, on another backend
    check_caps(keras)
    return keras


def check_caps(keras, environ=os.environ) -> None:
    """Refuse the debugging caps of Keras 3: ``KERAS_MAX_EPOCHS``, ``KERAS_MAX_STEPS_PER_EPOCH`` (read when
    Keras is imported) or ``keras.config.set_max_epochs``/``set_max_steps_per_epoch``.  Under them every
    stage would train fewer epochs or batches than its spec says and still be published as finished, and
    the feature cache, ``evaluate`` and ``predict`` would read part of their data.  ``keras=None`` checks
    only the variables (before Keras is imported: Keras 3 fails on a value that is not a whole number)."""
    for variable, getter in CAPS.items():
        value = environ.get(variable)
        if keras is None:
            if value is not None and not _whole(value):
                raise TrainingCapped(
                    f"{variable}={value!r} is not a whole number, and Keras 3 fails on it as it starts; "
                    f"unset {variable} (keras-graft trains every stage as its spec says)"
                )
            continue
        read = getattr(getattr(keras, "config", None), getter, None)
        cap = read() if callable(read) else None  # Keras 2 has no caps: it ignores the variables
        if cap is not None:
            where = (f"{variable}={value} is set" if value is not None
                     else f"keras.config.set_{getter}({cap}) was called")
            unit = (("epoch" if cap == 1 else "epochs") if getter == "max_epochs"
                    else ("batch" if cap == 1 else "batches") + " an epoch, and evaluate and predict as many")
            raise TrainingCapped(
                f"{where}: Keras would train every stage for at most {cap} {unit}, whatever the spec says, "
                "and keras-graft would publish such stages as finished; "
                + (f"unset {variable}" if value is not None else f"call keras.config.set_{getter}(None) first")
                + " (for a quick end-to-end check of a spec: graft run --smoke)"
            )


def _whole(value: str) -> bool:
    """True if Keras 3 reads ``value`` as its caps' variables are read, with ``int``."""
    try:
        int(value)
    except ValueError:
        return False
    return True


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
