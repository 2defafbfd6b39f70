"""Discriminative learning rates (``lr_scale``, ``layer_decay``), checked at the level of weights.

The optimizer tests train a tiny real Keras model one or two steps and compare
the weights with what the learning rate times the scale must give; the run test
trains real graft stages; the policy tests only plan.
"""

from __future__ import annotations

import re

import attrs
import numpy as np
import pytest

import graft
from graft.base.backend import import_keras
from graft.base.problems import SpecError
from graft.model.lrscale import layer_scales, scale_learning_rates
from graft.plugins.hookresults import WrongAnswer, policy_rounds
from graft.plugins.layers import LayerDecision, LayerInfo
from tests.conftest import TINY_GRU_SPEC
from tests.observers import bitwise

LR = 0.01


def _model(keras, seed: int = 7):
    """Dense ``a`` (4 -> 3), Dense ``b`` (3 -> 2): the same weights for the same seed."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, activation="tanh", name="a")(inputs)
    outputs = keras.layers.Dense(2, name="b")(hidden)
    return keras.Model(inputs, outputs)


def _steps(optimizer_name: str, scales: dict[str, float], steps: int = 1, lr: float = LR, **options):
    """The weights of ``a`` and ``b`` before and after ``steps`` steps of one fixed batch."""
    keras = import_keras()
    model = _model(keras)
    infos = [LayerInfo(name, "extractor", "Dense", True, False, model.get_layer(name)) for name in ("a", "b")]
    optimizer = getattr(keras.optimizers, optimizer_name)(learning_rate=lr, **options)
    scale_learning_rates(optimizer, infos, scales)
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    before = {name: [np.array(w) for w in model.get_layer(name).get_weights()] for name in ("a", "b")}
    for _ in range(steps):
        model.train_on_batch(x, y)
    after = {name: model.get_layer(name).get_weights() for name in ("a", "b")}
    return before, after


def _moves(before, after, name):
    return [new - old for old, new in zip(before[name], after[name], strict=True)]


def test_sgd_one_step_moves_a_layer_at_scale_0_1_by_a_tenth_of_its_unscaled_update():
    before, plain = _steps("SGD", {})
    _, scaled = _steps("SGD", {"b": 0.1})
    for unscaled, tenth in zip(_moves(before, plain, "b"), _moves(before, scaled, "b"), strict=True):
        assert np.abs(unscaled).max() > 1e-4  # the layer does move
        np.testing.assert_allclose(tenth, 0.1 * unscaled, rtol=1e-3, atol=1e-7)
    assert bitwise(plain["a"], scaled["a"])  # a layer without a scale trains as before


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_first_step_moves_each_weight_by_the_learning_rate_times_the_scale(name):
    # Adam's first step is lr * g / (|g| + eps'): lr in size for every weight whose gradient is not 0
    before, after = _steps(name, {"b": 0.1}, epsilon=1e-12, weight_decay=0.0)
    for move in _moves(before, after, "b"):
        np.testing.assert_allclose(np.abs(move), LR * 0.1, rtol=2e-3)
    for move in _moves(before, after, "a"):
        np.testing.assert_allclose(np.abs(move), LR, rtol=2e-3)


def test_scaling_gradients_would_not_do_it_for_adam():
    # the reason the rate is scaled: Adam's step hardly changes when the loss (so every gradient) is 10x smaller
    keras = import_keras()
    moves = []
    for factor in (1.0, 0.1):
        model = _model(keras)
        model.compile(optimizer=keras.optimizers.Adam(LR, epsilon=1e-12), loss="mse", loss_weights=[factor])
        before = model.get_layer("b").get_weights()[0]
        model.train_on_batch(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"))
        moves.append(model.get_layer("b").get_weights()[0] - before)
    np.testing.assert_allclose(moves[0], moves[1], rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "RMSprop", "Nadam", "Adagrad"])
def test_every_layer_at_one_scale_trains_as_the_learning_rate_times_the_scale(name):
    # two steps, so momentum and moments count too; AdamW's decoupled weight decay is scaled with the rate
    options = {"weight_decay": 0.05} if name == "AdamW" else {}
    before, scaled = _steps(name, {"a": 0.25, "b": 0.25}, steps=2, **options)
    _, slower = _steps(name, {}, steps=2, lr=LR * 0.25, **options)
    for layer in ("a", "b"):
        for got, want in zip(_moves(before, scaled, layer), _moves(before, slower, layer), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-8)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_a_scaled_layer_follows_the_learning_rate_when_a_callback_changes_it(name):
    # reduce_lr sets optimizer.learning_rate between epochs: the traced step must read it, not a copy
    keras = import_keras()
    model = _model(keras)
    infos = [LayerInfo("b", "extractor", "Dense", True, False, model.get_layer("b"))]
    optimizer = getattr(keras.optimizers, name)(learning_rate=LR)
    scale_learning_rates(optimizer, infos, {"b": 0.5})
    model.compile(optimizer=optimizer, loss="mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    start = model.get_layer("b").get_weights()
    model.train_on_batch(x, y)
    moved = model.get_layer("b").get_weights()
    optimizer.learning_rate = 0.0
    model.train_on_batch(x, y)
    assert not bitwise(start, moved)
    assert bitwise(moved, model.get_layer("b").get_weights())


@pytest.mark.parametrize("name", ["AdamW", "SGD"])
def test_a_layer_at_scale_0_does_not_move_even_with_weight_decay(name):
    before, after = _steps(name, {"b": 0.0}, steps=2, weight_decay=0.1)
    assert bitwise(before["b"], after["b"])
    assert not bitwise(before["a"], after["a"])


def test_frozen_layers_and_unit_scales_are_not_scaled():
    decisions = {
        "a": LayerDecision(True, lr_scale=0.5),
        "b": LayerDecision(True),
        "c": LayerDecision(False),
    }
    assert layer_scales(decisions) == {"a": 0.5}


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_a_decision_refuses_a_scale_that_is_not_a_finite_number_of_zero_or_more(value):
    with pytest.raises(ValueError, match="lr_scale must be a finite number >= 0"):
        LayerDecision(True, lr_scale=value)


def test_a_policy_plugin_that_scales_a_frozen_layer_gets_a_clear_answer():
    layers = (LayerInfo("gru_1", "extractor", "GRU", True, False),)
    with pytest.raises(WrongAnswer,
                       match=r"frozen layers: 'gru_1' \(0.5\); lr_scale applies to trained or adapted layers"):
        policy_rounds({"gru_1": LayerDecision(False, lr_scale=0.5)}, layers)


# -- through graft: the spec, the plan, a real run ------------------------------------------------------------

def _spec(transfer_policy: str, extra_stages: str = "", optimizer: str = "{name: sgd, learning_rate: 0.05}") -> str:
    """``TINY_GRU_SPEC`` whose transfer stage has ``transfer_policy``, one SGD step per epoch."""
    text = TINY_GRU_SPEC.replace(
        "      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}\n", ""
    ).replace("    policy:\n      plugin: layers\n", f"    policy: {transfer_policy}\n")
    text = text.replace("batch_size: 16", "batch_size: 64")  # 38 training samples: one step per epoch
    return text.replace("    epochs: 1\n    batch_size: 64\n    policy", f"    epochs: 1\n    batch_size: 64\n"
                        f"    optimizer: {optimizer}\n    policy") + extra_stages


def _later_stage(name: str, policy: str, optimizer: str = "") -> str:
    """Another stage from ``pretrain`` on the transfer stage's data, one step per epoch."""
    return f"""\
  - name: {name}
    init: {{stage: pretrain}}
    data: {{source: synthetic, params: {{samples: 48, timesteps: 12, channels: 3, seed: 2, frequency: 2.0,
                                       targets: {{level: level, trend: trend}}}}}}
    epochs: 1
    batch_size: 64
{optimizer}    policy: {policy}
"""


PLAIN_STAGE = _later_stage(
    "plain", "{plugin: layers, params: {freeze: [gru_1]}}", "    optimizer: {name: sgd, learning_rate: 0.05}\n"
) + _later_stage("heads_only", '{plugin: layers, params: {freeze: ["gru_*"], lr_scale: {trend: 0}}}')


@pytest.fixture(scope="module")
def scaled_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lr_scale")
    path = folder / "spec.yaml"
    path.write_text(_spec(
        '{plugin: layers, params: {freeze: [gru_1], lr_scale: {gru_2: 0, "gru_*": 0.1}}}', PLAIN_STAGE
    ))
    lines: list[str] = []
    graft.run(str(path), str(folder / "out"), log=lines.append)
    return folder / "out", lines


@pytest.mark.slow
def test_a_run_scales_each_layer_update_and_records_the_scales(scaled_run):
    scaled_run, lines = scaled_run
    assert "   learning rate 0.05, scaled for gru_2 ×0, gru_3 ×0.1" in lines
    pretrain = graft.load_stage(scaled_run, "pretrain")
    scaled, plain = graft.load_stage(scaled_run, "transfer"), graft.load_stage(scaled_run, "plain")

    def moved(stage, name):
        return [new - old for old, new in
                zip(pretrain.layer(name).get_weights(), stage.layer(name).get_weights(), strict=True)]

    assert bitwise(scaled.layer("gru_2").get_weights(), pretrain.layer("gru_2").get_weights())  # scale 0
    for tenth, whole in zip(moved(scaled, "gru_3"), moved(plain, "gru_3"), strict=True):
        assert np.abs(whole).max() > 1e-5
        np.testing.assert_allclose(tenth, 0.1 * whole, rtol=2e-2, atol=1e-7)
    report = scaled.report
    assert {layer.name: layer.lr_scale for layer in report.plan.layers} == {
        "gru_1": 1.0, "gru_2": 0.0, "gru_3": 0.1, "level": 1.0, "trend": 1.0
    }
    assert report.verification["gru_2"].trainable and not report.verification["gru_2"].changed
    assert '"lr_scale": 0.1' in (scaled_run / "transfer" / "report.json").read_text()
    report_md = (scaled_run / "report.md").read_text()
    assert "- learning rate scaled for: gru_2 ×0, gru_3 ×0.1\n" in report_md
    assert "| gru_3 | GRU | (batch, 4) | 120 | yes, lr ×0.1 | loaded from stage pretrain |" in report_md


@pytest.mark.slow
def test_scales_hold_when_the_heads_train_on_cached_features(scaled_run):
    scaled_run, _lines = scaled_run
    pretrain, stage = graft.load_stage(scaled_run, "pretrain"), graft.load_stage(scaled_run, "heads_only")
    assert stage.report.features_cached
    assert bitwise(stage.layer("trend").get_weights(), pretrain.layer("trend").get_weights())
    assert not bitwise(stage.layer("level").get_weights(), pretrain.layer("level").get_weights())


def _plan_layers(tmp_path, text: str, stage: int = 1) -> dict[str, tuple[bool, float]]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    plan = graft.plan(str(path))[stage]
    return {layer.name: (layer.trainable, layer.lr_scale) for layer in plan.layers}


def test_lr_scale_exact_names_win_over_patterns_and_the_first_pattern_wins(tmp_path):
    policy = '{plugin: layers, params: {lr_scale: {"gru_*": 0.1, "*": 3, gru_2: 0.5}}}'
    assert _plan_layers(tmp_path, _spec(policy)) == {
        "gru_1": (True, 0.1), "gru_2": (True, 0.5), "gru_3": (True, 0.1), "level": (True, 3.0), "trend": (True, 3.0)
    }


@pytest.mark.slow
def test_fine_tune_top_layer_decay_halves_the_rate_per_layer_from_the_top(tmp_path):
    policy = "{plugin: fine_tune_top, params: {layers: 2, layer_decay: 0.5}}"
    assert _plan_layers(tmp_path, _spec(policy)) == {
        "gru_1": (False, 1.0), "gru_2": (True, 0.25), "gru_3": (True, 0.5), "level": (True, 1.0), "trend": (True, 1.0)
    }


@pytest.mark.slow
def test_fine_tune_top_all_trains_every_weighted_extractor_layer(tmp_path):
    policy = "{plugin: fine_tune_top, params: {layers: all, layer_decay: 0.5}}"
    assert _plan_layers(tmp_path, _spec(policy)) == {
        "gru_1": (True, 0.125), "gru_2": (True, 0.25), "gru_3": (True, 0.5), "level": (True, 1.0), "trend": (True, 1.0)
    }
    path = tmp_path / "spec.yaml"
    path.write_text(_spec("{plugin: fine_tune_top, params: {layers: most}}"))
    with pytest.raises(SpecError, match=r"stages\[1\]\.policy\.params\.layers \(line \d+\): expected an integer or "):
        graft.load_spec(str(path))


@pytest.mark.slow
def test_progressive_layer_decay_gives_each_group_its_rate_in_every_round(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(_spec('{plugin: progressive, params: {groups: ["gru_3", "gru_[12]"], layer_decay: 0.1}}'))
    plan = graft.plan(str(path))[1]
    assert {layer.name: layer.lr_scale for layer in plan.layers} == pytest.approx({
        "gru_1": 0.01, "gru_2": 0.01, "gru_3": 0.1, "level": 1.0, "trend": 1.0
    })


@pytest.mark.slow
def test_the_plan_shows_each_scale(tmp_path, capsys):
    from graft.commands.cli import main

    path = tmp_path / "spec.yaml"
    path.write_text(_spec('{plugin: progressive, params: {layer_decay: 0.5}}'))
    assert main(["plan", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "round 1: + gru_3 (" in shown and "lr ×0.5)" in shown
    assert re.search(r"round 3: \+ gru_1 \(.*lr ×0\.125\)", shown)
    path.write_text(_spec('{plugin: layers, params: {lr_scale: {gru_3: 0.1}}}'))
    assert main(["plan", str(path)]) == 0
    assert re.search(r"gru_3 +GRU .* yes, lr ×0\.1 +loaded from stage pretrain", capsys.readouterr().out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy, where, message",
    [
        ("{plugin: layers, params: {freeze: [gru_1], lr_scale: {gru_1: 0.1}}}", "lr_scale.gru_1",
         "gru_1 does not train in this stage (frozen)"),
        ('{plugin: layers, params: {lr_scale: {"enc_*": 0.1}}}', "lr_scale.enc_*", "pattern 'enc_*' matches no layer"),
        ("{plugin: layers, params: {lr_scale: {gru_1: -1}}}", "lr_scale.gru_1", "must be 0 or more, got -1"),
        ("{plugin: fine_tune_top, params: {layers: 1, layer_decay: 0}}", "layer_decay",
         "must be greater than 0 and at most 1, got 0"),
        ("{plugin: progressive, params: {layer_decay: 1.5}}", "layer_decay", "at most 1, got 1.5"),
    ],
)
def test_wrong_scales_are_spec_errors_at_their_yaml_path_and_line(tmp_path, policy, where, message):
    path = tmp_path / "spec.yaml"
    path.write_text(_spec(policy))
    with pytest.raises(SpecError) as caught:
        graft.plan(str(path))
    text, at = str(caught.value), rf"stages\[1\]\.policy\.params\.{re.escape(where)} \(line \d+\): "
    assert re.search(at + f".*{re.escape(message)}", text), text


def test_a_scale_changes_the_stages_fingerprint_and_no_scale_keeps_the_old_one(tmp_path):
    from graft.runs.resume import stage_fingerprints

    def prints(policy: str) -> list[str]:
        path = tmp_path / "spec.yaml"
        path.write_text(_spec(policy))
        return stage_fingerprints(graft.load_spec(str(path)))

    plain = prints("{plugin: layers, params: {freeze: [gru_1]}}")
    assert prints("{plugin: layers, params: {freeze: [gru_1], lr_scale: {}}}") == plain  # runs made before resume
    scaled = prints("{plugin: layers, params: {freeze: [gru_1], lr_scale: {gru_3: 0.5}}}")
    assert scaled[0] == plain[0] and scaled[1] != plain[1]
    top = prints("{plugin: fine_tune_top, params: {layers: 1}}")
    assert prints("{plugin: fine_tune_top, params: {layers: 1, layer_decay: 0.5}}")[1] != top[1]


@pytest.mark.slow
def test_the_built_in_policies_with_scales_pass_the_conformance_kit():
    from graft.testing import check_policy_plugin

    found = check_policy_plugin(
        "layers", {"freeze": ["conformance_dense"], "lr_scale": {"conformance_features": 0.1}},
        bad_params={"lr_scale": {"conformance_features": -1}},
    )
    assert found.answer.first["conformance_features"].lr_scale == 0.1
    found = check_policy_plugin("fine_tune_top", {"layers": 2, "layer_decay": 0.5}, bad_params={"layer_decay": 2})
    assert [found.answer.first[name].lr_scale for name in ("conformance_dense", "conformance_features")] == [0.25, 0.5]


def test_many_scaled_layers_are_summed_up_as_a_range():
    from graft.planning.stageplan import LayerPlan, StagePlan
    from graft.planning.view import scaled_rates

    layers = tuple(LayerPlan(f"conv_{n}", "Conv2D", "extractor", None, 10, True, "loaded", "stage a", [],
                             lr_scale=0.9 ** (9 - n)) for n in range(9))
    plan = StagePlan("b", "fine_tune_top", "stage a", layers, 90, 90, {})
    assert scaled_rates(plan) == "9 layers, from conv_0 ×0.387 to conv_8 ×0.9 (graft plan --all shows each)"
    assert scaled_rates(attrs.evolve(plan, layers=layers[4:])) == (
        "conv_4 ×0.59, conv_5 ×0.656, conv_6 ×0.729, conv_7 ×0.81, conv_8 ×0.9"
    )
