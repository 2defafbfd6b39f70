"""Shared fixtures: the real installed plugins, tiny specs written to disk, and plugins installed for one test."""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import textwrap

import pytest

from graft.plugins.registry import Registry
from graft.spec.specfile import load_spec

# A seed-scenario spec shrunk to run in a second or two: three GRU(4), two heads,
# pretrain then transfer with gru_1 and gru_2 frozen.
TINY_GRU_SPEC = """\
seed: 3
model:
  input_shape: [12, 3]
  extractor:
    plugin: gru
    params:
      layers:
        - {name: gru_1, units: 4}
        - {name: gru_2, units: 4}
        - {name: gru_3, units: 4}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
    trend:
      plugin: dense
      loss: sparse_categorical_crossentropy
      metrics: [accuracy]
      params: {units: 3, activation: softmax}
stages:
  - name: pretrain
    data:
      source: synthetic
      params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {level: level, trend: trend}}
    epochs: 1
    batch_size: 16
  - name: transfer
    init: {stage: pretrain}
    data:
      source: synthetic
      params: {samples: 48, timesteps: 12, channels: 3, seed: 2, frequency: 2.0, targets: {level: level, trend: trend}}
    epochs: 1
    batch_size: 16
    policy:
      plugin: layers
      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}
"""


# A GRU(8) extractor pretrained on one task, then adapted to another: both GRUs frozen with a rank-2
# adapter beside their kernels, the head trained.  SGD and whole batches (64 training samples of 80, 16 a
# batch), so the same spec also runs under ``mirrored`` and on two workers.
ADAPTED_GRU_SPEC = """\
seed: 5
model:
  input_shape: [12, 3]
  extractor:
    plugin: gru
    params:
      layers:
        - {name: gru_1, units: 8}
        - {name: gru_2, units: 8}
  heads:
    trend:
      plugin: dense
      loss: sparse_categorical_crossentropy
      metrics: [accuracy]
      params: {units: 3, activation: softmax}
stages:
  - name: pretrain
    data:
      source: synthetic
      params: {samples: 80, timesteps: 12, channels: 3, seed: 1, targets: {trend: trend}}
    epochs: 1
    batch_size: 16
    optimizer: {name: sgd, learning_rate: 0.05}
  - name: adapters
    init: {stage: pretrain}
    data:
      source: synthetic
      params: {samples: 80, timesteps: 12, channels: 3, seed: 2, frequency: 2.0, targets: {trend: trend}}
    epochs: 1
    batch_size: 16
    optimizer: {name: sgd, learning_rate: 0.1}
    policy:
      plugin: layers
      params: {adapt: {"gru_*": {rank: 2, alpha: 4}}, train: [trend]}
"""


_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def session_feature_cache(tmp_path_factory):
    """``GRAFT_CACHE_DIR`` for fixtures of a wider scope than a test, which run before ``feature_cache_dir``."""
    before = os.environ.get("GRAFT_CACHE_DIR")
    os.environ["GRAFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("graft-cache-session"))
    yield
    if before is None:
        del os.environ["GRAFT_CACHE_DIR"]
    else:
        os.environ["GRAFT_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def feature_cache_dir(tmp_path_factory, monkeypatch):
    """Every test's feature cache (``GRAFT_CACHE_DIR``) in a folder of its own, never ~/.cache;
    subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("graft-cache")
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(source)``: a real installed distribution whose one plugin is the module ``source`` (its
    ``.dist-info`` with an ``entry_points.txt`` in a folder on ``sys.path`` and on ``PYTHONPATH``); returns the
    plugin's name."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delenv("GRAFT_PLUGINS", raising=False)
    modules = []

    def write(source: str) -> str:
        name = f"broken_{next(_counter)}"
        (site / f"graft_{name}.py").write_text(textwrap.dedent(source))
        info = site / f"graft_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: graft-{name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[graft]\n{name} = graft_{name}\n")
        modules.append(f"graft_{name}")
        importlib.invalidate_caches()
        return name

    yield write
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The plugins really installed in this environment (core built-ins, gru, conv1d)."""
    return Registry.discover()


@pytest.fixture
def write_spec(tmp_path):
    """Write YAML text (dedented) to a file in tmp_path and return its path."""

    def write(text: str, name: str = "spec.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


@pytest.fixture
def load(write_spec, registry):
    """Write YAML text and load it as a SpecFile with the installed plugins."""

    def load_text(text: str):
        return load_spec(write_spec(text), registry)

    return load_text


@pytest.fixture(scope="session")
def adapted_gru_run(tmp_path_factory, registry):
    """``ADAPTED_GRU_SPEC`` run once in this process, uninterrupted: its folder (``spec.yaml``, ``out/``)."""
    from graft.runs.stages import run_spec

    folder = tmp_path_factory.mktemp("adapted-gru")
    (folder / "spec.yaml").write_text(ADAPTED_GRU_SPEC)
    run_spec(load_spec(str(folder / "spec.yaml"), registry), registry, str(folder / "out"), log=lambda _: None)
    return folder
