"""The figure that compares stages on the same validation data, and the per-class table, from a real run.

Checked on the figure's data (``Comparison``) and its matplotlib objects, not its pixels:
the groups, the series equal to each stage's history, the chance level equal to the
majority-class rate of the validation targets, accuracy axes from 0; the per-class
table of ``report.md`` equal to a confusion matrix counted here from the saved model.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from graft.commands.cli import main
from graft.records.rundir import RunDir
from graft.reports.compare import CHANCE_LINE, comparison, draw, read_histories

SPEC = """\
seed: 3
model:
  input_shape: [12, 3]
  extractor: {plugin: gru, params: {layers: [{name: gru_1, units: 4}]}}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
    trend: {plugin: dense, loss: sparse_categorical_crossentropy, metrics: [accuracy], params: {units: 3}}
stages:
  - name: pretrain
    data: &other {source: synthetic, params: {samples: 32, timesteps: 12, channels: 3, seed: 1,
                                              targets: {level: level, trend: trend}}}
    epochs: 2
    batch_size: 16
    callbacks: {checkpoint: {monitor: val_loss, mode: max}}  # keeps epoch 1's weights: its matrix is reported
  - name: transfer
    init: {stage: pretrain}
    data: &shared {source: synthetic, params: {samples: 64, timesteps: 12, channels: 3, seed: 2, frequency: 2.0,
                                               validation_split: 0.25, targets: {level: level, trend: trend}}}
    epochs: 2
    batch_size: 16
  - name: scratch
    data: *shared
    epochs: 2
    batch_size: 16
"""


def _spec() -> str:
    return SPEC


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    (folder / "spec.yaml").write_text(_spec())
    assert main(["run", str(folder / "spec.yaml"), "--out", str(folder / "out")]) == 0
    return folder


def _reports(run):
    run_dir = RunDir(str(run / "out"))
    return [run_dir.read_report(name) for name in ("pretrain", "transfer", "scratch")]


@pytest.mark.slow
def test_stages_on_the_same_validation_data_are_compared_with_the_chance_level_of_each_head(run):
    from graft.plugins.registry import Registry
    from graft.spec.specfile import load_spec

    reports = _reports(run)
    histories = read_histories(str(run / "out"), reports)
    found = comparison(reports, histories)
    (group,) = found.groups  # pretrain trained on other data: alone, so not compared
    assert group.stages == ("transfer", "scratch")
    panels = {(panel.head, panel.metric): panel for panel in group.panels}
    assert set(panels) == {("", "loss"), ("level", "loss"), ("trend", "loss"), ("trend", "accuracy")}
    for series in panels["trend", "accuracy"].series:
        assert series.values == tuple(histories[series.stage]["val_trend_accuracy"])
        assert series.final == histories[series.stage]["val_trend_accuracy"][-1]
    # the chance level: always answering the training data's most frequent class, scored on the validation data
    spec_file = load_spec(str(run / "spec.yaml"), Registry.discover())
    stage = spec_file.spec.stages[1]
    data = Registry.discover().load_data(stage.data.source, stage.data.params, spec_file.base_dir)
    majority = np.bincount(np.asarray(data.y["trend"]).reshape(-1), minlength=3).argmax()
    chance = float(np.mean(np.asarray(data.y_val["trend"]).reshape(-1) == majority))
    assert panels["trend", "accuracy"].chance == pytest.approx(chance)
    assert panels["trend", "loss"].chance is None and panels["level", "loss"].chance is None

    figure = draw(found)
    accuracy = [axes for axes in figure.axes if axes.get_title().startswith("trend: accuracy")]
    (axes,) = accuracy
    assert axes.get_ylim()[0] == 0  # accuracy from 0, however close the values lie
    (line,) = [line for line in axes.get_lines() if line.get_gid() == CHANCE_LINE]
    assert line.get_ydata()[0] == pytest.approx(chance)


@pytest.mark.slow
def test_report_md_shows_the_figure_once_drawn_and_each_heads_recall_per_class(run):
    import graft

    out = run / "out"
    text = (out / "report.md").read_text()
    assert "## Stages compared" in text and "graft report OUT draws it" in text  # graft run draws no plot
    assert main(["report", str(out)]) == 0
    figures = [name for name in os.listdir(out) if name.startswith("compare-") and name.endswith(".png")]
    (figure,) = figures
    text = (out / "report.md").read_text()
    assert f"]({figure})" in text and "- `transfer`, `scratch` on synthetic (seed 2), 16 validation samples" in text

    report = json.loads((out / "scratch" / "report.json").read_text())
    (head,) = report["confusion"]
    spec_file = graft.load_spec(str(run / "spec.yaml"))
    stage = spec_file.spec.stages[2]
    from graft.plugins.registry import Registry

    data = Registry.discover().load_data(stage.data.source, stage.data.params, spec_file.base_dir)
    model = graft.load_stage(out, "scratch").model
    predicted = np.argmax(model.predict(data.x_val, verbose=0)[1], axis=1)
    truth = np.asarray(data.y_val["trend"]).reshape(-1)
    matrix = np.zeros((3, 3), int)
    np.add.at(matrix, (truth, predicted), 1)
    assert report["confusion"]["trend"] == matrix.tolist() and head == "trend"
    # the stage that kept an earlier epoch's weights reports that epoch's matrix, the saved model's
    pretrain = json.loads((out / "pretrain" / "report.json").read_text())
    assert pretrain["kept_epoch"] == 0 and pretrain["epochs_run"] == 2
    first = spec_file.spec.stages[0]
    data = Registry.discover().load_data(first.data.source, first.data.params, spec_file.base_dir)
    predicted = np.argmax(graft.load_stage(out, "pretrain").model.predict(data.x_val, verbose=0)[1], axis=1)
    kept = np.zeros((3, 3), int)
    np.add.at(kept, (np.asarray(data.y_val["trend"]).reshape(-1), predicted), 1)
    assert pretrain["confusion"]["trend"] == kept.tolist()
    section = text[text.index("## 3/3 `scratch`"):]
    assert "### Per class: `trend` (validation)" in section
    for index in range(3):
        samples = matrix[index].sum()
        recall = f"{matrix[index, index] / samples:.4f}" if samples else "-"
        assert f"| {index} | {samples} | {matrix[:, index].sum()} | {recall} |" in section
