"""The errors of the ``mobilenet`` extractor; keras-graft prints them without a traceback.

They are the ``keras_app`` extractor's (``graft_applications.errors``), which builds its
models the same way: ``MobileNetError`` is ``graft_applications.KerasAppError``.
"""

from __future__ import annotations

from graft_applications.errors import (
    InputShapeError,
    WeightsFileNotFound,
    WeightsLoadError,
    WeightsUnavailable,
)
from graft_applications.errors import KerasAppError as MobileNetError

__all__ = ["InputShapeError", "MobileNetError", "WeightsFileNotFound", "WeightsLoadError", "WeightsUnavailable"]
