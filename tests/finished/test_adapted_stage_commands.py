"""``graft evaluate``, ``predict`` and ``export`` on a finished stage that trained low-rank adapters.

The stage publishes the merged model (``W + (alpha/r)·A·B``); every command must serve exactly that.  The
merged model is rebuilt here by hand, with numpy, from the base stage's weights and the adapters file, and
every command's outputs are checked against it.  One finished run is shared (``adapted_gru_run``).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graft
from graft.commands.cli import main
from graft.model.adapterfile import FILENAME as ADAPTERS
from graft.model.adapterfile import read_adapters
from graft.model.weights import FILENAME, read_weights

pytestmark = pytest.mark.slow

X = np.random.default_rng(11).normal(size=(21, 12, 3)).astype(np.float32)
TREND = np.random.default_rng(12).integers(0, 3, size=len(X))


@pytest.fixture(scope="module")
def merged(adapted_gru_run):
    """The pretrain stage's model with, computed here, each adapted kernel plus ``(alpha/r)·A·B`` and the
    trained head's weights from the adapters file."""
    out = adapted_gru_run / "out"
    base = read_weights(str(out / "pretrain" / FILENAME))
    adapters = read_adapters(str(out / "adapters" / ADAPTERS))
    assert sorted(adapters.adapters) == ["gru_1", "gru_2"] and sorted(adapters.trained) == ["trend"]
    weights = {name: [np.array(value) for value in values] for name, values in base.items()}
    for name, adapter in adapters.adapters.items():
        for kernel, position in adapter.positions.items():
            a, b = adapter.kernels[kernel]
            assert np.any(b)  # the adapter trained
            weights[name][position] = weights[name][position] + (adapter.alpha / adapter.rank) * (a @ b)
    weights["trend"] = list(adapters.trained["trend"])
    stage = graft.load_stage(out, "pretrain")
    for name, values in weights.items():
        stage.layer(name).set_weights(values)
    return stage


@pytest.fixture(scope="module")
def expected(merged) -> np.ndarray:
    return np.asarray(merged.model.predict(X, batch_size=32, verbose=0))


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_published_model_is_plain_and_holds_the_merged_weights(adapted_gru_run, merged):
    stage = graft.load_stage(adapted_gru_run / "out", "adapters")
    assert [type(stage.layer(name)).__name__ for name in ("gru_1", "gru_2", "trend")] == ["GRU", "GRU", "Dense"]
    for name in ("gru_1", "gru_2", "trend"):
        for got, want in zip(stage.layer(name).get_weights(), merged.layer(name).get_weights(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_predict_gives_the_merged_models_outputs(adapted_gru_run, expected, capsys, tmp_path):
    np.savez(tmp_path / "x.npz", input=X)
    code, out, err = cli(capsys, "predict", adapted_gru_run / "out", "adapters", tmp_path / "x.npz")
    assert code == 0, err
    with np.load(tmp_path / "x.adapters-predictions.npz") as predictions:
        assert predictions.files == ["trend"]
        np.testing.assert_allclose(predictions["trend"], expected, atol=1e-6)
    # the base with the adapters file (one base, many tasks) predicts the same
    rebuilt = graft.load_stage(adapted_gru_run / "out", "pretrain",
                               adapter=adapted_gru_run / "out" / "adapters" / ADAPTERS)
    np.testing.assert_allclose(rebuilt.predict(X)["trend"], expected, atol=1e-6)


def test_evaluate_gives_the_merged_models_loss_and_accuracy(adapted_gru_run, merged, expected, capsys, tmp_path):
    np.savez(tmp_path / "labelled.npz", input=X, trend=TREND)
    code, out, err = cli(capsys, "evaluate", adapted_gru_run / "out", "adapters", "--data",
                         tmp_path / "labelled.npz", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    loss = float(np.mean(-np.log(expected[np.arange(len(X)), TREND])))
    accuracy = float(np.mean(np.argmax(expected, axis=1) == TREND))
    assert (result["stage"], result["samples"]) == ("adapters", len(X))
    assert result["heads"]["trend"]["loss"] == pytest.approx(loss, rel=1e-5)
    assert result["heads"]["trend"]["accuracy"] == pytest.approx(accuracy)
    # on the stage's own validation data: the merged model's numbers are what the stage reported
    on_own = graft.load_stage(adapted_gru_run / "out", "adapters").evaluate()
    report = json.loads((adapted_gru_run / "out" / "adapters" / "report.json").read_text())
    assert on_own.loss == pytest.approx(report["final_metrics"]["val_loss"], rel=1e-5)


def test_a_saved_model_export_gives_the_merged_models_outputs(adapted_gru_run, expected, capsys, tmp_path):
    import tensorflow as tf

    path = tmp_path / "adapters.saved_model"
    code, out, err = cli(capsys, "export", adapted_gru_run / "out", "adapters", "--format", "saved_model",
                         "--output", path)
    assert code == 0, err
    assert "checked: on 4 samples its outputs are within" in out
    outputs = tf.saved_model.load(str(path)).signatures["serving_default"](input=tf.constant(X))
    np.testing.assert_allclose(outputs["trend"].numpy(), expected, atol=1e-5)
    assert not [name for name in os.listdir(tmp_path) if name != "adapters.saved_model"]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_a_tflite_export_gives_the_merged_models_outputs(adapted_gru_run, expected, capsys, tmp_path):
    import tensorflow as tf

    path = tmp_path / "adapters.tflite"
    code, out, err = cli(capsys, "export", adapted_gru_run / "out", "adapters", "--format", "tflite",
                         "--output", path)
    assert code == 0, err
    runner = tf.lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    found = np.concatenate([runner(input=X[row:row + 1])["trend"] for row in range(len(X))])
    np.testing.assert_allclose(found, expected, atol=1e-5)


def test_the_base_with_the_adapters_file_evaluates_as_the_merged_model_only_on_data_given(
        adapted_gru_run, expected, tmp_path):
    path = adapted_gru_run / "out" / "adapters" / ADAPTERS
    rebuilt = graft.load_stage(adapted_gru_run / "out", "pretrain", adapter=path)
    found = rebuilt.evaluate({"input": X, "trend": TREND})
    loss = float(np.mean(-np.log(expected[np.arange(len(X)), TREND])))
    assert found.heads["trend"].loss == pytest.approx(loss, rel=1e-5)
    # its own validation data would be the base's task (pretrain's), not the adapters': refused, not mislabelled
    with pytest.raises(graft.GraftError, match=r"^stage 'pretrain' with the adapters .*adapters\.graft\.npz: its own "
                       r"validation data is the base stage's task, not the one the adapters were trained for; pass "
                       r"the data to evaluate on"):
        rebuilt.evaluate()
