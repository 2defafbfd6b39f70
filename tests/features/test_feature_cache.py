"""A frozen, deterministic extractor's features are computed once; training gives the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from graft.model.weights import read_weights
from graft.planning.stageplan import build_stage_model
from graft.plugins.layers import LayerDecision
from graft.runs.stages import run_spec

SPEC = """\
seed: 4
model:
  input_shape: [12, 3]
  extractor:
    plugin: conv1d
    params:
      layers: [{name: conv_1, filters: 4, kernel_size: 3}, {name: conv_2, filters: 4, kernel_size: 3}]
      batch_norm: true
  heads:
    trend:
      plugin: dense
      loss: sparse_categorical_crossentropy
      metrics: [accuracy]
      params: {units: 3, activation: softmax, hidden: [4], dropout: 0.2}
stages:
  - name: pretrain
    data: {source: synthetic, params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {trend: trend}}}
    epochs: 1
    batch_size: 16
  - name: head
    init: {stage: pretrain}
    data: {source: synthetic, params: {samples: 48, timesteps: 12, channels: 3, seed: 2, targets: {trend: trend}}}
    epochs: 2
    batch_size: 16
    policy: {plugin: replace_head}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, registry):
    from graft.spec.specfile import load_spec

    folder = tmp_path_factory.mktemp("cache")
    (folder / "spec.yaml").write_text(SPEC)
    spec_file = load_spec(str(folder / "spec.yaml"), registry)
    out = {}
    for cache in (True, False):
        out[cache] = str(folder / f"out_{cache}")
        run_spec(spec_file, registry, out[cache], log=lambda _: None, cache_features=cache)
    return spec_file, out


@pytest.mark.slow
def test_the_report_says_whether_features_were_cached(runs):
    import json

    _, out = runs
    for cache in (True, False):
        with open(f"{out[cache]}/head/report.json") as handle:
            assert json.load(handle)["features_cached"] is cache
        with open(f"{out[cache]}/pretrain/report.json") as handle:
            assert json.load(handle)["features_cached"] is False  # everything trains in pretrain


@pytest.mark.slow
def test_cached_and_full_training_give_the_same_weights(runs):
    _, out = runs
    cached, full = (
        read_weights(f"{out[True]}/head/weights.graft.npz"),
        read_weights(f"{out[False]}/head/weights.graft.npz"),
    )
    assert cached.keys() == full.keys()
    for name in cached:
        for a, b in zip(cached[name], full[name], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    pretrain = read_weights(f"{out[True]}/pretrain/weights.graft.npz")
    assert not all(
        np.array_equal(a, b) for a, b in zip(cached["trend"], pretrain["trend"], strict=True) if a.shape == b.shape
    )


@pytest.mark.slow
def test_only_a_frozen_deterministic_extractor_counts_as_constant(runs, registry):
    from graft.features.cache import extractor_is_constant

    spec_file, _ = runs
    built = build_stage_model(spec_file, registry, 1)
    frozen = {info.name: LayerDecision(trainable=not info.in_extractor) for info in built.layers}
    assert extractor_is_constant(built, frozen)
    assert not extractor_is_constant(built, {**frozen, "conv_2": LayerDecision(trainable=True)})


def test_an_extractor_with_dropout_is_not_constant(write_spec, registry):
    from graft.features.cache import extractor_is_constant
    from graft.spec.specfile import load_spec

    text = SPEC.replace(
        "plugin: conv1d\n    params:\n      layers: [{name: conv_1, filters: 4, kernel_size: 3}, "
        "{name: conv_2, filters: 4, kernel_size: 3}]\n      batch_norm: true",
        "plugin: gru\n    params: {layers: [{name: gru_1, units: 4}], dropout: 0.2}",
    )
    assert "plugin: gru" in text
    spec_file = load_spec(write_spec(text), registry)
    built = build_stage_model(spec_file, registry, 1)
    frozen = {info.name: LayerDecision(trainable=not info.in_extractor) for info in built.layers}
    assert not extractor_is_constant(built, frozen)
