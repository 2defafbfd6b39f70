"""The plan of every stage, checked before anything trains: each layer's fate and starting weights, and the
stage's data loaded and checked against its model.  ``graft plan`` shows it; ``graft run`` executes it.

The plan's records (``graft.planning.records``) and ``plan_spec`` are importable from here, as they were
from the module ``graft.planning`` before the core was grouped into wings.  They are imported when first
asked for, so reading a finished stage's records does not import the planning machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    **dict.fromkeys(("LOADED", "NEW", "NO_WEIGHTS", "REINIT", "LayerPlan", "RoundPlan", "StagePlan"), "records"),
    **dict.fromkeys(("PlannedStage", "apply_decisions", "build_stage_model", "decide", "plan_spec", "plan_stage",
                     "plan_stages", "source_of"), "stageplan"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"graft.planning.{_WHERE[name]}"), name)
