"""Transfer learning on a real image extractor: a tiny MobileNetV2 on scikit-learn's digits.

One run is shared by the module: ``pretrain`` (digits 0-2), ``head`` (replace_head: a new
2-unit head for digits 3-4 on the frozen base) and ``top`` (fine_tune_top, 2 layers).
MobileNetV2 nests the Keras application model inside the extractor and has 52
BatchNormalization layers, so this checks the policies on Keras's own layer names,
through a nested model, with BatchNormalization statistics included, bitwise.  A
``FitSpy`` observer records each layer's weights and trainable flag when training
starts; all training is real.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("graft_mobilenet")
pytest.importorskip("graft_digits")

from graft.model.weights import FILENAME, read_weights  # noqa: E402
from graft.planning.stageplan import plan_spec  # noqa: E402
from graft.planning.view import render_text  # noqa: E402
from graft.runs.stages import run_spec  # noqa: E402
from graft.spec.specfile import load_spec  # noqa: E402
from tests.observers import FitSpy, bitwise, read_report  # noqa: E402

HEAD_2 = (
    "    heads:\n"
    "      digit: {plugin: dense, loss: sparse_categorical_crossentropy, metrics: [accuracy], "
    "params: {units: 2, activation: softmax}}\n"
)
DATA = "{source: sklearn_digits, params: {classes: %s, per_class: 8, size: 32, holdout: 0.05}}"
SPEC = f"""\
seed: 4
model:
  input_shape: [32, 32, 3]
  extractor:
    plugin: mobilenet
    params: {{variant: v2, alpha: 0.35, weights: none, bn_momentum: 0.9}}
  heads:
    digit:
      plugin: dense
      loss: sparse_categorical_crossentropy
      metrics: [accuracy]
      params: {{units: 3, activation: softmax}}
stages:
  - name: pretrain
    data: {DATA % "[0, 1, 2]"}
    epochs: 1
    batch_size: 8
  - name: head
    init: {{stage: pretrain}}
    data: {DATA % "[3, 4]"}
    epochs: 1
    batch_size: 8
    policy: {{plugin: replace_head}}
{HEAD_2}\
  - name: top
    init: {{stage: head}}
    data: {DATA % "[3, 4]"}
    epochs: 1
    batch_size: 8
    policy: {{plugin: fine_tune_top, params: {{layers: 2}}}}
{HEAD_2}"""
STAGES = ["pretrain", "head", "top"]
TOP_2 = ["block_16_project", "Conv_1"]  # the top two weighted layers of MobileNetV2 that are not BatchNormalization


class Run:
    def __init__(self, spec_file, out: str, spy: FitSpy) -> None:
        self.spec_file, self.out, self.spy = spec_file, out, spy
        self.weights = {name: read_weights(os.path.join(out, name, FILENAME)) for name in STAGES}
        self.reports = {name: read_report(out, name) for name in STAGES}
        with np.load(os.path.join(out, "pretrain", FILENAME)) as data:
            index = json.loads(str(data["__graft_index__"]))["layers"]
        self.variables = {name: entry["variables"] for name, entry in index.items()}
        self.classes = {name: entry["class"] for name, entry in index.items()}

    def start(self, stage: str, layer: str) -> list[np.ndarray]:
        return self.spy.calls[STAGES.index(stage)][layer][1]

    def trainable(self, stage: str) -> set[str]:
        return {name for name, (flag, weights) in self.spy.calls[STAGES.index(stage)].items() if flag and weights}

    def plan(self, stage: str) -> dict:
        return self.reports[stage]["plan"]

    def extractor(self) -> list[str]:
        """Names of the extractor's layers that have weights, in model order."""
        layers = self.plan("pretrain")["layers"]
        return [layer["name"] for layer in layers if layer["part"] == "extractor" and layer["params"]]

    def batch_norms(self) -> list[str]:
        return [name for name in self.extractor() if self.classes[name] == "BatchNormalization"]

    def statistics(self, stage_weights: dict, layer: str) -> list[np.ndarray]:
        names = self.variables[layer]
        return [stage_weights[layer][names.index("moving_mean")], stage_weights[layer][names.index("moving_variance")]]


@pytest.fixture(scope="module")
def run(tmp_path_factory, registry) -> Run:
    folder = tmp_path_factory.mktemp("mobilenet")
    (folder / "spec.yaml").write_text(SPEC)
    spec_file = load_spec(str(folder / "spec.yaml"), registry)
    spy = FitSpy()
    run_spec(spec_file, registry, str(folder / "out"), log=lambda _: None, observer=spy)
    assert len(spy.calls) == len(STAGES)
    return Run(spec_file, str(folder / "out"), spy)


@pytest.mark.slow
def test_the_model_has_mobilenets_layers_with_batch_norm(run):
    extractor = run.extractor()
    assert extractor[:3] == ["Conv1", "bn_Conv1", "expanded_conv_depthwise"]
    assert extractor[-4:] == ["block_16_project", "block_16_project_BN", "Conv_1", "Conv_1_bn"]
    assert len(run.batch_norms()) == 52
    # pretraining moved every BatchNormalization's statistics: frozen ones staying put below means something
    for name in run.batch_norms():
        before = run.statistics({name: run.start("pretrain", name)}, name)
        after = run.statistics(run.weights["pretrain"], name)
        assert not any(bitwise([a], [b]) for a, b in zip(before, after, strict=True)), (
            f"{name} statistics did not move in pretrain"
        )


@pytest.mark.slow
def test_replace_head_keeps_the_whole_base_bitwise_and_trains_a_new_head(run):
    pretrain, head = run.weights["pretrain"], run.weights["head"]
    assert run.trainable("head") == {"digit"}
    for name in run.extractor():
        assert bitwise(run.start("head", name), pretrain[name]), f"{name} was not loaded from pretrain"
        assert bitwise(head[name], pretrain[name]), f"frozen {name} changed (BatchNormalization statistics included)"
        assert run.reports["head"]["verification"][name] == {"trainable": False, "changed": False}
    assert [w.shape for w in pretrain["digit"]] == [(1280, 3), (3,)]
    assert [w.shape for w in head["digit"]] == [(1280, 2), (2,)]
    assert not bitwise(head["digit"], run.start("head", "digit")), "the new head did not train"
    plan = {layer["name"]: layer for layer in run.plan("head")["layers"]}
    assert plan["digit"]["init"] == "reinitialised"
    assert plan["Conv_1_bn"]["init"] == "loaded" and plan["Conv_1_bn"]["source"] == "stage pretrain"
    assert run.plan("head")["trainable_params"] == 1280 * 2 + 2
    # the frozen base ran once, for its features; in stage top it runs inside training, BN frozen
    assert [run.reports[stage]["features_cached"] for stage in ["head", "top"]] == [True, False]


@pytest.mark.slow
def test_fine_tune_top_trains_exactly_the_top_two_weighted_layers(run):
    plan = run.plan("top")
    candidates = [
        layer["name"]
        for layer in plan["layers"]
        if layer["part"] == "extractor" and layer["params"] and layer["type"] != "BatchNormalization"
    ]
    assert candidates[-2:] == TOP_2
    extractor_trains = [
        layer["name"] for layer in plan["layers"] if layer["part"] == "extractor" and layer["trainable"]
    ]
    assert extractor_trains == TOP_2
    assert {layer["type"] for layer in plan["layers"] if layer["name"] in TOP_2} == {"Conv2D"}
    assert run.trainable("top") == {*TOP_2, "digit"}
    head, top = run.weights["head"], run.weights["top"]
    for name in [*run.extractor(), "digit"]:
        assert bitwise(run.start("top", name), head[name]), f"{name} was not loaded from stage head"
        trains = name in TOP_2 or name == "digit"
        assert bitwise(top[name], head[name]) != trains, f"{name}: trains {trains}"
        assert run.reports["top"]["verification"][name] == {"trainable": trains, "changed": trains}


@pytest.mark.slow
def test_fine_tune_top_keeps_every_batch_norm_bitwise(run):
    head, top = run.weights["head"], run.weights["top"]
    for name in run.batch_norms():
        assert run.variables[name] == ["gamma", "beta", "moving_mean", "moving_variance"]
        assert bitwise(top[name], head[name]), f"{name} changed: it trained or ran in training mode"
        assert bitwise(run.statistics(top, name), run.statistics(head, name))


@pytest.mark.slow
def test_the_plan_shows_keras_layer_names(run, registry):
    plans = plan_spec(run.spec_file, registry)
    text = render_text(plans)
    names = ["mobilenet_preprocess", "Conv1", "block_1_expand", "block_16_project", "block_16_project_BN", "Conv_1"]
    for name in names:
        assert f"  {name} " in text, name
    top = plans[2]
    assert [layer.name for layer in top.layers if layer.trainable] == [*TOP_2, "digit"]
    assert top.layer("block_16_project").class_name == "Conv2D"
    assert top.layer("block_16_project").part == "extractor"
    assert top.layer("digit").part == "digit"
    assert top.to_json() == run.plan("top")


@pytest.mark.slow
def test_the_mobilenet_digits_config_plans_a_head_only_transfer(registry):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "mobilenet_digits.yaml")
    plans = plan_spec(load_spec(path, registry), registry)
    assert [plan.name for plan in plans] == ["pretrain", "transfer", "fine_tune", "scratch"]
    transfer = plans[1]
    assert transfer.policy == "replace_head" and transfer.source == "stage pretrain"
    heads = [layer for layer in transfer.layers if layer.part != "extractor"]
    assert [layer.name for layer in heads] == ["digit"]
    assert transfer.trainable_params == sum(layer.params for layer in heads) == 1280 * 5 + 5
    assert not any(layer.trainable for layer in transfer.layers if layer.part == "extractor")
    fine_tune = plans[2]
    assert [layer.name for layer in fine_tune.layers if layer.part == "extractor" and layer.trainable] == [
        "block_16_depthwise", "block_16_project", "Conv_1"
    ]
