"""The per-stage layer plan: who trains, who is frozen, where each layer's weights start.

Shared by ``graft plan`` and ``graft run``: the runner executes exactly the plan
that ``graft plan`` shows.
"""

from __future__ import annotations

import attrs

from graft.base.problems import Path, Problems, SpecProblem
from graft.features.cache import feature_plan
from graft.model import adapters
from graft.model.builder import BuiltModel, ModelBuilder
from graft.model.initsource import InitSource, init_source
from graft.planning.records import LOADED, NEW, NO_WEIGHTS, REINIT, AdapterPlan, LayerPlan, RoundPlan, StagePlan
from graft.plugins.layers import Adapter, LayerDecision
from graft.plugins.registry import Registry
from graft.plugins.rounds import Rounds, as_rounds
from graft.spec.records import Spec
from graft.spec.specfile import SpecFile


def build_stage_model(spec_file: SpecFile, registry: Registry, index: int) -> BuiltModel:
    """The model stage ``index`` trains: the spec's extractor with the stage's heads."""
    spec = spec_file.spec
    stage = spec.stages[index]
    heads_at: Path = ("stages", index, "heads") if stage.heads is not None else ("model", "heads")
    builder = ModelBuilder(
        registry,
        tuple(spec.model.input_shape),
        spec.model.extractor,
        spec.heads_of(stage),
        spec_file.base_dir,
        heads_at,
    )
    return builder.build(seed=spec.seed_of(index))


def decide(spec_file: SpecFile, registry: Registry, index: int, built: BuiltModel) -> Rounds:
    """The stage's policy decisions (one round, or several), checked by the registry to cover every layer."""
    policy = spec_file.spec.stages[index].policy
    return registry.transfer_policy(policy.plugin, policy.params, built.layers, at=("stages", index, "policy"))


def apply_decisions(built: BuiltModel, decisions: dict[str, LayerDecision]) -> None:
    """Set ``trainable`` on every layer as decided, an adapted layer's adapter alone (the caller compiles
    afterwards)."""
    adapters.apply_decisions(built.layers, decisions)


def adapted_layers(rounds: Rounds) -> dict[str, Adapter]:
    """Every layer some round adapts, with the adapter of the first round that adapts it, in model order."""
    found: dict[str, Adapter] = {}
    for step in rounds.steps:
        for name, decision in step.decisions.items():
            if decision.adapt is not None:
                found.setdefault(name, decision.adapt)
    return found


def source_of(spec_file: SpecFile, index: int, plans: list[StagePlan]) -> InitSource | None:
    """Stage ``index``'s init source (``graft.model.initsource``), or None for a fresh start."""
    init = spec_file.spec.stages[index].init
    prior = next((plan for plan in plans if init and plan.name == init.stage), None)
    return init_source(spec_file, index, {layer.name: layer.shapes for layer in prior.layers} if prior else None)


def _readable_source(spec_file: SpecFile, index: int, plans: list[StagePlan]) -> InitSource | None:
    """``source_of``, or None when the source file itself is the problem (it is reported as such)."""
    try:
        return source_of(spec_file, index, plans)
    except SpecProblem:
        return None


def plan_stage(spec_file: SpecFile, index: int, built: BuiltModel, rounds: Rounds, plans: list[StagePlan]) -> StagePlan:
    """Resolve each layer's starting weights against the init source; mismatches are problems.

    Leaves the model with the first round's decisions applied.
    """
    return _plan(spec_file.spec, index, built, rounds, source_of(spec_file, index, plans))


def _plan(spec: Spec, index, built, rounds: Rounds, source: InitSource | None) -> StagePlan:
    stage = spec.stages[index]
    problems = Problems()
    sizes = _adapter_sizes(built, rounds, problems, ("stages", index, "policy"))
    layers = []
    round_plans: list[RoundPlan] = []
    for step in reversed(rounds.steps):  # ends with the first round applied
        apply_decisions(built, step.decisions)
        adapting = sum(sizes.get(name, 0) for name, decision in step.decisions.items() if decision.adapt is not None)
        round_plans.insert(0, RoundPlan(step.label, step.unfrozen, _count(built.model.trainable_weights) + adapting))
    decisions = rounds.first
    first_adapters = adapted_layers(rounds)
    for info in built.layers:
        decision = decisions[info.name]
        shapes = [tuple(int(d) for d in weight.shape) for weight in info.layer.get_weights()]
        init, loaded_from = _init_of(info.name, shapes, decision, source, problems, index)
        layers.append(
            LayerPlan(
                name=info.name,
                class_name=info.class_name,
                part=info.part,
                output_shape=_output_shape(info.layer),
                params=int(info.layer.count_params()) if info.has_weights else 0,
                trainable=decision.trainable and info.can_train,
                init=init,
                source=loaded_from,
                shapes=shapes,
                lr_scale=_lr_scale(info.name, rounds) if info.can_train else 1.0,
                source_layer=source.file_names.get(info.name) if source is not None and init == LOADED else None,
                adapter=_adapter_plan(first_adapters.get(info.name), sizes.get(info.name)),
            )
        )
    problems.raise_all()
    model = built.model
    return StagePlan(
        name=stage.name,
        policy=stage.policy.plugin,
        source=source.label if source is not None else None,
        layers=tuple(layers),
        trainable_params=round_plans[0].trainable_params,
        total_params=int(model.count_params()) + sum(sizes.values()),  # the adapters' too, while they train
        outputs=built.output_shapes(),
        rounds=tuple(round_plans),
        features=feature_plan(built, decisions, bool(stage.data.augment), _strategy(spec) == "multi_worker"),
        distribute=spec.distribute.planned(stage.batch_size) if spec.distribute else "",
        notes=built.notes,
    )


def _lr_scale(name: str, rounds: Rounds) -> float:
    """The layer's learning-rate scale in the first round it trains in (1.0 if it never trains)."""
    return next((step.decisions[name].lr_scale for step in rounds.steps if step.decisions[name].learns), 1.0)


def _adapter_sizes(built: BuiltModel, rounds: Rounds, problems: Problems, at: Path) -> dict[str, int]:
    """The parameters of every layer's adapter in any round; a rank too large for its layer is a problem at
    the policy's path."""
    wanted: dict[str, Adapter] = {}
    for step in rounds.steps:
        for name, decision in step.decisions.items():
            if decision.adapt is not None and wanted.setdefault(name, decision.adapt) != decision.adapt:
                problems.add(at, f"layer '{name}' is adapted with different adapters in different rounds; "
                                 "a layer has one adapter for the whole stage")
    for step in rounds.steps:
        for name, decision in step.decisions.items():
            if decision.trainable and name in wanted:
                problems.add(at, f"layer '{name}' is adapted in one round and trained in another; a layer is "
                                 "either adapted or trained for the whole stage")
    sizes = {}
    for info in built.layers:
        if info.name not in wanted:
            continue
        problem = adapters.rank_problem(info, wanted[info.name])
        if problem is not None:
            problems.add(at, problem)
        else:
            sizes[info.name] = adapters.adapter_params(info, wanted[info.name])
    return sizes


def _adapter_plan(adapter: Adapter | None, params: int | None) -> AdapterPlan | None:
    return None if adapter is None or params is None else AdapterPlan(adapter.rank, adapter.alpha_value, params)


def _strategy(spec: Spec) -> str | None:
    return spec.distribute.strategy if spec.distribute else None


def _init_of(name, shapes, decision, source: InitSource | None, problems: Problems, index) -> tuple[str, str | None]:
    if not shapes:
        return NO_WEIGHTS, None
    if source is None or source.shapes is None:  # a fresh start, or an earlier stage that could not be planned
        return NEW, None
    if decision.init == "reinit":
        return REINIT, None
    found = source.problem(name, shapes)
    if found is not None:
        problems.add(("stages", index, found[0]), found[1])
        return NEW, None
    return LOADED, source.label


def _output_shape(layer) -> tuple[int | None, ...] | None:
    try:
        return tuple(None if d is None else int(d) for d in layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def _count(weights) -> int:
    total = 0
    for weight in weights:
        size = 1
        for dim in weight.shape:
            size *= int(dim)
        total += size
    return total


@attrs.frozen(eq=False)
class PlannedStage:
    """A stage's plan with the model built for it (the first round's decisions applied) and its policy's rounds:
    ``graft run`` trains that model as planned instead of building it again."""

    plan: StagePlan
    built: BuiltModel
    rounds: Rounds


def plan_spec(spec_file: SpecFile, registry: Registry) -> list[StagePlan]:
    """Plan every stage; raise one ``SpecError`` with every problem of every stage."""
    return [planned.plan for planned in plan_stages(spec_file, registry)]


def plan_stages(spec_file: SpecFile, registry: Registry) -> list[PlannedStage]:
    """``plan_spec`` with each stage's model and rounds kept."""
    from graft.planning.byplace import explain

    plans: list[StagePlan] = []
    planned: list[PlannedStage] = []
    problems = Problems()
    notes: list[str] = []  # shown under the problems: a model file's layers, the rename that loads them
    if any(stage.init is not None and stage.init.model is not None for stage in spec_file.spec.stages):
        registry.load_all()  # a Keras file is read: every plugin registers its Keras classes, if any, first
    for index in range(len(spec_file.spec.stages)):
        try:
            built = build_stage_model(spec_file, registry, index)
        except SpecProblem as problem:  # the next stages are still built: their own heads may have problems
            for path, message in problem.items:
                if path not in {known for known, _ in problems.items}:  # stages that share the model: once
                    problems.add(path, message)
            continue
        rounds = None
        try:
            rounds = decide(spec_file, registry, index, built)
            plans.append(plan_stage(spec_file, index, built, rounds, plans))
            planned.append(PlannedStage(plans[-1], built, rounds))
        except SpecProblem as problem:
            # the stage's layers do not load from its model file: its layers, and the rename that loads them
            collision, advice = explain(spec_file, index, built, rounds, _readable_source(spec_file, index, plans)) \
                if rounds is not None else (None, [])
            if collision is not None:  # the names collide shifted: one problem says it, not one per layer
                problems.add(*collision)
            else:
                problems.extend(problem)
            notes += advice
            # a stand-in (everything trains, nothing loaded) so later stages can still be checked
            everything = as_rounds({info.name: LayerDecision(trainable=True) for info in built.layers})
            plans.append(_plan(spec_file.spec, index, built, everything, None))
    if problems:
        raise spec_file.error(problems.items, notes)
    return planned
