"""``graft validate``'s layer-name check: the layers plugins declare, checked by the stages' own policies."""

from __future__ import annotations

import attrs
import pytest

import graft
from graft.base.problems import SpecError
from graft.plugins.registry import PluginError, Registry
from graft.spec.layernames import check_layer_names
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC
from tests.spec.test_spec import edit, line_of

POLICY = "params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}"
LAYERS = "layers: gru_1, gru_2, gru_3, level, trend"


def lines(load, registry, text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        check_layer_names(load(text), registry)
    return caught.value.lines


def with_policy(policy: str) -> str:
    return edit(TINY_GRU_SPEC, f"      plugin: layers\n      {POLICY}", policy)


def test_a_valid_spec_is_checked_in_every_stage(load, registry):
    check = check_layer_names(load(TINY_GRU_SPEC), registry)

    assert check.checked == ("pretrain", "transfer")
    assert check.unchecked == ()
    assert check.summary() == ""


def test_names_and_patterns_of_the_layers_policy(load, registry):
    text = edit(TINY_GRU_SPEC, POLICY, "params: {freeze: [gru_1, gru2], train: [\"head_*\"]}")

    assert lines(load, registry, text) == [
        f"stages[1].policy.params.freeze[1] (line {line_of(text, 'gru2')}): no layer 'gru2' in the model; "
        f"{LAYERS} — did you mean 'gru_2'?",
        f"stages[1].policy.params.train[0] (line {line_of(text, 'gru2')}): pattern 'head_*' matches no layer; "
        f"{LAYERS}",
    ]


def test_learning_rate_scales_name_layers_too(load, registry):
    text = edit(TINY_GRU_SPEC, "train: [gru_3, level, trend]}", "train: [gru_3, level, trend], lr_scale: {gru3: 0.1}}")

    assert lines(load, registry, text) == [
        f"stages[1].policy.params.lr_scale.gru3 (line {line_of(text, 'gru3')}): no layer 'gru3' in the model; "
        f"{LAYERS} — did you mean 'gru_3'?",
    ]


def test_fine_tune_top_counts_the_declared_weighted_layers(load, registry):
    text = with_policy("      plugin: fine_tune_top\n      params: {layers: 4}")

    assert lines(load, registry, text) == [
        f"stages[1].policy.params.layers (line {line_of(text, 'layers: 4')}): the extractor has only 3 weighted "
        "layers that can train; use at most that, or all",
    ]


def test_progressive_groups(load, registry):
    text = with_policy("      plugin: progressive\n      params: {groups: [gru_3, gru_22]}")

    assert lines(load, registry, text) == [
        f"stages[1].policy.params.groups[1] (line {line_of(text, 'gru_22')}): no layer 'gru_22' in the model; "
        f"{LAYERS} — did you mean 'gru_2'?",
    ]


def test_conv1d_batch_norm_layers_are_declared(load, registry):
    text = (
        TINY_GRU_SPEC.replace("plugin: gru\n", "plugin: conv1d\n")
        .replace("{name: gru_1, units: 4}", "{name: conv_1, filters: 4, kernel_size: 3}")
        .replace("        - {name: gru_2, units: 4}\n        - {name: gru_3, units: 4}\n", "")
        .replace("layers:\n        - {name: conv_1", "batch_norm: true\n      layers:\n        - {name: conv_1")
        .replace(POLICY, "params: {train: [conv_1_bn, conv_pool]}")
    )

    assert lines(load, registry, text) == [
        f"stages[1].policy.params.train[0] (line {line_of(text, 'conv_1_bn, conv_pool')}): conv_1_bn: "
        "BatchNormalization stays frozen while freeze_batch_norm is true; set freeze_batch_norm: false to train it",
    ]


def test_a_stage_s_own_heads_are_its_layers(load, registry):
    text = edit(TINY_GRU_SPEC, "    policy:\n", "    heads:\n      label: {plugin: dense, loss: mse, params: "
                "{units: 2, hidden: [4], dropout: 0.1}}\n    policy:\n")
    text = edit(text, POLICY, "params: {train: [label_hidden_1, label_dropout_2, level]}")

    found = lines(load, registry, text)

    assert len(found) == 1
    assert found[0].startswith(f"stages[1].policy.params.train[2] (line {line_of(text, 'label_hidden_1')}): no layer "
                               "'level' in the model; layers: gru_1, gru_2, gru_3, label_dropout_1, label_hidden_1, "
                               "label_dropout_2, label")


def test_rename_values_must_name_a_layer(load, registry, tmp_path):
    weights = tmp_path / "w.graft.npz"
    weights.write_bytes(b"")  # validate checks only that it is there
    text = edit(TINY_GRU_SPEC, "init: {stage: pretrain}",
                f"init: {{weights: {weights}, rename: {{'encoder_*': 'gru_*', old_head: levle}}}}")

    assert lines(load, registry, text) == [
        f"stages[1].init.rename.old_head (line {line_of(text, 'levle')}): no layer 'levle' in the model; "
        f"{LAYERS} — did you mean 'level'?",
    ]


# -- plugins that cannot say -------------------------------------------------------


@attrs.frozen
class BoxParams:
    units: int = 2


class Box:
    """An extractor that does not declare its layers."""

    @graft.hookimpl
    def build_extractor(self, params: BoxParams, input_shape):
        import keras

        inputs = keras.Input(shape=tuple(input_shape), name="box_input")
        return keras.Model(inputs, keras.layers.Flatten(name="box_flat")(inputs), name="box")


class Peeking:
    """A policy that looks at the Keras layers themselves."""

    @graft.hookimpl
    def transfer_policy(self, layers):
        return {info.name: graft.LayerDecision(trainable=bool(info.layer.trainable_weights)) for info in layers}


@pytest.fixture
def own_registry() -> Registry:
    registry = Registry.discover()
    registry.register(Box(), "box")
    registry.register(Peeking(), "peeking")
    return registry


def test_an_extractor_that_does_not_declare_leaves_the_names_to_plan(write_spec, own_registry):
    text = TINY_GRU_SPEC.replace("plugin: gru\n", "plugin: box\n").replace(
        "      layers:\n        - {name: gru_1, units: 4}\n        - {name: gru_2, units: 4}\n"
        "        - {name: gru_3, units: 4}\n", "      units: 2\n")

    check = check_layer_names(load_spec(write_spec(text), own_registry), own_registry)

    assert check.checked == ()
    assert check.summary() == ("layer names not checked in stages pretrain, transfer (extractor plugin 'box' does "
                               "not say its layers for these params): graft plan checks them")


def test_a_policy_that_needs_the_built_layers_leaves_its_stage_to_plan(write_spec, own_registry):
    text = with_policy("      plugin: peeking")

    check = check_layer_names(load_spec(write_spec(text), own_registry), own_registry)

    assert check.checked == ("pretrain",)
    assert check.unchecked == (("transfer", "policy 'peeking' needs the built model"),)


def test_validate_says_in_one_line_what_it_did_not_check(write_spec, own_registry, monkeypatch, capsys):
    from graft.commands import cli

    path = write_spec(with_policy("      plugin: peeking"))
    monkeypatch.setattr(Registry, "discover", classmethod(lambda cls, *a, **k: own_registry))  # what cli asks

    assert cli.main(["validate", path]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: valid — ")
    assert out[1:] == ["  layer names not checked in stages transfer (policy 'peeking' needs the built model): "
                       "graft plan checks them"]


# -- what a plugin declares, checked --------------------------------------------------


class Liar:
    """Declares layers that its head's output is not named after."""

    @graft.hookimpl
    def build_head(self, features, name):
        import keras

        return keras.layers.Dense(1, name=name)(features)

    @graft.hookimpl
    def head_layers(self, name):
        return [graft.DeclaredLayer(f"{name}_x", "Dense")]


class Lonely:
    @graft.hookimpl
    def head_layers(self, name):
        return []


def test_declared_layers_are_checked_like_every_hook_answer():
    registry = Registry.discover()
    registry.register(Liar(), "liar")

    with pytest.raises(PluginError, match="head_layers: declared 'trend_x' last: the output layer of head 'trend' "
                                          "must be named 'trend'"):
        registry.head_layers("liar", None, "trend")


def test_a_declaring_hook_alone_is_no_plugin():
    with pytest.raises(PluginError, match="implements head_layers but not build_head"):
        Registry.discover().register(Lonely(), "lonely")

