"""The spec a finished stage ran from, and the validation data it defines: proven by the stage's fingerprint.

A stage's ``report.json`` records the fingerprint of its spec (the model, the seed,
the stage and those before it, and the content of every file they read).  A spec
given with ``--spec``, or the copy ``graft run`` keeps at the run folder's root
(``spec.resolved.yaml``), is used only if it has that fingerprint: then its data
is the data the stage was trained and validated on.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import attrs

from graft.base.problems import GraftError, Problems, did_you_mean, listing
from graft.plugins.datasets import Data
from graft.plugins.registry import Registry
from graft.runs.provenance import RESOLVED
from graft.spec.specfile import SpecFile
from graft.spec.speclike import load_spec

if TYPE_CHECKING:
    from graft.finished.stage import SavedStage
    from graft.spec.speclike import SpecLike

BASE_DIR_LINE = "# relative paths in it are relative to "  # the copy's header line naming its paths' folder


class StageSpecError(GraftError):
    """No spec, or not the spec the stage ran from."""


@attrs.frozen
class StageSpec:
    """The spec stage ``index`` ran from, and where it came from (``--spec x.yaml``, or the run folder's copy)."""

    spec_file: SpecFile
    index: int
    source: str

    @property
    def stage(self) -> Any:
        return self.spec_file.spec.stages[self.index]


def stage_spec(stage: SavedStage, spec: SpecLike | None) -> StageSpec:
    """The spec ``stage`` ran from: ``spec`` if given, else the run folder's copy; ``StageSpecError`` if there is
    none or its fingerprint for the stage is not the one the stage recorded."""
    out = os.path.dirname(stage.path)
    if spec is not None:
        source = f"--spec {os.fspath(spec)}" if isinstance(spec, (str, os.PathLike)) else "the spec given"
        return _proven(load_spec(spec), stage, source, out)
    copy = os.path.join(out, RESOLVED)
    if not os.path.isfile(copy):
        raise StageSpecError(
            f"stage '{stage.name}': its validation data is defined by the spec it ran from, and {out} keeps no copy "
            f"of it ({RESOLVED}); give it with --spec CONFIG, or evaluate on --data FILE.npz"
        )
    return _proven(_resolved_copy(copy), stage, copy, out)


def _resolved_copy(path: str) -> SpecFile:
    """The run folder's copy, its relative paths resolved against the folder its header names."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StageSpecError(f"cannot read {path} ({exc}); give the spec with --spec CONFIG") from None
    base = next((line[len(BASE_DIR_LINE):] for line in text.splitlines() if line.startswith(BASE_DIR_LINE)), None)
    if not isinstance(data, dict) or base is None:
        raise StageSpecError(f"{path} is not a spec graft run wrote; give the spec with --spec CONFIG")
    return load_spec(data, base_dir=base)


def _proven(spec_file: SpecFile, stage: SavedStage, source: str, out: str) -> StageSpec:
    from graft.runs.resume import stage_fingerprints

    names = [entry.name for entry in spec_file.spec.stages]
    if stage.name not in names:
        raise StageSpecError(
            f"{source} has no stage '{stage.name}'{did_you_mean(stage.name, names)} (its stages: {listing(names)}); "
            f"give the spec {out} ran from"
        )
    index = names.index(stage.name)
    if stage_fingerprints(spec_file)[index] != stage.report.fingerprint:
        raise StageSpecError(
            f"{source} is not the spec stage '{stage.name}' of {out} ran from: its fingerprint differs (the stage, "
            "a stage before it, or a file they read changed since); give the spec it ran from, or evaluate on "
            "--data FILE.npz"
        )
    return StageSpec(spec_file, index, source)


def validation_data(found: StageSpec, registry: Registry) -> Data:
    """The stage's data as its spec defines it (loaded by its data source); ``StageSpecError`` if it holds no
    validation samples."""
    stage = found.stage
    problems = Problems()
    with problems.collect():
        data = registry.load_data(
            stage.data.source, stage.data.params, found.spec_file.base_dir, at=("stages", found.index, "data")
        )
    if problems:
        raise found.spec_file.error(problems.items)
    if not data.has_validation:
        raise StageSpecError(
            f"stage '{stage.name}' has no validation data ({data.description}); evaluate on --data FILE.npz"
        )
    return data
