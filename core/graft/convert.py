"""YAML with line marks, the one strict cattrs converter, and its errors as YAML paths."""

from __future__ import annotations

import typing
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
    duplicates: list[tuple[Path, str]] = attrs.Factory(list)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


MAP_TAG, SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


MAX_VALUES = 100_000  # aliases can expand a small file enormously ("billion laughs")


def load_yaml(text: str, source: str = "<string>") -> YamlDocument:
    """Parse ``text`` like ``yaml.safe_load``, recording the line of every path.

    Duplicate keys are listed in ``duplicates``; an alias that contains itself or
    expands past ``MAX_VALUES`` values raises ``SpecProblem``.
    """
    loader = yaml.SafeLoader(text)
    loader.name = source
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    duplicates: list[tuple[Path, str]] = []
    if node is None:
        return YamlDocument(None, {})
    lines[()] = node.start_mark.line + 1
    open_nodes: set[int] = set()

    def build(node: yaml.Node, path: Path) -> Any:
        if id(node) in open_nodes:
            raise SpecProblem(path, f"the alias on line {node.start_mark.line + 1} contains itself")
        if len(lines) > MAX_VALUES:
            raise SpecProblem(path, f"the spec expands to more than {MAX_VALUES:,} values through aliases")
        open_nodes.add(id(node))
        try:
            return build_node(node, path)
        finally:
            open_nodes.discard(id(node))

    def build_node(node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode) and node.tag == MAP_TAG:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    duplicates.append(((*path, key), f"key '{key}' appears twice (lines {seen[key]} and {line})"))
                seen[key] = line
            loader.flatten_mapping(node)
            result = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                # flatten_mapping puts merged (<<) keys first: the last occurrence is the value kept
                lines[(*path, key)] = key_node.start_mark.line + 1
                result[key] = build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode) and node.tag == SEQ_TAG:
            items = []
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                items.append(build(item, (*path, index)))
            return items
        # scalars, and collections with an explicit tag (!!set, !!omap; unknown or python/* tags raise): as safe_load
        return loader.construct_object(node, deep=True)

    return YamlDocument(build(node, ()), lines, duplicates)


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
    # lists and mappings only from YAML sequences and mappings: cattrs would iterate a string
    # ("freeze: gru_1" -> ['g', 'r', ...]) or fail with a bare TypeError on a number
    converter.register_structure_hook_func(_origin_is(list), _strict_list(converter))
    converter.register_structure_hook_func(_origin_is(dict), _strict_dict(converter))
    return converter


def _origin_is(origin: type):
    return lambda type_: type_ is origin or typing.get_origin(type_) is origin


def _raise_all(found: list[tuple[Path, str]]) -> None:
    if found:
        problem = SpecProblem(*found[0])
        problem.items = found
        raise problem


def _strict_list(converter: cattrs.Converter):
    def structure_list(value, type_):
        if not isinstance(value, list):
            raise SpecProblem((), f"expected a list, got {_kind(value)}")
        (item_type,) = typing.get_args(type_) or (Any,)
        result, found = [], []
        for index, item in enumerate(value):
            try:
                result.append(converter.structure(item, item_type))
            except Exception as exc:  # noqa: BLE001 - collected and reported at the item's index
                found += problems_of(exc, (index,))
        _raise_all(found)
        return result

    return structure_list


def _strict_dict(converter: cattrs.Converter):
    def structure_dict(value, type_):
        if not isinstance(value, Mapping):
            raise SpecProblem((), f"expected a mapping, got {_kind(value)}")
        key_type, value_type = typing.get_args(type_) or (Any, Any)
        result, found = {}, []
        for key, item in value.items():
            try:
                result[converter.structure(key, key_type)] = converter.structure(item, value_type)
            except Exception as exc:  # noqa: BLE001 - collected and reported at the key
                found += problems_of(exc, (key,))
        _raise_all(found)
        return result

    return structure_dict


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
            if isinstance(inner, KeyError) and inner.args == (note.name,):
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
