"""The gru plugin: params validation at YAML paths, the model it builds, its packaging."""

import textwrap

import pytest
import yaml

import graft
import graft_gru
from graft.plugins.registry import Registry
from graft.testing import assert_no_tensorflow_on_import, installed_plugin, params_problems, structure_params
from graft_gru import GRUParams


def params(raw):
    return structure_params(raw, GRUParams)


def problems(raw):
    return params_problems(raw, GRUParams)


def layers(*units):
    return [{"name": f"gru_{i + 1}", "units": n} for i, n in enumerate(units)]


def build(raw, input_shape=(12, 3)):
    return graft_gru.build_extractor(params=params(raw), input_shape=input_shape)


# -- params ------------------------------------------------------------------


def test_docstring_example_is_valid_params():
    example = yaml.safe_load(textwrap.dedent(graft_gru.__doc__.split(".. code-block:: yaml")[1]))
    parsed = params(example["extractor"]["params"])
    assert [layer.name for layer in parsed.layers] == ["gru_1", "gru_2", "gru_3"]
    assert parsed.layers[1].dropout == 0.2


def test_defaults():
    parsed = params({"layers": layers(4)})
    assert parsed.dropout == 0.0
    assert parsed.layers[0].dropout is None


def test_negative_units():
    assert problems({"layers": layers(4, -4)}) == [
        (("params", "layers", 1, "units"), "must be from 1 to 2,147,483,647, got -4")
    ]


def test_string_units():
    assert problems({"layers": layers(4, "x")}) == [
        (("params", "layers", 1, "units"), "expected an integer, got str 'x'")
    ]


def test_duplicate_name():
    raw = {"layers": [{"name": "gru_1", "units": 4}, {"name": "gru_1", "units": 4}]}
    assert problems(raw) == [(("params", "layers", 1, "name"), "duplicate layer name 'gru_1' (also layers[0])")]


def test_name_of_input_layer_is_taken():
    raw = {"layers": [{"name": "gru_input", "units": 4}]}
    assert problems(raw) == [
        (("params", "layers", 0, "name"), "duplicate layer name 'gru_input' (also the input layer)")
    ]


def test_unknown_keys():
    found = problems({"layers": [{"name": "gru_1", "units": 4, "unit": 3}], "dropot": 0.1})
    assert [path for path, _ in found] == [("params", "layers", 0, "unit"), ("params", "dropot")]
    assert all(message.startswith("unknown key") for _, message in found)
    assert "did you mean 'units'?" in found[0][1]


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ({"layers": []}, ("params", "layers"), "must not be empty"),
        ({}, ("params", "layers"), "required key missing"),
        ({"layers": [{"name": "1st", "units": 4}]}, ("params", "layers", 0, "name"), "is not a valid name"),
        ({"layers": layers(4), "dropout": 1.0}, ("params", "dropout"), "must be at least 0 and below 1, got 1.0"),
        ({"layers": [{"name": "g", "units": 4, "dropout": -0.1}]}, ("params", "layers", 0, "dropout"), "got -0.1"),
    ],
)
def test_other_problems(raw, path, message):
    [(found_path, found_message)] = problems(raw)
    assert found_path == path
    assert message in found_message


# -- the model ---------------------------------------------------------------


def test_model_layers_shapes_and_return_sequences():
    import keras

    model = build({"layers": layers(4, 5, 6)})
    assert model.name == "gru_extractor"
    assert model.layers[0].name == "gru_input"
    grus = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [layer.name for layer in grus] == ["gru_1", "gru_2", "gru_3"]
    assert all(isinstance(layer, keras.layers.GRU) for layer in grus)
    assert [layer.return_sequences for layer in grus] == [True, True, False]
    assert tuple(model.get_layer("gru_2").output.shape) == (None, 12, 5)
    assert tuple(model.output_shape) == (None, 6)


def test_single_layer_returns_last_state():
    model = build({"layers": layers(4)})
    assert model.get_layer("gru_1").return_sequences is False
    assert tuple(model.output_shape) == (None, 4)


def test_dropout_global_and_per_layer():
    raw = {"layers": [{"name": "a", "units": 4}, {"name": "b", "units": 4, "dropout": 0.3}], "dropout": 0.1}
    model = build(raw)
    assert model.get_layer("a").dropout == pytest.approx(0.1)
    assert model.get_layer("b").dropout == pytest.approx(0.3)


def test_wrong_input_rank():
    with pytest.raises(graft.SpecProblem, match=r"model.input_shape \[timesteps, features\], got \[12\]"):
        build({"layers": layers(4)}, input_shape=(12,))


def test_units_too_large_for_memory_are_refused_at_their_path():
    with pytest.raises(graft.SpecProblem) as caught:
        build({"layers": layers(4, 1_000_000)})
    [(path, message)] = caught.value.items
    assert path == ("layers", 1, "units")
    assert message.startswith("layer 'gru_2' (units 1,000,000) would allocate ") and "make it smaller" in message


def test_units_beyond_int32_are_a_params_problem():
    assert problems({"layers": layers(2**62)}) == [
        (("params", "layers", 0, "units"), f"must be from 1 to 2,147,483,647, got {2**62:,}")
    ]


# -- packaging -----------------------------------------------------------------


def test_import_does_not_import_tensorflow():
    assert_no_tensorflow_on_import("graft_gru")


def test_entry_point_is_installed():
    info = installed_plugin("gru")
    assert info.entry_point == "graft_gru"
    assert info.distribution == "graft-gru"


def test_core_discovers_and_builds_it():
    registry = Registry.discover(enabled={"gru"})
    assert registry.get("extractor", "gru").distribution == "graft-gru"
    assert registry.params_class("extractor", "gru") is GRUParams
    model = registry.build_extractor("gru", params({"layers": layers(4)}), (12, 3))
    assert tuple(model.output_shape) == (None, 4)


@pytest.mark.slow
def test_it_passes_the_conformance_kit():
    from graft.testing import check_extractor_plugin

    found = check_extractor_plugin("gru", {"layers": layers(3, 4)}, input_shape=(6, 2), bad_params={"layers": []})
    assert found.plugin.distribution == "graft-gru"
    assert found.layer_names[:2] == ("gru_1", "gru_2")
