"""``init: {model: PATH, rename: {...}}``: a stage starts from a plain Keras file a user already has.

The tests build and save real Keras models (``tests/fixtures/make_model_file_fixture.py``), run real stages
from them through ``graft.finished.api``, and check weights bitwise against the file: loaded layers equal it,
frozen layers still equal it after training.  The weights-only files only one Keras writes are kept in
``tests/fixtures``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import graft
from graft.base.backend import import_keras
from graft.base.problems import SpecError
from graft.model.weights import read_weights
from graft.records.report import StageReport
from graft.runs.resume import stage_fingerprints
from tests.conftest import TINY_GRU_SPEC
from tests.observers import bitwise

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def _fixture_module():
    path = os.path.join(DATA, "make_model_file_fixture.py")
    spec = importlib.util.spec_from_file_location("make_model_file_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_module()
keras = import_keras()
KERAS_MAJOR = int(keras.__version__.split(".")[0])
FROZEN, TRAINED = ["gru_1", "gru_2"], ["gru_3", "level", "trend"]

SPEC = TINY_GRU_SPEC[: TINY_GRU_SPEC.index("stages:\n")] + """\
stages:
  - name: transfer
    init: INIT
    data:
      source: synthetic
      params: {samples: 32, timesteps: 12, channels: 3, seed: 2, targets: {level: level, trend: trend}}
    epochs: 1
    batch_size: 16
    policy:
      plugin: layers
      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}
"""


def spec_text(init: str) -> str:
    return SPEC.replace("INIT", init)


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def weights_by_name(model) -> dict[str, list[np.ndarray]]:
    """The leaf layers' weights of a Keras model, nested models walked."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(weights_by_name(layer))
        elif layer.weights:
            found[layer.name] = layer.get_weights()
    return found


def plan_problems(path: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        graft.plan(path)
    return caught.value.lines


# -- a real stage from a Keras file ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extension", "names", "rename"),
    [
        (".keras", fixture.NAMES, ""),
        (".h5", ("enc_1", "enc_2", "top_gru"), ", rename: {'enc_*': 'gru_*', top_gru: gru_3}"),
    ],
)
def test_a_stage_starts_from_a_keras_file_loaded_by_name_and_proven_bitwise(tmp_path, extension, names, rename):
    source = fixture.source_model(keras, names=names, seed=1)
    path = tmp_path / f"users_model{extension}"
    source.save(str(path))
    expected = weights_by_name(source)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text(f"{{model: users_model{extension}{rename}}}"))

    result = graft.run(str(spec_path), tmp_path / "out", log=lambda _line: None)

    report = result.stage("transfer").report
    label = f"model {path}"
    assert report.plan.source == label
    to_file = dict(zip(fixture.NAMES, names, strict=True)) | {"level": "level", "trend": "trend"}
    stage_weights = read_weights(str(tmp_path / "out" / "transfer" / "weights.graft.npz"))
    for name in FROZEN + TRAINED:
        load = report.load[name]
        assert (load.init, load.source, load.equal_to_source) == ("loaded", label, True), name
        assert load.source_layer == (to_file[name] if to_file[name] != name else None), name
        assert report.plan.layer(name).source_layer == load.source_layer, name
        assert report.lineage[name] == [label, "transfer"]
    for name in FROZEN:  # frozen: bitwise the file's weights after training
        assert bitwise(stage_weights[name], expected[to_file[name]]), name
        assert report.verification[name].changed is False
    for name in TRAINED:
        assert not bitwise(stage_weights[name], expected[to_file[name]]), name
        assert report.verification[name].changed is True
    if rename:  # graft plan names the file's layer
        shown = (tmp_path / "out" / "report.md").read_text()
        assert f"| gru_3 | GRU | (batch, 4) | 120 | yes | loaded from {label} (its layer 'top_gru') |" in shown
    # a report without source_layer (as before init.rename) still loads
    data = json.loads((tmp_path / "out" / "transfer" / "report.json").read_text())
    for entry in [*data["load"].values(), *data["plan"]["layers"]]:
        entry.pop("source_layer", None)
    assert StageReport.from_json(data).load["gru_3"].source_layer is None


@pytest.mark.slow
def test_weights_keras_2_saved_by_name_to_h5_load_under_either_keras(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text(f"{{model: {fixture.BY_NAME}}}"))

    result = graft.run(str(spec_path), tmp_path / "out", log=lambda _line: None)

    report = result.stage("transfer").report
    assert {report.load[name].equal_to_source for name in FROZEN + TRAINED} == {True}
    stage_weights = read_weights(str(tmp_path / "out" / "transfer" / "weights.graft.npz"))
    with h5py.File(fixture.BY_NAME, "r") as handle:  # read here as Keras wrote it: group, weight_names
        encoder = handle["encoder"]
        for name in FROZEN:
            every = [raw.decode() if isinstance(raw, bytes) else raw for raw in encoder.attrs["weight_names"]]
            names = [weight for weight in every if weight.startswith(f"{name}/")]
            assert len(names) == 3
            assert bitwise(stage_weights[name], [np.asarray(encoder[weight]) for weight in names]), name


@pytest.mark.skipif(KERAS_MAJOR != 2, reason="Keras 3 saves weights only to .weights.h5 names")
def test_keras_2_save_weights_to_h5_plans_from_it_here(tmp_path):
    fixture.source_model(keras, seed=4).save_weights(str(tmp_path / "weights.h5"))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text("{model: weights.h5}"))
    (plan,) = graft.plan(str(spec_path))
    loaded = {layer.name: layer.init for layer in plan.layers if layer.shapes}
    assert loaded == dict.fromkeys(FROZEN + TRAINED, "loaded")


@pytest.mark.parametrize("writer", [2, 3])
def test_a_weights_h5_file_keyed_by_position_says_what_to_do(tmp_path, writer):
    path = os.path.join(DATA, f"weights_keras{writer}.weights.h5")
    text = spec_text(f"{{model: {path}}}")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(text)
    (line,) = plan_problems(str(spec_path))
    assert line.startswith(f"stages[0].init.model (line {line_of(text, 'init:')}): {path} keys weights by the position")
    assert "not by layer name" in line and "give the whole model file instead (model.save('model.keras'))" in line


# -- errors, each at its YAML path and line -----------------------------------------------------------------


@pytest.mark.slow
def test_missing_layer_and_shape_mismatch_name_the_file_and_both_shapes(tmp_path):
    fixture.source_model(keras, names=("gru_1", "other", "enc_3"), units=(4, 4, 5)).save(str(tmp_path / "m.keras"))
    text = spec_text("{model: m.keras, rename: {enc_3: gru_3}}")
    (tmp_path / "spec.yaml").write_text(text)
    label = f"model {tmp_path / 'm.keras'}"
    policy = f"stages[0].policy (line {line_of(text, 'policy:')})"
    problems = plan_problems(str(tmp_path / "spec.yaml"))
    # the heads on gru_3's 5 units differ too, each with both shapes
    assert [problem.split(": ", 1)[1].split(" in ")[0] for problem in problems[2:]] == [
        "layer 'level' has weight shapes (4, 1), (1,) here but (5, 1), (1,)",
        "layer 'trend' has weight shapes (4, 3), (3,) here but (5, 3), (3,)",
    ]
    assert problems[:2] == [
        f"{policy}: layer 'gru_2' is to be loaded but {label} has no such layer; re-initialise it (policy 'layers' "
        "with reinit: [...], or 'replace_head' for heads) or name the file's layer for it in init.rename",
        f"{policy}: layer 'gru_3' has weight shapes (4, 12), (4, 12), (2, 12) here but (4, 15), (5, 15), (2, 15) in "
        f"{label} (its layer 'enc_3'); re-initialise it (policy 'layers' with reinit: [...], or 'replace_head' "
        "for heads)",
    ]


def test_two_layers_loading_as_one_name_are_named_both(tmp_path):
    fixture.source_model(keras, names=("gru_1", "gru_2", "gru_3")).save(str(tmp_path / "m.keras"))
    text = spec_text("{model: m.keras, rename: {'gru_[23]': gru_3}}")
    (tmp_path / "spec.yaml").write_text(text)
    assert plan_problems(str(tmp_path / "spec.yaml")) == [
        f"stages[0].policy (line {line_of(text, 'policy:')}): layer 'gru_2' is to be loaded but model "
        f"{tmp_path / 'm.keras'} has no such layer; re-initialise it (policy 'layers' with reinit: [...], or "
        "'replace_head' for heads) or name the file's layer for it in init.rename",
        f"stages[0].init (line {line_of(text, 'init:')}): layer 'gru_3' is to be loaded but 2 layers of model "
        f"{tmp_path / 'm.keras'} load as 'gru_3': 'encoder/gru_2', 'gru_3'; keras-graft will not guess which: "
        "re-initialise it (policy 'layers' with reinit: [...], or 'replace_head' for heads), or rename the others "
        "in init.rename (where their names differ)",
    ]


def test_one_name_in_two_nested_models_is_a_clash_only_if_loaded(tmp_path):
    inputs = keras.Input((12, 3))
    first_in, second_in = keras.Input((12, 3)), keras.Input((12, 4))
    first = keras.Model(first_in, keras.layers.GRU(4, return_sequences=True, name="gru_1")(first_in), name="first")
    second_gru = keras.layers.GRU(4, return_sequences=True, name="gru_1")
    second = keras.Model(second_in, second_gru(second_in), name="second")
    x = keras.layers.GRU(4, name="gru_3")(second(first(inputs)))
    keras.Model(inputs, [keras.layers.Dense(1, name="level")(x)]).save(str(tmp_path / "m.keras"))
    text = spec_text("{model: m.keras}")
    (tmp_path / "spec.yaml").write_text(text)
    problems = plan_problems(str(tmp_path / "spec.yaml"))
    assert problems[0].startswith(
        f"stages[0].init (line {line_of(text, 'init:')}): layer 'gru_1' is to be loaded but 2 layers of model "
        f"{tmp_path / 'm.keras'} load as 'gru_1': 'first/gru_1', 'second/gru_1'; keras-graft will not guess which"
    )
    # re-initialised, gru_1 is no clash: gru_3 and level load
    text = text.replace("freeze: [gru_1, gru_2], train: [gru_3, level, trend]",
                        "reinit: [gru_1, gru_2, trend], train: [gru_1, gru_2, gru_3, level, trend]")
    (tmp_path / "spec.yaml").write_text(text)
    (plan,) = graft.plan(str(tmp_path / "spec.yaml"))
    assert {layer.name for layer in plan.layers if layer.init == "loaded"} == {"gru_3", "level"}


def test_a_rename_key_matching_no_layer_lists_the_files_layers(tmp_path):
    fixture.source_model(keras, names=("enc_1", "enc_2", "gru_3")).save(str(tmp_path / "m.keras"))
    text = spec_text("{model: m.keras, rename: {'enc_*': 'gru_*', gru3: gru_3}}")
    (tmp_path / "spec.yaml").write_text(text)
    assert plan_problems(str(tmp_path / "spec.yaml")) == [
        f"stages[0].init.rename.gru3 (line {line_of(text, 'gru3')}): no layer 'gru3' in the file; "
        "its layers: enc_1, enc_2, gru_3, level, trend — did you mean 'gru_3'?"
    ]


def test_a_hand_trained_model_with_keras_own_names_is_explained_and_the_pasted_proposal_plans(tmp_path, capsys,
                                                                                             monkeypatch):
    """Keras named the file's layers gru, gru_1, gru_2, dense, dense_1: the spec's gru_1..3 overlap them shifted
    by one.  graft plan says so, lists the file's layers with their shapes and proposes the rename (and the
    reinit of the head whose shape differs) as YAML; pasted, the stage loads each layer from its place."""
    import textwrap

    import yaml

    from graft.commands.cli import main

    keras.backend.clear_session()  # Keras's own names start again: gru, gru_1, ...
    inputs = keras.Input((12, 3))
    x = keras.layers.GRU(4, return_sequences=True)(inputs)
    x = keras.layers.GRU(4, return_sequences=True)(x)
    x = keras.layers.GRU(4)(x)
    hand = keras.Model(inputs, [keras.layers.Dense(1)(x), keras.layers.Dense(5, activation="softmax")(x)])
    rng = np.random.default_rng(5)
    hand.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in hand.get_weights()])
    assert [layer.name for layer in hand.layers if layer.weights] == ["gru", "gru_1", "gru_2", "dense", "dense_1"]
    hand.save(str(tmp_path / "hand.keras"))
    expected = weights_by_name(hand)
    text = spec_text("{model: hand.keras}")
    (tmp_path / "spec.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)  # paths are shown as written, relative to here

    assert main(["plan", "spec.yaml"]) == 1
    error = capsys.readouterr().err
    assert error.splitlines()[:2] == [
        "error: spec.yaml: 1 problem",
        f"  stages[0].init (line {line_of(text, 'init:')}): the file's layers have the names Keras gave them itself "
        "(gru, gru_1, gru_2, dense, dense_1), and this model's names overlap them shifted: the file's 'gru_1' is its "
        "2nd GRU layer, this model's 'gru_1' its 1st, so by name the wrong layers would load; load them by place "
        "with init.rename, as shown below",
    ]
    assert error.splitlines()[2:8] == [
        "  the layers of hand.keras (stages[0].init.model), with their weight shapes:",
        "    gru      GRU    (3, 12), (4, 12), (2, 12)",
        "    gru_1    GRU    (4, 12), (4, 12), (2, 12)",
        "    gru_2    GRU    (4, 12), (4, 12), (2, 12)",
        "    dense    Dense  (4, 1), (1,)",
        "    dense_1  Dense  (4, 5), (5,)",
    ]
    assert error.splitlines()[-1] == ("  'trend' starts fresh: its weight shapes (4, 3), (3,) differ from those of "
                                      "the file's 'dense_1', (4, 5), (5,)")
    block = error[error.index("paste into stage 'transfer' (stages[0]):\n") :].split("\n", 1)[1]
    pasted = yaml.safe_load(textwrap.dedent("\n".join(line for line in block.splitlines() if line.startswith("    "))))
    assert pasted == {
        "init": {"model": "hand.keras",
                 "rename": {"gru": "gru_1", "gru_1": "gru_2", "gru_2": "gru_3", "dense": "level"}},
        "policy": {"plugin": "layers", "params": {"freeze": ["gru_1", "gru_2"], "train": ["gru_3", "level", "trend"],
                                                  "reinit": ["trend"]}},
    }

    # pasted into the stage, the plan (which graft run carries out and proves, as the test above shows) loads
    # each layer from its place
    spec = yaml.safe_load(text)
    spec["stages"][0].update(pasted)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (plan,) = graft.plan("spec.yaml")
    assert plan.source == "model hand.keras"  # as written, not /tmp/.../hand.keras
    assert {layer.name: (layer.init, layer.source_layer) for layer in plan.layers if layer.shapes} == {
        "gru_1": ("loaded", "gru"), "gru_2": ("loaded", "gru_1"), "gru_3": ("loaded", "gru_2"),
        "level": ("loaded", "dense"), "trend": ("reinitialised", None),
    }
    assert [layer.shapes for layer in plan.layers[:3]] == [[w.shape for w in expected[name]]
                                                         for name in ("gru", "gru_1", "gru_2")]


@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path, extension):
    mark = tmp_path / "lambda-ran"
    fixture.source_model(keras, lambda_mark=str(mark)).save(str(tmp_path / f"m{extension}"))
    assert mark.exists()  # building the model ran it
    mark.unlink()
    text = spec_text(f"{{model: m{extension}}}")
    (tmp_path / "spec.yaml").write_text(text)
    assert plan_problems(str(tmp_path / "spec.yaml")) == [
        f"stages[0].init.model (line {line_of(text, 'init:')}): {tmp_path / f'm{extension}'} holds a Lambda layer "
        "('mark'), whose Python code would run when the file is loaded; keras-graft loads Keras files in safe mode "
        "and runs no such code: replace the Lambda with a built-in or registered layer and save the model again"
    ]
    assert not mark.exists()


def test_a_damaged_file_is_a_problem_at_init_model(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    for name in ("m.keras", "m.h5"):
        text = spec_text(f"{{model: {name}}}")
        (tmp_path / "spec.yaml").write_text(text)
        (problem,) = plan_problems(str(tmp_path / "spec.yaml"))
        assert problem.startswith(f"stages[0].init.model (line {line_of(text, 'init:')}): {tmp_path / name} is not a")


# -- graft validate: no TensorFlow -------------------------------------------------------------------------


def test_validate_checks_extension_and_rename_without_tensorflow(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"x")
    text = spec_text("{model: m.pt, rename: {'a_*': 'b_*_*', c: 'd?'}}")
    (tmp_path / "spec.yaml").write_text(text)
    code = (
        "import sys; from graft.commands.cli import main; "
        f"rc = main(['validate', {str(tmp_path / 'spec.yaml')!r}]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'h5py')); "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    env = {**os.environ, "GRAFT_PLUGINS": "gru", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    init = line_of(text, "init:")
    assert result.stderr.splitlines()[1:] == [
        f"  stages[0].init.rename.a_* (line {init}): the new name 'b_*_*' has 2 '*' but the key 'a_*' has 1; "
        "each '*' of the new name takes what one '*' of the key matched",
        f"  stages[0].init.rename.c (line {init}): the new name 'd?' may hold '*' (what the key's '*' matched), "
        "not '?' or '['",
        f"  stages[0].init.model (line {init}): 'm.pt' is not a Keras file keras-graft reads: give a .keras, "
        ".weights.h5, .h5 file (a weights.graft.npz file goes in init.weights)",
    ]
    assert "Traceback" not in result.stderr


def test_validate_init_sources_and_rename_with_a_stage(tmp_path):
    text = spec_text("{stage: transfer, model: m.keras}")
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        graft.load_spec(str(tmp_path / "spec.yaml"))
    assert caught.value.lines == [
        f"stages[0].init (line {line_of(text, 'init:')}): give exactly one of 'stage' (an earlier stage of this "
        "spec), 'weights' (a weights.graft.npz file) or 'model' (a Keras .keras or .h5 file)"
    ]
    (tmp_path / "m.keras").write_bytes(b"a model")
    text = spec_text("{model: m.keras}") + (
        "  - name: second\n"
        "    init: {stage: transfer, rename: {gru_1: gru_2}}\n"
        "    data: {source: synthetic, params: {samples: 8, timesteps: 12, channels: 3, targets: {level: level}}}\n"
        "    epochs: 1\n"
    )
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        graft.load_spec(str(tmp_path / "spec.yaml"))
    assert caught.value.lines == [
        f"stages[1].init.rename (line {line_of(text, 'rename: {gru_1')}): rename is for a file's layers; stage "
        "'transfer' built this spec's model, whose layers already have its names: remove rename"
    ]
    text = spec_text("{model: nowhere.keras}")
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        graft.load_spec(str(tmp_path / "spec.yaml"))
    assert caught.value.lines == [
        f"stages[0].init.model (line {line_of(text, 'init:')}): model file not found: {tmp_path / 'nowhere.keras'}"
    ]


def test_the_model_file_is_part_of_the_stage_fingerprint(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"one")
    (tmp_path / "spec.yaml").write_text(spec_text("{model: m.keras}"))
    before = stage_fingerprints(graft.load_spec(str(tmp_path / "spec.yaml")))
    (tmp_path / "m.keras").write_bytes(b"two")
    after = stage_fingerprints(graft.load_spec(str(tmp_path / "spec.yaml")))
    assert before != after


def test_rename_applies_to_a_weights_file_too(tmp_path):
    """conv_1 and conv_2 swapped by rename: each then has the other's shapes, named with its file name."""
    maker = os.path.join(DATA, "make_weights_fixture.py")
    weights = importlib.util.spec_from_file_location("make_weights_fixture", maker)
    module = importlib.util.module_from_spec(weights)
    weights.loader.exec_module(module)
    path = os.path.join(DATA, f"weights_keras{KERAS_MAJOR}_conv1d_bn.graft.npz")
    text = module.spec_text("conv1d_bn").replace(
        "    epochs: 1\n", f"    epochs: 1\n    init: {{weights: {path}, rename: {{conv_1: conv_2, conv_2: conv_1}}}}\n"
    )
    (tmp_path / "spec.yaml").write_text(text)
    problems = plan_problems(str(tmp_path / "spec.yaml"))
    assert [problem.split(": ", 1)[1] for problem in problems] == [
        f"layer 'conv_1' has weight shapes (3, 3, 4) here but (3, 4, 2) in file {path} (its layer 'conv_2'); "
        "re-initialise it (policy 'layers' with reinit: [...], or 'replace_head' for heads)",
        f"layer 'conv_2' has weight shapes (3, 4, 2) here but (3, 3, 4) in file {path} (its layer 'conv_1'); "
        "re-initialise it (policy 'layers' with reinit: [...], or 'replace_head' for heads)",
    ]
