"""``graft validate``'s check of layer names, without TensorFlow.

The extractor and head plugins that can (``extractor_layers``, ``head_layers``) say which
layers each stage's model will have; the stage's policy then decides on those layers as
``graft plan`` lets it decide on the built model, so a name or pattern in its params that
matches no layer is reported with the same message and "did you mean".  ``init.rename``
values must name layers of the model too.  Where a plugin cannot say, the stage is left
unchecked and ``graft plan`` checks it as before.
"""

from __future__ import annotations

from functools import partial

import attrs

from graft.base.problems import Path, Problems, SpecProblem
from graft.plugins.layers import LayerInfo, match_pattern
from graft.plugins.registry import PluginError, Registry
from graft.spec.specfile import SpecFile


@attrs.frozen
class LayerNameCheck:
    """What the check covered: ``unchecked`` says, per stage left to ``graft plan``, why."""

    checked: tuple[str, ...]  # stage names whose layer names were checked
    unchecked: tuple[tuple[str, str], ...]  # (stage name, why not)

    def summary(self) -> str:
        """One line for ``graft validate``, empty when every stage was checked."""
        if not self.unchecked:
            return ""
        reasons = sorted({why for _, why in self.unchecked})
        stages = ", ".join(name for name, _ in self.unchecked)
        return f"layer names not checked in stages {stages} ({'; '.join(reasons)}): graft plan checks them"


def check_layer_names(spec_file: SpecFile, registry: Registry) -> LayerNameCheck:
    """Check every stage whose layers the plugins declare; raise one ``SpecError`` with every problem."""
    spec = spec_file.spec
    extractor = spec.model.extractor
    problems = Problems()
    extractor_layers, why_not = _declared(
        partial(registry.extractor_layers, extractor.plugin, extractor.params, tuple(spec.model.input_shape),
                at=("model", "extractor")),
        f"extractor plugin '{extractor.plugin}' does not say its layers for these params",
        problems,
    )
    checked: list[str] = []
    unchecked: list[tuple[str, str]] = []
    for index, stage in enumerate(spec.stages):
        layers, why = extractor_layers, why_not
        heads_at: Path = ("stages", index, "heads") if stage.heads is not None else ("model", "heads")
        for name, head in spec.heads_of(stage).items():
            if layers is None:
                break
            declared, why = _declared(
                partial(registry.head_layers, head.plugin, head.params, name, at=(*heads_at, name)),
                f"head plugin '{head.plugin}' does not say its layers for these params",
                problems,
            )
            layers = None if declared is None else (*layers, *declared)
        if layers is None:
            unchecked.append((stage.name, why))
            continue
        why = _check_stage(spec_file, registry, index, layers, problems)
        if why:
            unchecked.append((stage.name, why))
        else:
            checked.append(stage.name)
    if problems:
        raise spec_file.error(_unique(problems.items))
    return LayerNameCheck(tuple(checked), tuple(unchecked))


def _declared(call, why_not: str, problems: Problems) -> tuple[tuple[LayerInfo, ...] | None, str]:
    """The declared layers, or None and why not (a plugin's ``SpecProblem`` is collected)."""
    try:
        layers = call()
    except SpecProblem as problem:
        problems.extend(problem)
        return None, "the plugin refused its params"
    return layers, "" if layers is not None else why_not


def _check_stage(spec_file: SpecFile, registry: Registry, index: int, layers: tuple[LayerInfo, ...],
                 problems: Problems) -> str:
    """Collect the problems of stage ``index``'s layer names; why it could not be checked, or ''."""
    stage = spec_file.spec.stages[index]
    init = stage.init
    if init is not None and init.stage is None:
        for key, value in init.rename.items():
            with problems.collect():
                match_pattern(value, layers, ("stages", index, "init", "rename", key))
    try:
        registry.transfer_policy(stage.policy.plugin, stage.policy.params, layers, at=("stages", index, "policy"))
    except SpecProblem as problem:
        problems.extend(problem)
    except PluginError:  # a policy that needs the built Keras layers: graft plan checks it
        return f"policy '{stage.policy.plugin}' needs the built model"
    return ""


def _unique(items: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Each problem once: stages that share the model report a plugin's problem once."""
    seen: set[tuple[Path, str]] = set()
    return [item for item in items if not (item in seen or seen.add(item))]  # type: ignore[func-returns-value]
