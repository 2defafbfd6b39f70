"""The entry points of one group in the installed distributions, read without ``importlib.metadata``.

Importing ``importlib.metadata`` costs about 40 ms of CPU (it brings the email
package, csv, zipfile, pathlib): a quarter of ``graft validate``.  The entry points
of one group are a few small files, so this reads what
``importlib.metadata.distributions()`` reads, in its order: in every folder of
``sys.path`` (or of ``paths``), each ``*.dist-info`` and ``*.egg-info`` folder
(grouped by normalised name in the order the folder lists them), its
``entry_points.txt`` parsed as ``importlib.metadata`` parses it, and only where that
has the group, the name and version from ``METADATA`` (``PKG-INFO`` for an egg).
A ``sys.path`` entry that is not a plain folder (a zip file, an ``.egg``) is read
through ``importlib.metadata``, as before.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator

import attrs

_ENTRY = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


@attrs.frozen
class EntryPoint:
    """``name = value`` of an ``entry_points.txt`` section; ``value`` is ``module[:attr.attr] [extras]``."""

    name: str
    value: str

    def load(self):
        """Import the module the value names and return it, or the attribute it names (as ``importlib.metadata``)."""
        match = _ENTRY.match(self.value)
        if match is None:
            raise ValueError(f"entry point {self.name} = {self.value!r} is not 'module' or 'module:attribute'")
        loaded = importlib.import_module(match.group("module"))
        for part in filter(None, (match.group("attr") or "").split(".")):
            loaded = getattr(loaded, part)
        return loaded


@attrs.frozen
class Distribution:
    """An installed distribution with entry points in the group asked for."""

    name: str  # as its metadata says (``Name:``), "(unnamed)" without one
    version: str
    entry_points: tuple[EntryPoint, ...]


def distributions_with(group: str, paths: list[str] | None = None) -> Iterator[Distribution]:
    """Every distribution on ``paths`` (default ``sys.path``) with entry points in ``group``, in the order
    ``importlib.metadata.distributions`` finds them (a distribution found twice is yielded twice)."""
    if paths is None and _other_metadata_finders():  # a finder of its own (a zipapp, an import hook) lists some
        yield from _through_importlib(group, None)
        return
    for entry in sys.path if paths is None else paths:
        folder = entry or "."
        if not os.path.isdir(folder) or folder.lower().endswith(".egg"):
            if os.path.exists(folder):
                yield from _through_importlib(group, folder)
            continue
        for info in _metadata_folders(folder):
            points = _group_entries(os.path.join(info, "entry_points.txt"), group)
            if points:
                name, version = _name_and_version(info)
                yield Distribution(name or "(unnamed)", version, points)


def _metadata_folders(folder: str) -> list[str]:
    """The ``.dist-info`` and ``.egg-info`` folders in ``folder``, grouped by normalised name, first seen first."""
    try:
        children = os.listdir(folder)
    except OSError:
        return []
    groups: dict[str, list[str]] = {}
    for child in children:
        low = child.lower()
        if low.endswith((".dist-info", ".egg-info")):
            name = low.rpartition(".")[0].partition("-")[0]
            groups.setdefault(re.sub(r"[-_.]+", "-", name).replace("-", "_"), []).append(os.path.join(folder, child))
    return [path for paths in groups.values() for path in paths]


def _group_entries(path: str, group: str) -> tuple[EntryPoint, ...]:
    """The entries of section ``[group]`` of an ``entry_points.txt`` (none if it is missing or unreadable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return ()
    section = None
    found = []
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section == group and "=" in line:
            name, value = line.split("=", 1)
            found.append(EntryPoint(name.strip(), value.strip()))
    return tuple(found)


def _name_and_version(info: str) -> tuple[str | None, str]:
    """``Name`` and ``Version`` from the headers of ``METADATA`` (or ``PKG-INFO``) in ``info``."""
    fields: dict[str, str] = {}
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info, filename), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break  # the headers end at the first empty line
                    key, _, value = line.partition(":")
                    if key in ("Name", "Version") and key not in fields:
                        fields[key] = value.strip()
        except (OSError, UnicodeDecodeError):
            continue
        break
    return fields.get("Name"), fields.get("Version", "")


def _other_metadata_finders() -> bool:
    """Whether a finder on ``sys.meta_path`` besides the standard path finder can list distributions
    (``importlib.metadata`` asks each one; this reader knows only folders and zip files on ``sys.path``)."""
    import importlib.machinery

    return any(
        callable(getattr(finder, "find_distributions", None)) and finder is not importlib.machinery.PathFinder
        for finder in sys.meta_path
    )


def _through_importlib(group: str, entry: str | None) -> Iterator[Distribution]:
    """What ``importlib.metadata`` finds on ``entry`` (None: everywhere it looks)."""
    import importlib.metadata

    found = importlib.metadata.distributions() if entry is None else importlib.metadata.distributions(path=[entry])
    for dist in found:
        points = tuple(EntryPoint(point.name, point.value) for point in dist.entry_points if point.group == group)
        if points:
            yield Distribution(dist.metadata["Name"] or "(unnamed)", dist.version, points)
