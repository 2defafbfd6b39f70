"""Helpers for testing a keras-graft plugin, in its own test suite.

```python
from graft.testing import assert_no_tensorflow_on_import, installed_plugin, params_problems, structure_params

def test_params_errors_carry_their_yaml_path():
    assert params_problems({"units": -1}, MyParams) == [(("params", "units"), "must be greater than 0, got -1")]

def test_plugin_is_installed():
    assert installed_plugin("lstm").distribution == "graft-lstm"

def test_import_is_cheap():
    assert_no_tensorflow_on_import("graft_lstm")

def test_conformance():  # graft validate without TensorFlow, YAML paths, layer names, weights by name
    check_extractor_plugin("lstm", {"units": [8, 4]}, input_shape=(6, 3), bad_params={"units": [0]})
```

The conformance checks, ``check_extractor_plugin``, ``check_head_plugin``,
``check_policy_plugin`` and ``check_data_plugin``, are described in ``graft.authoring.conformance``;
``built_extractor_layers`` gives the layers an extractor builds, as ``graft.DeclaredLayer``, to write
or check its ``extractor_layers``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from graft.authoring.conformance import (
    CONFORMANCE_LAYERS,
    Conformance,
    ConformanceError,
    built_extractor_layers,
    check_data_plugin,
    check_extractor_plugin,
    check_head_plugin,
    check_policy_plugin,
)
from graft.base.problems import Path, SpecProblem
from graft.plugins.registry import PluginInfo, Registry
from graft.spec.convert import make_converter, structure

__all__ = [
    "CONFORMANCE_LAYERS",
    "Conformance",
    "ConformanceError",
    "assert_no_tensorflow_on_import",
    "built_extractor_layers",
    "check_data_plugin",
    "check_extractor_plugin",
    "check_head_plugin",
    "check_policy_plugin",
    "installed_plugin",
    "params_problems",
    "structure_params",
]


def structure_params(raw: Any, params_class: type) -> Any:
    """``raw`` structured into ``params_class`` exactly as keras-graft does for a spec."""
    return structure(make_converter(), raw, params_class, ("params",))


def params_problems(raw: Any, params_class: type) -> list[tuple[Path, str]]:
    """The ``(path, message)`` problems keras-graft reports for ``raw`` (paths start at ``params``);
    ``[]`` for valid params."""
    try:
        structure_params(raw, params_class)
    except SpecProblem as problem:
        return problem.items
    return []


def installed_plugin(name: str) -> PluginInfo:
    """The installed plugin ``name`` as entry-point discovery finds it; fails unless it loaded."""
    found = [info for info in Registry.discover(enabled={name}).infos if info.name == name]
    if not found:
        raise ConformanceError(f"no entry point '{name}' in group 'graft': is the distribution installed?")
    if found[0].status != "ok":
        raise ConformanceError(f"plugin '{name}' is {found[0].status}: {found[0].error}")
    return found[0]


def assert_no_tensorflow_on_import(module: str) -> None:
    """Importing ``module`` in a fresh interpreter must not import TensorFlow or Keras."""
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "if loaded:\n"
        "    sys.exit(f'importing the plugin imported {loaded[:5]}: import keras inside the hooks')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
