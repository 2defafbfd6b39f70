"""Training in rounds: ``Plateau``, the ``progressive`` policy, and the runner's rounds at the level of weights.

``Plateau`` is checked as a pure function on scripted loss sequences.  The policy is
called alone on the layers of tiny built models (GRU, and Conv1D with
BatchNormalization) and through ``plan_spec`` for its errors.  Two tiny GRU runs are
shared by the module: the built-in ``progressive`` policy, and an in-process test
plugin that returns ``graft.Rounds`` of progressive's steps with its own ``patience``
and ``min_delta``.  A pass-through wrapper of ``keras.Model.fit`` trains for real,
snapshots every layer before and after each round, and overwrites the round's
``val_loss`` with a scripted value, so which round is best is decided by the test,
not by luck.
"""

from __future__ import annotations

import json
import math
import os

import attrs
import numpy as np
import pytest

import graft
from graft.base.backend import import_keras
from graft.base.problems import SpecError, SpecProblem
from graft.builtins.progressive import Progressive, ProgressiveParams
from graft.model.weights import FILENAME, read_weights
from graft.planning.stageplan import build_stage_model, plan_spec
from graft.plugins.layers import LayerDecision, LayerInfo
from graft.plugins.registry import Registry
from graft.plugins.rounds import Plateau, Rounds, as_rounds
from graft.runs.observer import RunObserver
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC
from tests.observers import read_report

GRU_LAYERS = ["gru_1", "gru_2", "gru_3", "level", "trend"]
# parameters of TINY_GRU_SPEC's layers: GRU(4) on 3 channels, GRU(4) on 4, heads Dense(1) and Dense(3) on 4
PARAMS = {"gru_1": 108, "gru_2": 120, "gru_3": 120, "level": 5, "trend": 15}
LAYERS_POLICY = (
    "    policy:\n      plugin: layers\n      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}\n"
)
assert TINY_GRU_SPEC.count(LAYERS_POLICY) == 1
TRANSFER_SEED = "seed: 2, frequency: 2.0,"
assert TINY_GRU_SPEC.count(TRANSFER_SEED) == 1


def gru_spec(policy: str) -> str:
    """TINY_GRU_SPEC with stage 2's policy replaced by ``policy`` (a flow mapping on one line)."""
    return TINY_GRU_SPEC.replace(LAYERS_POLICY, f"    policy: {policy}\n")


CONV_SPEC = """\
seed: 5
model:
  input_shape: [12, 3]
  extractor:
    plugin: conv1d
    params:
      batch_norm: true
      layers:
        - {name: conv_1, filters: 4, kernel_size: 3}
        - {name: conv_2, filters: 4, kernel_size: 3}
        - {name: conv_3, filters: 4, kernel_size: 3}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
stages:
  - name: pretrain
    data: {source: synthetic, params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {level: level}}}
    epochs: 1
    batch_size: 16
"""


def conv_spec_with(policy: str) -> str:
    return (
        CONV_SPEC
        + f"""\
  - name: progressive
    init: {{stage: pretrain}}
    data: {{source: synthetic, params: {{samples: 48, timesteps: 12, channels: 3, seed: 2, targets: {{level: level}}}}}}
    epochs: 1
    batch_size: 16
    policy: {policy}
"""
    )


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    return [n for n, line in enumerate(text.splitlines(), start=1) if needle in line][occurrence - 1]


def bitwise(left, right) -> bool:
    return len(left) == len(right) and all(
        a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        for a, b in zip(left, right, strict=True)
    )


# -- Plateau: a pure function of the loss sequence ---------------------------------------------


def stops(losses, min_delta=0.0, patience=1) -> tuple[list[bool], int]:
    plateau = Plateau(min_delta=min_delta, patience=patience)
    return [plateau.update(loss) for loss in losses], plateau.best_index


def test_plateau_stops_after_patience_rounds_without_improvement():
    assert stops([1.0, 0.5, 0.6, 0.7]) == ([False, False, True, True], 1)
    assert stops([1.0, 0.5, 0.6, 0.7, 0.4], patience=2) == ([False, False, False, True, False], 4)


def test_plateau_patience_2_waits_one_round_longer_than_patience_1():
    losses = [1.0, 0.9, 0.95, 0.96, 0.8]
    assert stops(losses, patience=1)[0].index(True) == 2
    assert stops(losses, patience=2)[0].index(True) == 3
    assert stops(losses, patience=3)[0] == [False] * 5  # 0.8 improves before the third round without
    assert stops(losses, patience=3)[1] == 4


def test_plateau_improvement_must_exceed_min_delta():
    assert stops([1.0, 0.995], min_delta=0.01) == ([False, True], 0)
    assert stops([1.0, 0.995], min_delta=0.0) == ([False, False], 1)
    assert stops([1.0, 0.98], min_delta=0.01) == ([False, False], 1)
    # an equal loss is no improvement, even with min_delta 0
    assert stops([1.0, 1.0]) == ([False, True], 0)
    # the best moves only on a real improvement: 0.795 and 0.799 are both within min_delta of 0.8
    assert stops([1.0, 0.8, 0.795, 0.799], min_delta=0.01, patience=2) == ([False, False, False, True], 1)


def test_plateau_best_index_is_the_lowest_loss_so_far():
    assert stops([3.0, 1.0, 2.0, 0.5, 0.7], patience=5) == ([False] * 5, 3)
    assert stops([0.5, 1.0, 2.0], patience=5) == ([False] * 3, 0)


def test_plateau_nan_counts_as_no_improvement():
    assert stops([math.nan]) == ([True], -1)
    assert stops([1.0, math.nan]) == ([False, True], 0)
    assert stops([math.nan, 1.0, math.nan, 0.5], patience=2) == ([False, False, False, False], 3)
    assert stops([1.0, math.nan, math.nan], patience=2) == ([False, False, True], 0)


def test_plateau_never_stops_a_steadily_improving_sequence():
    losses = [1.0 - 0.1 * i for i in range(9)]
    for patience in (1, 2):
        assert stops(losses, min_delta=0.05, patience=patience) == ([False] * 9, 8)


def test_a_single_set_of_decisions_is_one_round():
    decisions = {"a": LayerDecision(trainable=True)}
    rounds = as_rounds(decisions)
    assert [step.label for step in rounds.steps] == ["all"] and rounds.first == decisions
    assert as_rounds(rounds) is rounds


# -- the policy alone, on the layers of built models -----------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory, registry):
    """name -> the layers (LayerInfo) of stage 2's model of a tiny GRU and a tiny Conv1D+BN spec."""
    folder = tmp_path_factory.mktemp("policy")
    found = {}
    for name, text in {
        "gru": gru_spec("{plugin: continue}"),
        "conv": conv_spec_with("{plugin: continue}"),
    }.items():
        path = folder / f"{name}.yaml"
        path.write_text(text)
        found[name] = build_stage_model(load_spec(str(path), registry), registry, 1).layers
    return found


def policy(registry, layers, **params) -> Rounds:
    rounds = registry.transfer_policy("progressive", ProgressiveParams(**params), layers)
    assert isinstance(rounds, Rounds)
    return rounds


def trainable(step) -> set[str]:
    return {name for name, decision in step.decisions.items() if decision.trainable}


@pytest.mark.slow
def test_progressive_round_0_trains_only_the_heads_then_unfreezes_top_down(registry, built):
    layers = built["gru"]
    rounds = policy(registry, layers)
    assert [step.label for step in rounds.steps] == ["heads", "+ gru_3", "+ gru_2", "+ gru_1"]
    assert [step.unfrozen for step in rounds.steps] == [(), ("gru_3",), ("gru_2",), ("gru_1",)]
    assert [trainable(step) for step in rounds.steps] == [
        {"level", "trend"},
        {"gru_3", "level", "trend"},
        {"gru_2", "gru_3", "level", "trend"},
        set(GRU_LAYERS),
    ]
    for step in rounds.steps:
        assert list(step.decisions) == GRU_LAYERS  # every layer decided, in model order
        assert all(decision.init == "load" for decision in step.decisions.values())
    assert rounds.first == rounds.steps[0].decisions
    assert (rounds.patience, rounds.min_delta) == (1, 0.0)


@pytest.mark.slow
def test_progressive_passes_patience_and_min_delta_to_the_rounds(registry, built):
    rounds = policy(registry, built["gru"], patience=3, min_delta=0.05)
    assert (rounds.patience, rounds.min_delta) == (3, 0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("max_rounds", "labels"), [(1, ["heads"]), (2, ["heads", "+ gru_3"]), (4, None), (9, None)])
def test_progressive_max_rounds_caps_the_rounds_round_0_included(registry, built, max_rounds, labels):
    rounds = policy(registry, built["gru"], max_rounds=max_rounds)
    assert [step.label for step in rounds.steps] == (labels or ["heads", "+ gru_3", "+ gru_2", "+ gru_1"])


@pytest.mark.slow
def test_progressive_skips_batch_norm_while_freeze_batch_norm(registry, built):
    layers = built["conv"]
    names = [info.name for info in layers]
    batch_norms = [info.name for info in layers if info.is_batch_norm]
    assert batch_norms == ["conv_1_bn", "conv_2_bn", "conv_3_bn"]
    rounds = policy(registry, layers)
    assert [step.unfrozen for step in rounds.steps] == [(), ("conv_3",), ("conv_2",), ("conv_1",)]
    for step in rounds.steps:
        assert list(step.decisions) == names
        assert not any(step.decisions[name].trainable for name in batch_norms)
    assert trainable(rounds.steps[-1]) == {"conv_1", "conv_2", "conv_3", "level"}
    # unweighted layers (activations, pooling) never make a round of their own
    assert not {"conv_1_act", "conv_pool"} & {name for step in rounds.steps for name in step.unfrozen}


@pytest.mark.slow
def test_progressive_without_freeze_batch_norm_unfreezes_batch_norm_too(registry, built):
    rounds = policy(registry, built["conv"], freeze_batch_norm=False)
    assert [step.unfrozen for step in rounds.steps] == [
        (), ("conv_3_bn",), ("conv_3",), ("conv_2_bn",), ("conv_2",), ("conv_1_bn",), ("conv_1",)
    ]


@pytest.mark.slow
def test_progressive_groups_give_block_wise_rounds(registry, built):
    rounds = policy(registry, built["conv"], groups=["conv_3*", "conv_2*"])
    assert [step.label for step in rounds.steps] == ["heads", "+ conv_3", "+ conv_2"]
    assert [trainable(step) for step in rounds.steps] == [
        {"level"}, {"conv_3", "level"}, {"conv_2", "conv_3", "level"}
    ]  # conv_1 is in no group: it stays frozen
    blocks = policy(registry, built["conv"], groups=["conv_3*", "conv_[12]*"], freeze_batch_norm=False)
    assert [step.unfrozen for step in blocks.steps] == [
        (), ("conv_3", "conv_3_bn"), ("conv_1", "conv_1_bn", "conv_2", "conv_2_bn")
    ]
    assert [step.label for step in blocks.steps][1] == "+ conv_3, conv_3_bn"
    capped = policy(registry, built["conv"], groups=["conv_3*", "conv_2*", "conv_1*"], max_rounds=3)
    assert [step.label for step in capped.steps] == ["heads", "+ conv_3", "+ conv_2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("groups", "problems"),
    [
        (["conv_9*"], [(("groups", 0), "pattern 'conv_9*' matches no layer")]),
        (["conv_3", "conv_*_bn"], [(("groups", 1), "'conv_*_bn' matches no extractor layer that can train")]),
        (["conv_pool"], [(("groups", 0), "'conv_pool' matches no extractor layer that can train")]),
        (["*_act"], [(("groups", 0), "'*_act' matches no extractor layer that can train")]),
        (["level"], [(("groups", 0), "'level' matches no extractor layer that can train")]),
        (["conv_3", "conv_*"], [(("groups", 1), "conv_3 is in an earlier group too")]),
        (
            ["nope", "conv_2", "conv_2*", "conv_1_bn"],
            [
                (("groups", 0), "no layer 'nope' in the model"),
                (("groups", 2), "conv_2 is in an earlier group too"),
                (("groups", 3), "'conv_1_bn' matches no extractor layer that can train"),
            ],
        ),
    ],
    ids=["matches-nothing", "only-batch-norm", "unweighted", "activations", "a-head", "overlap", "all-at-once"],
)
def test_progressive_bad_groups_are_spec_problems_at_their_index(registry, built, groups, problems):
    with pytest.raises(SpecProblem) as caught:
        registry.transfer_policy("progressive", ProgressiveParams(groups=groups), built["conv"])
    items = caught.value.items
    assert [path for path, _ in items] == [path for path, _ in problems]
    for (_, message), (_, expected) in zip(items, problems, strict=True):
        assert message.startswith(expected), message


@pytest.mark.slow
def test_progressive_bad_groups_in_a_spec_are_reported_at_the_yaml_line(registry, write_spec):
    text = conv_spec_with('{plugin: progressive, params: {groups: [conv_9, "conv_*_bn", conv_3, "conv_3*"]}}')
    with pytest.raises(SpecError) as caught:
        plan_spec(load_spec(write_spec(text), registry), registry)
    line = line_of(text, "groups:")
    assert [entry.split(": ", 1)[0] for entry in caught.value.lines] == [
        f"stages[1].policy.params.groups[{index}] (line {line})" for index in (0, 1, 3)
    ]
    assert "no layer 'conv_9' in the model" in caught.value.lines[0]
    assert caught.value.lines[1].endswith("'conv_*_bn' matches no extractor layer that can train")
    assert caught.value.lines[2].endswith("conv_3 is in an earlier group too")


@pytest.mark.parametrize("param", ["max_rounds: 0", "patience: 0", "min_delta: -0.1", "groups: conv_1"])
def test_progressive_params_are_checked(registry, write_spec, param):
    text = gru_spec(f"{{plugin: progressive, params: {{{param}}}}}")
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(text), registry)
    key = param.split(":")[0]
    assert [entry.split(" (line")[0] for entry in caught.value.lines] == [f"stages[1].policy.params.{key}"]


def test_progressive_on_layer_records_built_by_hand():
    """The policy needs only LayerInfo records, no Keras model."""
    layers = (
        LayerInfo("stem", "extractor", "Conv2D", True, False),
        LayerInfo("stem_bn", "extractor", "BatchNormalization", True, True),
        LayerInfo("block_1_a", "extractor", "Conv2D", True, False),
        LayerInfo("block_1_b", "extractor", "Conv2D", True, False),
        LayerInfo("block_1_relu", "extractor", "ReLU", False, False),
        LayerInfo("block_2_a", "extractor", "Conv2D", True, False),
        LayerInfo("digit", "digit", "Dense", True, False),
    )
    rounds = Progressive().transfer_policy(ProgressiveParams(groups=["block_2_*", "block_1_*"]), layers)
    assert [step.unfrozen for step in rounds.steps] == [(), ("block_2_a",), ("block_1_a", "block_1_b")]
    assert trainable(rounds.steps[2]) == {"block_1_a", "block_1_b", "block_2_a", "digit"}
    default = Progressive().transfer_policy(ProgressiveParams(), layers)
    assert [step.unfrozen for step in default.steps] == [(), ("block_2_a",), ("block_1_b",), ("block_1_a",), ("stem",)]


# -- the runner, round by round, at the level of weights -----------------------------------------


class RoundsSpy(RunObserver):
    """Records every layer's trainable flag and weights before and after each ``fit`` (real training)
    and overwrites ``val_loss`` of the calls in ``script`` (a Keras callback edits the epoch's logs
    before Keras's History records them).

    The layers are those of the stage's whole model: while the extractor is frozen the runner
    fits a heads-only model that shares the heads' layers.
    """

    def __init__(self, script: dict[int, float]) -> None:
        self.script = script
        self.calls: list[dict] = []

    @staticmethod
    def weights(built) -> dict:
        return {info.name: [np.array(w, copy=True) for w in info.layer.get_weights()] for info in built.layers}

    def before_fit(self, stage, round, built) -> None:
        self.calls.append(
            {
                "trainable": {info.name: bool(info.layer.trainable) for info in built.layers},
                "before": self.weights(built),
                "validation": False,
                "real_val_loss": [],
            }
        )

    def after_fit(self, stage, round, built) -> None:
        self.calls[-1]["after"] = self.weights(built)

    def keras_callbacks(self) -> list:
        spy, number = self, len(self.calls) - 1

        class Script(import_keras().callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                call = spy.calls[number]
                call["validation"] = "val_loss" in logs
                if "val_loss" in logs:
                    call["real_val_loss"].append(float(logs["val_loss"]))
                    if number in spy.script:
                        logs["val_loss"] = spy.script[number]

        return [Script()]


@attrs.frozen
class ScriptedParams:
    min_delta: float = 0.0
    patience: int = 1


class ScriptedRounds:
    """A third-party policy answering with ``graft.Rounds``: progressive's steps, its own plateau settings."""

    @graft.hookimpl
    def transfer_policy(self, params: ScriptedParams, layers: tuple[LayerInfo, ...]) -> graft.Rounds:
        steps = Progressive().transfer_policy(ProgressiveParams(), layers).steps
        return graft.Rounds(steps, min_delta=params.min_delta, patience=params.patience)


class Run:
    def __init__(self, spec_file, out: str, spy: RoundsSpy, log: list[str]) -> None:
        self.spec_file, self.out, self.spy, self.log = spec_file, out, spy, log
        self.report = read_report(out, "transfer")
        self.pretrain = read_weights(os.path.join(out, "pretrain", FILENAME))
        self.final = read_weights(os.path.join(out, "transfer", FILENAME))
        with open(os.path.join(out, "transfer", "history.json"), encoding="utf-8") as handle:
            self.history = json.load(handle)

    @property
    def rounds(self) -> list[dict]:
        """The spy's calls of the rounds stage (call 0 is pretrain)."""
        return self.spy.calls[1:]


def _run(tmp_path_factory, registry: Registry, text: str, script: dict[int, float]) -> Run:
    folder = tmp_path_factory.mktemp("rounds")
    (folder / "spec.yaml").write_text(text)
    spec_file = load_spec(str(folder / "spec.yaml"), registry)
    log: list[str] = []
    spy = RoundsSpy(script)
    run_spec(spec_file, registry, str(folder / "out"), log=log.append, observer=spy)
    return Run(spec_file, str(folder / "out"), spy, log)


ROW_KEYS = ["round", "label", "unfrozen", "trainable_params", "val_loss"]
# round n of the rounds stage is fit call n + 1
PROGRESSIVE_SCRIPT = {1: 1.0, 2: 0.5, 3: 0.6, 4: 0.7}
SCRIPTED_SCRIPT = {1: 1.0, 2: 0.95, 3: 0.5, 4: 0.45}


@pytest.fixture(scope="module")
def progressive_run(tmp_path_factory, registry) -> Run:
    """The built-in policy, patience 1: val_loss 1.0, 0.5, 0.6 -> stops after round 2, keeps round 1."""
    text = gru_spec("{plugin: progressive, params: {patience: 1}}")
    return _run(tmp_path_factory, registry, text, PROGRESSIVE_SCRIPT)


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory) -> Run:
    """A test plugin's Rounds with patience 2 and min_delta 0.1: val_loss 1.0, 0.95, 0.5, 0.45 ->
    all four rounds run (0.95 and 0.45 are no improvement), round 2 is kept."""
    registry = Registry.discover()  # a copy of its own: the session's registry stays as installed
    registry.register(ScriptedRounds(), "scripted_rounds")
    text = gru_spec("{plugin: scripted_rounds, params: {min_delta: 0.1, patience: 2}}")
    return _run(tmp_path_factory, registry, text, SCRIPTED_SCRIPT)


@pytest.mark.slow
def test_the_session_registry_does_not_know_the_test_plugin(scripted_run, registry):
    assert "scripted_rounds" not in registry.names("policy")


@pytest.mark.slow
def test_rounds_stop_on_the_plateau_and_the_next_round_never_runs(progressive_run):
    assert len(progressive_run.spy.calls) == 1 + 3  # pretrain, then rounds 0, 1, 2; round 3 (+ gru_1) not run
    assert all(call["validation"] for call in progressive_run.spy.calls)
    assert [call["trainable"] for call in progressive_run.rounds] == [
        {"gru_1": False, "gru_2": False, "gru_3": False, "level": True, "trend": True},
        {"gru_1": False, "gru_2": False, "gru_3": True, "level": True, "trend": True},
        {"gru_1": False, "gru_2": True, "gru_3": True, "level": True, "trend": True},
    ]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["progressive", "scripted"])
def test_each_round_continues_from_the_last_and_trains_only_its_trainable_layers(which, progressive_run, scripted_run):
    run = {"progressive": progressive_run, "scripted": scripted_run}[which]
    first = run.rounds[0]["before"]
    for name in GRU_LAYERS:
        assert bitwise(first[name], run.pretrain[name]), f"round 0: {name} did not start from pretrain"
    for number, call in enumerate(run.rounds):
        if number:
            for name in GRU_LAYERS:
                assert bitwise(call["before"][name], run.rounds[number - 1]["after"][name]), (
                    f"round {number}: {name} did not start where round {number - 1} ended"
                )
        for name in GRU_LAYERS:
            unchanged = bitwise(call["after"][name], call["before"][name])
            if call["trainable"][name]:
                assert not unchanged, f"round {number}: trainable {name} did not train"
            else:
                assert unchanged, f"round {number}: frozen {name} changed"


@pytest.mark.slow
def test_the_best_rounds_weights_are_kept_bitwise(progressive_run):
    rounds = progressive_run.rounds
    best, later = rounds[1]["after"], rounds[2]["after"]
    for name in GRU_LAYERS:
        assert bitwise(progressive_run.final[name], best[name]), f"{name} is not round 1's"
    changed = [name for name in GRU_LAYERS if not bitwise(later[name], best[name])]
    assert changed == ["gru_2", "gru_3", "level", "trend"]  # so the check above tells the rounds apart
    # gru_2 trained only in the discarded round 2: it is kept as loaded
    assert bitwise(progressive_run.final["gru_2"], progressive_run.pretrain["gru_2"])
    assert bitwise(progressive_run.final["gru_1"], progressive_run.pretrain["gru_1"])


@pytest.mark.slow
def test_the_report_has_one_row_per_round_run(progressive_run):
    report = progressive_run.report
    assert [{key: row[key] for key in ROW_KEYS} for row in report["rounds"]] == [
        {"round": 0, "label": "heads", "unfrozen": [], "trainable_params": 20, "val_loss": 1.0},
        {"round": 1, "label": "+ gru_3", "unfrozen": ["gru_3"], "trainable_params": 140, "val_loss": 0.5},
        {"round": 2, "label": "+ gru_2", "unfrozen": ["gru_2"], "trainable_params": 260, "val_loss": 0.6},
    ]
    assert [row["kept"] for row in report["rounds"]] == [False, True, False]
    # round 0 trains the heads alone: on the frozen extractor's features, computed once
    assert [row["features_cached"] for row in report["rounds"]] == [True, False, False]
    assert all(set(row) == {*ROW_KEYS, "kept", "features_cached"} for row in report["rounds"])
    assert report["kept_round"] == 1
    assert report["epochs_run"] == 3
    assert report["final_metrics"]["val_loss"] == 0.5
    assert report["final_metrics"]["loss"] == progressive_run.history["rounds"][1]["loss"][-1]
    assert report["verification"] == {
        "gru_1": {"trainable": False, "changed": False},
        "gru_2": {"trainable": True, "changed": False},
        "gru_3": {"trainable": True, "changed": True},
        "level": {"trainable": True, "changed": True},
        "trend": {"trainable": True, "changed": True},
    }
    assert report["plan"]["policy"] == "progressive"
    # the plan in the report: the first round's layers, every round
    assert {layer["name"]: layer["trainable"] for layer in report["plan"]["layers"]} == {
        "gru_1": False, "gru_2": False, "gru_3": False, "level": True, "trend": True
    }
    assert [row["label"] for row in report["plan"]["rounds"]] == ["heads", "+ gru_3", "+ gru_2", "+ gru_1"]


@pytest.mark.slow
def test_history_json_holds_every_round_run(progressive_run):
    history = progressive_run.history
    assert list(history) == ["rounds"]
    assert [row["val_loss"] for row in history["rounds"]] == [[1.0], [0.5], [0.6]]
    for row, call in zip(history["rounds"], progressive_run.rounds, strict=True):
        assert {"loss", "level_loss", "trend_loss", "trend_accuracy", "val_trend_accuracy"} <= set(row)
        assert all(len(values) == 1 and math.isfinite(values[0]) for values in row.values())
        assert math.isfinite(call["real_val_loss"][0])  # there was a real validation loss to overwrite


@pytest.mark.slow
def test_the_log_names_each_round_and_the_kept_one(progressive_run):
    log = progressive_run.log
    assert [line.strip() for line in log if line.strip().startswith("round ")] == [
        "round 0: heads (20 parameters trainable)",
        "round 1: + gru_3 (140 parameters trainable)",
        "round 2: + gru_2 (260 parameters trainable)",
    ]
    assert "   kept round 1 (+ gru_3), validation loss 0.5000" in log
    assert any(line.startswith("== stage 2/2 'transfer': policy progressive") and "20 of 368" in line for line in log)


@pytest.mark.slow
def test_a_plugins_rounds_bring_their_own_patience_and_min_delta(scripted_run):
    assert len(scripted_run.spy.calls) == 1 + 4  # patience 2: no stop before the last round
    report = scripted_run.report
    assert [row["val_loss"] for row in report["rounds"]] == [1.0, 0.95, 0.5, 0.45]
    assert [row["kept"] for row in report["rounds"]] == [False, False, True, False]  # 0.45 is within min_delta
    assert report["kept_round"] == 2
    assert report["plan"]["policy"] == "scripted_rounds"
    best, last = scripted_run.rounds[2]["after"], scripted_run.rounds[3]["after"]
    for name in GRU_LAYERS:
        assert bitwise(scripted_run.final[name], best[name]), f"{name} is not round 2's"
    assert not bitwise(last["gru_1"], best["gru_1"])  # the last round trained: restoring was needed
    assert [row["val_loss"] for row in scripted_run.history["rounds"]] == [[1.0], [0.95], [0.5], [0.45]]


@pytest.mark.slow
def test_the_plan_json_lists_the_rounds_top_down(progressive_run, registry):
    plans = plan_spec(progressive_run.spec_file, registry)
    assert plans[0].to_json()["rounds"] == [{"label": "all", "unfrozen": [], "trainable_params": 368}]
    rounds = plans[1].to_json()["rounds"]
    assert rounds == [
        {"label": "heads", "unfrozen": [], "trainable_params": PARAMS["level"] + PARAMS["trend"]},
        {"label": "+ gru_3", "unfrozen": ["gru_3"], "trainable_params": 140},
        {"label": "+ gru_2", "unfrozen": ["gru_2"], "trainable_params": 260},
        {"label": "+ gru_1", "unfrozen": ["gru_1"], "trainable_params": sum(PARAMS.values())},
    ]
    counts = [row["trainable_params"] for row in rounds]
    assert counts == sorted(set(counts))
    assert plans[1].trainable_params == 20 and plans[1].total_params == 368
    assert all(layer.init == "loaded" for layer in plans[1].layers)


@pytest.mark.slow
def test_rounds_without_validation_data_are_a_spec_error_before_training(registry, write_spec, tmp_path):
    text = gru_spec("{plugin: progressive}").replace(TRANSFER_SEED, TRANSFER_SEED + " validation_split: 0.0,")
    spy = RoundsSpy({})
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        run_spec(load_spec(write_spec(text), registry), registry, str(out), log=lambda _: None, observer=spy)
    assert caught.value.lines == [
        f"stages[1].policy (line {line_of(text, 'policy: {plugin: progressive}')}): policy 'progressive' trains in "
        "rounds and compares them on validation loss, but synthetic (seed 2) has no validation data; "
        "set a validation split in the data params"
    ]
    assert spy.calls == [] and not out.exists()


# -- the example config ---------------------------------------------------------------------------


@pytest.mark.slow
def test_gru_progressive_config_plans_four_rounds_top_down(registry):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "gru_progressive.yaml")
    pretrain, progressive = plan_spec(load_spec(path, registry), registry)
    assert progressive.policy == "progressive"
    assert [(r.label, r.unfrozen) for r in progressive.rounds] == [
        ("heads", ()), ("+ gru_3", ("gru_3",)), ("+ gru_2", ("gru_2",)), ("+ gru_1", ("gru_1",))
    ]
    counts = [r.trainable_params for r in progressive.rounds]
    assert counts == sorted(set(counts)) and counts[-1] == progressive.total_params == pretrain.total_params
    heads = sum(layer.params for layer in progressive.layers if layer.part != "extractor")
    assert counts[0] == progressive.trainable_params == heads
    assert {layer.name for layer in progressive.layers if layer.trainable} == {"level", "trend"}
    assert all(layer.source == "stage pretrain" for layer in progressive.layers)
