"""``graft.model.weights``: weights saved and loaded by layer NAME, under Keras 2 and Keras 3 alike.

No training here: models are built from tiny specs and given distinct weights.  The
cross-version fixtures in ``tests/fixtures`` were written by ``make_weights_fixture.py``
under Keras 2.15 and Keras 3; both must load, by name, into models built under the
running Keras.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

import graft.model.weights
from graft.base.problems import SpecError
from graft.model.weights import FILENAME, WeightsFileError, read_index, read_weights, save_weights
from graft.planning.stageplan import build_stage_model, decide, plan_spec, plan_stage
from graft.runs.verify import load_by_name
from graft.spec.specfile import load_spec

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def _fixture_module():
    spec = importlib.util.spec_from_file_location("make_weights_fixture", os.path.join(DATA, "make_weights_fixture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_module()

MODEL = """\
seed: 0
model:
  input_shape: [6, 3]
  extractor:
    plugin: conv1d
    params:
      batch_norm: true
      layers:
        - {name: conv_1, filters: 4, kernel_size: 3}
  heads:
HEADS
stages:
  - name: only
    data: {source: synthetic, params: {samples: 8, timesteps: 6, channels: 3, targets: {a: level}}}
    epochs: 1
INIT
"""
# three heads of identical shapes: loading by position would put them in each other's place
HEADS = {
    "a": "    a: {plugin: dense, loss: mse, params: {units: 2, hidden: [3]}}",
    "b": "    b: {plugin: dense, loss: mse, params: {units: 2, hidden: [3]}}",
    "c": "    c: {plugin: dense, loss: mse, params: {units: 2, hidden: [3]}}",
    "new": "    new: {plugin: dense, loss: mse, params: {units: 2, hidden: [3]}}",
}


def spec(heads: list[str], init: str | None = None, policy: str | None = None) -> str:
    stage_extra = ""
    if init is not None:
        stage_extra = f"    init: {{weights: {init}}}\n"
    if policy is not None:
        stage_extra += f"    policy: {policy}\n"
    return MODEL.replace("HEADS\n", "".join(HEADS[name] + "\n" for name in heads)).replace("INIT\n", stage_extra)


def built_model(load, registry, text: str):
    return build_stage_model(load(text), registry, 0)


def distinct(built, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Give every weight of every layer its own random values; return them by layer name."""
    rng = np.random.default_rng(seed)
    values = {}
    for info in built.layers:
        arrays = [rng.normal(size=w.shape).astype(np.float32) for w in info.layer.get_weights()]
        if arrays:
            info.layer.set_weights(arrays)
        values[info.name] = arrays
    return values


def bitwise(left, right) -> bool:
    return len(left) == len(right) and all(
        a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        for a, b in zip(left, right, strict=True)
    )


# -- round trip ---------------------------------------------------------------------


def test_round_trip_by_name(load, registry, tmp_path):
    built = built_model(load, registry, spec(["a", "b"]))
    values = distinct(built)
    path = str(tmp_path / FILENAME)
    save_weights(built.layers, path)
    loaded = read_weights(path)
    assert list(loaded) == [info.name for info in built.layers]
    assert list(loaded) == ["conv_1", "conv_1_bn", "conv_1_act", "conv_pool", "a_hidden_1", "a", "b_hidden_1", "b"]
    for name, arrays in values.items():
        assert bitwise(loaded[name], arrays), name
    assert loaded["conv_pool"] == [] and loaded["conv_1_act"] == []


def test_index_shapes_classes_and_variable_names(load, registry, tmp_path):
    built = built_model(load, registry, spec(["a"]))
    path = str(tmp_path / FILENAME)
    save_weights(built.layers, path)
    shapes = read_index(path)
    assert shapes == {info.name: [tuple(w.shape) for w in info.layer.get_weights()] for info in built.layers}
    assert shapes["conv_1"] == [(3, 3, 4)]  # batch_norm: the Conv1D has no bias
    assert shapes["conv_1_bn"] == [(4,)] * 4
    assert shapes["a"] == [(3, 2), (2,)]
    with np.load(path) as data:
        index = json.loads(str(data[graft.model.weights.INDEX_KEY]))
    assert index["format"] == graft.model.weights.FORMAT
    assert index["layers"]["conv_1_bn"]["class"] == "BatchNormalization"
    assert index["layers"]["conv_1_bn"]["variables"] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert index["layers"]["a"]["variables"] == ["kernel", "bias"]


@pytest.mark.slow
def test_loading_puts_each_layer_where_its_name_says(load, registry, tmp_path):
    """Heads reordered and a new head in front: by position every head would get another's weights."""
    source = built_model(load, registry, spec(["a", "b", "c"]))
    values = distinct(source, seed=1)
    path = str(tmp_path / "source.graft.npz")
    save_weights(source.layers, path)

    text = spec(["new", "c", "a", "b"], init=path, policy="{plugin: layers, params: {reinit: [new, new_hidden_1]}}")
    spec_file = load(text)
    (plan,) = plan_spec(spec_file, registry)
    built = build_stage_model(spec_file, registry, 0)
    decisions = decide(spec_file, registry, 0, built)
    plan = plan_stage(spec_file, 0, built, decisions, [plan])
    fresh = {info.name: info.layer.get_weights() for info in built.layers}
    # the test means something only if position and name disagree for equally shaped layers
    by_position = [info.name for info in built.layers if info.has_weights]
    assert by_position != [info.name for info in source.layers if info.has_weights][: len(by_position)]

    report = load_by_name(built, plan, path, "the stage")

    for info in built.layers:
        if info.name in ("new", "new_hidden_1"):
            assert report[info.name].init == "reinitialised"
            assert bitwise(info.layer.get_weights(), fresh[info.name]), "a reinitialised layer was overwritten"
        elif info.has_weights:
            assert report[info.name].equal_to_source is True
            assert bitwise(info.layer.get_weights(), values[info.name]), f"{info.name} got another layer's weights"


# -- files that are not keras-graft weights ------------------------------------------


def _index(value: dict) -> np.ndarray:
    return np.array(json.dumps(value))


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: np.savez(p, x=np.zeros(3)), "is not a keras-graft weights file (no index)"),
        (lambda p: np.save(p, np.zeros(3)), "holds one array, not an .npz archive"),
        (lambda p: pathlib.Path(p).write_text("not weights"), "is not a keras-graft weights file"),
        (lambda p: pathlib.Path(p).write_bytes(b""), "is not a keras-graft weights file"),
        (lambda p: pathlib.Path(p).write_bytes(b"PK\x03\x04broken"), "is not a keras-graft weights file"),
        (
            lambda p: np.savez(p, __graft_index__=_index({"format": "keras-graft weights 0", "layers": {}})),
            "has format 'keras-graft weights 0'; this keras-graft reads 'keras-graft weights 1'",
        ),
        (lambda p: np.savez(p, __graft_index__=np.array("{not json")), "has a damaged index"),
        (
            lambda p: np.savez(
                p, __graft_index__=_index({
                    "format": graft.model.weights.FORMAT,
                    "layers": {"d": {"class": "Dense", "variables": ["bias"], "shapes": [[2]]}},
                })
            ),
            "is damaged: its index lists arrays it lacks: d:0",
        ),
    ],
    ids=["npz-without-index", "npy", "text", "empty", "broken-zip", "other-format", "bad-index", "missing-array"],
)
def test_non_graft_files_give_weights_file_error(write, message, tmp_path):
    path = str(tmp_path / "w.graft.npz")
    write(path)
    if not os.path.exists(path):  # np.save appends .npy
        os.replace(path + ".npy", path)
    with pytest.raises(WeightsFileError) as caught:
        read_weights(path)
    assert message in str(caught.value)
    assert path in str(caught.value)
    if "lacks" not in message:  # the index alone is fine there
        with pytest.raises(WeightsFileError):
            read_index(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsFileError, match="weights file not found: .*nowhere.graft.npz"):
        read_index(str(tmp_path / "nowhere.graft.npz"))


def test_a_non_graft_init_file_is_a_spec_error_at_its_yaml_path(load, registry, tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, x=np.zeros(3))
    text = spec(["a"], init=str(path))
    spec_file = load(text)
    with pytest.raises(SpecError) as caught:
        plan_spec(spec_file, registry)
    line = next(n for n, line in enumerate(text.splitlines(), start=1) if "init: {weights:" in line)
    assert caught.value.lines == [
        f"stages[0].init.weights (line {line}): "
        f"{path} is not a keras-graft weights file (no index); save it with graft run"
    ]


# -- atomic writes ---------------------------------------------------------------------


def test_atomic_write_leaves_only_the_file(load, registry, tmp_path):
    built = built_model(load, registry, spec(["a"]))
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / "out.graft.npz"
    save_weights(built.layers, str(path))
    save_weights(built.layers, str(path))  # overwriting is fine too
    assert os.listdir(folder) == ["out.graft.npz"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(load, registry, tmp_path, monkeypatch):
    built = built_model(load, registry, spec(["a"]))
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / "out.graft.npz"
    save_weights(built.layers, str(path))
    before = path.read_bytes()
    distinct(built, seed=2)
    real_savez = np.savez

    def half_then_crash(file, *args, **kwargs):  # file: the open temporary file
        real_savez(file, *args, **kwargs)
        file.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_then_crash)  # graft.model.weights imports numpy when it saves
    with pytest.raises(OSError, match="disk full"):
        save_weights(built.layers, str(path))
    assert path.read_bytes() == before
    assert os.listdir(folder) == ["out.graft.npz"]


# -- across Keras major versions -----------------------------------------------------------


def _record() -> dict:
    with open(os.path.join(DATA, "fixtures.json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_fixture_files_are_small_and_as_recorded():
    record = _record()
    for major in (2, 3):
        for variant in fixture.VARIANTS:
            name = fixture.filename(variant, major)
            path = os.path.join(DATA, name)
            assert os.path.getsize(path) < 50_000
            assert record[name]["keras"].split(".")[0] == str(major), f"{name} was not written by Keras {major}"
            with open(path, "rb") as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == record[name]["sha256"], f"{name} changed"


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(fixture.VARIANTS))
@pytest.mark.parametrize("major", [2, 3])
def test_weights_written_under_either_keras_load_by_name_under_this_one(major, variant, registry, write_spec):
    path = os.path.join(DATA, fixture.filename(variant, major))
    text = fixture.spec_text(variant, init=path)
    spec_file = load_spec(write_spec(text), registry)
    (plan,) = plan_spec(spec_file, registry)  # the file's shapes fit this Keras's model
    built = build_stage_model(spec_file, registry, 0)
    decisions = decide(spec_file, registry, 0, built)
    plan = plan_stage(spec_file, 0, built, decisions, [plan])
    assert {layer.init for layer in plan.layers if layer.shapes} == {"loaded"}
    load_by_name(built, plan, path, "the stage")

    names = fixture.weighted_names(built.layers)
    assert len(names) >= 4
    checked = 0
    for info in built.layers:
        for position, (variable, value) in enumerate(zip(info.layer.weights, info.layer.get_weights(), strict=True)):
            expected = fixture.pattern(names, info.name, position, tuple(value.shape))
            assert np.array_equal(np.asarray(variable), expected), f"{info.name} weight {position} ({variable.name})"
            checked += 1
    # every variable of the model was checked (BatchNormalization statistics included)
    assert checked == len(built.model.weights)


def test_both_keras_versions_write_the_same_index():
    for variant in fixture.VARIANTS:
        indexes = []
        for major in (2, 3):
            with np.load(os.path.join(DATA, fixture.filename(variant, major))) as data:
                indexes.append(json.loads(str(data[graft.model.weights.INDEX_KEY])))
        assert indexes[0] == indexes[1]
