"""The errors of the ``mobilenet`` extractor; keras-graft prints them without a traceback."""

from __future__ import annotations

import graft
from graft import GraftError


class MobileNetError(GraftError):
    """A mobilenet extractor that cannot be built; keras-graft reports it naming the plugin, without a traceback."""


class InputShapeError(graft.SpecProblem, ValueError):
    """``model.input_shape`` does not fit a MobileNet; reported at ``model.extractor.params``."""

    def __init__(self, message: str):
        super().__init__((), message)


class WeightsUnavailable(MobileNetError):
    """Keras's ImageNet weights are not in its cache and cannot be downloaded."""


class WeightsFileNotFound(MobileNetError, FileNotFoundError):
    """The local weights file does not exist."""


class WeightsLoadError(MobileNetError, ValueError):
    """The weights file exists but does not load into the model."""
