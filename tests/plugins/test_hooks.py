"""Every hook, called through the ``Registry`` facade on plugins registered in-process.

The meta-tests at the end fail when a hook is added to ``graft.hookspecs``
without a test here (a test function whose name contains the hook name),
without ``:param`` / ``:return:`` documentation, or without a README mention.
"""

from __future__ import annotations

import inspect
import pathlib
import sys

import attrs
import numpy as np
import pytest

import graft
from graft import hookspecs
from graft.model.builder import ModelBuilder
from graft.plugins.registry import KIND_OF_HOOK, PluginError, Registry
from graft.spec.records import ExtractorRef, HeadSpec

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def keras():
    from graft.base.backend import import_keras

    return import_keras()


# -- tiny in-test plugins --------------------------------------------------------


@attrs.frozen
class TinyExtractorParams:
    units: int
    prefix: str = "tiny"


class TinyExtractor:
    """Flatten, then one Dense per unit count, named ``{prefix}_flat`` and ``{prefix}_dense``."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @graft.hookimpl
    def build_extractor(self, params: TinyExtractorParams, input_shape):
        import keras

        self.calls.append((params, input_shape))
        inputs = keras.Input(shape=input_shape, name=f"{params.prefix}_input")
        x = keras.layers.Flatten(name=f"{params.prefix}_flat")(inputs)
        x = keras.layers.Dense(params.units, name=f"{params.prefix}_dense")(x)
        return keras.Model(inputs, x, name=f"{params.prefix}_extractor")


@attrs.frozen
class TinyHeadParams:
    units: int
    hidden: int = 0


class TinyHead:
    @graft.hookimpl
    def build_head(self, params: TinyHeadParams, features, name):
        import keras

        x = features
        if params.hidden:
            x = keras.layers.Dense(params.hidden, activation="relu", name=f"{name}_hidden")(x)
        return keras.layers.Dense(params.units, name=name)(x)


@attrs.frozen
class PrefixPolicyParams:
    freeze_prefix: str
    reinit_heads: bool = False


class PrefixPolicy:
    """Freeze the layers whose names start with ``freeze_prefix``; optionally reinit heads."""

    @graft.hookimpl
    def transfer_policy(self, params: PrefixPolicyParams, layers):
        return {
            info.name: graft.LayerDecision(
                trainable=not info.name.startswith(params.freeze_prefix),
                init="reinit" if params.reinit_heads and not info.in_extractor else "load",
            )
            for info in layers
        }


@attrs.frozen
class RampParams:
    samples: int
    file: str = "ramp.npy"


class Ramp:
    @graft.hookimpl
    def load_data(self, params: RampParams, base_dir):
        x = np.arange(params.samples * 6, dtype=np.float32).reshape(params.samples, 3, 2)
        y = {"out": x.sum(axis=(1, 2))[:, None]}
        return graft.Dataset(x=x, y=y, description=f"ramp {base_dir}/{params.file}")


class Silent:
    """An extractor and a data source that return nothing."""

    @graft.hookimpl
    def build_extractor(self, params, input_shape):
        return None

    @graft.hookimpl
    def load_data(self, params, base_dir):
        return None


@pytest.fixture
def registry():
    """A fresh registry holding only the in-test plugins (the session registry stays untouched)."""
    registry = Registry()
    registry.register(TinyExtractor, "tiny")
    registry.register(TinyHead, "tiny_head")
    registry.register(PrefixPolicy, "prefix")
    registry.register(Ramp, "ramp")
    return registry


def layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers]


# -- extractor_layers, head_layers ---------------------------------------------------


class DeclaringTiny(TinyExtractor):
    @graft.hookimpl
    def extractor_layers(self, params: TinyExtractorParams):
        return [graft.DeclaredLayer(f"{params.prefix}_flat", "Flatten", has_weights=False),
                graft.DeclaredLayer(f"{params.prefix}_dense", "Dense")]


class DeclaringHead(TinyHead):
    @graft.hookimpl
    def head_layers(self, params: TinyHeadParams, name):
        return [*([graft.DeclaredLayer(f"{name}_hidden", "Dense")] if params.hidden else []),
                graft.DeclaredLayer(name, "Dense")]


def test_extractor_layers_are_what_the_plugin_declares_as_layer_infos(registry):
    registry.register(DeclaringTiny, "declaring")

    declared = registry.extractor_layers("declaring", TinyExtractorParams(3, prefix="p"), (2, 2))

    assert declared == (graft.LayerInfo("p_flat", "extractor", "Flatten", False, False),
                        graft.LayerInfo("p_dense", "extractor", "Dense", True, False))
    assert registry.extractor_layers("tiny", TinyExtractorParams(3), (2, 2)) is None  # it does not declare


def test_extractor_layers_answering_a_wrong_type_is_a_plugin_error(registry):
    class Wrong(TinyExtractor):
        @graft.hookimpl
        def extractor_layers(self):
            return ["p_flat"]

    registry.register(Wrong, "wrong")

    with pytest.raises(PluginError, match=r"extractor plugin 'wrong' .* extractor_layers: returned a list holding "
                                          r"str 'p_flat', not only graft.DeclaredLayer"):
        registry.extractor_layers("wrong", None, (2, 2))


def test_head_layers_belong_to_the_head(registry):
    registry.register(DeclaringHead, "declaring_head")

    declared = registry.head_layers("declaring_head", TinyHeadParams(2, hidden=4), "trend")

    assert [(info.name, info.part) for info in declared] == [("trend_hidden", "trend"), ("trend", "trend")]
    assert registry.head_layers("tiny_head", TinyHeadParams(2), "trend") is None


# -- build_extractor -------------------------------------------------------------


def test_build_extractor_returns_the_plugins_model(registry, keras):
    params = TinyExtractorParams(units=5, prefix="feat")

    model = registry.build_extractor("tiny", params, [3, 2])

    assert isinstance(model, keras.Model)
    assert model.name == "feat_extractor"
    assert layer_names(model) == ["feat_input", "feat_flat", "feat_dense"]
    assert tuple(model.output.shape) == (None, 5)
    plugin = registry.get("extractor", "tiny").plugin
    assert plugin.calls == [(params, (3, 2))], "the facade passes the params object and a tuple input_shape"


def test_build_extractor_calls_only_the_named_plugin(registry, keras):
    other = TinyExtractor()
    registry.register(other, "other")

    registry.build_extractor("other", TinyExtractorParams(units=2), (4,))

    assert registry.get("extractor", "tiny").plugin.calls == []
    assert [shape for _, shape in other.calls] == [(4,)]


def test_build_extractor_returning_nothing_is_a_plugin_error(registry):
    registry.register(Silent, "silent")

    with pytest.raises(
        PluginError,
        match=r"extractor plugin 'silent' \(distribution \(in-process\).*\) returned nothing from build_extractor",
    ):
        registry.build_extractor("silent", None, (3,))


# -- build_head ----------------------------------------------------------------


def test_build_head_names_its_output_layer(registry, keras):
    features = keras.Input(shape=(7,), name="features")

    output = registry.build_head("tiny_head", TinyHeadParams(units=3, hidden=4), features, "trend")
    model = keras.Model(features, output)

    assert tuple(output.shape) == (None, 3)
    assert layer_names(model) == ["features", "trend_hidden", "trend"]
    assert model.get_layer("trend").units == 3
    assert model.get_layer("trend_hidden").units == 4


def test_build_head_and_build_extractor_compose_in_the_model_builder(registry, keras):
    heads = {
        "level": HeadSpec(plugin="tiny_head", loss="mse", params=TinyHeadParams(units=1, hidden=2)),
        "trend": HeadSpec(plugin="tiny_head", loss="sparse_categorical_crossentropy", params=TinyHeadParams(units=3)),
    }
    builder = ModelBuilder(registry, (3, 2), ExtractorRef(plugin="tiny", params=TinyExtractorParams(units=4)), heads)

    built = builder.build(seed=0)

    assert [(info.name, info.part) for info in built.layers] == [
        ("tiny_flat", "extractor"),
        ("tiny_dense", "extractor"),
        ("level_hidden", "level"),
        ("level", "level"),
        ("trend", "trend"),
    ]
    assert built.output_shapes() == {"level": (1,), "trend": (3,)}


# -- transfer_policy -------------------------------------------------------------


def infos(*specs: tuple[str, str]) -> tuple[graft.LayerInfo, ...]:
    return tuple(
        graft.LayerInfo(name=name, part=part, class_name="Dense", has_weights=True, is_batch_norm=False)
        for name, part in specs
    )


LAYERS = infos(("gru_1", "extractor"), ("gru_2", "extractor"), ("gru_3", "extractor"), ("level", "level"))


def test_transfer_policy_returns_the_plugins_decisions(registry):
    decisions = registry.transfer_policy("prefix", PrefixPolicyParams(freeze_prefix="gru_"), LAYERS).first

    assert decisions == {
        "gru_1": graft.LayerDecision(trainable=False, init="load"),
        "gru_2": graft.LayerDecision(trainable=False, init="load"),
        "gru_3": graft.LayerDecision(trainable=False, init="load"),
        "level": graft.LayerDecision(trainable=True, init="load"),
    }


def test_transfer_policy_params_reach_the_plugin(registry):
    decisions = registry.transfer_policy(
        "prefix", PrefixPolicyParams(freeze_prefix="gru_1", reinit_heads=True), LAYERS
    ).first

    assert {name: (d.trainable, d.init) for name, d in decisions.items()} == {
        "gru_1": (False, "load"),
        "gru_2": (True, "load"),
        "gru_3": (True, "load"),
        "level": (True, "reinit"),
    }


def test_transfer_policy_of_a_builtin_through_the_facade():
    registry = Registry.discover(enabled=set())  # built-ins only
    layers_params = registry.params_class("policy", "layers")(freeze=["gru_1", "gru_2"], train=["gru_3"])

    decisions = registry.transfer_policy("layers", layers_params, LAYERS).first

    assert [name for name, decision in decisions.items() if not decision.trainable] == ["gru_1", "gru_2"]
    assert registry.transfer_policy("continue", None, LAYERS).first == {
        info.name: graft.LayerDecision(trainable=True) for info in LAYERS
    }


def test_transfer_policy_under_a_head_name_is_refused(registry):
    with pytest.raises(PluginError, match="'tiny_head' is a head plugin, not a policy"):
        registry.transfer_policy("tiny_head", None, LAYERS)


# -- load_data -------------------------------------------------------------------


def test_load_data_returns_the_plugins_dataset(registry, tmp_path):
    dataset = registry.load_data("ramp", RampParams(samples=4, file="x.npy"), str(tmp_path))

    assert isinstance(dataset, graft.Dataset)
    assert dataset.description == f"ramp {tmp_path}/x.npy"
    assert dataset.x.shape == (4, 3, 2)
    np.testing.assert_array_equal(dataset.y["out"][:, 0], [15.0, 51.0, 87.0, 123.0])
    assert not dataset.has_validation


def test_load_data_returning_nothing_is_a_plugin_error(registry):
    registry.register(Silent, "silent")

    with pytest.raises(PluginError, match="data source plugin 'silent' .* returned nothing from load_data"):
        registry.load_data("silent", None, "/nowhere")


def test_load_data_of_an_unknown_source_suggests(registry):
    with pytest.raises(
        PluginError, match="unknown data source 'rmp'; installed data source plugins: ramp — did you mean 'ramp'\\?"
    ):
        registry.load_data("rmp", None, "/nowhere")


# -- meta-tests: every hook is tested and documented ------------------------------


def hook_names() -> list[str]:
    names = sorted(name for name in dir(Registry().pm.hook) if not name.startswith("_"))
    assert names, "no hooks found on a fresh Registry's pm.hook"
    return names


def test_every_hook_has_a_test_here():
    tests = [
        name for name, value in vars(sys.modules[__name__]).items() if name.startswith("test_") and callable(value)
    ]
    missing = [hook for hook in hook_names() if not any(hook in test for test in tests)]
    assert not missing, f"no test in {__name__} has the hook name in its name: {', '.join(missing)}"


def test_every_hook_has_a_registry_method_and_a_kind():
    for hook in hook_names():
        assert hook in KIND_OF_HOOK, f"graft.plugins.registry.KIND_OF_HOOK has no kind for hook {hook}"
        assert callable(getattr(Registry, hook, None)), f"Registry has no facade method {hook}"


def test_every_hook_documents_each_param_and_the_return_value():
    problems = []
    for hook in hook_names():
        spec = getattr(hookspecs, hook)
        doc = inspect.getdoc(spec) or ""
        for argument in inspect.signature(spec).parameters:
            if f":param {argument}:" not in doc:
                problems.append(f"{hook}: no ':param {argument}:'")
        if ":return:" not in doc:
            problems.append(f"{hook}: no ':return:'")
    assert not problems, "hookspecs.py docstrings incomplete: " + "; ".join(problems)


def test_readme_mentions_every_hook():
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    missing = [hook for hook in hook_names() if hook not in text]
    assert not missing, (
        f"README.md does not mention the hook(s) {', '.join(missing)}: add them to the README's "
        "plugin-author section (what each hook receives and returns, as in core/graft/hookspecs.py)"
    )
