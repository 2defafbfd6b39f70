"""Load a spec file: YAML -> attrs classes, plugin names and params resolved, all problems at once.

Everything here runs without TensorFlow; it is all ``graft validate`` does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import attrs
import cattrs.gen

from graft.convert import YamlDocument, load_yaml, make_converter, structure
from graft.problems import Path, SpecError, SpecProblem, did_you_mean, format_path, listing
from graft.registry import PluginError, Registry
from graft.spec import DataRef, ExtractorRef, HeadSpec, PolicyRef, Spec, Stage
from graft.validators import NAME

# spec class -> (plugin kind, the key naming the plugin)
PLUGIN_REFERENCES = {
    ExtractorRef: ("extractor", "plugin"),
    HeadSpec: ("head", "plugin"),
    PolicyRef: ("policy", "plugin"),
    DataRef: ("data source", "source"),
}


@attrs.frozen
class SpecFile:
    """A loaded spec with the file it came from and the line of every YAML path."""

    path: str
    spec: Spec
    document: YamlDocument

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def resolve(self, relative: str) -> str:
        """A path from the spec, relative to the spec's folder."""
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(relative)))

    def error(self, items: Iterable[tuple[Path, str]]) -> SpecError:
        """A ``SpecError`` whose lines are ``path (line N): message``."""
        return render(self.path, self.document, items)


def render(source: str, document: YamlDocument, items: Iterable[tuple[Path, str]]) -> SpecError:
    lines = []
    for path, message in items:
        line = document.line_of(path)
        where = f"{format_path(path)} (line {line})" if line else format_path(path)
        lines.append(f"{where}: {message}")
    return SpecError(source, lines)


def spec_converter(registry: Registry):
    """The strict converter, with plugin references resolved through ``registry``."""
    converter = make_converter()
    for cls, (kind, key) in PLUGIN_REFERENCES.items():
        base = cattrs.gen.make_dict_structure_fn(cls, converter)
        converter.register_structure_hook(cls, _plugin_hook(converter, registry, base, kind, key))
    return converter


def _plugin_hook(converter, registry: Registry, base, kind: str, key: str):
    def structure_reference(data, cls):
        reference = base(data, cls)
        name = getattr(reference, key)
        try:
            params_class = registry.params_class(kind, name)
        except PluginError as exc:
            raise SpecProblem((key,), str(exc)) from None
        raw = reference.params if reference.params is not None else {}
        if params_class is None:
            if raw:
                raise SpecProblem(("params",), f"{kind} plugin '{name}' takes no params")
            return attrs.evolve(reference, params=None)
        return attrs.evolve(reference, params=structure(converter, raw, params_class, ("params",)))

    return structure_reference


def load_spec(path: str, registry: Registry) -> SpecFile:
    """Read, structure and check the spec at ``path``; raise ``SpecError`` listing every problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecError(path, [f"cannot read the spec: {exc.strerror}"]) from None
    return parse_spec(text, path, registry)


def parse_spec(text: str, path: str, registry: Registry) -> SpecFile:
    """Like ``load_spec`` for YAML text; ``path`` names it and anchors relative paths."""
    import yaml

    try:
        document = load_yaml(text, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(path, [f"{where}not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
    except SpecProblem as problem:
        raise render(path, YamlDocument(None, {}), problem.items) from None
    if document.duplicates:
        raise render(path, document, document.duplicates)
    try:
        spec = structure(spec_converter(registry), document.data, Spec)
    except SpecProblem as problem:
        raise render(path, document, problem.items) from None
    spec_file = SpecFile(path, spec, document)
    items = check_spec(spec_file)
    if items:
        raise spec_file.error(items)
    return spec_file


def check_spec(spec_file: SpecFile) -> list[tuple[Path, str]]:
    """Checks across fields: head and stage names, stage references, files, monitored metrics."""
    spec = spec_file.spec
    items: list[tuple[Path, str]] = []
    items += _check_head_names(spec.model.heads, ("model", "heads"))
    seen: dict[str, int] = {}
    for index, stage in enumerate(spec.stages):
        at: Path = ("stages", index)
        if stage.name in seen:
            items.append(((*at, "name"), f"stage name '{stage.name}' is used by stages[{seen[stage.name]}] too"))
        if stage.heads is not None:
            items += _check_head_names(stage.heads, (*at, "heads"))
        items += _check_init(spec_file, stage, list(seen), at)
        items += _check_monitors(spec, stage, at)
        seen.setdefault(stage.name, index)
    return items


def _check_head_names(heads: dict, at: Path) -> list[tuple[Path, str]]:
    return [
        ((*at, name), f"head name '{name}' is not valid: use letters, digits and _ (it names a Keras layer)")
        for name in heads
        if not NAME.match(str(name))
    ]


def _check_init(spec_file: SpecFile, stage: Stage, earlier: list[str], at: Path) -> list[tuple[Path, str]]:
    init = stage.init
    if init is None:
        return []
    at = (*at, "init")
    if (init.stage is None) == (init.weights is None):
        return [(at, "give exactly one of 'stage' (an earlier stage of this spec) or 'weights' (a weights file)")]
    if init.stage is not None and init.stage not in earlier:
        if init.stage == stage.name:
            return [((*at, "stage"), f"stage '{stage.name}' cannot start from itself")]
        hint = did_you_mean(init.stage, earlier)
        return [((*at, "stage"), f"no earlier stage '{init.stage}'; earlier stages: {listing(earlier)}{hint}")]
    if init.weights is not None and not os.path.isfile(spec_file.resolve(init.weights)):
        return [((*at, "weights"), f"weights file not found: {spec_file.resolve(init.weights)}")]
    return []


def metric_names(heads: dict[str, HeadSpec]) -> list[str]:
    """Every name Keras logs for these heads, with and without ``val_``."""
    names = ["loss"]
    if len(heads) == 1:  # one output: Keras logs metrics without a head prefix
        (head_spec,) = heads.values()
        names += list(head_spec.metrics)
    else:
        for head, head_spec in heads.items():
            names += [f"{head}_loss", *(f"{head}_{metric}" for metric in head_spec.metrics)]
    return names + [f"val_{name}" for name in names]


def _check_monitors(spec: Spec, stage: Stage, at: Path) -> list[tuple[Path, str]]:
    names = metric_names(spec.heads_of(stage))
    items = []
    for key in ("early_stopping", "reduce_lr"):
        callback = getattr(stage.callbacks, key)
        if callback is not None and callback.monitor not in names:
            items.append(
                (
                    (*at, "callbacks", key, "monitor"),
                    f"'{callback.monitor}' is not logged by this stage; choose one of: "
                    f"{listing(names, 20)}{did_you_mean(callback.monitor, names)}",
                )
            )
    return items
