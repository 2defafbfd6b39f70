"""The plan of every stage, checked before anything trains: each layer's fate and starting weights, and the
stage's data loaded and checked against its model.  ``graft plan`` shows it; ``graft run`` executes it.

The plan's records and ``plan_spec`` are importable from here, as they were from the module
``graft.planning`` before the core was grouped into wings.
"""

from graft.planning.stageplan import (
    LOADED,
    NEW,
    NO_WEIGHTS,
    REINIT,
    LayerPlan,
    PlannedStage,
    RoundPlan,
    StagePlan,
    apply_decisions,
    build_stage_model,
    decide,
    plan_spec,
    plan_stage,
    plan_stages,
    source_of,
)

__all__ = [
    "LOADED", "NEW", "NO_WEIGHTS", "REINIT", "LayerPlan", "PlannedStage", "RoundPlan", "StagePlan", "apply_decisions",
    "build_stage_model", "decide", "plan_spec", "plan_stage", "plan_stages", "source_of",
]
