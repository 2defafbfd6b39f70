"""YAML with line marks, the one strict cattrs converter, and its errors as YAML paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
import yaml
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from graft.problems import Path, SpecProblem, did_you_mean, listing


@attrs.frozen
class YamlDocument:
    """Plain data from ``yaml.safe_load`` semantics, with the line of every path."""

    data: Any
    lines: dict[Path, int]

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


def load_yaml(text: str, source: str = "<string>") -> YamlDocument:
    """Parse ``text`` like ``yaml.safe_load``; duplicate keys raise ``SpecProblem``."""
    loader = yaml.SafeLoader(text)
    loader.name = source
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    duplicates: list[SpecProblem] = []
    if node is None:
        return YamlDocument(None, {})
    lines[()] = node.start_mark.line + 1

    def build(node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    duplicates.append(
                        SpecProblem((*path, key), f"key '{key}' appears twice (lines {seen[key]} and {line})")
                    )
                seen[key] = line
            loader.flatten_mapping(node)
            result = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                lines.setdefault((*path, key), key_node.start_mark.line + 1)
                result[key] = build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                items.append(build(item, (*path, index)))
            return items
        return loader.construct_object(node, deep=True)

    data = build(node, ())
    problem = SpecProblem.combine(duplicates)
    if problem:
        raise problem
    return YamlDocument(data, lines)


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def _strict(expected: str, check):
    def structure(value, _type):
        if not check(value):
            raise SpecProblem((), f"expected {expected}, got {_kind(value)}")
        return value

    return structure


def make_converter() -> cattrs.Converter:
    """The strict converter: no coercion between types, unknown keys rejected."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(
        int, _strict("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
    )
    converter.register_structure_hook(
        float,
        lambda v, _: float(_strict("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))(v, _)),
    )
    converter.register_structure_hook(str, _strict("a string", lambda v: isinstance(v, str)))
    converter.register_structure_hook(bool, _strict("true or false", lambda v: isinstance(v, bool)))
    converter.register_structure_hook(Any, lambda v, _: v)
    return converter


def _field_names(cls: type) -> list[str]:
    return [field.alias or field.name for field in attrs.fields(cls)] if attrs.has(cls) else []


def problems_of(exc: BaseException, path: Path = ()) -> list[tuple[Path, str]]:
    """Flatten a cattrs/attrs/graft exception into ``(path, message)`` pairs."""
    if isinstance(exc, SpecProblem):
        return exc.prefixed(path)
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        found = []
        for inner, note in with_notes:
            if isinstance(inner, KeyError):
                found.append(((*path, note.name), "required key missing"))
            else:
                found += problems_of(inner, (*path, note.name))
        for inner in without:
            found += problems_of(inner, path)
        return found
    if isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        found = []
        for inner, note in with_notes:
            found += problems_of(inner, (*path, note.index))
        for inner in without:
            found += problems_of(inner, path)
        return found
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = _field_names(exc.cl)
        return [
            ((*path, key), f"unknown key '{key}'; expected one of: {listing(allowed)}{did_you_mean(key, allowed)}")
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, ValueError) and len(exc.args) == 4 and isinstance(exc.args[1], attrs.Attribute):
        # attrs.validators.in_: (message, attribute, options, value)
        attribute, options, value = exc.args[1:]
        choices = [str(option) for option in options]
        return [
            ((*path, attribute.name), f"'{value}' is not one of: {listing(choices)}{did_you_mean(str(value), choices)}")
        ]
    if isinstance(exc, (TypeError, ValueError)) and "mapping" in str(exc).lower():
        return [(path, "expected a mapping")]
    return [(path, str(exc) or type(exc).__name__)]


def structure(converter: cattrs.Converter, data: Any, cls: type, path: Path = ()) -> Any:
    """Structure ``data`` into ``cls``; any failure raises one ``SpecProblem`` with every problem."""
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise SpecProblem(path, f"expected a mapping with keys {listing(_field_names(cls))}, got {_kind(data)}")
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a rendered problem
        found = problems_of(exc, path)
        problem = SpecProblem(*found[0])
        problem.items = found
        raise problem from exc
