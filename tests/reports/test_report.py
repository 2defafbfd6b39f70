"""``curves.png`` of every stage and ``report.md`` of a run (``graft.reports.curves``, ``graft.reports.markdown``,
``graft.reports.writer``, ``graft report``), on a real tiny run: two heads, then a progressive stage in rounds."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from graft.commands.cli import main
from graft.records.rundir import RunDir
from graft.reports.curves import FILENAME as CURVES
from graft.reports.curves import PANEL_SIZE, ROUND_LINE, curves_of, draw
from graft.reports.markdown import FILENAME, number, written_stages
from graft.reports.writer import NOT_DRAWN
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC

STAGES = ["pretrain", "transfer"]
PROGRESSIVE_SPEC = TINY_GRU_SPEC.replace(
    "policy:\n      plugin: layers\n      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}",
    "policy: {plugin: progressive, params: {max_rounds: 2, patience: 5}}",
)
ONE_STAGE_SPEC = TINY_GRU_SPEC.split("  - name: transfer")[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory, registry):
    """pretrain (1 epoch), then transfer trained in 2 progressive rounds of 1 epoch; the run's log; what the run
    left (before ``graft report``): its report.md and the files of each stage."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "spec.yaml").write_text(PROGRESSIVE_SPEC)
    spec_file = load_spec(str(folder / "spec.yaml"), registry)
    log: list[str] = []
    out = str(folder / "out")
    run_spec(spec_file, registry, out, log=log.append)
    files = {stage: sorted(os.listdir(os.path.join(out, stage))) for stage in STAGES}
    return spec_file, out, log, report_md(out), files


@pytest.fixture(scope="module")
def finished(ran):
    """The run, its curves drawn by ``graft report``."""
    spec_file, out, log, _, _ = ran
    assert main(["report", out]) == 0
    return spec_file, out, log


def report_md(out: str) -> str:
    with open(os.path.join(out, FILENAME), encoding="utf-8") as handle:
        return handle.read()


# -- curves: which panels, from a Keras history --------------------------------------------------


TWO_HEADS = {
    "level_loss": [3.0, 2.0], "loss": [4.0, 3.0], "trend_accuracy": [0.3, 0.4], "trend_loss": [1.0, 0.9],
    "val_level_loss": [3.1, 2.1], "val_loss": [4.1, 3.1],
    "val_trend_accuracy": [0.2, 0.5], "val_trend_loss": [1.1, 1.0],
}


def titles(curves) -> list[list[str]]:
    return [[panel.title for panel in row] for row in curves.rows]


def test_two_heads_give_a_total_row_and_a_row_per_head_with_its_loss_first():
    curves = curves_of("s", TWO_HEADS, ["level", "trend"])
    assert titles(curves) == [["total: loss"], ["level: loss"], ["trend: loss", "trend: accuracy"]]
    accuracy = curves.rows[2][1]
    assert accuracy.train == (0.3, 0.4) and accuracy.validation == (0.2, 0.5)
    figure = draw(curves)
    assert [axes.get_title() for axes in figure.axes] == [panel.title for panel in curves.panels]
    assert all(len(axes.get_lines()) == 2 for axes in figure.axes)  # training and validation
    assert list(figure.get_size_inches()) == pytest.approx([2 * PANEL_SIZE[0], 3 * PANEL_SIZE[1] + 0.5])


def test_a_head_named_like_the_start_of_another_owns_only_its_own_keys():
    history = {"loss": [1.0], "level_loss": [0.5], "level_2_loss": [0.5], "level_2_mae": [0.1]}
    assert titles(curves_of("s", history, ["level", "level_2"])) == [
        ["total: loss"], ["level: loss"], ["level_2: loss", "level_2: mae"]
    ]


def test_one_head_has_one_row_and_what_belongs_to_no_head_a_row_of_its_own():
    history = {"accuracy": [0.5], "loss": [1.0], "learning_rate": [0.001], "val_accuracy": [0.6], "val_loss": [0.9]}
    curves = curves_of("s", history, ["label"])
    assert titles(curves) == [["label: loss", "label: accuracy"], ["other: learning_rate"]]
    assert curves.rows[1][0].validation is None
    assert len(draw(curves).axes) == 3


def test_rounds_are_laid_end_to_end_with_a_line_where_each_round_starts():
    rounds = {"rounds": [dict(TWO_HEADS), {key: values[:1] for key, values in TWO_HEADS.items()}, dict(TWO_HEADS)]}
    del rounds["rounds"][1]["val_trend_accuracy"]  # a key one round lacks is a gap, not a shift
    curves = curves_of("s", rounds, ["level", "trend"], [("heads", False), ("+ gru_3", True), ("+ gru_2", False)])
    assert [(mark.start, mark.epochs, mark.label, mark.kept) for mark in curves.rounds] == [
        (1, 2, "r0 heads", False), (3, 1, "r1 + gru_3", True), (4, 2, "r2 + gru_2", False)
    ]
    validation = curves.rows[2][1].validation
    assert validation[:2] == (0.2, 0.5) and math.isnan(validation[2]) and validation[3:] == (0.2, 0.5)
    for axes in draw(curves).axes:
        assert sorted(line.get_xdata()[0] for line in axes.get_lines() if line.get_gid() == ROUND_LINE) == [2.5, 3.5]


@pytest.mark.parametrize("history", [[1, 2], {"loss": "high"}, {"loss": [1, None]}, {"rounds": []}, {"loss": [True]}])
def test_what_is_not_a_keras_history_is_a_value_error(history):
    with pytest.raises(ValueError):
        curves_of("s", history, ["level"])


# -- a real run ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_graft_run_draws_no_curves_and_its_report_md_says_how_to_draw_them(ran):
    _, out, log, text, files = ran
    assert all(CURVES not in names for names in files.values())  # nothing the user waits for is spent on plots
    for stage in STAGES:
        assert f"No curves.png: {NOT_DRAWN}." in text.split(f"`{stage}`", 1)[1]
    assert f"   curves.png (loss and metrics per epoch) of pretrain, transfer: graft report {out} draws them" in log


@pytest.mark.slow
def test_graft_report_draws_every_stage_curves_png_from_its_history(finished):
    from matplotlib.image import imread

    _, out, _ = finished
    for stage in STAGES:
        path = os.path.join(out, stage, CURVES)
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
        # two columns (trend: loss, accuracy), three rows (total, level, trend), 100 dpi; matplotlib
        # versions round the figure's pixel size differently (3.10: 769 rows, 3.11: 770)
        height, width = imread(path).shape[:2]
        assert abs(height - 100 * (3 * PANEL_SIZE[1] + 0.5)) <= 1 and abs(width - 100 * 2 * PANEL_SIZE[0]) <= 1
        report = RunDir(out).read_report(stage)
        assert CURVES not in report.files  # a view of history.json (digested): not what the stage is trusted by


@pytest.mark.slow
def test_report_md_tells_each_stage_its_frozen_layers_and_final_metrics_from_report_json(finished):
    _, out, log = finished
    text = report_md(out)
    assert f"report: {os.path.join(out, FILENAME)}" in log[-1]
    assert written_stages(text) == STAGES
    pretrain, transfer = (RunDir(out).read_report(stage) for stage in STAGES)
    before, after = text.split("## 2/2 `transfer`")
    assert "## 1/2 `pretrain`" in before
    assert "- frozen: none\n" in before
    assert "- frozen in round 0: `gru_1`, `gru_2`, `gru_3`\n" in after
    assert "- trains in round 0: `level`, `trend`\n" in after
    everything = "`gru_1`, `gru_2`, `gru_3`, `level`, `trend`"
    assert f"- weights loaded from stage pretrain (equal to it bitwise): {everything}" in after
    assert f"- pretrain → transfer: {everything}" in after
    for part, report in [(before, pretrain), (after, transfer)]:
        final = report.final_metrics
        for name in ("loss", "level_loss", "trend_loss", "trend_accuracy"):
            assert f"| {name} | {number(final[name])} | {number(final['val_' + name])} |" in part
        assert f"![loss and metrics per epoch, stage {report.stage}]({report.stage}/{CURVES})" in part
        assert f"in {report.wall_time_s:.1f} s" in part
        assert report.seed is not None and f"; seed {report.seed}" in part
    assert pretrain.seed != transfer.seed  # the spec's seed plus each stage's index
    assert pretrain.spec_file is not None and f"Spec: `{pretrain.spec_file}`." in before
    if pretrain.versions.commit is not None:  # run from a git checkout
        assert f"commit {pretrain.versions.commit}" in before
    assert len(transfer.rounds) == 2
    for result in transfer.rounds:
        assert f"| {result.round} | {result.label} | {result.trainable_params:,} | {number(result.val_loss)} |" in after


@pytest.mark.slow
def test_graft_report_rebuilds_report_md_and_missing_curves_identically(finished, capsys):
    _, out, _ = finished
    original = report_md(out)
    curves = os.path.join(out, "transfer", CURVES)
    os.remove(os.path.join(out, FILENAME))
    os.remove(curves)

    assert main(["report", out]) == 0
    assert report_md(out) == original
    assert os.path.getsize(curves) > 0
    assert main(["report", out]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{os.path.join(out, FILENAME)}: up to date (pretrain, transfer)"


@pytest.mark.slow
@pytest.mark.parametrize("foreign", ["my own notes\n", "edited"])
def test_a_report_md_keras_graft_did_not_write_is_never_replaced_without_force(finished, registry, foreign, capsys):
    spec_file, out, _ = finished
    path = os.path.join(out, FILENAME)
    original = report_md(out)
    text = original + "\nmy remark\n" if foreign == "edited" else foreign
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)

    assert main(["report", out]) == 1
    assert "was not written by keras-graft, or was edited since" in capsys.readouterr().err
    log: list[str] = []
    run_spec(spec_file, registry, out, log=log.append)  # every stage finished: the run goes on, the file stays
    assert any(line.startswith("   report.md not written: ") and "--force" in line for line in log)
    assert report_md(out) == text

    assert main(["report", out, "--force"]) == 0
    assert report_md(out) == original


def test_graft_report_of_a_folder_without_stages_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 1
    assert "holds no finished stage" in capsys.readouterr().err


@pytest.mark.slow
def test_graft_report_imports_neither_tensorflow_nor_matplotlib_when_the_curves_are_there(finished):
    _, out, _ = finished
    code = (
        "import sys; from graft.commands.cli import main; rc = main(['report', sys.argv[1]]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'matplotlib'))); "
        "sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


@pytest.mark.slow
def test_without_matplotlib_a_stage_is_published_and_graft_report_says_why_it_draws_nothing(
    tmp_path, registry, monkeypatch, capsys
):
    (tmp_path / "spec.yaml").write_text(ONE_STAGE_SPEC)
    spec_file = load_spec(str(tmp_path / "spec.yaml"), registry)
    out = str(tmp_path / "out")
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
        patched.setitem(sys.modules, "matplotlib.figure", None)
        run_spec(spec_file, registry, out, log=lambda _: None)
        report = RunDir(out).read_report("pretrain")  # published whole, verified
        assert set(report.files) == {"history.json", "model.keras", "weights.graft.npz"}
        capsys.readouterr()
        assert main(["report", out]) == 0

    assert not os.path.exists(os.path.join(out, "pretrain", CURVES))
    assert "no curves.png for stage 'pretrain': matplotlib cannot be imported" in capsys.readouterr().out
    assert "No curves.png: matplotlib cannot be imported" in report_md(out)

    assert main(["report", out]) == 0  # matplotlib back: drawn, and report.md (keras-graft's) rewritten
    assert os.path.isfile(os.path.join(out, "pretrain", CURVES))
    assert "![loss and metrics per epoch, stage pretrain](pretrain/curves.png)" in report_md(out)


@pytest.mark.slow
def test_report_md_leaves_no_temporary_file_behind(finished):
    _, out, _ = finished
    assert [name for name in os.listdir(out) if ".tmp-" in name] == []
    assert [name for stage in STAGES for name in os.listdir(os.path.join(out, stage)) if ".tmp-" in name] == []
