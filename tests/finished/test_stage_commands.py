"""``graft evaluate``, ``graft predict`` and ``graft export`` on one tiny finished run, checked against Keras itself.

The run (module scope): ``pretrain`` trains the seed scenario's two heads (``level``
with mae, ``trend`` weighted 0.5), then ``single`` replaces them with one head on
logits.  Evaluation must equal ``model.evaluate`` and the stage's own ``val_*``
numbers, predictions ``model.predict``, and exports must reproduce the predictions.
"""

from __future__ import annotations

import json
import os
import shutil

import attrs
import numpy as np
import pytest
import yaml

import graft
from graft.base.backend import import_keras
from graft.base.table import format_table
from graft.commands.cli import main
from graft.finished import serving
from graft.plugins.arrayfile import ArrayFile
from tests.conftest import TINY_GRU_SPEC

SHAPE = (12, 3)


def _spec() -> dict:
    spec = yaml.safe_load(TINY_GRU_SPEC)
    spec["model"]["heads"]["level"]["metrics"] = ["mae"]
    spec["model"]["heads"]["trend"]["loss_weight"] = 0.5
    pretrain = spec["stages"][0]
    single = {
        "name": "single",
        "init": {"stage": "pretrain"},
        "data": {"source": "synthetic",
                 "params": {**pretrain["data"]["params"], "seed": 2, "targets": {"trend": "trend"}}},
        "heads": {"trend": {"plugin": "dense", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                            "params": {"units": 3}}},  # linear: trains on logits
        "epochs": 1,
        "batch_size": 8,
        "policy": {"plugin": "replace_head"},
    }
    spec["stages"] = [pretrain, single]
    return spec


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stage-commands")
    (folder / "spec.yaml").write_text(yaml.safe_dump(_spec(), sort_keys=False))
    graft.run(str(folder / "spec.yaml"), folder / "out", log=lambda line: None)
    return folder


@pytest.fixture
def cli(capsys):
    """``graft ARGS...`` in this process: (exit code, stdout, stderr)."""

    def call(*args: str) -> tuple[int, str, str]:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def _samples(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, *SHAPE)).astype(np.float32)


def _labelled(path, count: int = 21) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(9)
    arrays = {"input": _samples(count, seed=8), "level": rng.normal(size=(count, 1)).astype(np.float32),
              "trend": rng.integers(0, 3, size=count)}
    np.savez(path, **arrays)
    return arrays


@pytest.fixture(scope="module")
def stage(run):
    """``graft.load_stage`` of the run's stage, loaded once per stage (loading costs a second or two on Keras 2)."""
    stages: dict = {}

    def load(name: str) -> graft.FinishedStage:
        if name not in stages:
            stages[name] = graft.load_stage(run / "out", name)
        return stages[name]

    return load


X = np.random.default_rng(5).normal(size=(37, *SHAPE)).astype(np.float32)  # what every prediction is checked on


@pytest.fixture(scope="module")
def expected(stage):
    """``model.predict(X)`` of the stage's model, by head (once per stage)."""
    found: dict = {}

    def predictions(name: str) -> dict[str, np.ndarray]:
        if name not in found:
            model = stage(name).model
            values = model.predict(X, batch_size=32, verbose=0)
            values = values if isinstance(values, list) else [values]
            found[name] = dict(zip(model.output_names, values, strict=True))
        return found[name]

    return predictions


def _report(run, stage: str) -> dict:
    return json.loads((run / "out" / stage / "report.json").read_text())


# -- evaluate --------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_on_data_equals_model_evaluate_compiled_by_hand(run, cli, stage, tmp_path):
    arrays = _labelled(tmp_path / "labelled.npz")
    code, out, _ = cli("evaluate", run / "out", "pretrain", "--data", tmp_path / "labelled.npz", "--format", "json")
    assert code == 0
    result = json.loads(out)
    model = stage("pretrain").model
    model.compile(loss={"level": "mse", "trend": "sparse_categorical_crossentropy"},
                  metrics={"level": ["mae"], "trend": ["accuracy"]}, loss_weights={"level": 1.0, "trend": 0.5})
    expected = model.evaluate(arrays["input"], {"level": arrays["level"], "trend": arrays["trend"]}, batch_size=32,
                              return_dict=True, verbose=0)
    assert (result["stage"], result["samples"]) == ("pretrain", 21)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert result["heads"]["level"] == pytest.approx({"loss": expected["level_loss"], "mae": expected["level_mae"]},
                                                     rel=1e-6)
    assert result["heads"]["trend"] == pytest.approx(
        {"loss": expected["trend_loss"], "accuracy": expected["trend_accuracy"]}, rel=1e-6)
    assert result["loss"] == pytest.approx(result["heads"]["level"]["loss"] + 0.5 * result["heads"]["trend"]["loss"],
                                           rel=1e-5)


@pytest.mark.slow
def test_evaluate_on_the_stage_validation_data_shows_its_last_epoch_val_metrics(run, cli):
    assert (run / "out" / "spec.resolved.yaml").is_file()  # graft run's copy of the spec, proven by the fingerprint
    code, out, _ = cli("evaluate", run / "out", "pretrain")
    assert code == 0, out
    final = _report(run, "pretrain")["final_metrics"]
    assert out.splitlines() == [
        f"stage 'pretrain' of {run / 'out'} on the validation data of synthetic (seed 1) (10 samples)",
        *format_table([
            ("head", "loss", "mae", "accuracy"),
            ("level", f"{final['val_level_loss']:.4f}", f"{final['val_level_mae']:.4f}", ""),
            ("trend", f"{final['val_trend_loss']:.4f}", "", f"{final['val_trend_accuracy']:.4f}"),
            ("total", f"{final['val_loss']:.4f}", "", ""),
        ]).splitlines(),
    ]


@pytest.mark.slow
def test_a_single_head_on_logits_evaluates_as_it_trained(run, stage):
    single = stage("single")
    assert single.report.heads["trend"].from_logits
    result = single.evaluate(spec=str(run / "spec.yaml"))  # --spec: the spec file itself
    final = _report(run, "single")["final_metrics"]
    assert list(result.heads) == ["trend"]
    assert result.loss == pytest.approx(final["val_loss"], rel=1e-5)
    assert result.heads["trend"].loss == pytest.approx(final["val_loss"], rel=1e-5)  # loss_weight 1
    assert result.heads["trend"].metrics == pytest.approx({"accuracy": final["val_accuracy"]})
    ids = np.arange(len(X)) % 3
    given = single.evaluate({"input": X, "trend": ids}, batch_size=8)
    model = stage("single").model
    keras = import_keras()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    by_hand = model.evaluate(X, ids, batch_size=8, return_dict=True, verbose=0)
    assert (given.loss, given.heads["trend"].metrics["accuracy"]) == pytest.approx(
        (by_hand["loss"], by_hand["accuracy"]), rel=1e-6)


@pytest.mark.slow
def test_evaluate_without_a_spec_says_how_to_give_one(stage, tmp_path):
    shutil.copytree(stage("pretrain").path, tmp_path / "out" / "pretrain")  # a run folder without the spec's copy
    moved = attrs.evolve(stage("pretrain"), path=str(tmp_path / "out" / "pretrain"))
    with pytest.raises(graft.GraftError, match=r"keeps no copy of it \(spec.resolved.yaml\); give it with --spec "
                       "CONFIG, or evaluate on --data"):
        moved.evaluate()


@pytest.mark.slow
def test_evaluate_refuses_a_spec_the_stage_did_not_run_from(run, stage, tmp_path):
    spec = _spec()
    spec["seed"] = 4
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(graft.GraftError) as caught:
        stage("pretrain").evaluate(spec=str(tmp_path / "other.yaml"))
    message = str(caught.value)
    assert f"--spec {tmp_path / 'other.yaml'} is not the spec stage 'pretrain' of {run / 'out'} ran from" in message


@pytest.mark.slow
def test_evaluate_data_missing_a_head_or_not_fitting_is_a_clear_error(run, cli, stage, tmp_path):
    np.savez(tmp_path / "no_trend.npz", input=X[:4], level=np.zeros((4, 1), np.float32))
    code, _, err = cli("evaluate", run / "out", "pretrain", "--data", tmp_path / "no_trend.npz")
    assert code == 1
    assert f"no array 'trend' in {tmp_path / 'no_trend.npz'}; arrays: input, level" in err
    assert "numpy.savez(path, input=inputs, level=..., trend=...)" in err
    np.savez(tmp_path / "wide.npz", input=np.zeros((4, 12, 4), np.float32), level=np.zeros((4, 1)),
             trend=np.zeros(4, int))
    with pytest.raises(graft.GraftError, match=r"array 'input' has shape \(4, 12, 4\) but the model takes "
                       r"\(samples, 12, 3\)"):
        stage("pretrain").evaluate(tmp_path / "wide.npz")
    np.savez(tmp_path / "ids.npz", input=X[:4], level=np.zeros((4, 1)), trend=np.array([0, 1, 2, 5]))
    with pytest.raises(graft.GraftError, match="the targets for head 'trend': class ids go up to 5 but head 'trend' "
                       "has 3 units"):
        stage("pretrain").evaluate(tmp_path / "ids.npz")


# -- predict ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_predict_writes_model_predict_per_head_and_never_overwrites(run, cli, expected, tmp_path):
    np.savez(tmp_path / "x.npz", input=X)
    code, out, _ = cli("predict", run / "out", "pretrain", tmp_path / "x.npz")
    assert code == 0
    written = tmp_path / "x.pretrain-predictions.npz"
    assert f"for 37 samples to {written}: level (37, 1), trend (37, 3)" in out
    with np.load(written) as predictions:
        assert sorted(predictions.files) == ["level", "trend"]
        np.testing.assert_array_equal(predictions["level"], expected("pretrain")["level"])
        np.testing.assert_array_equal(predictions["trend"], expected("pretrain")["trend"])
    before = written.read_bytes()
    np.savez(tmp_path / "x.npz", input=X[:5])
    code, _, err = cli("predict", run / "out", "pretrain", tmp_path / "x.npz")
    assert code == 1
    assert f"{written} exists (file); nothing was written. Choose another --output or add --force" in err
    assert written.read_bytes() == before


@pytest.mark.slow
def test_predict_with_force_replaces_the_output_and_says_when_a_head_holds_logits(run, cli, expected, tmp_path):
    np.savez(tmp_path / "x.npz", input=X)
    (tmp_path / "p.npz").write_text("an older file")
    code, out, _ = cli("predict", run / "out", "single", tmp_path / "x.npz", "--output", tmp_path / "p.npz", "--force")
    assert code == 0
    assert "note: trend holds logits (the head's output is linear); apply a softmax for probabilities" in out
    with np.load(tmp_path / "p.npz") as predictions:
        assert predictions.files == ["trend"]
        np.testing.assert_array_equal(predictions["trend"], expected("single")["trend"])
    assert sorted(os.listdir(tmp_path)) == ["p.npz", "x.npz"]  # nothing left beside it


@pytest.mark.slow
def test_predict_reads_rows_on_disk_a_chunk_at_a_time_as_one_predict_call(stage, expected, tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", X)
    monkeypatch.setattr(serving, "CHUNK_BYTES", 40 * X[0].nbytes)  # 32 rows (a whole batch) a chunk: 32 + 5
    found = stage("pretrain").predict(ArrayFile.of_npy(str(tmp_path / "x.npy")))
    np.testing.assert_array_equal(found["level"], expected("pretrain")["level"])
    np.testing.assert_array_equal(found["trend"], expected("pretrain")["trend"])
    with pytest.raises(graft.GraftError, match=r"array 'input' has shape \(4, 3\) but the model takes"):
        stage("pretrain").predict(np.zeros((4, 3)))


@pytest.mark.slow
def test_predict_errors_name_what_is_wrong(run, cli, stage, tmp_path):
    np.savez(tmp_path / "x.npz", x=X[:3])
    code, _, err = cli("predict", run / "out", "pretrain", tmp_path / "x.npz")
    assert code == 1
    assert f"no array 'input' in {tmp_path / 'x.npz'}; arrays: x" in err
    np.savez(tmp_path / "wide.npz", input=np.zeros((3, 12, 4), np.float32))
    with pytest.raises(graft.GraftError, match=r"array 'input' has shape \(3, 12, 4\) but the model takes "
                       r"\(samples, 12, 3\)"):
        stage("pretrain").predict(tmp_path / "wide.npz")
    np.savez(tmp_path / "nan.npz", input=np.full((3, *SHAPE), np.nan, np.float32))
    with pytest.raises(graft.GraftError, match=r"the inputs contain 108 NaN/inf value\(s\) in 3 sample\(s\)"):
        stage("pretrain").predict(tmp_path / "nan.npz")
    np.savez(tmp_path / "good.npz", input=X[:3])  # a wrong archive is reported first, before the model is loaded
    code, _, err = cli("predict", run / "out", "finetune", tmp_path / "good.npz")
    assert code == 1
    assert "has no finished stage 'finetune'" in err and "finished stages: pretrain, single" in err
    assert not [name for name in os.listdir(tmp_path) if "predictions" in name]


# -- export ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_saved_model_reproduces_the_predictions(run, cli, expected, tmp_path):
    import tensorflow as tf

    path = tmp_path / "pretrain.saved_model"
    code, out, _ = cli("export", run / "out", "pretrain", "--format", "saved_model", "--output", path)
    assert code == 0, out
    assert f"exported stage 'pretrain' as saved_model (any batch) to {path}" in out
    assert "checked: on 4 samples its outputs are within" in out
    outputs = tf.saved_model.load(str(path)).signatures["serving_default"](input=tf.constant(X))
    np.testing.assert_allclose(outputs["level"].numpy(), expected("pretrain")["level"], atol=1e-5)
    np.testing.assert_allclose(outputs["trend"].numpy(), expected("pretrain")["trend"], atol=1e-5)
    code, _, err = cli("export", run / "out", "pretrain", "--format", "saved_model", "--output", path)
    assert code == 1 and "exists (folder); nothing was written" in err


def _tflite_outputs(path, x: np.ndarray, batch: int | None) -> dict[str, np.ndarray]:
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    step = batch or len(x)
    parts = [runner(input=x[start:start + step]) for start in range(0, len(x), step)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_of_a_gru_model_runs_on_built_in_ops_at_a_batch_of_one(run, cli, expected, tmp_path):
    path = tmp_path / "pretrain.tflite"
    code, out, _ = cli("export", run / "out", "pretrain", "--format", "tflite", "--output", path)
    assert code == 0, out
    assert f"exported stage 'pretrain' as tflite (a batch of 1) to {path}" in out
    assert "note: converted at a fixed batch of 1 (one sample per call)" in out
    note = next(line for line in out.splitlines() if line.startswith("note: converted at a fixed batch of 1"))
    assert "TFLite's built-in ops cannot hold the buffers of a recurrent layer's loop over the time steps (TensorList" \
        in note  # the converter's reason in words, with the ops it named
    assert "loc(" not in note and "'tf." not in note and "error:" not in note
    found = _tflite_outputs(path, X, batch=1)
    np.testing.assert_allclose(found["level"], expected("pretrain")["level"], atol=1e-5)
    np.testing.assert_allclose(found["trend"], expected("pretrain")["trend"], atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_with_tensorflow_ops_takes_any_batch(stage, expected, tmp_path):
    result = stage("single").export(tmp_path / "single.tflite", "tflite", select_tf_ops=True)
    assert (result.batch, result.select_tf_ops) == (None, True)
    assert os.path.getsize(result.path) > 0
    if result.checked == 0:  # TensorFlow 2.21's interpreter has no Flex delegate
        assert result.notes and result.notes[0].startswith("not checked: this TensorFlow's TFLite interpreter")
        return
    found = _tflite_outputs(result.path, X, batch=None)
    np.testing.assert_allclose(found["trend"], expected("single")["trend"], atol=1e-5)
