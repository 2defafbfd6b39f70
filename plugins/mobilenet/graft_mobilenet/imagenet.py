"""Keras's ImageNet weights offline: where Keras keeps them, which file it wants, and a clear error.

Keras downloads the weights on first use into its cache folder; without internet
access that fails with a bare ``Exception`` ("URL fetch failure").  ``imagenet_error``
turns it into one that names the file, its URL and the folder to put it in.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import TYPE_CHECKING

from graft_mobilenet.errors import WeightsLoadError, WeightsUnavailable

if TYPE_CHECKING:
    from graft_mobilenet import MobileNetParams

# Where Keras downloads the weights from (BASE_WEIGHT_PATH in keras.applications.mobilenet_v2 / _v3,
# the same in Keras 2.15 and 3); only used when a download error does not carry the URL itself.
V2_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
V3_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
V2_IMAGENET_SIZES = (96, 128, 160, 192, 224)
CONSTRUCTORS = {"v2": "MobileNetV2", "v3_small": "MobileNetV3Small", "v3_large": "MobileNetV3Large"}


def describe(params: MobileNetParams) -> str:
    return f"keras.applications.{CONSTRUCTORS[params.variant]}(alpha={params.alpha}, include_top=False)"



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


def imagenet_file(params: MobileNetParams, shape) -> tuple[str, str, str | None]:
    """(file name, URL, MD5 Keras checks or None) of the ImageNet no-top weights, named as Keras names them."""
    if params.variant == "v2":
        rows = shape[0] if shape[0] == shape[1] and shape[0] in V2_IMAGENET_SIZES else 224
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(params.alpha)}_{rows}_no_top.h5"
        return name, V2_WEIGHTS_URL + name, None
    model_name = f"{params.variant.split('_')[1]}_224_{params.alpha}_float"
    name = f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"
    try:
        from keras.src.applications.mobilenet_v3 import WEIGHTS_HASHES

        file_hash = WEIGHTS_HASHES[model_name][1]
    except (ImportError, KeyError):  # pragma: no cover - a Keras that keeps them elsewhere
        file_hash = None
    return name, V3_WEIGHTS_URL + name, file_hash


URL = re.compile(r"https?://\S+?(?=:?(?:\s|$))")


def imagenet_error(keras, params: MobileNetParams, shape, exc: Exception) -> Exception | None:
    """A clear error for a failure to get or load the imagenet weights; None if ``exc`` is about something else."""
    folder = keras_cache_folder(keras)
    name, url, file_hash = imagenet_file(params, shape)
    text = str(exc) or type(exc).__name__
    cached = os.path.join(folder, name)
    if "URL fetch failure" not in text and os.path.isfile(cached):
        return WeightsLoadError(
            f"Keras found the imagenet weights of {describe(params)} in its cache, {cached}, "
            f"but could not load them: {text}\n"
            f"  Delete the file (Keras downloads it again) or replace it with the original from {url}"
        )
    if not ("URL fetch failure" in text or "file hash does not match" in text or isinstance(exc, OSError)):
        return None
    found = URL.search(text)
    if found:  # the URL Keras really tried, and so the file name it really wants
        url = found.group(0)
        name = url.rsplit("/", 1)[-1]
    check = (
        f"\n  Keras checks this file's MD5 ({file_hash}): only the original file works; "
        "a file that does not match is deleted and downloaded again."
        if file_hash
        else ""
    )
    return WeightsUnavailable(
        f"the imagenet weights of {describe(params)} are not in Keras's cache and could not be downloaded "
        f"({type(exc).__name__}: {text})\n"
        f"  Keras wants the file {name}\n"
        f"  from {url}\n"
        f"  Download it where there is internet access and put it in the folder {folder} "
        f"(as {os.path.join(folder, name)}) so it works offline next time."
        f"{check}\n"
        "  Or use weights: none, or weights: the path of a local weights file."
    )
