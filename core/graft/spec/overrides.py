"""``--set PATH=VALUE``: change a spec's YAML before it is vetted, without editing the file.

    graft run spec.yaml --set stages.transfer.epochs=5 --set seed=3

``PATH`` is dotted: mapping keys by name, list entries by their ``name:``
(``stages.transfer``) or by index (``stages.1`` or ``stages[1]``); ``*`` stands for
every entry of a list or every key of a mapping (``stages.*.epochs=1``).  ``VALUE`` is
YAML, read as the spec file is (``5``, ``3e-3``, ``[gru_1, gru_2]``, ``{units: 32}``;
nothing after ``=`` is null).  An override replaces a value the spec has; a key the
spec does not have is an error (a typo is not silently added) unless the path
starts with ``+``: ``+stages.transfer.batch_size=16`` adds ``batch_size`` to a
mapping the spec has (and refuses a key that is already there).  Overrides apply
in order, to the YAML document, before anything is checked: their values are
vetted like the file's, and a problem in one is named by the override.
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import yaml

from graft.base.problems import GraftError, Path, SpecError, did_you_mean, format_path, kind_of, listing, printable
from graft.spec.yamlfile import YamlDocument, YamlLimitError, YamlProblem, load_yaml

EXAMPLE = "stages.transfer.epochs=5"
WILDCARD = "*"  # a path part that stands for every entry of a list or key of a mapping
MAX_INDEX_DIGITS = 18
_PART = re.compile(r"([^\[\]]+)?((?:\[\d+\])*)\Z")  # a key, then indexes: stages[1], 1, epochs


class OverrideError(GraftError, ValueError):
    """A ``--set`` that cannot be read (no ``=``, a malformed path, a value that is not YAML)."""

    def __init__(self, text: str, why: str):
        super().__init__(printable(f"--set {shown(text)}: {why}"))
        self.text, self.why = text, why


@attrs.frozen
class Override:
    """One ``--set``: ``text`` as given, the path's ``keys`` (an ``int`` is an index), the parsed ``value``."""

    text: str
    keys: tuple[str | int, ...]
    value: Any
    add: bool = False  # ``+path=value``: the key is new

    @property
    def label(self) -> str:
        """How messages name it: ``--set stages.transfer.epochs=5``."""
        return f"--set {shown(self.text)}"


def shown(text: str, limit: int = 200) -> str:
    """A ``--set`` as messages echo it: control characters escaped, cut in the middle if longer than ``limit``."""
    text = printable(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...({len(text) - limit:,} characters)...{text[-limit // 2 :]}"


def parse_override(text: str) -> Override:
    """``PATH=VALUE`` as an ``Override``; ``OverrideError`` saying what is wrong."""
    if not isinstance(text, str):
        raise TypeError(f"an override is a string such as {EXAMPLE!r}, got {type(text).__name__}")
    raw_path, equals, raw_value = text.partition("=")
    if not equals:
        raise OverrideError(text, f"expected PATH=VALUE, such as {EXAMPLE}")
    path = raw_path.strip()
    add = path.startswith("+")
    keys = _keys(text, path[1:] if add else path)
    return Override(text, keys, _value(text, raw_value), add)


def argument(text: str) -> Override:
    """``parse_override`` for argparse (``type=``): a malformed ``--set`` is a usage error."""
    try:
        return parse_override(text)
    except OverrideError as exc:
        raise argparse.ArgumentTypeError(printable(f"{shown(exc.text)}: {exc.why}")) from None


def as_overrides(overrides: Iterable[str | Override]) -> tuple[Override, ...]:
    """Strings parsed, ``Override`` records kept."""
    if isinstance(overrides, str):
        raise TypeError(f"overrides is a list of strings such as [{EXAMPLE!r}], not one string")
    return tuple(item if isinstance(item, Override) else parse_override(item) for item in overrides)


def _keys(text: str, path: str) -> tuple[str | int, ...]:
    if not path:
        raise OverrideError(text, f"the path before '=' is empty; expected PATH=VALUE, such as {EXAMPLE}")
    keys: list[str | int] = []
    for part in path.split("."):
        match = _PART.match(part)
        if not part or match is None or (match.group(1) is None and not keys):
            raise OverrideError(text, f"'{path}' is not a path: write keys joined by '.', list entries by name or "
                                      f"index (stages.transfer.epochs, stages.1.epochs, stages[1].epochs)")
        name, indexes = match.group(1), match.group(2)
        numbers = re.findall(r"\d+", indexes)
        for number in [name, *numbers] if name is not None and name.isdecimal() else numbers:
            if len(number.lstrip("0")) > MAX_INDEX_DIGITS:  # int() of thousands of digits raises ValueError
                raise OverrideError(text, f"the index {number[:8]}... ({len(number):,} digits) is larger than any list "
                                          "in a spec: give the index of an entry (0, 1, ...) or its name")
        if name is not None:
            keys.append(int(name) if name.isdecimal() else name)
        keys += [int(index) for index in numbers]
    return tuple(keys)


def _value(text: str, raw: str) -> Any:
    try:
        document = load_yaml(raw, f"--set {text}")
    except YamlProblem as problem:
        raise OverrideError(text, f"the value: {problem.items[0][1]}") from None
    except yaml.YAMLError as exc:
        what = "" if isinstance(exc, YamlLimitError) else "not valid YAML: "
        raise OverrideError(text, f"the value is {what}{getattr(exc, 'problem', None) or exc}"
                                  " (quote the whole --set for the shell; VALUE is YAML)") from None
    problems = document.duplicates + document.unreadable
    if problems:
        path, message = problems[0]
        raise OverrideError(text, f"the value{' at ' + format_path(path) if path else ''}: {message}")
    return document.data


# -- applying them ------------------------------------------------------------------------


class _Missing(Exception):
    """An override whose path is not in the document; its message says what is there."""


def apply_overrides(document: YamlDocument, overrides: Sequence[Override], source: str) -> YamlDocument:
    """``document`` with every override applied, in order: the lines of what they replaced are dropped, and the
    overridden paths name their override (``YamlDocument.origins``).  ``SpecError`` (from ``source``) listing every
    override whose path the document does not have."""
    data = copy.deepcopy(document.data)
    lines, origins = dict(document.lines), dict(document.origins)
    failed = []
    for override in overrides:
        try:
            for each in _expanded(data, override):
                data, path = _apply(data, each)
                for known in [*lines, *origins]:
                    if known[: len(path)] == path:  # the value replaced, and everything under it
                        lines.pop(known, None)
                        origins.pop(known, None)
                origins[path] = override.label
        except _Missing as missing:
            failed.append(f"{override.label}: {missing}")
    if failed:
        raise SpecError(source, failed)
    return attrs.evolve(document, data=data, lines=lines, origins=origins)


def _expanded(data: Any, override: Override) -> list[Override]:
    """``override`` once per entry each ``*`` of its path stands for (itself if it has none)."""
    if WILDCARD not in override.keys:
        return [override]
    found: list[Override] = []

    def walk(node: Any, done: tuple[str | int, ...], rest: tuple[str | int, ...]) -> None:
        if WILDCARD not in rest:
            found.append(attrs.evolve(override, keys=(*done, *rest)))
            return
        key, *more = rest
        if key != WILDCARD:
            holder, slot = _step(node, key, done, override, last=False)
            walk(holder[slot], (*done, slot), tuple(more))
            return
        if not isinstance(node, (list, dict)):
            raise _Missing(f"{_where(done)} is {'empty (null)' if node is None else _kind(node)}: '*' stands for "
                           "every entry of a list or every key of a mapping")
        slots = list(range(len(node))) if isinstance(node, list) else list(node)
        if not slots:
            raise _Missing(f"{_where(done)} is empty: '*' matches nothing there")
        for slot in slots:
            walk(node[slot], (*done, slot), tuple(more))

    walk(data, (), override.keys)
    return found


def _apply(data: Any, override: Override) -> tuple[Any, Path]:
    """The data with ``override`` applied, and the path it set (indexes and names resolved)."""
    box = [data]  # the root is replaced like any value
    holder: Any = box
    slot: str | int = 0
    path: Path = ()
    *parents, last = override.keys
    for key in parents:
        holder, slot = _step(holder[slot], key, path, override, last=False)
        path = (*path, slot)
    node = holder[slot]
    if override.add:
        if node is None:  # an empty mapping in YAML is often written as nothing: `params:`
            node = holder[slot] = {}
        if not isinstance(node, dict):
            raise _Missing(f"'+' adds a key to a mapping, but {_where(path)} is {_kind(node)}; "
                           f"set the whole value with --set {_plain_path(override)}=...")
        there = _mapping_key(node, last)
        if there is not None:
            raise _Missing(f"{format_path((*path, there))} is in the spec already; change it without '+': "
                           f"--set {override.text.lstrip().removeprefix('+')}")
        holder, slot = node, last
    else:
        holder, slot = _step(node, last, path, override, last=True)
    holder[slot] = copy.deepcopy(override.value)
    return box[0], (*path, slot)


def _step(node: Any, key: str | int, path: Path, override: Override, last: bool) -> tuple[Any, str | int]:
    """The container holding ``key`` under ``node``, and ``key`` as it is there."""
    if isinstance(node, dict):
        found = _mapping_key(node, key)
        if found is None:
            hint = f"; its keys: {listing(list(node), 20)}{did_you_mean(key, node)}" if node else "; it is empty"
            add = f" (to add a key the spec does not have: --set +{override.text.lstrip()})" if last else ""
            raise _Missing(f"{_where(path)} has no key '{key}'{hint}{add}")
        return node, found
    if isinstance(node, list):
        return node, _list_index(node, key, path)
    what = "empty (null)" if node is None else _kind(node)
    hint = f"; add it with '+': --set +{override.text.lstrip()}" if node is None and last else ""
    raise _Missing(f"{_where(path)} is {what}: there is no '{key}' under it to set{hint}")


def _mapping_key(node: dict, key: str | int) -> str | int | None:
    """``key`` as the mapping has it (``1`` may be the key ``1`` or ``'1'``), or None."""
    for candidate in (key, str(key)):
        if candidate in node:
            return candidate
    return None


def _list_index(node: list, key: str | int, path: Path) -> int:
    names = [item["name"] for item in node if isinstance(item, dict) and isinstance(item.get("name"), str)]
    if isinstance(key, int):
        if key < len(node):
            return key
        raise _Missing(f"{_where(path)} has {len(node)} entries (indexes 0 to {len(node) - 1})" if node
                       else f"{_where(path)} is an empty list")
    for index, item in enumerate(node):
        if isinstance(item, dict) and item.get("name") == key:
            return index
    if not names:
        raise _Missing(f"{_where(path)} is a list without named entries: give an index (0 to {len(node) - 1})")
    raise _Missing(f"{_where(path)} has no entry named '{key}'; its entries: {listing(names)} "
                   f"(or an index, 0 to {len(node) - 1}){did_you_mean(key, names)}")


def _where(path: Path) -> str:
    return format_path(path) if path else "the spec"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else kind_of(value)


def _plain_path(override: Override) -> str:
    return override.text.partition("=")[0].strip().removeprefix("+")
