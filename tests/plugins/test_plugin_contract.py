"""The error contract of every hook, with real Keras and tiny models.

A ``graft.SpecProblem`` from a hook is reported at the YAML path of the entry the
call serves (+ ``params``); anything else a plugin raises becomes one
``PluginError`` naming the plugin, its distribution and the hook; what a hook
returns is checked before it is used; plan time refuses head names the model
already uses and layers named by Keras instead of the plugin.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import attrs
import pytest

import graft
from graft.base.problems import SpecError
from graft.model.builder import ModelBuilder
from graft.planning.stageplan import plan_spec
from graft.plugins.registry import PluginError, Registry, debug_enabled
from graft.spec.records import ExtractorRef, HeadSpec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC

LAYERS = tuple(
    graft.LayerInfo(name=name, part=part, class_name="Dense", has_weights=True, is_batch_norm=False)
    for name, part in (("feat", "extractor"), ("out", "out"))
)


@attrs.frozen
class Units:
    units: int = 2


class Faulty:
    """Every hook raises what ``raise_`` holds, or returns ``answer``."""

    def __init__(self, raise_=None, answer=None) -> None:
        self.raise_, self.answer = raise_, answer

    def _act(self):
        if self.raise_ is not None:
            raise self.raise_
        return self.answer

    @graft.hookimpl
    def build_extractor(self, params: Units, input_shape):
        return self._act()

    @graft.hookimpl
    def build_head(self, params: Units, features, name):
        return self._act()

    @graft.hookimpl
    def transfer_policy(self, params: Units, layers):
        return self._act()

    @graft.hookimpl
    def load_data(self, params: Units, base_dir):
        return self._act()


def faulty(**kwargs) -> Registry:
    registry = Registry()
    registry.register(Faulty(**kwargs), "faulty", distribution="graft-faulty", version="0.3")
    return registry


@pytest.fixture(scope="module")
def keras():
    from graft.base.backend import import_keras

    return import_keras()


CALLS = {
    "build_extractor": lambda r, at: r.build_extractor("faulty", Units(), (3,), at=at),
    "build_head": lambda r, at: r.build_head("faulty", Units(), None, "out", at=at),
    "transfer_policy": lambda r, at: r.transfer_policy("faulty", Units(), LAYERS, at=at),
    "load_data": lambda r, at: r.load_data("faulty", Units(), ".", at=at),
}
ENTRIES = {
    "build_extractor": ("model", "extractor"),
    "build_head": ("stages", 1, "heads", "trend"),
    "transfer_policy": ("stages", 1, "policy"),
    "load_data": ("stages", 0, "data"),
}


# -- what a hook raises ------------------------------------------------------------


@pytest.mark.parametrize("hook", sorted(CALLS))
def test_spec_problem_from_any_hook_is_reported_at_the_entrys_params(hook):
    registry = faulty(raise_=graft.SpecProblem(("units",), "too many"))
    with pytest.raises(graft.SpecProblem) as caught:
        CALLS[hook](registry, ENTRIES[hook])
    assert caught.value.items == [((*ENTRIES[hook], "params", "units"), "too many")]


@pytest.mark.parametrize("hook", sorted(CALLS))
def test_any_other_exception_is_one_plugin_error_naming_plugin_distribution_and_hook(hook, monkeypatch):
    monkeypatch.delenv("GRAFT_DEBUG", raising=False)
    with pytest.raises(PluginError) as caught:
        CALLS[hook](faulty(raise_=ZeroDivisionError("division by zero")), ENTRIES[hook])
    message = str(caught.value)
    assert "plugin 'faulty' (distribution graft-faulty 0.3" in message
    assert f"failed in {hook}: ZeroDivisionError: division by zero" in message
    assert "GRAFT_DEBUG=1" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_graft_debug_keeps_the_original_exception_chained(monkeypatch):
    monkeypatch.setenv("GRAFT_DEBUG", "1")
    assert debug_enabled()
    original = RuntimeError("boom")
    with pytest.raises(PluginError) as caught:
        CALLS["load_data"](faulty(raise_=original), ENTRIES["load_data"])
    assert caught.value.__cause__ is original
    monkeypatch.setenv("GRAFT_DEBUG", "0")
    assert not debug_enabled()


def test_keyboard_interrupt_passes_through_untouched():
    interrupt = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as caught:
        CALLS["transfer_policy"](faulty(raise_=interrupt), ENTRIES["transfer_policy"])
    assert caught.value is interrupt


# -- what a hook returns -------------------------------------------------------------


@pytest.mark.parametrize(
    ("hook", "answer", "expected"),
    [
        ("build_extractor", ("not", "a model"), "build_extractor: returned a tuple, not a keras.Model"),
        ("build_head", [1, 2], "build_head: returned a list, not one symbolic tensor"),
        ("build_head", 3, "build_head: returned int 3, not one symbolic tensor"),
        ("transfer_policy", ["feat", "out"], "transfer_policy: returned a list; it must return a dict"),
        (
            "transfer_policy",
            {"feat": True, "out": graft.LayerDecision(True)},
            "decisions must be graft.LayerDecision: 'feat' is bool True",
        ),
        ("transfer_policy", {"out": graft.LayerDecision(True)}, "decided nothing for feat"),
        ("transfer_policy", graft.Rounds([]), "returned a graft.Rounds without rounds"),
        ("load_data", ("x", "y"), "load_data: returned a tuple, not a graft.Dataset"),
    ],
)
def test_wrong_answers_are_plugin_errors_naming_the_plugin(keras, hook, answer, expected):
    with pytest.raises(PluginError, match="plugin 'faulty' \\(distribution graft-faulty 0.3") as caught:
        CALLS[hook](faulty(answer=answer), ENTRIES[hook])
    assert expected in str(caught.value)


def test_build_head_returning_none_or_a_wrongly_named_tensor(keras):
    features = keras.Input(shape=(4,), name="features")
    with pytest.raises(PluginError, match="returned nothing from build_head"):
        faulty(answer=None).build_head("faulty", Units(), features, "out")
    with pytest.raises(
        PluginError,
        match="returned the output of layer 'dense_out': the output layer of head 'out' must be named 'out'",
    ):
        faulty(answer=keras.layers.Dense(2, name="dense_out")(features)).build_head("faulty", Units(), features, "out")


@pytest.mark.slow
def test_policy_deciding_for_a_layer_the_model_lacks_fails_at_plan_time(load_spec_text):
    registry = Registry.discover(enabled={"gru"})
    ghost = {name: graft.LayerDecision(True) for name in ("gru_1", "gru_2", "gru_3", "gru_4", "level", "trend")}
    registry.register(Faulty(answer=ghost), "ghost")
    spec = load_spec_text(
        TINY_GRU_SPEC.replace(
            "plugin: layers\n      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}", "plugin: ghost"
        ),
        registry,
    )
    with pytest.raises(
        PluginError,
        match=r"decided for 'gru_4', which the model does not have; layers: gru_1, gru_2, gru_3, level, trend",
    ):
        plan_spec(spec, registry)


# -- at plan time, through a spec ------------------------------------------------------


@pytest.fixture
def load_spec_text(tmp_path):
    def load_text(text: str, registry: Registry | None = None):
        path = tmp_path / "spec.yaml"
        path.write_text(text)
        return load_spec(str(path), registry or Registry.discover(enabled={"gru", "conv1d"}))

    return load_text


def plan_problems(spec_file, registry=None) -> list[str]:
    with pytest.raises(SpecError) as caught:
        plan_spec(spec_file, registry or Registry.discover(enabled={"gru", "conv1d"}))
    return caught.value.lines


@pytest.mark.slow
def test_gru_with_a_3d_input_shape_is_reported_at_the_extractor_once(load_spec_text):
    spec = load_spec_text(TINY_GRU_SPEC.replace("input_shape: [12, 3]", "input_shape: [12, 3, 2]"))
    assert plan_problems(spec) == [
        "model.extractor.params (line 6): the gru extractor needs model.input_shape [timesteps, features], "
        "got [12, 3, 2]"
    ]


@pytest.mark.slow
def test_a_huge_dense_head_is_reported_at_its_units(load_spec_text):
    spec = load_spec_text(TINY_GRU_SPEC.replace("params: {units: 1}", "params: {units: 1000000000}"))
    [line] = plan_problems(spec)
    assert line.startswith(
        "model.heads.level.params.units (line 12): head 'level' Dense of 1,000,000,000 units on 4 inputs would allocate"
    )


@pytest.mark.slow
@pytest.mark.parametrize("head", ["gru_extractor", "gru_2"])  # 'input' is refused by graft validate already
def test_a_head_named_like_a_layer_of_the_model_is_reported_at_the_head(load_spec_text, head):
    spec = load_spec_text(TINY_GRU_SPEC.replace("    level: {plugin: dense", f"    {head}: {{plugin: dense").replace(
        "targets: {level: level", f"targets: {{{head}: level"))
    [line] = plan_problems(spec)
    assert line.startswith(f"model.heads.{head} (line 12): head name '{head}' is taken by ")


def test_the_builder_refuses_a_head_named_input_at_the_heads_path(keras):
    registry = Registry.discover(enabled={"gru"})
    from graft_gru import GRULayer, GRUParams

    dense = registry.params_class("head", "dense")
    extractor = ExtractorRef(plugin="gru", params=GRUParams(layers=[GRULayer("g", 2)]))
    heads = {"input": HeadSpec(plugin="dense", loss="mse", params=dense(units=1))}
    with pytest.raises(graft.SpecProblem) as caught:
        ModelBuilder(registry, (5, 2), extractor, heads, heads_at=("stages", 1, "heads")).build(seed=0)
    assert caught.value.items == [
        (("stages", 1, "heads", "input"), "head name 'input' is taken by the model's input; rename the head")
    ]


# -- names Keras made up -----------------------------------------------------------------


class Unnamed:
    @graft.hookimpl
    def build_extractor(self, input_shape):
        import keras

        inputs = keras.Input(shape=input_shape)  # input layers are exempt
        x = keras.layers.LSTM(3, return_sequences=True, name="gru_1")(inputs)  # looks generated, is explicit
        x = keras.layers.LSTM(2)(x)
        return keras.Model(inputs, x, name="unnamed_extractor")


def build(registry, extractor: str):
    heads = {"out": HeadSpec(plugin="dense", loss="mse", params=registry.params_class("head", "dense")(units=1))}
    return ModelBuilder(registry, (5, 2), ExtractorRef(plugin=extractor), heads).build(seed=0)


def test_a_layer_without_an_explicit_name_is_refused_naming_plugin_and_layer(keras):
    registry = Registry.discover(enabled=set())
    registry.register(Unnamed, "unnamed", distribution="graft-unnamed", version="1.0")
    with pytest.raises(PluginError) as caught:
        build(registry, "unnamed")
    message = str(caught.value)
    assert message.startswith("extractor plugin 'unnamed' (distribution graft-unnamed 1.0")
    assert "created layer 'lstm' (LSTM) without a name" in message and "gru_1" not in message


@pytest.mark.slow
def test_mobilenet_from_keras_applications_passes(keras):
    pytest.importorskip("graft_mobilenet")
    registry = Registry.discover(enabled={"mobilenet"})
    params = registry.params_class("extractor", "mobilenet")(alpha=0.35)
    heads = {"digit": HeadSpec(plugin="dense", loss="mse", params=registry.params_class("head", "dense")(units=2))}
    built = ModelBuilder(registry, (32, 32, 3), ExtractorRef(plugin="mobilenet", params=params), heads).build(seed=0)
    assert {"Conv1", "block_16_project", "digit"} <= {info.name for info in built.layers}


# -- graft plugins: who imports TensorFlow --------------------------------------------------

HEAVY = """
import keras  # at module top: what the status column warns about
import graft

@graft.hookimpl
def build_head(params, features, name):
    return features
"""


@pytest.mark.slow
def test_a_plugin_importing_tensorflow_at_load_time_is_named_in_graft_plugins(tmp_path):
    (tmp_path / "graft_heavy_plugin.py").write_text(HEAVY)
    (tmp_path / "graft_light_plugin.py").write_text(HEAVY.replace("import keras  #", "#"))
    info = tmp_path / "graft_heavy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: graft-heavy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[graft]\nlight = graft_light_plugin\nheavy = graft_heavy_plugin\n")
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from graft.plugins.registry import Registry, describe
        print(json.dumps(describe(Registry.discover(paths=[{str(tmp_path)!r}]).infos)))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    import json

    status = {row["name"]: row["status"] for row in json.loads(result.stdout.splitlines()[-1])}
    assert status == {
        "heavy": "ok (imports TensorFlow when loaded: graft validate gets slow; import keras inside the hooks)",
        "light": "ok",
    }


def test_a_params_annotation_that_does_not_resolve_is_a_plugin_error():
    class Broken:
        @graft.hookimpl
        def load_data(self, params: NoSuchClass, base_dir):  # noqa: F821 - the point of the test
            raise AssertionError("never called")

    registry = Registry()
    registry.register(Broken, "broken_source")
    with pytest.raises(
        PluginError,
        match=r"data source plugin 'broken_source' .*: "
        r"the params annotation 'NoSuchClass' of load_data does not resolve: NameError",
    ):
        registry.params_class("data source", "broken_source")


@pytest.mark.slow
def test_a_head_layer_named_like_an_extractor_layer_is_reported_at_the_head(load, registry):
    from tests.conftest import TINY_GRU_SPEC

    text = TINY_GRU_SPEC.replace("- {name: gru_1, units: 4}", "- {name: trend_hidden_1, units: 4}").replace(
        "freeze: [gru_1, gru_2]", "freeze: [trend_hidden_1, gru_2]"
    ).replace("params: {units: 3, activation: softmax}", "params: {units: 3, activation: softmax, hidden: [4]}")
    with pytest.raises(SpecError) as caught:
        plan_spec(load(text), registry)
    assert any(
        line.startswith("model.heads.trend (line ")
        and "layer 'trend_hidden_1' of head 'trend' has the name of an extractor layer" in line
        for line in caught.value.lines
    ), caught.value.lines
