"""``graft run`` trusts nothing on disk and loses nothing: damaged stages, a busy or unwritable
``--out``, Ctrl-C, and cross-entropy heads on linear outputs.  All training is real."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from graft.base.backend import import_keras
from graft.model.losses import compile_arguments, head_losses
from graft.planning.stageplan import build_stage_model
from graft.records.rundir import RunDir, RunDirLocked, RunError
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC
from tests.observers import FitSpy
from tests.runs.test_runner import PRETRAIN_ONLY, tree


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry):
    """A finished one-stage run: its spec file and out dir."""
    folder = tmp_path_factory.mktemp("finished")
    (folder / "spec.yaml").write_text(PRETRAIN_ONLY)
    spec_file = load_spec(str(folder / "spec.yaml"), registry)
    run_spec(spec_file, registry, str(folder / "out"), log=lambda _: None)
    return spec_file, str(folder / "out")


@pytest.fixture
def damaged_copy(finished, tmp_path):
    def copy() -> str:
        out = str(tmp_path / "out")
        shutil.copytree(finished[1], out)
        return out

    return copy


@pytest.mark.slow
def test_a_truncated_weights_file_of_a_finished_stage_stops_the_run_before_training(
    finished, damaged_copy, registry
):
    out = damaged_copy()
    weights = os.path.join(out, "pretrain", "weights.graft.npz")
    with open(weights, "r+b") as handle:
        handle.truncate(100)
    before, spy = tree(out), FitSpy()
    with pytest.raises(RunError) as caught:
        run_spec(finished[0], registry, out, log=lambda _: None, observer=spy)
    assert f"{weights} is not the file this stage wrote" in str(caught.value)
    assert "--restart-from pretrain" in str(caught.value)
    assert spy.calls == [] and tree(out) == before


@pytest.mark.slow
def test_restart_from_replaces_a_damaged_stage_and_keeps_it_aside(finished, damaged_copy, registry):
    out = damaged_copy()
    with open(os.path.join(out, "pretrain", "report.json"), "w") as handle:
        handle.write('{"stage": "pretr')
    spy = FitSpy()
    run_spec(finished[0], registry, out, log=lambda _: None, observer=spy, restart_from="pretrain")
    assert len(spy.calls) == 1
    assert RunDir(out).read_report("pretrain").fingerprint
    assert any(name.startswith("pretrain.replaced-") for name in os.listdir(out))


@pytest.mark.slow
def test_out_that_is_a_file_is_refused_before_training(finished, registry, tmp_path):
    out = tmp_path / "out"
    out.write_text("mine")
    spy = FitSpy()
    with pytest.raises(RunError, match="is a file, not a folder"):
        run_spec(finished[0], registry, str(out), log=lambda _: None, observer=spy)
    assert spy.calls == [] and out.read_text() == "mine"


@pytest.mark.slow
def test_out_that_cannot_be_created_is_refused_before_training(finished, registry):
    spy = FitSpy()
    with pytest.raises(RunError, match="cannot create the run directory /proc/graft-out"):
        run_spec(finished[0], registry, "/proc/graft-out", log=lambda _: None, observer=spy)
    assert spy.calls == []


@pytest.mark.slow
def test_a_second_run_on_a_busy_out_trains_nothing(finished, damaged_copy, registry):
    out = damaged_copy()
    spy = FitSpy()
    with RunDir(out).locked(), pytest.raises(RunDirLocked, match=f"pid {os.getpid()}"):
        run_spec(finished[0], registry, out, log=lambda _: None, observer=spy)
    assert spy.calls == []


# -- Ctrl-C ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("number", "code", "words"), [(signal.SIGINT, 130, "interrupted"),
                                                       (signal.SIGTERM, 143, "terminated (SIGTERM)")],
                         ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_during_a_stage_says_what_is_kept_and_how_to_go_on(tmp_path, number, code, words):
    text = TINY_GRU_SPEC.replace(
        "    epochs: 1\n    batch_size: 16\n    policy:", "    epochs: 500\n    batch_size: 16\n    policy:"
    )
    assert text != TINY_GRU_SPEC
    (tmp_path / "spec.yaml").write_text(text)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "graft", "run", str(tmp_path / "spec.yaml"), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # a shell without job control starts background jobs with SIGINT ignored, and Python keeps it so
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith("Epoch 1/500"):  # stage 2 is training
                break
        assert seen and seen[-1].startswith("Epoch 1/500"), "".join(seen)
        process.send_signal(number)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last == (
        f"error: {words} during stage 'transfer'; the finished stages (pretrain) are kept in {out}; "
        "run the same command again to go on from there"
    )
    assert sorted(os.listdir(out)) == ["pretrain", "spec.resolved.yaml"]
    RunDir(str(out)).read_report("pretrain")


# -- cross-entropy on a linear output --------------------------------------------------------------


@pytest.mark.slow
def test_a_linear_classification_head_trains_on_logits(load, registry):
    """The dense head's default activation is linear: its cross-entropy must read logits."""
    spec_file = load(TINY_GRU_SPEC.replace("params: {units: 3, activation: softmax}", "params: {units: 3}"))
    keras = import_keras()
    built = build_stage_model(spec_file, registry, 0)
    losses = head_losses(built.model, spec_file.spec.heads_of(spec_file.spec.stages[0]))
    assert {name: head.from_logits for name, head in losses.items()} == {"level": False, "trend": True}
    only_trend = {"trend": losses["trend"]}
    model = keras.Model(built.model.inputs, built.model.get_layer("trend").output)
    model.compile(optimizer="sgd", **compile_arguments(keras, only_trend))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 12, 3)).astype(np.float32)
    y = np.arange(8) % 3
    logits = model.predict(x, verbose=0).astype(np.float64)
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(8), y])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert accuracy == pytest.approx(np.mean(logits.argmax(axis=1) == y))


def test_a_softmax_head_is_left_as_it_is(load, registry):
    spec_file = load(TINY_GRU_SPEC)
    built = build_stage_model(spec_file, registry, 0)
    losses = head_losses(built.model, spec_file.spec.heads_of(spec_file.spec.stages[0]))
    assert not losses["trend"].from_logits and compile_arguments(import_keras(), losses)["loss"]["trend"] == (
        "sparse_categorical_crossentropy"
    )


@pytest.mark.slow
def test_the_run_log_says_which_heads_train_on_logits(load, registry, tmp_path):
    spec_file = load(PRETRAIN_ONLY.replace("params: {units: 3, activation: softmax}", "params: {units: 3}"))
    lines: list[str] = []
    run_spec(spec_file, registry, str(tmp_path / "out"), log=lines.append)
    header = next(line for line in lines if line.startswith("== stage 1/1"))
    assert header.endswith("; trend trained on logits (linear output)")
    with open(tmp_path / "out" / "pretrain" / "history.json") as handle:
        assert json.load(handle)["trend_loss"][0] < 2.0  # about ln 3, not the ~7 of softmax-less probabilities


# -- resuming a finished run ----------------------------------------------------------------------

NPZ_PRETRAIN = PRETRAIN_ONLY.replace(
    "      source: synthetic\n"
    "      params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {level: level, trend: trend}}\n",
    "      source: npz\n"
    "      params: {path: data.npz, targets: {level: y_level, trend: y_trend}, validation_split: 0.25}\n",
)


@pytest.fixture
def npz_run(tmp_path, registry):
    """A finished one-stage run that trained on ``data.npz`` beside its spec."""
    assert NPZ_PRETRAIN != PRETRAIN_ONLY
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.normal(size=(16, 12, 3)).astype(np.float32),
        "y_level": rng.normal(size=(16, 1)).astype(np.float32),
    }
    np.savez(tmp_path / "data.npz", **arrays, y_trend=np.arange(16) % 3)
    (tmp_path / "spec.yaml").write_text(NPZ_PRETRAIN)
    out = str(tmp_path / "out")
    run_spec(load_spec(str(tmp_path / "spec.yaml"), registry), registry, out, log=lambda _: None)
    return tmp_path, out, arrays


@pytest.mark.slow
def test_a_data_file_edited_after_its_stage_finished_stops_the_run(npz_run, registry):
    folder, out, arrays = npz_run
    arrays["x"][3, 4, 1] += 1.0  # one value of one sample
    np.savez(folder / "data.npz", **arrays, y_trend=np.arange(16) % 3)
    before, spy = tree(out), FitSpy()
    with pytest.raises(RunError, match="was run from a different spec .the stage, a file it reads, or a stage before"):
        run_spec(load_spec(str(folder / "spec.yaml"), registry), registry, out, log=lambda _: None, observer=spy)
    assert spy.calls == [] and tree(out) == before


@pytest.mark.slow
def test_a_finished_run_is_confirmed_without_tensorflow_nor_numpy(npz_run):
    """Nor the planning and data machinery: its report's records come from ``graft.planning.records``."""
    folder, out, _ = npz_run
    code = (
        "import sys; from graft.commands.cli import main; "
        f"code = main(['run', {str(folder / 'spec.yaml')!r}, '--out', {out!r}]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'tensorflow', 'keras', 'matplotlib') "
        "or m in ('graft.runs.stagerun', 'graft.planning.stageplan', 'graft.planning.stagedata', "
        "'graft.data.pipeline')); "
        "print('HEAVY', heavy[:3]); sys.exit(code)"  # its digests are checked, no array is read
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"stage 1/1 'pretrain': finished earlier, kept ({os.path.join(out, 'pretrain')})" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
