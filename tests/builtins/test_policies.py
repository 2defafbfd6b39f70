"""Each built-in transfer policy, checked at the level of weights on real (tiny) training runs.

Two runs are shared by the module: the seed scenario (``TINY_GRU_SPEC``: three GRUs,
``layers`` freezing gru_1 and gru_2) and a Conv1D+BatchNormalization spec whose later
stages each start from ``pretrain`` with another policy.  A ``FitSpy`` observer
records every layer's weights and ``trainable`` flag at the moment training starts,
so "what was loaded" is observed, not taken from the runner's report.
Mismatch errors only plan, they never train.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from graft.base.problems import SpecError, SpecProblem
from graft.model.weights import FILENAME, read_weights, save_weights
from graft.planning.stageplan import build_stage_model, plan_spec
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC
from tests.observers import FitSpy, bitwise, read_report

GRU_LAYERS = ["gru_1", "gru_2", "gru_3", "level", "trend"]
CONV_WEIGHTED = ["conv_1", "conv_1_bn", "conv_2", "conv_2_bn", "conv_3", "conv_3_bn", "level", "trend"]
BATCH_NORMS = ["conv_1_bn", "conv_2_bn", "conv_3_bn"]


def _data(seed: int, extra: str = "") -> str:
    return (
        "{source: synthetic, params: {samples: 48, timesteps: 12, channels: 3, "
        f"seed: {seed}{extra}, targets: {{level: level, trend: trend}}}}}}"
    )


def _stage(name: str, policy: str, extra: str = "", data: str = _data(2, ", frequency: 2.0")) -> str:
    return f"""\
  - name: {name}
    init: {{stage: pretrain}}
    data: {data}
    epochs: 1
    batch_size: 16
    policy: {policy}
{extra}"""


CONV_SPEC = (
    f"""\
seed: 5
model:
  input_shape: [12, 3]
  extractor:
    plugin: conv1d
    params:
      batch_norm: true
      layers:
        - {{name: conv_1, filters: 4, kernel_size: 3}}
        - {{name: conv_2, filters: 4, kernel_size: 3}}
        - {{name: conv_3, filters: 4, kernel_size: 3}}
  heads:
    level: {{plugin: dense, loss: mse, params: {{units: 1}}}}
    trend: {{plugin: dense, loss: sparse_categorical_crossentropy, params: {{units: 3, activation: softmax}}}}
stages:
  - name: pretrain
    data: {_data(1)}
    epochs: 1
    batch_size: 16
"""
    + _stage("cont", "{plugin: continue}")
    + _stage("reinit", "{plugin: layers, params: {reinit: [trend]}}")
    + _stage(
        "head",
        "{plugin: replace_head}",
        extra="""\
    heads:
      level: {plugin: dense, loss: mse, params: {units: 1}}
      trend: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 5, activation: softmax}}
""",
        data=_data(2, ", classes: 5"),
    )
    + _stage("top", "{plugin: fine_tune_top, params: {layers: 2}}")
    + _stage("top_bn", "{plugin: fine_tune_top, params: {layers: 2, freeze_batch_norm: false}}")
)
CONV_STAGES = ["pretrain", "cont", "reinit", "head", "top", "top_bn"]


# -- helpers -----------------------------------------------------------------------


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def saved(out: str, stage: str) -> dict[str, list[np.ndarray]]:
    return read_weights(os.path.join(out, stage, FILENAME))


class Run:
    def __init__(self, spec_file, out: str, spy: FitSpy, names: list[str]) -> None:
        self.spec_file, self.out, self.spy, self.names = spec_file, out, spy, names
        self.weights = {name: saved(out, name) for name in names}
        self.reports = {name: read_report(out, name) for name in names}

    def call(self, stage: str) -> int:
        return self.names.index(stage)


def _run(tmp_path_factory, registry, text: str, names: list[str]) -> Run:
    folder = tmp_path_factory.mktemp("run")
    path = folder / "spec.yaml"
    path.write_text(text)
    spec_file = load_spec(str(path), registry)
    spy = FitSpy()
    run_spec(spec_file, registry, str(folder / "out"), log=lambda _: None, observer=spy)
    assert len(spy.calls) == len(names)
    return Run(spec_file, str(folder / "out"), spy, names)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory, registry) -> Run:
    return _run(tmp_path_factory, registry, TINY_GRU_SPEC, ["pretrain", "transfer"])


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, registry) -> Run:
    return _run(tmp_path_factory, registry, CONV_SPEC, CONV_STAGES)


@pytest.fixture
def spy() -> FitSpy:
    return FitSpy()


def fresh_weights(run: Run, registry, stage: str) -> dict[str, list[np.ndarray]]:
    """The seeded initial weights of ``stage``'s model, built again."""
    built = build_stage_model(run.spec_file, registry, run.call(stage))
    return {info.name: info.layer.get_weights() for info in built.layers}


# -- continue ----------------------------------------------------------------------


@pytest.mark.slow
def test_continue_loads_every_layer_bitwise_and_trains_every_layer(conv_run):
    source = conv_run.weights["pretrain"]
    call = conv_run.call("cont")
    report = conv_run.reports["cont"]
    for name in CONV_WEIGHTED:
        assert bitwise(conv_run.spy.start(call, name), source[name]), f"{name} did not start from pretrain"
        assert report["load"][name] == {"init": "loaded", "source": "stage pretrain", "equal_to_source": True}
        assert report["verification"][name] == {"trainable": True, "changed": True}
        assert not bitwise(conv_run.weights["cont"][name], source[name]), f"{name} did not train"
    assert report["load"]["conv_pool"] == {"init": "none", "source": None}
    assert all(conv_run.spy.trainable(call).values())


# -- layers --------------------------------------------------------------------------


@pytest.mark.slow
def test_layers_seed_scenario_freezes_gru_1_and_gru_2_bitwise(seed_run):
    pretrain, transfer = seed_run.weights["pretrain"], seed_run.weights["transfer"]
    for name in GRU_LAYERS:
        assert bitwise(seed_run.spy.start(1, name), pretrain[name]), f"{name} did not start from pretrain"
    for name in ["gru_1", "gru_2"]:
        assert bitwise(transfer[name], pretrain[name]), f"frozen {name} changed"
    for name in ["gru_3", "level", "trend"]:
        assert not bitwise(transfer[name], pretrain[name]), f"{name} did not train"
    assert seed_run.spy.trainable(1) == {"gru_1": False, "gru_2": False, "gru_3": True, "level": True, "trend": True}


@pytest.mark.slow
def test_layers_seed_scenario_report(seed_run):
    report = seed_run.reports["transfer"]
    assert report["verification"] == {
        "gru_1": {"trainable": False, "changed": False},
        "gru_2": {"trainable": False, "changed": False},
        "gru_3": {"trainable": True, "changed": True},
        "level": {"trainable": True, "changed": True},
        "trend": {"trainable": True, "changed": True},
    }
    assert report["lineage"] == {name: ["pretrain", "transfer"] for name in GRU_LAYERS}
    assert all(report["load"][name]["equal_to_source"] is True for name in GRU_LAYERS)
    plan = {layer["name"]: layer for layer in report["plan"]["layers"]}
    assert [name for name in GRU_LAYERS if not plan[name]["trainable"]] == ["gru_1", "gru_2"]
    pretrain = seed_run.reports["pretrain"]
    assert pretrain["lineage"] == {name: ["pretrain"] for name in GRU_LAYERS}
    assert all(entry == {"init": "new", "source": None} for entry in pretrain["load"].values())


@pytest.mark.slow
def test_layers_reinit_starts_the_layer_fresh_not_from_the_source(conv_run, registry):
    call, source = conv_run.call("reinit"), conv_run.weights["pretrain"]
    fresh = fresh_weights(conv_run, registry, "reinit")
    start = conv_run.spy.start(call, "trend")
    assert bitwise(start, fresh["trend"]), "trend did not start from the stage's seeded initialisation"
    assert not bitwise(start, source["trend"])
    assert not np.allclose(conv_run.weights["reinit"]["trend"][0], source["trend"][0], atol=1e-2)
    for name in CONV_WEIGHTED:
        if name != "trend":
            assert bitwise(conv_run.spy.start(call, name), source[name]), f"{name} was not loaded"
    report = conv_run.reports["reinit"]
    plan = {layer["name"]: layer for layer in report["plan"]["layers"]}
    assert plan["trend"]["init"] == "reinitialised" and plan["trend"]["source"] is None
    assert plan["level"]["init"] == "loaded"
    assert report["load"]["trend"] == {"init": "reinitialised", "source": None}
    assert report["lineage"]["trend"] == ["reinit"]
    assert report["lineage"]["conv_1"] == ["pretrain", "reinit"]
    # default train; BatchNormalization stays frozen (freeze_batch_norm defaults to true)
    assert conv_run.spy.trainable(call) == {name: name not in BATCH_NORMS for name in CONV_WEIGHTED}


TRANSFER_POLICY = "      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}\n"


@pytest.mark.parametrize(
    ("params", "key", "message"),
    [
        (
            "{freeze: [gru_1, trend], reinit: [trend]}",
            "reinit[0]",
            "trend would stay frozen at random values; remove it from freeze",
        ),
        ("{freeze: ['gru_*'], train: [level, gru_3]}", "train[1]", "gru_3 also listed under freeze"),
    ],
    ids=["freeze-and-reinit", "freeze-and-train"],
)
def test_layers_conflicts_are_spec_errors_at_their_yaml_path(params, key, message, registry, write_spec, tmp_path, spy):
    text = TINY_GRU_SPEC.replace(TRANSFER_POLICY, f"      params: {params}\n")
    assert text != TINY_GRU_SPEC
    spec_file = load_spec(write_spec(text), registry)
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        run_spec(spec_file, registry, str(out), log=lambda _: None, observer=spy)
    line = line_of(text, "params: {freeze:")
    assert caught.value.lines == [f"stages[1].policy.params.{key} (line {line}): {message}"]
    assert not out.exists() and spy.calls == []


# -- replace_head ---------------------------------------------------------------------


@pytest.mark.slow
def test_replace_head_freezes_the_extractor_bitwise_and_starts_resized_heads_fresh(conv_run, registry):
    call, source, final = conv_run.call("head"), conv_run.weights["pretrain"], conv_run.weights["head"]
    fresh = fresh_weights(conv_run, registry, "head")
    extractor = [name for name in CONV_WEIGHTED if name.startswith("conv_")]
    for name in extractor:
        assert bitwise(conv_run.spy.start(call, name), source[name]), f"{name} was not loaded"
        assert bitwise(final[name], source[name]), f"frozen {name} changed (BatchNormalization statistics included)"
    assert [w.shape for w in final["trend"]] == [(4, 5), (5,)]
    assert [w.shape for w in source["trend"]] == [(4, 3), (3,)]
    for name in ["level", "trend"]:
        assert bitwise(conv_run.spy.start(call, name), fresh[name]), f"head {name} did not start fresh"
        assert not bitwise(final[name], fresh[name]), f"head {name} did not train"
    assert not bitwise(conv_run.spy.start(call, "level"), source["level"])
    assert conv_run.spy.trainable(call) == {name: name in ("level", "trend") for name in CONV_WEIGHTED}
    report = conv_run.reports["head"]
    plan = {layer["name"]: layer for layer in report["plan"]["layers"]}
    assert {name: plan[name]["init"] for name in ["conv_1", "conv_2_bn", "level", "trend"]} == {
        "conv_1": "loaded",
        "conv_2_bn": "loaded",
        "level": "reinitialised",
        "trend": "reinitialised",
    }
    assert plan["trend"]["output_shape"] == [None, 5]
    assert report["verification"]["conv_3_bn"] == {"trainable": False, "changed": False}


# -- fine_tune_top ----------------------------------------------------------------------


def _statistics(variable_names: dict[str, list[str]], layer: str, weights: list[np.ndarray]) -> list[np.ndarray]:
    """moving_mean and moving_variance of a BatchNormalization layer, found by variable name."""
    names = variable_names[layer]
    return [weights[names.index("moving_mean")], weights[names.index("moving_variance")]]


@pytest.fixture(scope="module")
def variable_names(conv_run) -> dict[str, list[str]]:
    """Layer -> variable names, from the index of a weights file."""
    with np.load(os.path.join(conv_run.out, "pretrain", FILENAME)) as data:
        index = json.loads(str(data["__graft_index__"]))
    return {name: entry["variables"] for name, entry in index["layers"].items()}


@pytest.mark.slow
def test_fine_tune_top_trains_exactly_the_top_weighted_layers_and_keeps_batch_norm_frozen(conv_run, variable_names):
    call, source, final = conv_run.call("top"), conv_run.weights["pretrain"], conv_run.weights["top"]
    trains = {"conv_2", "conv_3", "level", "trend"}
    assert conv_run.spy.trainable(call) == {name: name in trains for name in CONV_WEIGHTED}
    for name in CONV_WEIGHTED:
        assert bitwise(conv_run.spy.start(call, name), source[name]), f"{name} was not loaded"
        assert bitwise(final[name], source[name]) == (name not in trains), name
    for name in BATCH_NORMS:
        before = _statistics(variable_names, name, source[name])
        after = _statistics(variable_names, name, final[name])
        assert bitwise(after, before), f"{name} moving statistics changed: it ran in training mode"
    plan = conv_run.reports["top"]["plan"]
    extractor_trains = [
        layer["name"] for layer in plan["layers"] if layer["part"] == "extractor" and layer["trainable"]
    ]
    assert extractor_trains == ["conv_2", "conv_3"]


@pytest.mark.slow
def test_fine_tune_top_without_freeze_batch_norm_updates_the_statistics(conv_run, variable_names):
    call, source, final = conv_run.call("top_bn"), conv_run.weights["pretrain"], conv_run.weights["top_bn"]
    trains = {"conv_3", "conv_3_bn", "level", "trend"}
    assert conv_run.spy.trainable(call) == {name: name in trains for name in CONV_WEIGHTED}
    moved = _statistics(variable_names, "conv_3_bn", final["conv_3_bn"])
    for before, after in zip(_statistics(variable_names, "conv_3_bn", source["conv_3_bn"]), moved, strict=True):
        assert not np.array_equal(before, after), "a training BatchNormalization must update its statistics"
    for name in ["conv_1_bn", "conv_2_bn", "conv_1", "conv_2"]:
        assert bitwise(final[name], source[name]), f"{name} is outside the top 2 and must stay frozen"


def test_fine_tune_top_more_layers_than_the_extractor_has(registry, write_spec, tmp_path, spy):
    first_stage = CONV_SPEC[: CONV_SPEC.index("  - name: cont")]
    text = first_stage + _stage("top", "{plugin: fine_tune_top, params: {layers: 4}}")
    spec_file = load_spec(write_spec(text), registry)
    with pytest.raises(SpecError) as caught:
        run_spec(spec_file, registry, str(tmp_path / "out"), log=lambda _: None, observer=spy)
    line = line_of(text, "params: {layers: 4}")
    assert caught.value.lines == [
        f"stages[1].policy.params.layers (line {line}): the extractor has only 3 weighted layers that can train; "
        "use at most that, or all"
    ]
    assert not (tmp_path / "out").exists() and spy.calls == []


# -- what cannot be loaded -------------------------------------------------------------


@pytest.fixture(scope="module")
def other_gru_3(tmp_path_factory, registry) -> str:
    """The (untrained) weights of the seed model with gru_3 of 5 units instead of 4."""
    folder = tmp_path_factory.mktemp("other")
    text = TINY_GRU_SPEC.replace("{name: gru_3, units: 4}", "{name: gru_3, units: 5}")
    assert text != TINY_GRU_SPEC
    (folder / "other.yaml").write_text(text)
    built = build_stage_model(load_spec(str(folder / "other.yaml"), registry), registry, 0)
    path = str(folder / "other.graft.npz")
    save_weights(built.layers, path)
    return path


def _from_file(path: str, policy: str = "{plugin: continue}") -> str:
    start = TINY_GRU_SPEC.index("  - name: transfer")
    return (
        TINY_GRU_SPEC[:start]
        + f"""\
  - name: transfer
    init: {{weights: {path}}}
    data: {_data(2)}
    epochs: 1
    batch_size: 16
    policy: {policy}
"""
    )


def test_shape_mismatch_names_the_layer_and_both_shapes_before_any_training(
    other_gru_3, registry, write_spec, tmp_path, spy
):
    other = other_gru_3
    text = _from_file(other)
    spec_file = load_spec(write_spec(text), registry)
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        run_spec(spec_file, registry, str(out), log=lambda _: None, observer=spy)
    at = f"stages[1].policy (line {line_of(text, 'policy: {plugin: continue}')})"
    gru_3 = [line for line in caught.value.lines if "'gru_3'" in line]
    assert gru_3 == [
        f"{at}: layer 'gru_3' has weight shapes (4, 12), (4, 12), (2, 12) here but (4, 15), (5, 15), (2, 15) "
        f"in file {other}; re-initialise it (policy 'layers' with reinit: [...], or 'replace_head' for heads)"
    ]
    # the heads read gru_3's 5 features in the file: they mismatch too; gru_1 and gru_2 do not
    assert sorted(re.findall(r"layer '(\w+)'", str(caught.value))) == ["gru_3", "level", "trend"]
    assert not out.exists() and spy.calls == []


def test_shape_mismatch_is_fine_when_reinit_lists_the_layer(other_gru_3, registry, write_spec):
    text = _from_file(other_gru_3, "{plugin: layers, params: {reinit: [gru_3, level, trend]}}")
    _, transfer = plan_spec(load_spec(write_spec(text), registry), registry)
    assert {layer.name: layer.init for layer in transfer.layers} == {
        "gru_1": "loaded",
        "gru_2": "loaded",
        "gru_3": "reinitialised",
        "level": "reinitialised",
        "trend": "reinitialised",
    }


EXTRA_HEADS = """\
    heads:
      level: {plugin: dense, loss: mse, params: {units: 1}}
      trend: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 3, activation: softmax}}
      extra: {plugin: dense, loss: mse, params: {units: 1}}
"""


def _with_extra_head(policy: str) -> str:
    text = TINY_GRU_SPEC.replace(
        "seed: 2, frequency: 2.0, targets: {level: level, trend: trend}",
        "seed: 2, frequency: 2.0, targets: {level: level, trend: trend, extra: level}",
    )
    start = text.index("    policy:\n      plugin: layers")
    return text[:start] + EXTRA_HEADS + f"    policy: {policy}\n"


@pytest.mark.slow
def test_missing_layer_is_an_error_before_any_training(registry, write_spec, tmp_path, spy):
    text = _with_extra_head("{plugin: continue}")
    spec_file = load_spec(write_spec(text), registry)
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        run_spec(spec_file, registry, str(out), log=lambda _: None, observer=spy)
    assert caught.value.lines == [
        f"stages[1].policy (line {line_of(text, 'policy: {plugin: continue}')}): layer 'extra' is to be loaded but "
        "stage pretrain has no such layer; "
        "re-initialise it (policy 'layers' with reinit: [...], or 'replace_head' for heads)"
    ]
    assert not out.exists() and spy.calls == []


def test_missing_layer_is_fine_when_reinit_lists_it(registry, write_spec):
    text = _with_extra_head("{plugin: layers, params: {reinit: [extra]}}")
    _, transfer = plan_spec(load_spec(write_spec(text), registry), registry)
    assert {layer.name: layer.init for layer in transfer.layers} == {
        **dict.fromkeys(GRU_LAYERS, "loaded"), "extra": "reinitialised"
    }


def test_a_layer_with_only_non_trainable_weights_never_counts_as_trained():
    # EfficientNet's Normalization layer: statistics only; it must not take a layer of fine_tune_top's count
    # or a layer_decay step, nor show as trained ("trainable but unchanged" in report.md)
    from graft.base.backend import import_keras
    from graft.builtins.policies import FineTuneTop, FineTuneTopParams
    from graft.model.builder import describe_layer

    keras = import_keras()
    norm = keras.layers.Normalization(name="norm")  # mean and variance are weights to adapt, not to train
    dense = keras.layers.Dense(2, name="dense")
    dense(norm(keras.Input((3,))))
    dense.trainable = False  # a plugin may hand a layer over frozen: it can still train
    infos = (describe_layer(keras, norm, "extractor"), describe_layer(keras, dense, "extractor"))
    assert [info.can_train for info in infos] == [False, True] and dense.trainable is False
    decisions = FineTuneTop().transfer_policy(FineTuneTopParams(layers="all", layer_decay=0.5), infos)
    assert decisions["norm"].trainable is False and decisions["dense"].lr_scale == 0.5
    with pytest.raises(SpecProblem, match="only 1 weighted layers that can train"):
        FineTuneTop().transfer_policy(FineTuneTopParams(layers=2), infos)
