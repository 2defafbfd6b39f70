"""The conv1d plugin: params validation at YAML paths, the model it builds, its packaging."""

import textwrap

import pytest
import yaml

import graft
import graft_conv1d
from graft.plugins.registry import Registry
from graft.testing import assert_no_tensorflow_on_import, installed_plugin, params_problems, structure_params
from graft_conv1d import Conv1DParams


def params(raw):
    return structure_params(raw, Conv1DParams)


def problems(raw):
    return params_problems(raw, Conv1DParams)


def layers(*filters):
    return [{"name": f"conv_{i + 1}", "filters": n, "kernel_size": 3} for i, n in enumerate(filters)]


def build(raw, input_shape=(12, 3)):
    return graft_conv1d.build_extractor(params=params(raw), input_shape=input_shape)


def names(model):
    import keras

    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


# -- params ------------------------------------------------------------------


def test_docstring_example_is_valid_params():
    example = yaml.safe_load(textwrap.dedent(graft_conv1d.__doc__.split(".. code-block:: yaml")[1]))
    parsed = params(example["extractor"]["params"])
    assert [layer.name for layer in parsed.layers] == ["conv_1", "conv_2"]
    assert (parsed.layers[1].strides, parsed.layers[1].padding) == (2, "valid")


def test_defaults():
    parsed = params({"layers": layers(4)})
    assert (parsed.activation, parsed.batch_norm, parsed.pooling) == ("relu", False, "average")
    assert (parsed.layers[0].strides, parsed.layers[0].padding) == (1, "same")


def test_negative_filters():
    assert problems({"layers": layers(4, -4)}) == [
        (("params", "layers", 1, "filters"), "must be from 1 to 2,147,483,647, got -4")
    ]


def test_string_filters():
    assert problems({"layers": layers(4, "x")}) == [
        (("params", "layers", 1, "filters"), "expected an integer, got str 'x'")
    ]


def test_duplicate_name():
    raw = {"layers": [{"name": "conv_1", "filters": 4, "kernel_size": 3}] * 2}
    assert problems(raw) == [(("params", "layers", 1, "name"), "duplicate layer name 'conv_1' (also layers[0])")]


def test_name_clashes_with_generated_layers():
    raw = {
        "layers": [
            {"name": "conv_1", "filters": 4, "kernel_size": 3},
            {"name": "conv_1_bn", "filters": 4, "kernel_size": 3},
            {"name": "conv_pool", "filters": 4, "kernel_size": 3},
        ],
        "batch_norm": True,
    }
    assert problems(raw) == [
        (("params", "layers", 1, "name"), "duplicate layer name 'conv_1_bn' (also the batch norm of layers[0])"),
        (("params", "layers", 2, "name"), "duplicate layer name 'conv_pool' (also the pooling layer)"),
    ]
    # Without batch norm, conv_1_bn is an ordinary free name.
    assert problems({**raw, "batch_norm": False}) == [
        (("params", "layers", 2, "name"), "duplicate layer name 'conv_pool' (also the pooling layer)"),
    ]


def test_unknown_keys():
    found = problems({"layers": [{"name": "c", "filters": 4, "kernel_size": 3, "stride": 2}], "pool": "max"})
    assert [path for path, _ in found] == [("params", "layers", 0, "stride"), ("params", "pool")]
    assert all(message.startswith("unknown key") for _, message in found)
    assert "did you mean 'strides'?" in found[0][1]


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ({"layers": []}, ("params", "layers"), "must not be empty"),
        ({"layers": [{"name": "c", "filters": 4}]}, ("params", "layers", 0, "kernel_size"), "required key missing"),
        (
            {"layers": [{"name": "c-1", "filters": 4, "kernel_size": 3}]},
            ("params", "layers", 0, "name"),
            "is not a valid name",
        ),
        (
            {"layers": [{"name": "c", "filters": 4, "kernel_size": 3, "strides": 0}]},
            ("params", "layers", 0, "strides"),
            "got 0",
        ),
        (
            {"layers": [{"name": "c", "filters": 4, "kernel_size": 3, "padding": "vaild"}]},
            ("params", "layers", 0, "padding"),
            "'vaild' is not one of: same, valid — did you mean 'valid'?",
        ),
        ({"layers": layers(4), "activation": "rleu"}, ("params", "activation"), "did you mean 'relu'?"),
        ({"layers": layers(4), "pooling": "mean"}, ("params", "pooling"), "'mean' is not one of: average, max"),
        ({"layers": layers(4), "batch_norm": "yes"}, ("params", "batch_norm"), "expected true or false, got str 'yes'"),
    ],
)
def test_other_problems(raw, path, message):
    [(found_path, found_message)] = problems(raw)
    assert found_path == path
    assert message in found_message


# -- the model ---------------------------------------------------------------


def test_model_without_batch_norm():
    import keras

    raw = {"layers": [
        {"name": "conv_1", "filters": 4, "kernel_size": 5},
        {"name": "conv_2", "filters": 6, "kernel_size": 3, "strides": 2, "padding": "valid"},
    ]}
    model = build(raw)
    assert model.name == "conv1d_extractor"
    assert model.layers[0].name == "conv1d_input"
    assert names(model) == ["conv_1", "conv_2", "conv_pool"]
    conv_1 = model.get_layer("conv_1")
    assert isinstance(conv_1, keras.layers.Conv1D)
    assert conv_1.activation is keras.activations.relu and conv_1.use_bias
    assert tuple(conv_1.output.shape) == (None, 12, 4)
    assert tuple(model.get_layer("conv_2").output.shape) == (None, 5, 6)
    assert isinstance(model.get_layer("conv_pool"), keras.layers.GlobalAveragePooling1D)
    assert tuple(model.output_shape) == (None, 6)


def test_model_with_batch_norm_and_max_pooling():
    import keras

    model = build({"layers": layers(4, 5), "batch_norm": True, "activation": "tanh", "pooling": "max"})
    assert names(model) == ["conv_1", "conv_1_bn", "conv_1_act", "conv_2", "conv_2_bn", "conv_2_act", "conv_pool"]
    conv_1 = model.get_layer("conv_1")
    assert conv_1.activation is keras.activations.linear and not conv_1.use_bias
    assert isinstance(model.get_layer("conv_1_bn"), keras.layers.BatchNormalization)
    assert isinstance(model.get_layer("conv_2_act"), keras.layers.Activation)
    assert model.get_layer("conv_2_act").activation is keras.activations.tanh
    assert isinstance(model.get_layer("conv_pool"), keras.layers.GlobalMaxPooling1D)
    assert tuple(model.output_shape) == (None, 5)


def test_wrong_input_rank():
    with pytest.raises(graft.SpecProblem, match=r"model.input_shape \[steps, channels\], got \[12, 3, 1\]"):
        build({"layers": layers(4)}, input_shape=(12, 3, 1))


def test_kernel_longer_than_the_input_with_valid_padding_is_refused_at_its_path():
    raw = {"layers": [{"name": "a", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "valid"},
                      {"name": "b", "filters": 2, "kernel_size": 6, "padding": "valid"}]}
    with pytest.raises(graft.SpecProblem) as caught:
        build(raw, input_shape=(12, 3))  # a leaves (12 - 3) // 2 + 1 = 5 steps for b
    assert caught.value.items == [(
        ("layers", 1, "kernel_size"),
        "kernel_size 6 is longer than the 5 steps that reach layer 'b' (model.input_shape [12, 3], "
        "after the layers before it); use a smaller kernel or padding: same",
    )]


def test_kernel_longer_than_the_input_with_same_padding_builds():
    model = build({"layers": [{"name": "a", "filters": 2, "kernel_size": 20}]}, input_shape=(12, 3))
    assert tuple(model.output_shape) == (None, 2)


def test_filters_too_large_for_memory_are_refused_at_their_path():
    with pytest.raises(graft.SpecProblem) as caught:
        build({"layers": [{"name": "a", "filters": 2**31 - 1, "kernel_size": 2**20}]}, input_shape=(12, 3))
    assert [path for path, _ in caught.value.items] == [("layers", 0, "filters")]


# -- packaging -----------------------------------------------------------------


def test_import_does_not_import_tensorflow():
    assert_no_tensorflow_on_import("graft_conv1d")


def test_entry_point_is_installed():
    info = installed_plugin("conv1d")
    assert info.entry_point == "graft_conv1d"
    assert info.distribution == "graft-conv1d"


def test_core_discovers_and_builds_it():
    registry = Registry.discover(enabled={"conv1d"})
    assert registry.get("extractor", "conv1d").distribution == "graft-conv1d"
    assert registry.params_class("extractor", "conv1d") is Conv1DParams
    model = registry.build_extractor("conv1d", params({"layers": layers(4)}), (12, 3))
    assert tuple(model.output_shape) == (None, 4)
