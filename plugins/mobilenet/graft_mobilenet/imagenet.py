"""Keras's ImageNet weights of MobileNet offline: which file Keras wants, and a clear error.

Keras downloads the weights on first use into its cache folder; without internet
access that fails with a bare ``Exception`` ("URL fetch failure").  ``imagenet_error``
turns it into one that names the file, its URL and the folder to put it in
(``graft_applications.offline``, shared with the ``keras_app`` extractor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graft_applications.offline import KerasFile
from graft_applications.offline import imagenet_error as shared_imagenet_error

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


def imagenet_error(keras, params: MobileNetParams, shape, exc: Exception) -> Exception | None:
    """A clear error for a failure to get or load the imagenet weights; None if ``exc`` is about something else."""
    return shared_imagenet_error(keras, describe(params), KerasFile(*imagenet_file(params, shape)), exc)
