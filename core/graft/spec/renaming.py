"""``init.rename``: the names a weights or model file's layers are loaded under.

A key is a layer name of the file or a glob (``*``, ``?``, ``[...]``); each ``*`` in
its value is replaced by what the key's ``*``s matched, in order, so
``{"encoder_*": "gru_*"}`` loads ``encoder_1`` as ``gru_1``.  Layers no key matches
keep their name.  No TensorFlow here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

from graft.base.problems import Path, Problems, did_you_mean, listing
from graft.plugins.layers import is_pattern


def rename_problems(rename: Mapping[str, str]) -> list[tuple[Path, str]]:
    """What ``graft validate`` checks of a rename map: each value is a name with at most its key's ``*``s."""
    items: list[tuple[Path, str]] = []
    for key, value in rename.items():
        if any(ch in value for ch in "?[]"):
            items.append(((key,), f"the new name {value!r} may hold '*' (what the key's '*' matched), not '?' or '['"))
        elif value.count("*") > key.count("*"):
            items.append(((key,), f"the new name {value!r} has {value.count('*')} '*' but the key {key!r} has "
                          f"{key.count('*')}; each '*' of the new name takes what one '*' of the key matched"))
        elif not value:
            items.append(((key,), "the new name is empty; give the layer name to load it as"))
    return items


@attrs.frozen
class Renamed:
    """The file's layers under the names they load as: ``sources[new name]`` lists the positions of the
    file's layers that take that name (in file order); more than one is a clash if that name is loaded."""

    names: tuple[str, ...]  # the file's names, in file order
    sources: dict[str, list[int]]


def rename_layers(names: Sequence[str], rename: Mapping[str, str], at: Path = ()) -> tuple[Renamed, Problems]:
    """Apply ``rename`` to the file's layer ``names``; problems (a key matching no layer, a layer two keys
    match) are at ``at + (key,)``."""
    problems = Problems()
    patterns = {key: _regex(key) for key in rename}
    taken: dict[int, str] = {}  # position of a file layer -> the key that renamed it
    new_names: dict[int, str] = {}
    for key, value in rename.items():
        hits = [position for position, name in enumerate(names) if patterns[key].fullmatch(name)]
        if not hits:
            what = f"pattern '{key}' matches no layer" if is_pattern(key) else f"no layer '{key}'"
            problems.add((*at, key), f"{what} in the file; its layers: {listing(list(names), 30)}"
                         f"{did_you_mean(key, names)}")
        for position in hits:
            name = names[position]
            if position in taken:
                if taken[position] != key:
                    problems.add((*at, key), f"layer '{name}' is renamed by '{taken[position]}' already; "
                                 "a layer is renamed by one key only")
                continue
            taken[position] = key
            new_names[position] = _substitute(value, patterns[key].fullmatch(name))
    sources: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        sources.setdefault(new_names.get(position, name), []).append(position)
    return Renamed(tuple(names), sources), problems


def _substitute(value: str, match) -> str:
    groups = iter(match.groups())
    return re.sub(r"\*", lambda _star: next(groups, ""), value)


def _regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regular expression, one group per ``*`` (as ``fnmatch`` reads ``?`` and ``[...]``)."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            out.append("(.*)")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = index + (pattern[index:index + 1] == "!")
            end += pattern[end:end + 1] == "]"
            end = pattern.find("]", end)
            if end < 0:
                out.append(re.escape(char))
                continue
            body = pattern[index:end].replace("\\", "\\\\")
            index = end + 1
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append("[" + body + "]")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)
