"""A finished stage's model.keras must load in Keras's safe mode for graft evaluate, predict and export: a Lambda
layer is refused at graft plan, naming the plugin and the layer; any model that still does not load is an error
that says why and what to do, never a traceback (issue #20).

The extractors are real plugins installed for the test (``install`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import pytest
import yaml

import graft
from graft.commands.cli import main
from tests.conftest import TINY_GRU_SPEC

EXTRACTOR = """
    import graft

    @graft.hookimpl
    def build_extractor(input_shape):
        import keras

        inputs = keras.Input(shape=tuple(input_shape), name="x_input")
        x = LAYER
        return keras.Model(inputs, keras.layers.GRU(4, name="x_gru")(x), name="x_extractor")
"""
LAMBDA = "keras.layers.Lambda(lambda t: t * 2.0, name='x_double')(inputs)"
UNREGISTERED = """

    def double_layer(keras):  # a custom layer no registration makes known to Keras by name
        class Double(keras.layers.Layer):
            def call(self, inputs):
                return inputs * 2.0

        return Double
"""


def write_spec(tmp_path, plugin: str) -> str:
    spec = yaml.safe_load(TINY_GRU_SPEC)
    spec["model"]["extractor"] = {"plugin": plugin}
    spec["stages"] = spec["stages"][:1]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(tmp_path / "spec.yaml")


def test_graft_plan_refuses_a_lambda_layer_naming_the_plugin_and_the_layer(install, tmp_path, capsys):
    name = install(EXTRACTOR.replace("LAYER", LAMBDA))
    assert main(["plan", write_spec(tmp_path, name)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: extractor plugin '{name}' (distribution graft-{name} 1.0, entry point ")
    assert (") built a Lambda layer 'x_double': a model holding one does not load back in Keras's safe mode (its "
            "Python code would have to run), so graft evaluate, predict and export could not load the finished stage; "
            "build it from Keras's own layers, or make it a custom layer class (a keras.layers.Layer with get_config) "
            "registered with @keras.saving.register_keras_serializable\n") in error
    assert "Traceback" not in error


@pytest.mark.slow
def test_a_finished_stage_that_does_not_load_is_an_error_in_evaluate_predict_and_export(install, tmp_path, capsys):
    name = install(EXTRACTOR.replace("LAYER", 'double_layer(keras)(name="x_double")(inputs)') + UNREGISTERED)
    out = tmp_path / "out"
    graft.run(write_spec(tmp_path, name), out, log=lambda _line: None)  # it trains and saves: nothing loads it back
    capsys.readouterr()
    inputs = tmp_path / "in.npz"
    import numpy as np

    np.savez(inputs, input=np.zeros((2, 12, 3), dtype="float32"))
    for argv in (["evaluate", str(out), "pretrain"], ["predict", str(out), "pretrain", str(inputs)],
                 ["export", str(out), "pretrain", "--format", "saved_model", "--output", str(tmp_path / "exported")]):
        assert main(argv) == 1, argv
        error = capsys.readouterr().err
        assert error.startswith(f"error: the finished stage 'pretrain' in {out}: keras.saving.load_model cannot load "
                                "its model.keras in safe mode: "), error
        assert (f"; it holds classes from outside Keras (Double (module graft_{name})): a model with custom layers "
                "loads only where their classes are registered (@keras.saving.register_keras_serializable, imported "
                "by an installed plugin)\n") in error
        assert "Traceback" not in error and error.count("\n") == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.npz", "out", "site", "spec.yaml"]
