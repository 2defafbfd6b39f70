"""The errors of the ``keras_app`` extractor (and of ``mobilenet``, which shares them); keras-graft prints them
without a traceback."""

from __future__ import annotations

import graft
from graft import GraftError


class KerasAppError(GraftError):
    """An extractor wrapping ``keras.applications`` that cannot be built."""


class InputShapeError(graft.SpecProblem, ValueError):
    """``model.input_shape`` does not fit the backbone; reported at ``model.extractor.params``."""

    def __init__(self, message: str):
        super().__init__((), message)


class WeightsUnavailable(KerasAppError):
    """Keras's ImageNet weights are not in its cache and cannot be downloaded."""


class WeightsFileNotFound(KerasAppError, FileNotFoundError):
    """The local weights file does not exist."""


class WeightsLoadError(KerasAppError, ValueError):
    """The weights file exists but does not load into the model."""
