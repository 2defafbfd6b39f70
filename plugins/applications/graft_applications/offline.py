"""Keras's ImageNet weights offline: where Keras keeps them, which file it wants, and a clear error.

Keras downloads the weights on first use into its cache folder; without internet
access that fails with a bare ``Exception`` ("URL fetch failure").  ``imagenet_error``
turns it into one that names the file, its URL and the folder to put it in.
Shared by the ``keras_app`` and ``mobilenet`` extractors.
"""

from __future__ import annotations

import os
import re
import tempfile

import attrs

from graft_applications.errors import WeightsLoadError, WeightsUnavailable


@attrs.frozen
class KerasFile:
    """A weights file ``keras.utils.get_file`` caches: its name in the cache folder, its URL, the hash Keras checks."""

    name: str
    url: str
    file_hash: str | None = None

    @property
    def hash_name(self) -> str:
        """What Keras computes for ``file_hash``: a 64-digit hash is SHA-256, a shorter one MD5."""
        return "SHA-256" if self.file_hash and len(self.file_hash) == 64 else "MD5"


def keras_cache_folder(keras) -> str:
    """The folder where ``keras.applications`` keeps downloaded weights, computed as Keras does.

    ``keras.utils.get_file(..., cache_subdir="models")`` with its default
    ``cache_dir``: Keras 3 uses its Keras home (``$KERAS_HOME``, else
    ``~/.keras``, read when Keras is imported); Keras 2 uses ``~/.keras``.  Both
    fall back to ``/tmp/.keras`` when that folder is not writable.
    """
    if int(keras.__version__.split(".")[0]) >= 3:
        try:
            from keras.src.backend.config import keras_home

            base = keras_home()
        except ImportError:  # pragma: no cover - a Keras 3 without the private accessor
            base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        fallback = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    else:
        base = os.path.join(os.path.expanduser("~"), ".keras")
        fallback = os.path.join("/tmp", ".keras")
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = fallback
    return os.path.abspath(os.path.join(base, "models"))


URL = re.compile(r"https?://\S+?(?=:?(?:\s|$))")


def imagenet_error(keras, what: str, wanted: KerasFile, exc: Exception) -> Exception | None:
    """A clear error for a failure to get or load the imagenet weights of ``what`` (``keras.applications.X(...)``),
    which Keras keeps as ``wanted``; None if ``exc`` is about something else."""
    folder = keras_cache_folder(keras)
    name, url = wanted.name, wanted.url
    text = str(exc) or type(exc).__name__
    cached = os.path.join(folder, name)
    if "URL fetch failure" not in text and os.path.isfile(cached):
        return WeightsLoadError(
            f"Keras found the imagenet weights of {what} in its cache, {cached}, "
            f"but could not load them: {text}\n"
            f"  Delete the file (Keras downloads it again) or replace it with the original from {url}"
        )
    if not ("URL fetch failure" in text or "file hash does not match" in text or isinstance(exc, OSError)):
        return None
    found = URL.search(text)
    if found and found.group(0) != url:  # the URL Keras really tried, and so the file name it really wants
        url = found.group(0)
        name = url.rsplit("/", 1)[-1]
    check = (
        f"\n  Keras checks this file's {wanted.hash_name} ({wanted.file_hash}): only the original file works; "
        "a file that does not match is deleted and downloaded again."
        if wanted.file_hash
        else ""
    )
    return WeightsUnavailable(
        f"the imagenet weights of {what} are not in Keras's cache and could not be downloaded "
        f"({type(exc).__name__}: {text})\n"
        f"  Keras wants the file {name}\n"
        f"  from {url}\n"
        f"  Download it where there is internet access and put it in the folder {folder} "
        f"(as {os.path.join(folder, name)}) so it works offline next time."
        f"{check}\n"
        "  Or use weights: none, or weights: the path of a local weights file."
    )
