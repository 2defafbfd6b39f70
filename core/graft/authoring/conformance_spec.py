"""The ``graft validate`` part of the conformance checks: a spec that uses the plugin, checked in a fresh
interpreter that must import neither TensorFlow nor Keras, and its params problems at their YAML paths.

Also the conformance extractor, ``graft_conformance``, that heads, policies and data sources are checked with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import yaml

from graft.base.problems import format_path
from graft.plugins.hookspecs import hookimpl
from graft.plugins.layers import DeclaredLayer
from graft.plugins.registry import HEAVY_MODULES, Registry

CONFORMANCE_EXTRACTOR = "graft_conformance"


class ConformanceError(AssertionError):
    """A conformance check failed; the message names the rule.  Raised by plain code, not ``assert``,
    so the checks hold under ``python -O`` too; an ``AssertionError``, so test runners report it as one."""


# the layers of the conformance model, extractor first: what a policy is checked on
CONFORMANCE_LAYERS = (
    "conformance_dense",
    "conformance_norm",
    "conformance_features",
    "conformance_head_hidden_1",
    "conformance_head",
)
UNKNOWN_KEY = "no_such_param"
HEADS = ("conformance_a", "conformance_b")  # two heads of the head plugin under check, side by side
DENSE_HEAD = "conformance_head"  # the dense head an extractor or a policy is checked with
HEAD = HEADS[0]  # the head of the specs graft validate checks
# where the params of the plugin under check are in the specs conformance_spec writes
PARAMS_PATH = {
    "extractor": ("model", "extractor", "params"),
    "head": ("model", "heads", HEAD, "params"),
    "policy": ("stages", 1, "policy", "params"),
    "data source": ("stages", 0, "data", "params"),
}


class ConformanceExtractor:
    """input -> Dense ``conformance_dense`` -> BatchNormalization ``conformance_norm`` -> Dense
    ``conformance_features``.

    The features have the input's shape, so a head is checked on the features it is given.
    """

    @hookimpl
    def build_extractor(self, input_shape):
        import keras

        inputs = keras.Input(shape=tuple(input_shape), name="conformance_input")
        x = keras.layers.Dense(8, activation="relu", name="conformance_dense")(inputs)
        x = keras.layers.BatchNormalization(name="conformance_norm")(x)
        x = keras.layers.Dense(int(input_shape[-1]), name="conformance_features")(x)
        return keras.Model(inputs, x, name="conformance_extractor")

    @hookimpl
    def extractor_layers(self) -> list[DeclaredLayer]:
        return [
            DeclaredLayer("conformance_dense", "Dense"),
            DeclaredLayer("conformance_norm", "BatchNormalization", is_batch_norm=True),
            DeclaredLayer("conformance_features", "Dense"),
        ]


def conformance_registry(enabled: set[str] | None = None) -> Registry:
    """The installed plugins, and ``graft_conformance`` unless a distribution claims that name."""
    registry = Registry.discover(enabled=enabled)
    if not any(info.name == CONFORMANCE_EXTRACTOR for info in registry.infos):
        registry.register(ConformanceExtractor(), CONFORMANCE_EXTRACTOR, "keras-graft (graft.testing)")
    return registry


def conformance_spec(kind: str, name: str, params: Any, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """A spec whose only plugin of ``kind`` is ``name`` with raw ``params`` (left out if None)."""
    plugin = {"plugin": name} | ({} if params is None else {"params": params})
    head = plugin | {"loss": "mse"} if kind == "head" else {"plugin": "dense", "loss": "mse", "params": {"units": 2}}
    synthetic = {"source": "synthetic", "params": {"samples": 8, "targets": {HEAD: "level"}}}
    data = {"source": name} | ({} if params is None else {"params": params}) if kind == "data source" else synthetic
    stages: list[dict[str, Any]] = [{"name": "first", "data": data, "epochs": 1}]
    if kind == "policy":
        stages.append({"name": "second", "init": {"stage": "first"}, "data": synthetic, "epochs": 1, "policy": plugin})
    return {
        "model": {
            "input_shape": [int(size) for size in input_shape],
            "extractor": plugin if kind == "extractor" else {"plugin": CONFORMANCE_EXTRACTOR},
            "heads": {HEAD: head},
        },
        "stages": stages,
    }


def check_validation(
    kind: str, name: str, params: Any, bad_params: Any, input_shape: tuple[int, ...], base_dir: str | None = None
) -> None:
    """``graft validate`` passes with ``params`` and reports an unknown key (and ``bad_params``) at their paths."""
    with_unknown = {**(params if isinstance(params, Mapping) else {}), UNKNOWN_KEY: 1}
    variants = [params, with_unknown] + ([] if bad_params is None else [bad_params])
    specs = [conformance_spec(kind, name, variant, input_shape) for variant in variants]
    heavy, results = validate_elsewhere(name, specs, base_dir)
    if heavy:
        raise ConformanceError(
            f"graft validate of a spec using {kind} plugin '{name}' imported {', '.join(heavy[:5])}: "
            "import keras (and tensorflow) inside the hooks, never at module top or in params classes"
        )
    valid, unknown, *bad = results
    if valid:
        raise ConformanceError(
            f"graft validate refused the spec using {kind} plugin '{name}' with params {params!r}:\n"
            + "\n".join(valid)
        )
    prefix = format_path(PARAMS_PATH[kind])
    if not (unknown and all(line.startswith(prefix) and " (line " in line for line in unknown)):
        raise ConformanceError(
            f"an unknown key in the params of {kind} plugin '{name}' must be reported at {prefix}... (line N), got:\n"
            + "\n".join(unknown or ["(the spec was valid: are the params an attrs class?)"])
        )
    if not (any(UNKNOWN_KEY in line for line in unknown) or any("takes no params" in line for line in unknown)):
        raise ConformanceError(
            f"the unknown key '{UNKNOWN_KEY}' in the params of {kind} plugin '{name}' was not named:\n"
            + "\n".join(unknown)
        )
    for found in bad:
        if not (found and all(line.startswith(prefix) and " (line " in line for line in found)):
            raise ConformanceError(
                f"bad_params {bad_params!r} of {kind} plugin '{name}' must be refused by graft validate, "
                f"each problem at {prefix}... (line N), got:\n" + "\n".join(found or ["(the spec was valid)"])
            )


def validate_elsewhere(
    name: str, specs: list[dict[str, Any]], base_dir: str | None
) -> tuple[list[str], list[list[str]]]:
    """Validate ``specs`` in a fresh interpreter that loads, of the third-party plugins, only ``name``:
    (the TensorFlow/Keras modules it imported, the problem lines of each spec)."""
    with tempfile.TemporaryDirectory(prefix="graft-conformance-") as scratch:
        paths = []
        try:
            for spec in specs:
                descriptor, path = tempfile.mkstemp(
                    prefix=".graft-conformance-", suffix=".yaml", dir=base_dir or scratch
                )
                paths.append(path)
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    yaml.safe_dump(spec, handle, sort_keys=False)
            code = "from graft.authoring.conformance_spec import main; main()"
            result = subprocess.run(
                [sys.executable, "-c", code, name, *paths], capture_output=True, text=True, timeout=600, check=False
            )
        finally:
            for path in paths:
                os.remove(path)
    if result.returncode != 0:
        raise ConformanceError(f"graft validate crashed in a fresh interpreter:\n{result.stderr[-3000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return answer["heavy"], answer["problems"]


def main(argv: list[str] | None = None) -> None:
    """In the fresh interpreter, with the arguments ``NAME SPEC...``: load each spec as ``graft validate`` does,
    with ``NAME`` the only third-party plugin loaded; print the problems as JSON."""
    from graft.base.problems import GraftError, SpecError
    from graft.spec.layernames import check_layer_names
    from graft.spec.specfile import load_spec

    name, *paths = sys.argv[1:] if argv is None else argv
    registry = conformance_registry(enabled={name})
    problems: list[list[str]] = []
    for path in paths:
        try:
            check_layer_names(load_spec(path, registry), registry)  # the plugin's declared layers too
            problems.append([])
        except SpecError as exc:
            problems.append(list(exc.lines))
        except GraftError as exc:
            problems.append([f"(error) {exc}"])
    heavy = sorted(module for module in sys.modules if module.split(".")[0] in HEAVY_MODULES)
    print(json.dumps({"heavy": heavy, "problems": problems}))
