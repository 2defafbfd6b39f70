"""Which stages are finished and still valid, and where a run goes on.

A stage's fingerprint hashes the model, the seed, the stage and every stage before
it, and the content of every file they read (``graft.runs.inputs``), so editing a stage
or a file it reads invalidates it and every later one, never an earlier one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import attrs

from graft.records.rundir import RunDir, RunError
from graft.runs.inputs import input_digests
from graft.spec.callbacks import fingerprint_fields
from graft.spec.specfile import SpecFile

OLD_INIT = ("stage", "weights")  # init's fields before model and rename, always in a fingerprint
# built-in policy options added since keras-graft 0.1, with their defaults: left out while at one of them
ADDED_POLICY_OPTIONS: dict[str, tuple[Any, ...]] = {"lr_scale": ({},), "layer_decay": (None,), "adapt": ({}, None)}
# keys added since keras-graft 0.1 to heads and to built-in sources' params, with their defaults: left out while at one
ADDED_HEAD_KEYS: dict[str, tuple[Any, ...]] = {"class_weight": (None,)}
ADDED_DATA_OPTIONS: dict[str, tuple[Any, ...]] = {"sample_weights": ({},)}


def stage_fingerprints(spec_file: SpecFile) -> list[str]:
    """One hash per stage over the model, the seed, the stage and every stage before it, with the
    content of the files they name."""
    spec = spec_file.spec
    model = attrs.asdict(spec.model)
    model["heads"] = _heads(model["heads"])
    digest = hashlib.sha256(_canonical([spec.seed, model, input_digests(spec.model, spec_file.resolve)]).encode())
    prints = []
    for stage in spec.stages:
        fields = attrs.asdict(stage)
        if not fields["data"]["augment"]:  # runs from before augment existed stay resumable
            del fields["data"]["augment"]
        fields["data"]["params"] = _without_added(fields["data"]["params"], ADDED_DATA_OPTIONS)  # and sample_weights
        if fields["heads"] is not None:  # and for class_weight
            fields["heads"] = _heads(fields["heads"])
        fields["callbacks"] = fingerprint_fields(fields["callbacks"])  # likewise for callbacks added since
        if fields["init"] is not None:  # and for init's model and rename
            fields["init"] = {key: value for key, value in fields["init"].items() if value or key in OLD_INIT}
        if fields["optimizer"].get("schedule") is None:  # and for the optimizer's schedule
            del fields["optimizer"]["schedule"]
        if fields["seed"] is None:  # and for a stage's own seed
            del fields["seed"]
        # and for the built-in policies' options added since
        fields["policy"]["params"] = _without_added(fields["policy"]["params"], ADDED_POLICY_OPTIONS)
        digest.update(_canonical([fields, input_digests(stage, spec_file.resolve)]).encode())
        prints.append(digest.copy().hexdigest()[:16])
    return prints


def data_identity(spec_file: SpecFile, index: int) -> str:
    """What identifies stage ``index``'s data and its model input: the source, its params, the content of
    the files and folders they name."""
    spec = spec_file.spec
    data = spec.stages[index].data
    params = attrs.asdict(data.params) if attrs.has(type(data.params)) else data.params
    params = _without_added(params, ADDED_DATA_OPTIONS)  # cached features of earlier runs stay found
    return _canonical([data.source, params, input_digests(data.params, spec_file.resolve), spec.model.input_shape])


def _heads(heads: dict[str, Any]) -> dict[str, Any]:
    return {name: _without_added(head, ADDED_HEAD_KEYS) for name, head in heads.items()}


def _without_added(fields: Any, added: dict[str, tuple[Any, ...]]) -> Any:
    """``fields`` without the keys of ``added`` that hold one of their defaults (anything not a dict as it is)."""
    if not isinstance(fields, dict):
        return fields
    return {key: value for key, value in fields.items() if key not in added or value not in added[key]}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def first_stage_to_run(run_dir: RunDir, names: list[str], fingerprints: list[str], restart_from: str | None) -> int:
    """Index of the first stage to run; every finished stage before it is verified and kept.

    With ``restart_from`` the stages from there on are set aside (after the earlier
    ones are checked); otherwise a finished stage from a different spec stops the
    run before anything is overwritten.
    """
    if restart_from is not None:
        return _restart(run_dir, names, fingerprints, restart_from)
    first = len(names)
    for index, name in enumerate(names):
        if not run_dir.is_finished(name):
            first = min(first, index)
            continue
        if run_dir.read_report(name).fingerprint != fingerprints[index]:
            raise RunError(
                f"{run_dir.stage_path(name)} was run from a different spec (the stage, a file it reads, or a stage "
                "before it changed, in the file or by --set); "
                f"nothing was overwritten. Use --restart-from {names[min(first, index)]} to run it again "
                "(the old results are kept aside) or choose another --out"
            )
        if index > first:
            raise RunError(
                f"stage '{name}' is finished in {run_dir.path} but the earlier stage '{names[first]}' is not; "
                f"use --restart-from {names[first]}"
            )
    return first


def _restart(run_dir: RunDir, names: list[str], fingerprints: list[str], restart_from: str) -> int:
    if restart_from not in names:
        raise RunError(f"--restart-from {restart_from}: no such stage; stages: {', '.join(names)}")
    first = names.index(restart_from)
    for index, name in enumerate(names[:first]):
        # the restarted stage starts from these: they must be finished, intact, from this spec
        if not run_dir.is_finished(name):
            why = f"the earlier stage '{name}' has not finished in {run_dir.path}"
        elif run_dir.read_report(name).fingerprint != fingerprints[index]:
            why = f"{run_dir.stage_path(name)} was run from a different spec"
        else:
            continue
        raise RunError(f"--restart-from {restart_from}: {why}; nothing was moved. Use --restart-from {name}")
    for name in names[first:]:
        run_dir.set_aside(name)
    return first
