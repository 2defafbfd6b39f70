"""YAML text -> plain data with the line of every path: ``yaml.safe_load`` semantics, within limits.

Two differences from ``safe_load``: floats follow YAML 1.2 (``3e-3`` is a number,
not a string), and a document is refused before anything is built if it nests
deeper than ``MAX_DEPTH`` or its aliases expand past ``MAX_VALUES`` values.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import yaml

from graft.base.problems import Path, Problems, SpecProblem

MAX_VALUES = 100_000  # aliases can expand a small file enormously ("billion laughs")
MAX_DEPTH = 50  # a spec nests about 8 levels; deep nesting would exhaust Python's stack

MAP_TAG, SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
MERGE_TAG, FLOAT_TAG = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:float"
# the YAML 1.2 core schema float: 1e-3 and 3E5 need no dot
FLOAT_12 = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z|[-+]?\.(?:inf|Inf|INF)\Z|\.(?:nan|NaN|NAN)\Z"
)
TAG_WORDS = {
    "tag:yaml.org,2002:int": "an integer",
    FLOAT_TAG: "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:timestamp": "a date",
}
KEY_TYPES = (str, int, float, bool, type(None))


class YamlLimitError(yaml.MarkedYAMLError):
    """Valid YAML past one of keras-graft's limits (nesting depth)."""


class YamlProblem(SpecProblem):
    """A problem of the YAML node graph (an alias too big or inside itself), with the line of its node."""

    def __init__(self, path: Path, message: str, node: yaml.Node):
        super().__init__(path, message)
        self.lines = {tuple(path): node.start_mark.line + 1}


class SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 floats, and limits of nesting and size checked while composing."""

    depth = 0
    composed = 0

    def compose_node(self, parent, index):
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise YamlLimitError(
                problem=f"nested more than {MAX_DEPTH} levels deep; a spec needs far fewer", problem_mark=mark
            )
        self.composed += 1
        if self.composed > MAX_VALUES:  # stop early: composing a long plain list takes seconds
            mark = self.peek_event().start_mark
            raise YamlLimitError(
                problem=f"holds more than {MAX_VALUES:,} values; a spec needs far fewer", problem_mark=mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


SpecLoader.add_implicit_resolver(FLOAT_TAG, FLOAT_12, list("-+.0123456789"))


@attrs.frozen
class YamlDocument:
    """Plain data as ``yaml.safe_load`` gives it, with the line of every path."""

    data: Any
    lines: dict[Path, int]
    duplicates: list[tuple[Path, str]] = attrs.Factory(list)
    unreadable: list[tuple[Path, str]] = attrs.Factory(list)  # such values are None in ``data``
    origins: dict[Path, str] = attrs.Factory(dict)  # values not from the text: path -> their source (``--set ...``)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def where(self, path: Path) -> str | None:
        """Where ``path`` (or its nearest ancestor that is known) came from: ``line 12``, or its origin
        (``--set stages.transfer.epochs=5``); None if nothing is known."""
        path = tuple(path)
        while True:
            if path in self.origins:
                return self.origins[path]
            if path in self.lines:
                return f"line {self.lines[path]}"
            if not path:
                return None
            path = path[:-1]


def load_yaml(text: str, source: str = "<string>") -> YamlDocument:
    """Parse ``text`` like ``yaml.safe_load``, recording the line of every path.

    Duplicate keys are listed in ``duplicates``; values that cannot be read (keys that
    are not names or numbers, numbers Python cannot read) in ``unreadable``.
    ``YamlProblem``: an alias that contains itself or expands too far;
    ``yaml.YAMLError``: invalid YAML (``YamlLimitError``: nested too deeply).
    """
    loader = SpecLoader(text)
    loader.name = source
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is None:
        return YamlDocument(None, {})
    _check_expansion(node)
    builder = _Builder(loader)
    builder.lines[()] = node.start_mark.line + 1
    data = builder.build(node, ())
    return YamlDocument(data, builder.lines, builder.duplicates, builder.problems.items)


def _children(node: yaml.Node, path: Path):
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            yield (*path, key), key_node
            yield (*path, key), value_node
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield (*path, index), item


def _check_expansion(root: yaml.Node) -> None:
    """Refuse, before building anything, a node graph whose aliases expand too far or into themselves.

    Every node kind counts (``!!omap``, ``!!set`` and ``!!pairs`` too). Anchors come
    before their aliases, so each node is measured once and the walk is as deep as the text.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) once expanded
    open_nodes: set[int] = set()

    def measure(node: yaml.Node, path: Path) -> tuple[int, int]:
        if id(node) in measured:
            return measured[id(node)]
        if id(node) in open_nodes:
            raise YamlProblem(path, f"the alias on line {node.start_mark.line + 1} contains itself", node)
        open_nodes.add(id(node))
        values, depth = 1, 1
        for child_path, child in _children(node, path):
            child_values, child_depth = measure(child, child_path)
            values, depth = values + child_values, max(depth, child_depth + 1)
            if values > MAX_VALUES:
                raise YamlProblem(
                    path,
                    f"the spec holds more than {MAX_VALUES:,} values (an alias counts each time it is used); "
                    "a spec needs far fewer",
                    node,
                )
            if depth > MAX_DEPTH:
                raise YamlProblem(path, f"aliases nest the spec more than {MAX_DEPTH} levels deep", node)
        open_nodes.discard(id(node))
        measured[id(node)] = (values, depth)
        return values, depth

    measure(root, ())


class _Builder:
    """Builds plain data from checked nodes, recording lines, duplicate keys and unreadable values."""

    def __init__(self, loader: SpecLoader):
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.duplicates: list[tuple[Path, str]] = []
        self.problems = Problems()
        self.reported: set[int] = set()
        self.checked: set[int] = set()  # ids of mapping nodes whose keys were compared

    def build(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode) and node.tag == MAP_TAG:
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == SEQ_TAG:
            items = []
            for index, item in enumerate(node.value):
                at = (*path, index)
                self.lines[at] = item.start_mark.line + 1
                items.append(self.build(item, at))
            return items
        # scalars, and collections with an explicit tag (!!set, !!omap; unknown or python/* tags raise): as safe_load
        return self._construct(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        # flatten_mapping rewrites merged (<<) nodes in place, and an alias builds the same node again:
        # keys are compared as written, once per node, before it (or a mapping merging it) is flattened
        self._merged(node, path)
        if id(node) not in self.checked:
            self.checked.add(id(node))
            self._duplicates(node, path)
        self.loader.flatten_mapping(node)
        result = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is _UNREADABLE:
                continue
            # flatten_mapping puts merged (<<) keys first: the last occurrence is the value kept
            at = (*path, key)
            self.lines[at] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, at)
        return result

    def _duplicates(self, node: yaml.MappingNode, path: Path) -> None:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self._key(key_node, path)
            if key is _UNREADABLE or key_node.tag == MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append(((*path, key), f"key '{key}' appears twice (lines {seen[key]} and {line})"))
            seen[key] = line

    def _merged(self, node: yaml.MappingNode, path: Path) -> None:
        """Compare the keys of the mappings ``node`` merges (``<<: *a``, ``<<: [*a, *b]``), before flattening."""
        for key_node, value_node in node.value:
            if key_node.tag != MERGE_TAG:
                continue
            for merged in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                if isinstance(merged, yaml.MappingNode) and id(merged) not in self.checked:
                    self.checked.add(id(merged))
                    self._duplicates(merged, path)
                    self._merged(merged, path)

    def _key(self, key_node: yaml.Node, path: Path) -> Any:
        """The key, or ``_UNREADABLE`` (reported once) if it is not a name or a number."""
        if key_node.tag == MERGE_TAG:
            return None
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            self._report(
                key_node,
                path,
                f"mapping keys must be names or numbers; the key on line {line} is {_node_kind(key_node)}",
            )
            return _UNREADABLE
        key = self._construct(key_node, path)
        if id(key_node) in self.reported:  # a number that could not be read, or a key reported before
            return _UNREADABLE
        if isinstance(key, KEY_TYPES):
            return key
        self._report(
            key_node, path, f"mapping keys must be names or numbers; the key on line {line} is {type(key).__name__}"
        )
        return _UNREADABLE

    def _construct(self, node: yaml.Node, path: Path) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError, IndexError, KeyError, AttributeError, TypeError):
            # PyYAML's constructors fail in many ways on a malformed scalar: 0b, !!int '', !!bool '', !!timestamp x
            what = TAG_WORDS.get(node.tag, "a value")
            text = node.value if isinstance(node.value, str) else "this value"
            shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text):,} characters)"
            self._report(
                node, path, f"cannot read '{shown}' as {what}: write a plain value, or quote it to make it a string"
            )
            return None

    def _report(self, node: yaml.Node, path: Path, message: str) -> None:
        if id(node) not in self.reported:  # a key is looked at twice, an aliased node many times
            self.reported.add(id(node))
            self.problems.add(path, message)


_UNREADABLE = object()


def _node_kind(node: yaml.Node) -> str:
    return (
        "a mapping"
        if isinstance(node, yaml.MappingNode)
        else "a list"
        if isinstance(node, yaml.SequenceNode)
        else "a value"
    )
