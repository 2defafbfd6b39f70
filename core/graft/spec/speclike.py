"""A spec given as a path, a dict (as ``yaml.safe_load`` gives it) or a loaded ``SpecFile``, loaded as
``graft validate`` loads a file (no TensorFlow)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Union

import attrs

from graft.base.problems import SpecError
from graft.plugins.registry import Registry
from graft.spec.overrides import Override, as_overrides
from graft.spec.specfile import DICT_ANCHOR, SpecFile, parse_spec
from graft.spec.specfile import load_spec as load_file

SpecLike = Union[str, "os.PathLike[str]", Mapping[str, Any], SpecFile]
DICT_SOURCE = "spec (a dict)"  # what errors of a spec given as a dict name as its source
_LINE = re.compile(r" \(line \d+\)(?=: )")


def load_spec(
    spec: SpecLike, *, base_dir: str | os.PathLike[str] | None = None, overrides: Iterable[str | Override] = ()
) -> SpecFile:
    """Load and check a spec, as ``graft validate`` does; raise ``SpecError`` listing every problem.

    ``spec`` is the path of a YAML file, or a dict as ``yaml.safe_load`` gives it (its
    relative paths resolve against ``base_dir``, by default the current folder; its
    problems are named by YAML path, without line numbers).  A loaded spec is returned as is.
    ``overrides`` are ``--set`` strings (``["stages.transfer.epochs=5"]``, see ``graft.spec.overrides``),
    applied before the spec is checked.
    """
    overrides = as_overrides(overrides)
    if isinstance(spec, SpecFile):
        if overrides:
            raise TypeError(
                "overrides apply to a spec as it is read: give them with its path or dict, not a loaded spec"
            )
        return spec
    return spec_file_of(spec, base_dir, Registry.discover(), overrides)


def spec_file_of(spec: SpecLike, base_dir, registry: Registry, overrides: tuple[Override, ...] = ()) -> SpecFile:
    """``spec`` loaded with ``registry``'s plugins (a ``SpecFile`` as it is)."""
    if isinstance(spec, SpecFile):
        return spec
    if isinstance(spec, Mapping):
        return _load_dict(spec, os.fspath(base_dir) if base_dir is not None else os.getcwd(), registry, overrides)
    if base_dir is not None:
        raise TypeError("base_dir is only for a spec given as a dict: a spec file's paths are relative to its folder")
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"expected the path of a YAML spec, a dict or a loaded spec, got {type(spec).__name__}")
    return load_file(os.fspath(spec), registry, overrides)


def _load_dict(data: Mapping[str, Any], base_dir: str, registry, overrides: tuple[Override, ...]) -> SpecFile:
    """The dict as YAML text in memory, checked by the same code as a file; its line numbers dropped
    (they would be lines of text the user never saw)."""
    import yaml

    try:
        text = yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise SpecError(DICT_SOURCE, [f"the dict holds a value YAML cannot: {exc}; use str, int, float, bool, "
                                      "None, lists and dicts, as yaml.safe_load gives them"]) from None
    anchor = os.path.join(os.path.abspath(base_dir), DICT_ANCHOR)  # SpecFile.base_dir is its folder
    try:
        spec_file = parse_spec(text, anchor, registry, overrides)
    except SpecError as exc:
        raise SpecError(DICT_SOURCE, [_LINE.sub("", line, count=1) for line in exc.lines]) from None
    # later problems (graft.plan, graft.run) are named by path alone too (or by their --set)
    return attrs.evolve(spec_file, document=attrs.evolve(spec_file.document, lines={}))


def _plain(value: Any) -> Any:
    """Mappings as dicts (safe_dump refuses other mapping types); everything else as given."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
