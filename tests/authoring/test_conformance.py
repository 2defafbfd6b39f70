"""graft.testing's conformance checks pass on a real plugin and fail on each kind of broken one.

The broken plugins are real installed distributions: ``<name>.dist-info`` with an
``entry_points.txt`` and the module, in a folder on ``sys.path`` and on the
``PYTHONPATH`` of the fresh interpreter that runs ``graft validate``.
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import graft.authoring
from graft.plugins.registry import PluginError
from graft.testing import (
    ConformanceError,
    check_data_plugin,
    check_extractor_plugin,
    check_head_plugin,
    check_policy_plugin,
)

EXTRACTOR = """
    import attrs
    import numpy as np
    import graft

    @attrs.frozen
    class Params:
        units: int = 4

    @graft.hookimpl
    def build_extractor(params: Params, input_shape):
        import keras
        inputs = keras.Input(shape=tuple(input_shape), name="x_input")
        return keras.Model(inputs, LAYER(inputs), name="x_extractor")
"""


def test_a_real_extractor_with_batch_normalization_conforms():
    raw = {"layers": [{"name": "c1", "filters": 4, "kernel_size": 3}], "batch_norm": True}
    found = check_extractor_plugin("conv1d", raw, input_shape=(8, 2), bad_params={"layers": []})
    assert found.plugin.distribution == "graft-conv1d"
    assert "c1" in found.layer_names and found.layer_names[-1] == "conformance_head"


def test_bad_params_that_validate_are_a_failure():
    with pytest.raises(ConformanceError, match=r"bad_params \{'units': 3\} of head plugin 'dense' must be refused"):
        check_head_plugin("dense", {"units": 2}, bad_params={"units": 3})


def test_a_plugin_importing_keras_at_module_top_fails(install, tmp_path, monkeypatch):
    fake = tmp_path / "fake"  # a stand-in keras for the fresh interpreter: the check sees the name, quickly
    (fake / "keras").mkdir(parents=True)
    (fake / "keras" / "__init__.py").write_text("")
    name = install("import keras\n" + textwrap.dedent(EXTRACTOR).replace("LAYER(inputs)", "inputs"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "site"), str(fake)]))
    with pytest.raises(AssertionError, match=rf"a spec using extractor plugin '{name}' imported keras: import keras"):
        check_extractor_plugin(name, {}, input_shape=(3,))


def test_params_that_are_not_an_attrs_class_fail(install):
    name = install("""
        import graft

        @graft.hookimpl
        def build_head(params: dict, features, name):
            raise AssertionError("never built")
    """)
    with pytest.raises(AssertionError, match=rf"an unknown key in the params of head plugin '{name}' must be reported"):
        check_head_plugin(name, {"units": 2})


def test_layer_names_that_change_between_builds_fail(install):
    name = install(EXTRACTOR.replace("LAYER(inputs)", "keras.layers.Dense(params.units, name=next(NAMES))(inputs)")
                   + "\n    import itertools\n    NAMES = (f'dense_{i}' for i in itertools.count())\n")
    with pytest.raises(AssertionError, match=r"a second build named its layers differently"):
        check_extractor_plugin(name, {"units": 3}, input_shape=(3,))


def test_declared_layers_that_are_not_the_built_ones_fail(install):
    name = install(EXTRACTOR.replace("LAYER(inputs)", "keras.layers.Dense(params.units, name='x_dense')(inputs)") + """
    @graft.hookimpl
    def extractor_layers(params: Params):
        return [graft.DeclaredLayer("x_dense", "Dense"), graft.DeclaredLayer("x_more", "Dense")]
    """)
    with pytest.raises(AssertionError, match=rf"plugin '{name}': extractor_layers declared other layers than it built"):
        check_extractor_plugin(name, {"units": 3}, input_shape=(3,))


def test_declared_layers_that_are_the_built_ones_conform(install):
    name = install(EXTRACTOR.replace("LAYER(inputs)", "keras.layers.Dense(params.units, name='x_dense')(inputs)") + """
    @graft.hookimpl
    def extractor_layers(params: Params):
        return [graft.DeclaredLayer("x_dense", "Dense")]
    """)
    assert check_extractor_plugin(name, {"units": 3}, input_shape=(3,)).layer_names[0] == "x_dense"


def test_the_real_head_declares_its_layers():
    found = check_head_plugin("dense", {"units": 2, "hidden": [3, 4], "dropout": 0.5})
    assert "conformance_a_dropout_3" in found.layer_names


def test_state_outside_the_weights_fails(install):
    name = install(EXTRACTOR.replace("LAYER(inputs)", "offset_layer(keras)(name='offset')(inputs)") + """
    def offset_layer(keras):
        class Offset(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.offset = float(np.random.uniform())  # seeded by the build, kept nowhere

            def call(self, inputs):
                return inputs + self.offset

        return Offset
    """)
    with pytest.raises(AssertionError, match=r"a fresh build with every layer's weights loaded by name computes some"):
        check_extractor_plugin(name, {}, input_shape=(3,))


def test_an_extractor_with_a_lambda_layer_is_refused_naming_the_plugin_and_the_layer(install):
    """It would pass graft run, and its model.keras would then not load in safe mode for graft evaluate."""
    double = "keras.layers.Lambda(lambda t: t * 2.0, name='x_double')(inputs)"
    name = install(EXTRACTOR.replace("LAYER(inputs)", double))
    with pytest.raises(PluginError, match=rf"extractor plugin '{name}' \(distribution graft-{name} 1.0, .*\) built a "
                       r"Lambda layer "
                       r"'x_double': a model holding one does not load back in Keras's safe mode .* registered with "
                       r"@keras.saving.register_keras_serializable"):
        check_extractor_plugin(name, {}, input_shape=(3,))


def test_a_custom_layer_that_does_not_load_back_in_safe_mode_fails(install):
    """A custom layer Keras cannot find by name (not registered) saves, trains, and does not load back."""
    name = install(EXTRACTOR.replace("LAYER(inputs)", "double_layer(keras)(name='x_double')(inputs)") + """
    def double_layer(keras):
        class Double(keras.layers.Layer):
            def call(self, inputs):
                return inputs * 2.0

        return Double
    """)
    with pytest.raises(ConformanceError, match=rf"plugin '{name}': the model saved as model.keras does not load back "
                       r"in Keras's safe mode, as graft evaluate, predict and export load a finished stage: .*Double"):
        check_extractor_plugin(name, {}, input_shape=(3,))


def test_a_head_layer_not_named_after_the_head_clashes_with_the_other_head(install):
    name = install("""
        import graft

        @graft.hookimpl
        def build_head(features, name):
            import keras
            hidden = keras.layers.Dense(4, name="hidden")(features)
            return keras.layers.Dense(2, name=name)(hidden)
    """)
    with pytest.raises(PluginError, match=r"do not compose with the extractor into one model: .*\"hidden\" is used 2"):
        check_head_plugin(name, None)  # the two heads conformance_a and conformance_b both made a layer 'hidden'


def test_a_policy_deciding_differently_each_time_fails(install):
    name = install("""
        import itertools
        import graft
        CALLS = itertools.count()

        @graft.hookimpl
        def transfer_policy(layers):
            frozen = next(CALLS) % 2 == 0
            return {info.name: graft.LayerDecision(trainable=not frozen) for info in layers}
    """)
    with pytest.raises(AssertionError, match=rf"policy '{name}' decided differently the second time"):
        check_policy_plugin(name, None)



def test_data_whose_targets_do_not_line_up_fails(install, tmp_path):
    name = install("""
        import numpy as np
        import graft

        @graft.hookimpl
        def load_data(base_dir):
            return graft.Dataset(x=np.zeros((4, 2), "float32"), y={"out": np.zeros(3, "int64")}, description="short")
    """)
    with pytest.raises(AssertionError, match=rf"data source '{name}' \(short\): 3 targets for head 'out', 4 inputs"):
        check_data_plugin(name, None, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site"]  # the specs it wrote are gone


# -- the checks are plain code: they hold under python -O ---------------------------------------


def test_no_conformance_check_is_a_bare_assert():
    """``assert`` vanishes under ``python -O``: a check written as one would pass whatever the plugin does."""
    folder = pathlib.Path(graft.authoring.__file__).parent
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(folder.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
    assert issubclass(ConformanceError, AssertionError)  # plugin authors' pytest.raises(AssertionError) still holds


@pytest.mark.slow
def test_a_failing_check_still_fails_under_python_dash_o():
    code = (
        "import sys\n"
        "from graft.testing import check_head_plugin\n"
        "assert False, 'asserts are gone under -O: this line must not stop the script'\n"
        "print('optimize', sys.flags.optimize, flush=True)\n"
        "check_head_plugin('dense', {'units': 2}, bad_params={'units': 3})\n"
    )
    result = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout == "optimize 1\n"
    assert result.returncode == 1, result.stderr
    assert "ConformanceError: bad_params {'units': 3} of head plugin 'dense' must be refused" in result.stderr
