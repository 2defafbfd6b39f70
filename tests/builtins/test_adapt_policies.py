"""Low-rank adapters as a policy's decision: the ``layers``, ``fine_tune_top`` and ``progressive`` policies
asking for them, and every check of them at its YAML path and line: at ``graft validate`` what the
declared layers tell (kinds, conflicts, sizes), at ``graft plan`` what needs the built layer (the rank
against the kernel's dimensions).  No training here (``tests/runs/test_adapter_run.py`` trains)."""

from __future__ import annotations

import pytest

from graft import Adapter, LayerDecision, LayerInfo
from graft.base.problems import SpecError
from graft.builtins.policies import AdaptParams, FineTuneTop, FineTuneTopParams, Layers, LayersParams
from graft.builtins.progressive import Progressive, ProgressiveParams
from graft.planning.stageplan import plan_spec
from graft.planning.view import render_text
from graft.plugins.hookresults import WrongAnswer, policy_rounds
from graft.spec.layernames import check_layer_names
from graft.spec.specfile import load_spec
from tests.builtins.test_policies import CONV_SPEC, line_of
from tests.conftest import TINY_GRU_SPEC

TRANSFER_POLICY = "      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}\n"
assert TINY_GRU_SPEC.count(TRANSFER_POLICY) == 1


def gru_layers() -> tuple[LayerInfo, ...]:
    return (
        *(LayerInfo(f"gru_{n}", "extractor", "GRU", True, False) for n in (1, 2, 3)),
        LayerInfo("bn", "extractor", "BatchNormalization", True, True),
        LayerInfo("level", "level", "Dense", True, False),
    )


def with_params(params: str) -> str:
    return TINY_GRU_SPEC.replace(TRANSFER_POLICY, f"      params: {params}\n")


def test_a_pattern_adapts_the_adaptable_layers_it_matches_and_leaves_the_rest_to_default():
    layers = (*gru_layers(), LayerInfo("gru_bn", "extractor", "BatchNormalization", True, True))
    decisions = Layers().transfer_policy(LayersParams(default="freeze", adapt={"gru_*": AdaptParams(2)}), layers)
    assert {name for name, decision in decisions.items() if decision.adapt} == {"gru_1", "gru_2", "gru_3"}
    assert decisions["gru_bn"] == LayerDecision(False)


def test_layers_adapts_by_name_and_pattern_exact_names_first():
    params = LayersParams(
        freeze=["gru_1"], adapt={"gru_[23]": AdaptParams(2), "gru_3": AdaptParams(3, alpha=6)}, lr_scale={"gru_2": 0.5}
    )
    decisions = Layers().transfer_policy(params, gru_layers())
    assert decisions["gru_1"] == LayerDecision(False)
    assert decisions["gru_2"] == LayerDecision(False, lr_scale=0.5, adapt=Adapter(2))
    assert decisions["gru_3"] == LayerDecision(False, adapt=Adapter(3, 6))
    assert decisions["level"] == LayerDecision(True)  # default: train
    assert Adapter(3, 6).scale == 2.0 and Adapter(2).scale == 1.0  # alpha defaults to the rank, as in Keras


def test_fine_tune_top_and_progressive_adapt_instead_of_training():
    decisions = FineTuneTop().transfer_policy(FineTuneTopParams(2, adapt=AdaptParams(2)), gru_layers())
    assert {name for name, decision in decisions.items() if decision.adapt} == {"gru_2", "gru_3"}
    assert {name for name, decision in decisions.items() if decision.trainable} == {"level"}
    rounds = Progressive().transfer_policy(ProgressiveParams(adapt=AdaptParams(4), max_rounds=3), gru_layers())
    adapted = [sorted(name for name, decision in step.decisions.items() if decision.adapt) for step in rounds.steps]
    assert adapted == [[], ["gru_3"], ["gru_2", "gru_3"]]  # BatchNormalization is skipped: not adaptable
    assert not any(decision.trainable for step in rounds.steps for name, decision in step.decisions.items()
                   if name.startswith("gru"))


def test_a_decision_is_adapted_or_trained_never_both_and_a_plugin_is_held_to_it():
    with pytest.raises(ValueError, match="either trained .* or adapted"):
        LayerDecision(True, adapt=Adapter(2))
    with pytest.raises(ValueError, match="rank must be a whole number >= 1"):
        Adapter(0)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        Adapter(2, alpha=-1.0)
    layers = gru_layers()
    answer = {info.name: LayerDecision(False, adapt=Adapter(2) if info.is_batch_norm else None) for info in layers}
    with pytest.raises(WrongAnswer, match=r"adapted layers of a kind that cannot be adapted: 'bn' "
                                          r"\(BatchNormalization\); adaptable kinds: Dense, Conv1D, Conv2D, GRU, LSTM"):
        policy_rounds(answer, layers)


@pytest.mark.parametrize(
    ("params", "key", "message"),
    [
        ("{adapt: {conv_1_bn: {rank: 2}}}", "adapt.conv_1_bn",
         "conv_1_bn (BatchNormalization) cannot be adapted; adaptable kinds: Dense, Conv1D, Conv2D, GRU, LSTM"),
        ('{adapt: {"conv_*_bn": {rank: 2}}}', "adapt.conv_*_bn",
         "pattern 'conv_*_bn' matches no layer that can be adapted; adaptable kinds: Dense, Conv1D, Conv2D, GRU, LSTM"),
        ("{train: [conv_2], adapt: {conv_2: {rank: 2}}}", "adapt.conv_2",
         "conv_2 also listed under train; a layer under adapt keeps its weights frozen and trains an adapter: "
         "list it in one place"),
        ("{adapt: {conv_9: {rank: 2}}}", "adapt.conv_9", "did you mean 'conv_3'?"),
        ("{adapt: {conv_2: {rank: 0}}}", "adapt.conv_2.rank", "must be greater than 0, got 0"),
    ],
    ids=["kind", "pattern-of-no-kind", "also-trained", "no-such-layer", "rank-zero"],
)
def test_graft_validate_reports_adapt_problems_at_their_yaml_path(params, key, message, registry, write_spec):
    text = CONV_SPEC + f"""\
  - name: adapted
    init: {{stage: pretrain}}
    data:
      source: synthetic
      params: {{samples: 48, timesteps: 12, channels: 3, seed: 2, targets: {{level: level, trend: trend}}}}
    epochs: 1
    batch_size: 16
    policy:
      plugin: layers
      params: {params}
"""
    index = text.count("\n  - name: ") - 1  # the last stage
    with pytest.raises(SpecError) as caught:
        check_layer_names(load_spec(write_spec(text), registry), registry)
    line = line_of(text, f"params: {params}")
    found = [one for one in caught.value.lines if f".params.{key} " in one]
    assert found and found[0].endswith(message), caught.value.lines
    assert found[0].startswith(f"stages[{index}].policy.params.{key} (line {line})")


def test_graft_plan_refuses_a_rank_not_below_the_kernels_dimensions(registry, write_spec):
    text = with_params('{freeze: [gru_1], adapt: {gru_2: {rank: 4}}}')  # GRU(4) on 4 channels: kernels 4 x 12
    spec_file = load_spec(write_spec(text), registry)
    check_layer_names(spec_file, registry)  # the declared layers say no shapes: graft validate lets it pass
    with pytest.raises(SpecError) as caught:
        plan_spec(spec_file, registry)
    assert caught.value.lines == [
        f"stages[1].policy (line {line_of(text, 'policy:')}): layer 'gru_2': rank 4 is not below the dimensions "
        "of its kernel (4 x 12); a low-rank adapter needs a rank of at most 3, or train the layer instead"
    ]


def test_the_plan_shows_each_adapter_and_counts_its_parameters_honestly(registry, write_spec):
    text = with_params('{freeze: [gru_1], adapt: {"gru_[23]": {rank: 2, alpha: 4}}}')
    plans = plan_spec(load_spec(write_spec(text), registry), registry)
    plan = plans[1]
    # GRU(4) on 4: kernel and recurrent kernel 4 x 12 each, 2 * (4 + 12) parameters each; the heads 5 + 15
    assert [(layer.name, layer.adapter and layer.adapter.params) for layer in plan.layers] == [
        ("gru_1", None), ("gru_2", 64), ("gru_3", 64), ("level", None), ("trend", None)]
    assert plan.trainable_params == 64 + 64 + 5 + 15
    assert plan.total_params == plans[0].total_params + 128
    text_plan = render_text(plans)
    row = "gru_2  GRU    (batch, 12, 4)  120     adapted (rank 2, 64 parameters)  loaded from stage pretrain"
    assert row in text_plan
    assert "trainable parameters: 148 of 496" in text_plan
    assert plan.layer("gru_2").to_json()["adapter"] == {"rank": 2, "alpha": 4.0, "params": 64}
    assert type(plan).from_json(plan.to_json()) == plan


@pytest.mark.slow
def test_a_keras_applications_backbones_convolutions_are_adapted_by_pattern(registry, write_spec):
    """The issue's example: ``"block_16_*": {rank: 8, alpha: 16}`` on MobileNetV2 adapts the block's two
    convolutions and leaves its depthwise convolution and batch norms to ``default``."""
    text = """\
seed: 1
model:
  input_shape: [32, 32, 3]
  extractor: {plugin: mobilenet, params: {variant: v2, alpha: 0.35, weights: none, pooling: avg}}
  heads:
    digit: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 5, activation: softmax}}
stages:
  - name: adapt
    data: {source: sklearn_digits, params: {classes: [0, 1, 2, 3, 4], size: 32}}
    epochs: 1
    policy:
      plugin: layers
      params: {default: freeze, train: [digit], adapt: {"block_16_*": {rank: 8, alpha: 16}}}
"""
    plan = plan_spec(load_spec(write_spec(text), registry), registry)[0]
    adapted = {layer.name: layer.adapter for layer in plan.layers if layer.adapter is not None}
    assert sorted(adapted) == ["block_16_expand", "block_16_project"]
    assert {(layer.name, layer.class_name) for layer in plan.layers if layer.name.startswith("block_16_depthwise")} \
        >= {("block_16_depthwise", "DepthwiseConv2D")}
    expand, project = (plan.layer(name) for name in ("block_16_expand", "block_16_project"))
    assert adapted["block_16_expand"].params == 8 * (expand.shapes[0][2] + expand.shapes[0][3])  # 1x1 kernels
    assert adapted["block_16_project"].params == 8 * (project.shapes[0][2] + project.shapes[0][3])
    assert plan.trainable_params == sum(adapter.params for adapter in adapted.values()) + plan.layer("digit").params
