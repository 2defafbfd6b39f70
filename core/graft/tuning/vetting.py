"""A search space checked against its spec before any trial trains: the stage, every path, every range's ends.

Each end of a range (and each choice) is applied to the spec as the ``--set`` a
trial would use and the spec is vetted with it, so a value the spec would refuse
is an error now, naming the search file's line, not in the fifth trial.  The checks are
``graft validate``'s: the spec's own, and its layer names against the layers plugins declare.
"""

from __future__ import annotations

import attrs

from graft.base.problems import GraftError, Path, did_you_mean, listing
from graft.plugins.registry import Registry
from graft.spec.layernames import check_layer_names
from graft.spec.overrides import Override
from graft.spec.specfile import SpecFile, load_spec, metric_names, render
from graft.tuning.space import SearchSpace


@attrs.frozen
class Sweep:
    """What a sweep runs: the spec, the index of the swept stage, the vetted search space."""

    spec_file: SpecFile
    index: int
    space: SearchSpace
    overrides: tuple[Override, ...] = ()  # the user's --set, applied before every trial's own

    @property
    def stage(self) -> str:
        return self.spec_file.spec.stages[self.index].name

    def trial_spec(self, registry: Registry, values: dict[str, object]) -> SpecFile:
        """The spec of one trial: the user's ``--set``, then one per swept value (vetted as ``--set`` is)."""
        extra = [param.override(values[param.path]) for param in self.space.params]
        return checked_spec(self.spec_file.path, registry, (*self.overrides, *extra))


def checked_spec(config: str, registry: Registry, overrides: tuple[Override, ...]) -> SpecFile:
    """The spec with ``overrides`` applied and checked as ``graft validate --set`` checks it (the layer names too)."""
    spec_file = load_spec(config, registry, overrides)
    check_layer_names(spec_file, registry)
    return spec_file


def vet_sweep(config: str, registry: Registry, space: SearchSpace, stage: str | None,
              overrides: tuple[Override, ...] = ()) -> Sweep:
    """The sweep of ``stage`` (else the space's ``stage``) of the spec at ``config``; ``SpecError`` for a path, a range
    or a metric the spec refuses, at the search file's line."""
    spec_file = checked_spec(config, registry, overrides)
    names = [each.name for each in spec_file.spec.stages]
    name = stage or space.stage
    if name is None:
        raise GraftError(f"{space.path}: which stage is swept? give --stage NAME or 'stage:' in the search space; "
                         f"the spec's stages: {', '.join(names)}")
    if name not in names:
        message = f"the spec has no stage '{name}'{did_you_mean(name, names)}; its stages: {', '.join(names)}"
        if stage is None:
            raise space.error(("stage",), message)
        raise GraftError(f"--stage {name}: {message}")
    index = names.index(name)
    problems: list[tuple[Path, str]] = []
    for param in space.params:
        at = ("params", param.path)
        keys = param.keys
        if len(keys) < 3 or keys[0] != "stages" or keys[1] not in (name, index):
            problems.append((at, f"only the swept stage's values can be swept (paths starting stages.{name}.): the "
                                 f"stages before it are trained once and shared by every trial"
                                 + ("; to sweep a head, give the stage its own 'heads:'" if keys[:1] == ("model",)
                                    else "")))
            continue
        for value in param.ends():
            try:
                checked_spec(config, registry, (*overrides, param.override(value)))
            except GraftError as exc:
                lines = getattr(exc, "lines", [str(exc)])
                missing = all(line.startswith("--set ") for line in lines)  # the path, not the value
                what = "not a path of the spec" if missing else f"{value!r} is refused by the spec"
                problems.append((at, f"{what}: {'; '.join(lines)}"))
                break
    stage_spec = spec_file.spec.stages[index]
    logged = metric_names(spec_file.spec.heads_of(stage_spec))
    if space.metric not in logged:
        problems.append((("metric",), f"stage '{name}' logs no '{space.metric}'{did_you_mean(space.metric, logged)}; "
                                      f"it logs {listing(logged)}"))
    if problems:
        raise render(space.path, space.document, problems)
    return Sweep(spec_file, index, space, overrides)
