"""The spec: YAML text -> a typed, vetted ``Spec`` (no TensorFlow).

The records a spec is made of (``Spec``, ``Stage``, ...) are importable from here, as they were
from the module ``graft.spec`` before the core was grouped into wings.
"""

from graft.spec.records import (
    DataRef,
    Distribute,
    ExtractorRef,
    HeadSpec,
    Init,
    ModelSpec,
    Optimizer,
    PolicyRef,
    Spec,
    Stage,
)

__all__ = [
    "DataRef", "Distribute", "ExtractorRef", "HeadSpec", "Init", "ModelSpec", "Optimizer", "PolicyRef", "Spec", "Stage",
]
