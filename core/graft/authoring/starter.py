"""``graft new-spec``: a commented starter spec from the installed plugins' params, checked as ``graft validate``
checks it before it is written.  No TensorFlow.

Every field of the extractor's, the head's and the data source's params class is written with its value
and, in a comment, what it takes and its default.  A params class gives the values of its required fields
(and any it wants to show) as ``STARTER`` (raw params, as YAML holds them), and the shape of one sample it
works with as ``STARTER_INPUT_SHAPE``; a data source's starter names its head ``label``
(``graft new-plugin``'s templates do, and keras-graft's own plugins).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import yaml

from graft.base.paths import shown
from graft.base.problems import GraftError, SpecError
from graft.plugins.registry import Registry
from graft.spec.specfile import parse_spec
from graft.spec.typewords import describe

HEAD = "label"  # the one head of a starter spec, which the data sources' starters target
STAGE = "train"
MISSING_DATA = ("file not found: ", "folder not found: ")  # a data path the user fills in after


class StarterError(GraftError):
    """A starter spec that cannot be written: plugins that do not fit together, or an existing file."""


@attrs.frozen
class StarterSpec:
    """What ``write_starter`` wrote: the file, and the data paths the spec names that do not exist yet."""

    path: str
    missing: tuple[str, ...]


def starter_text(registry: Registry, extractor: str, data: str, head: str = "dense") -> str:
    """The YAML of a starter spec: ``extractor``, one head of the plugin ``head`` named ``label``, one stage on
    the data source ``data``; ``PluginError`` listing the installed names when one is unknown."""
    parts = {kind: (name, registry.params_class(kind, registry.get(kind, name).name)) for kind, name in
             (("extractor", extractor), ("head", head), ("data source", data))}
    given = _starter(parts["data source"][1], "STARTER_INPUT_SHAPE")
    wanted = _starter(parts["extractor"][1], "STARTER_INPUT_SHAPE")
    if given and wanted and len(given) != len(wanted):
        raise StarterError(
            f"extractor '{extractor}' and data source '{data}' do not fit together in one spec: the extractor takes "
            f"samples shaped like {tuple(wanted)}, the data source gives {tuple(given)}; choose another pair "
            "(graft plugins lists them)"
        )
    shape = given or wanted
    unfilled = [line for kind, (name, params_class) in parts.items() for line in _unfilled(kind, name, params_class)]
    if unfilled:
        raise StarterError(
            f"no starter values for the required params of {'; '.join(unfilled)} (the params class has no STARTER "
            "for them); nothing was written: write those params by hand (graft schema describes them)"
        )
    versions = {kind: _origin(registry, kind, name) for kind, (name, _) in parts.items()}
    lines = [
        f"# A starter spec written by graft new-spec: extractor {extractor}, head {head} ('{HEAD}'), data {data}.",
        "# Every params field is written with what it takes; change what you need, then",
        "#   graft validate SPEC   (no TensorFlow), graft plan SPEC, graft run SPEC",
        "seed: 0",
        "",
        "model:",
        f"  input_shape: {_flow(list(shape) if shape else [50, 8])}  # the shape of one sample the data gives",
        "  extractor:",
        f"    plugin: {extractor}  # {versions['extractor']}",
        *_params(parts["extractor"][1], 4),
        "  heads:",
        f"    {HEAD}:",
        f"      plugin: {head}  # {versions['head']}",
        "      loss: sparse_categorical_crossentropy  # integer class ids; mse for a number",
        "      metrics: [accuracy]",
        *_params(parts["head"][1], 6),
        "",
        "stages:",
        f"  - name: {STAGE}",
        "    data:",
        f"      source: {data}  # {versions['data source']}",
        *_params(parts["data source"][1], 6),
        "    epochs: 10",
        "    batch_size: 32",
        "    optimizer: {name: adam, learning_rate: 0.001}",
        "    # a second stage starts from this one: init: {stage: train}, with a policy",
        "    # (replace_head, layers, fine_tune_top, progressive; graft plugins lists them)",
    ]
    return "\n".join(lines) + "\n"


def write_starter(path: str, extractor: str, data: str, head: str = "dense",
                  registry: Registry | None = None) -> StarterSpec:
    """Write the starter spec to ``path`` if ``graft validate`` would pass it (the data it names aside, which
    the user puts in place); never over an existing file."""
    registry = registry or Registry.discover()
    text = starter_text(registry, extractor, data, head)
    missing = _check(text, path, registry, extractor, data)
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise StarterError(f"{shown(path)} exists; nothing was written: choose another file name") from None
    except OSError as exc:
        raise StarterError(f"cannot write {shown(path)}: {exc.strerror or exc}; nothing was written") from None
    return StarterSpec(path, missing)


def _check(text: str, path: str, registry: Registry, extractor: str, data: str) -> tuple[str, ...]:
    """The data paths that do not exist yet; a ``StarterError`` with every other problem ``graft validate``
    finds (an extractor and a data source that do not fit together)."""
    try:
        parse_spec(text, os.path.abspath(path), registry)
    except SpecError as error:
        missing = [line for line in error.lines if line.startswith("stages[0].data.params.")
                   and any(word in line for word in MISSING_DATA)]
        others = [line for line in error.lines if line not in missing]
        if others:
            raise StarterError(
                f"extractor '{extractor}' and data source '{data}' do not fit together in one spec; graft validate "
                f"would say:\n" + "\n".join(f"  {line}" for line in others)
                + "\nchoose another pair (graft plugins lists them)"
            ) from None
        return tuple(missing)
    return ()


def _params(params_class: type | None, indent: int) -> list[str]:
    """``params:`` and a line per field of ``params_class``: its starter value or default, what it takes."""
    pad = " " * indent
    if params_class is None:
        return [f"{pad}# (the plugin takes no params)"]
    attrs.resolve_types(params_class)
    starter: Mapping[str, Any] = _starter(params_class, "STARTER") or {}
    lines = [f"{pad}params:"]
    for field in attrs.fields(params_class):
        if not field.init:
            continue
        required = field.default is attrs.NOTHING
        default = None if required else _default(field)
        if field.name in starter:
            value: Any = starter[field.name]
        elif required:
            value = None
        else:
            value = default
        what = describe(field.type) if field.type is not None else "a value"
        note = "required" if required else f"default {_flow(default)}"
        lines.append(f"{pad}  {field.name}: {_flow(value)}  # {what}; {note}")
    return lines


def _unfilled(kind: str, name: str, params_class: type | None) -> list[str]:
    """``extractor plugin 'x': layers`` for required params fields its ``STARTER`` leaves out."""
    if params_class is None:
        return []
    starter = _starter(params_class, "STARTER") or {}
    fields = [field.name for field in attrs.fields(params_class)
              if field.init and field.default is attrs.NOTHING and field.name not in starter]
    return [f"{kind} plugin '{name}': {', '.join(fields)}"] if fields else []


def _default(field: attrs.Attribute) -> Any:
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # attrs.Factory is a class at run time
        default = default.factory() if not default.takes_self else None
    return _plain(default)


def _plain(value: Any) -> Any:
    """A default as YAML writes it: tuples as lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _starter(params_class: type | None, name: str) -> Any:
    value = getattr(params_class, name, None) if params_class is not None else None
    return _plain(value) if value is not None else None


def _origin(registry: Registry, kind: str, name: str) -> str:
    info = registry.get(kind, name)
    return f"{info.distribution} {info.version}".strip()


def _flow(value: Any) -> str:
    """``value`` as one line of YAML."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=2**31, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")


def kinds_of(registry: Registry) -> dict[str, Sequence[str]]:
    """The installed extractors, heads and data sources, for ``graft new-spec --help`` and its tests."""
    return {kind: registry.names(kind) for kind in ("extractor", "head", "data source")}

