"""The callbacks of a stage's YAML beyond early stopping: ``tensorboard``, ``csv_logger`` and ``checkpoint``.

One real run is shared by the module: ``pretrain`` trains the whole (Conv1D) model
for two epochs, ``transfer`` trains in two rounds (progressive: the head on cached
features, then ``conv_2`` with it).  Both stages log to TensorBoard and CSV and
keep a checkpoint by the *highest* validation loss, so the kept epoch is not the
last one and restoring it is visible in the weights.  An observer copies every
layer's weights at the end of every epoch (after the checkpoint has seen it);
the published weights must equal the kept epoch's copy bit for bit.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from graft.base.backend import import_keras
from graft.base.problems import SpecError
from graft.model.weights import FILENAME, read_weights, snapshot
from graft.records.rundir import RunDir, RunError
from graft.runs.observer import RunObserver
from graft.runs.resume import stage_fingerprints
from graft.runs.stagelogs import training_folder
from graft.runs.stages import RunInterrupted, run_spec
from graft.spec.callbacks import Checkpoint
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC
from tests.observers import FitSpy, bitwise, read_report

pytest.importorskip("tensorboard")

CALLBACKS = """\
    callbacks:
      tensorboard: {histogram_freq: 1}
      csv_logger: {}
      checkpoint: {monitor: val_loss, mode: max}
"""
DATA = (
    "data: {source: synthetic, params: {samples: 48, timesteps: 12, channels: 3, seed: %d, validation_split: 0.25, "
    "targets: {level: level}}}"
)
PRETRAIN = f"""\
seed: 3
model:
  input_shape: [12, 3]
  extractor:
    plugin: conv1d
    params:
      layers:
        - {{name: conv_1, filters: 4, kernel_size: 3}}
        - {{name: conv_2, filters: 4, kernel_size: 3}}
  heads:
    level: {{plugin: dense, loss: mse, metrics: [mae], params: {{units: 1}}}}
stages:
  - name: pretrain
    {DATA % 1}
    epochs: 2
    batch_size: 16
{CALLBACKS}"""
SPEC = PRETRAIN + f"""\
  - name: transfer
    init: {{stage: pretrain}}
    {DATA % 2}
    epochs: 2
    batch_size: 16
    policy: {{plugin: progressive, params: {{max_rounds: 2}}}}
{CALLBACKS}"""


class EpochWeights(RunObserver):
    """Every layer's weights of the stage's model at the end of every epoch, one list per ``fit``."""

    def __init__(self) -> None:
        self.fits: list[list[dict]] = []
        self.built = None

    def before_fit(self, stage, round, built) -> None:
        self.built = built
        self.fits.append([])

    def keras_callbacks(self) -> list:
        spy = self

        class Capture(import_keras().callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                spy.fits[-1].append(snapshot(spy.built.layers))

        return [Capture()]


class Run:
    def __init__(self, out: str, spy: EpochWeights, log: list[str]) -> None:
        self.out, self.spy, self.log = out, spy, log

    def history(self, stage: str) -> dict:
        with open(os.path.join(self.out, stage, "history.json"), encoding="utf-8") as handle:
            return json.load(handle)

    def weights(self, stage: str) -> dict:
        return read_weights(os.path.join(self.out, stage, FILENAME))


@pytest.fixture(scope="module")
def callbacks_run(tmp_path_factory, registry) -> Run:
    folder = tmp_path_factory.mktemp("callbacks")
    (folder / "spec.yaml").write_text(SPEC)
    out = folder / "out"
    (out / "pretrain.training").mkdir(parents=True)  # left by a run that was killed while training
    (out / "pretrain.training" / "stale.csv").write_text("from a killed run\n")
    spy, log = EpochWeights(), []
    run_spec(load_spec(str(folder / "spec.yaml"), registry), registry, str(out), log=log.append, observer=spy)
    return Run(str(out), spy, log)


def argbest(values: list[float], highest: bool) -> int:
    best = max(values) if highest else min(values)
    return values.index(best)  # the first of equal values: a later one must improve on it


# -- checkpoint ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_publishes_the_best_epochs_weights_bitwise(callbacks_run):
    history, report = callbacks_run.history("pretrain"), read_report(callbacks_run.out, "pretrain")
    kept = argbest(history["val_loss"], highest=True)
    assert kept != len(history["val_loss"]) - 1, "the highest val_loss is the last: restoring would show nothing"
    assert report["kept_epoch"] == kept
    epochs = callbacks_run.spy.fits[0]
    assert len(epochs) == 2
    published = callbacks_run.weights("pretrain")
    assert list(published) == list(epochs[kept])
    assert all(bitwise(published[name], epochs[kept][name]) for name in published)
    assert not all(bitwise(published[name], epochs[-1][name]) for name in published)
    assert report["final_metrics"] == {key: values[kept] for key, values in history.items()}
    assert f"   checkpoint: kept epoch {kept + 1}/2 (val_loss {history['val_loss'][kept]:.4f})" in callbacks_run.log


@pytest.mark.slow
def test_checkpoint_in_rounds_keeps_each_rounds_best_epoch_and_the_best_round(callbacks_run):
    history, report = callbacks_run.history("transfer"), read_report(callbacks_run.out, "transfer")
    rounds, fits = history["rounds"], callbacks_run.spy.fits[1:]
    assert len(rounds) == len(fits) == len(report["rounds"]) == 2
    assert [row["features_cached"] for row in report["rounds"]] == [True, False]  # round 0: heads on features
    for row, logged in zip(report["rounds"], rounds, strict=True):
        assert row["kept_epoch"] == argbest(logged["val_loss"], highest=True)
        assert row["val_loss"] == logged["val_loss"][row["kept_epoch"]]  # rounds compare their kept epochs
    kept_round = report["kept_round"]
    kept_epoch = report["rounds"][kept_round]["kept_epoch"]
    assert report["kept_epoch"] == kept_epoch
    assert report["final_metrics"] == {key: values[kept_epoch] for key, values in rounds[kept_round].items()}
    published = callbacks_run.weights("transfer")
    at_kept = fits[kept_round][kept_epoch]
    assert all(bitwise(published[name], at_kept[name]) for name in published)
    assert bitwise(published["conv_1"], callbacks_run.weights("pretrain")["conv_1"])  # frozen in both rounds


# -- early stopping's restored weights ------------------------------------------------------------------------


@pytest.mark.slow
def test_early_stopping_that_restores_an_earlier_epoch_reports_that_epoch(tmp_path, registry):
    # min_delta 100: no epoch improves on the first, so Keras stops after epoch 2 and restores epoch 1's weights
    text = PRETRAIN.replace(CALLBACKS, "    callbacks: {early_stopping: {patience: 1, min_delta: 100}}\n")
    (tmp_path / "spec.yaml").write_text(text.replace("epochs: 2", "epochs: 4"))
    spy, log = EpochWeights(), []
    run_spec(load_spec(str(tmp_path / "spec.yaml"), registry), registry, str(tmp_path / "out"), log=log.append,
             observer=spy)
    run = Run(str(tmp_path / "out"), spy, log)
    history, report = run.history("pretrain"), read_report(run.out, "pretrain")
    assert len(history["val_loss"]) == 2 and report["kept_epoch"] == 0
    published, epochs = run.weights("pretrain"), spy.fits[0]
    assert all(bitwise(published[name], epochs[0][name]) for name in published)
    assert history["val_loss"][1] != history["val_loss"][0]  # epoch 2's weights were others (Keras 2 restores
    # them before an observer sees the epoch end, so they are not compared here)
    assert report["final_metrics"] == {key: values[0] for key, values in history.items()}
    assert f"   early_stopping: kept epoch 1/2 (val_loss {history['val_loss'][0]:.4f})" in log


def test_checkpoint_mode_auto_maximizes_accuracies_only():
    assert Checkpoint(monitor="val_trend_accuracy").maximize
    assert not Checkpoint(monitor="val_loss").maximize and not Checkpoint(monitor="val_level_mae").maximize
    assert not Checkpoint(monitor="val_trend_accuracy", mode="min").maximize
    assert Checkpoint(monitor="loss", mode="max").maximize


# -- csv_logger ---------------------------------------------------------------------------------------


def rows_of(out: str, stage: str) -> list[dict]:
    with open(os.path.join(out, stage, "history.csv"), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_csv_has_one_row_per_epoch_with_the_historys_values(callbacks_run):
    rows, history = rows_of(callbacks_run.out, "pretrain"), callbacks_run.history("pretrain")
    assert list(rows[0]) == ["round", "epoch", *sorted(history)]
    assert [(row["round"], row["epoch"]) for row in rows] == [("0", "0"), ("0", "1")]
    assert {key: [float(row[key]) for row in rows] for key in history} == history  # exactly, not rounded


@pytest.mark.slow
def test_csv_of_a_stage_in_rounds_has_a_row_per_epoch_of_every_round(callbacks_run):
    rows, rounds = rows_of(callbacks_run.out, "transfer"), callbacks_run.history("transfer")["rounds"]
    expected = [
        (str(number), str(epoch)) for number, logged in enumerate(rounds) for epoch in range(len(logged["loss"]))
    ]
    assert [(row["round"], row["epoch"]) for row in rows] == expected
    for number, logged in enumerate(rounds):
        mine = [row for row in rows if row["round"] == str(number)]
        assert {key: [float(row[key]) for row in mine] for key in logged} == logged


# -- tensorboard ---------------------------------------------------------------------------------------


def events(folder: str) -> tuple[dict[str, list[float]], set[str]]:
    """The scalars (tag -> value per step) and the plugins of every event file in ``folder``."""
    import tensorflow as tf

    scalars: dict[str, dict[int, float]] = {}
    plugins = set()
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugins.add(value.metadata.plugin_data.plugin_name)
                if value.tag.startswith("epoch_"):
                    scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return {tag: [steps[step] for step in sorted(steps)] for tag, steps in scalars.items()}, plugins


def float32(values: list[float]) -> list[float]:
    import numpy as np

    return [float(np.float32(value)) for value in values]


@pytest.mark.slow
def test_tensorboard_logs_are_published_in_the_stage_folder(callbacks_run):
    history = callbacks_run.history("pretrain")
    train, plugins = events(os.path.join(callbacks_run.out, "pretrain", "tensorboard", "train"))
    validation, _ = events(os.path.join(callbacks_run.out, "pretrain", "tensorboard", "validation"))
    assert train["epoch_loss"] == float32(history["loss"])
    assert validation["epoch_loss"] == float32(history["val_loss"])
    assert "histograms" in plugins  # histogram_freq: 1


@pytest.mark.slow
def test_tensorboard_of_a_stage_in_rounds_has_a_run_per_round(callbacks_run):
    rounds = callbacks_run.history("transfer")["rounds"]
    folder = os.path.join(callbacks_run.out, "transfer", "tensorboard")
    assert sorted(os.listdir(folder)) == [f"round_{number}" for number in range(len(rounds))]
    for number, logged in enumerate(rounds):
        train, _ = events(os.path.join(folder, f"round_{number}", "train"))
        assert train["epoch_loss"] == float32(logged["loss"])


# -- publication ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_training_folder_is_gone_and_nothing_stale_was_published(callbacks_run):
    assert not glob.glob(os.path.join(callbacks_run.out, "*.training"))
    assert not glob.glob(os.path.join(callbacks_run.out, "**", "stale.csv"), recursive=True)


@pytest.mark.slow
def test_log_folders_are_not_digested_but_the_csv_is(callbacks_run, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(callbacks_run.out, out)
    report = RunDir(out).read_report("pretrain")
    assert set(report.files) == {"history.csv", "history.json", "model.keras", FILENAME}
    for path in glob.glob(os.path.join(out, "pretrain", "tensorboard", "*", "events.*")):
        with open(path, "ab") as handle:  # an edited log leaves the stage trusted
            handle.write(b"edited")
    shutil.rmtree(os.path.join(out, "transfer", "tensorboard"))  # and so does a pruned one
    RunDir(out).read_report("pretrain")
    RunDir(out).read_report("transfer")
    with open(os.path.join(out, "pretrain", "history.csv"), "a", encoding="utf-8") as handle:
        handle.write("0,2,1,1,1,1\n")
    with pytest.raises(RunError, match=r"history.csv is not the file this stage wrote"):
        RunDir(out).read_report("pretrain")


class CtrlCAfterFirstEpoch(RunObserver):
    """Presses Ctrl-C (a real SIGINT to this process) once the first epoch has been logged."""

    def __init__(self, training: str) -> None:
        self.training, self.seen = training, []

    def keras_callbacks(self) -> list:
        spy = self

        class Press(import_keras().callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                spy.seen = sorted(os.listdir(spy.training))
                signal.raise_signal(signal.SIGINT)

        return [Press()]


@pytest.mark.slow
def test_ctrl_c_while_training_leaves_no_training_folder_and_no_stage(tmp_path, registry):
    (tmp_path / "spec.yaml").write_text(PRETRAIN)
    out = tmp_path / "out"
    spy = CtrlCAfterFirstEpoch(str(out / "pretrain.training"))
    with pytest.raises(RunInterrupted, match="interrupted during stage 'pretrain'"):
        run_spec(load_spec(str(tmp_path / "spec.yaml"), registry), registry, str(out), log=lambda line: None,
                 observer=spy)
    assert spy.seen == ["history.csv", "tensorboard"]  # written while training, where tensorboard --logdir sees it
    assert [name for name in os.listdir(out) if name.startswith("pretrain")] == []


def test_the_training_folder_of_a_worker_other_than_the_chief_is_outside_the_run_directory(tmp_path):
    run_dir = RunDir(str(tmp_path / "out"))
    with training_folder(run_dir, "pretrain", chief=False, needed=True) as folder:
        assert not os.path.abspath(folder).startswith(str(tmp_path))
        (Path(folder) / "history.csv").write_text("round,epoch\n")
    assert not os.path.exists(folder) and not os.path.exists(run_dir.path)
    with training_folder(run_dir, "pretrain", chief=True, needed=False) as folder:
        assert folder is None
    assert not os.path.exists(run_dir.path)


def test_a_run_made_before_these_callbacks_existed_keeps_its_fingerprints(load):
    """Computed with keras-graft before tensorboard, csv_logger and checkpoint: unset, they change nothing."""
    assert stage_fingerprints(load(TINY_GRU_SPEC)) == ["e8b72fd002048d85", "9a335b5d89b5a03a"]
    early = TINY_GRU_SPEC.replace(
        "    batch_size: 16\n", "    batch_size: 16\n    callbacks: {early_stopping: {patience: 1}}\n", 1
    )
    assert stage_fingerprints(load(early)) == ["bcc4805bcdb4a0b5", "eddaad649f95cde7"]
    checkpoint = early.replace("{early_stopping: {patience: 1}}", "{early_stopping: {patience: 1}, checkpoint: {}}")
    assert stage_fingerprints(load(checkpoint))[0] != "bcc4805bcdb4a0b5"


# -- bad options -----------------------------------------------------------------------------------------


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), start=1) if needle in line)


def problems(write_spec, registry, callbacks: str) -> tuple[str, list[str]]:
    """The problem lines of TINY_GRU_SPEC with ``callbacks`` (one flow mapping) on its first stage."""
    text = TINY_GRU_SPEC.replace("    batch_size: 16\n", f"    batch_size: 16\n    callbacks: {callbacks}\n", 1)
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(text), registry)
    return text, caught.value.lines


BAD_OPTIONS = {
    "{tensorboard: {histogram_freq: -1}}": "tensorboard.histogram_freq (line {}): must be 0 or more, got -1",
    "{tensorboard: {update_freq: 0}}":
        "tensorboard.update_freq (line {}): must be 'epoch' or a number of batches of 1 or more, got 0",
    "{tensorboard: {update_freq: batch}}":
        "tensorboard.update_freq (line {}): expected an integer or one of epoch, got str 'batch'",
    "{tensorboard: {write_images: true}}":
        "tensorboard.write_images (line {}): unknown key 'write_images'; expected one of: histogram_freq, "
        "update_freq, write_graph",
    "{csv_logger: {separator: '|'}}": "csv_logger.separator (line {}): '|' is not one of:",
    "{checkpoint: {mode: maximum}}":
        "checkpoint.mode (line {}): 'maximum' is not one of: auto, min, max — did you mean 'max'?",
    "{checkpoint: {monitor: val_los}}": "checkpoint.monitor (line {}): 'val_los' is not logged by this stage;",
    "{checkpoint: 3}": "checkpoint (line {}): expected",
}


@pytest.mark.parametrize("callbacks", BAD_OPTIONS)
def test_bad_options_are_errors_at_their_yaml_line(callbacks, write_spec, registry):
    text, lines = problems(write_spec, registry, callbacks)
    assert len(lines) == 1
    expected = "stages[0].callbacks." + BAD_OPTIONS[callbacks].format(line_of(text, "callbacks:"))
    assert lines[0].startswith(expected), lines[0]


def test_tensorboard_without_the_tensorboard_package_is_an_error_at_its_line(write_spec, registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as on TensorFlow 2.16+ without it
    text, lines = problems(write_spec, registry, "{tensorboard: {}}")
    assert lines == [
        f"stages[0].callbacks.tensorboard (line {line_of(text, 'callbacks:')}): needs the tensorboard package, "
        "which is not installed: pip install tensorboard"
    ]


def test_checkpoint_on_val_loss_without_validation_data_stops_before_training(write_spec, tmp_path, registry):
    text = PRETRAIN.replace("validation_split: 0.25", "validation_split: 0.0")
    spy = FitSpy()
    with pytest.raises(SpecError) as caught:
        run_spec(load_spec(write_spec(text), registry), registry, str(tmp_path / "out"), log=lambda line: None,
                 observer=spy)
    assert caught.value.lines == [
        f"stages[0].callbacks.checkpoint.monitor (line {line_of(text, 'checkpoint:')}): 'val_loss' needs "
        "validation data but synthetic (seed 1) has none; set validation_split in the data params"
    ]
    assert spy.calls == [] and not (tmp_path / "out").exists()
