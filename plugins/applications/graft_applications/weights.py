"""The ``weights`` param of an extractor wrapping ``keras.applications``: ``none``, ``imagenet`` or a local file.

``weights_value`` checks it at ``graft validate`` time (a missing file is reported at
``params.weights``); ``weights_argument`` turns it into Keras's ``weights=`` argument
when the model is built.  Shared by the ``keras_app`` and ``mobilenet`` extractors.
"""

from __future__ import annotations

import os

import graft
from graft import did_you_mean, validators
from graft_applications.errors import WeightsFileNotFound

WEIGHTS_WORDS = ("none", "imagenet")
WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".keras")


def weights_value(instance, attribute, value) -> None:
    """An attrs validator: ``none``, ``imagenet`` or the path of an existing ``.weights.h5``/``.h5``/``.keras``
    file (relative to the spec's folder)."""
    if value in WEIGHTS_WORDS:
        return
    if value.endswith(WEIGHTS_SUFFIXES) and os.path.basename(value) not in WEIGHTS_SUFFIXES:
        validators.existing_file(instance, attribute, value)  # so graft validate reports a missing file
        return
    raise graft.SpecProblem(
        (attribute.name,),
        f"'{value}' is not 'none', 'imagenet' or the path of a weights file ending "
        f"{', '.join(WEIGHTS_SUFFIXES[:-1])} or {WEIGHTS_SUFFIXES[-1]}{did_you_mean(value, WEIGHTS_WORDS)}",
    )


def weights_argument(value: str, base_dir: str = ".", plugin: str = "keras_app") -> str | None:
    """The ``weights=`` argument for Keras: None, ``"imagenet"`` or the absolute path of an existing file
    (a relative path is relative to ``base_dir``, the spec's folder); ``plugin`` names the extractor in the error."""
    if value == "none":
        return None
    if value == "imagenet":
        return "imagenet"
    expanded = os.path.expanduser(value)
    path = os.path.abspath(os.path.join(base_dir, expanded))
    if not os.path.isfile(path):
        folder = os.path.abspath(base_dir)
        relative = "" if os.path.isabs(expanded) else f"; a relative path is relative to the spec's folder ({folder})"
        raise WeightsFileNotFound(f"{plugin} weights file not found: {path} (weights: '{value}'{relative})")
    return path
