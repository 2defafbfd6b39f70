"""Real sweeps on a tiny spec: the shared stage trains once, each trial is a run folder, a killed sweep goes on, two
workers on one study run no trial twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import optuna
import pytest

from graft.commands.cli import main
from graft.finished.api import load_stage
from graft.records.rundir import RunDir
from tests.tuning.sweep_specs import write

pytestmark = pytest.mark.slow


def study_of(out) -> optuna.Study:
    return optuna.load_study(study_name="graft-sweep", storage=f"sqlite:///{out / 'study.db'}")


def sweep_process(spec: str, space: str, out, *more: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "graft", "sweep", spec, space, "--out", str(out), *more],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


HEAD_ONLY = """\
stage: transfer
trials: 2
pruner: none
params:
  stages.transfer.optimizer.learning_rate: {loguniform: [1.0e-3, 1.0e-1]}
"""
FROZEN = "stages.transfer.policy={plugin: layers, params: {freeze: [gru_1, gru_2], train: [trend]}}"


def test_a_killed_sweep_keeps_its_finished_trials_and_goes_on_with_the_same_study(tmp_path, capsys,
                                                                                   feature_cache_dir):
    """Head-only trials (the extractor frozen): the extractor's features are computed by the first and reused."""
    spec, space = write(tmp_path, space=HEAD_ONLY)
    out = tmp_path / "sweep"
    process = sweep_process(spec, space, out, "--set", FROZEN)
    try:
        lines = []
        for line in process.stdout:  # kill -9 once trial 0 is finished and trial 1 is training
            lines.append(line)
            if line.startswith("== trial 1 "):
                break
        assert lines[-1].startswith("== trial 1 "), "".join(lines)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    first = RunDir(str(out / "trials" / "0000")).read_report("transfer")
    first_weights = (out / "trials" / "0000" / "transfer" / "weights.graft.npz").read_bytes()

    assert main(["sweep", spec, space, "--out", str(out), "--set", FROZEN]) == 0
    printed = capsys.readouterr().out
    assert "trials 1: their worker was killed; recorded as failed" in printed
    assert "its features of this data are stored: the heads train on them" in printed  # trial 2 reused them
    assert "its features are computed once" not in printed
    assert len(os.listdir(feature_cache_dir / "features")) == 1  # the extractor ran over the data once

    study = study_of(out)
    states = {trial.number: trial.state.name for trial in study.trials}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE"}  # 2 trials that count, none run twice
    assert all(RunDir(str(out / "trials" / f"{number:04d}")).read_report("transfer").features_cached
               for number in (0, 2))
    # the finished trial was kept as it was, not trained again
    assert RunDir(str(out / "trials" / "0000")).read_report("transfer") == first
    assert (out / "trials" / "0000" / "transfer" / "weights.graft.npz").read_bytes() == first_weights
    # the stage before the swept one trained once: every trial's copy is the same file (a hard link)
    shared = out / "shared" / "pretrain" / "weights.graft.npz"
    for number in (0, 2):
        assert os.path.samefile(out / "trials" / f"{number:04d}" / "pretrain" / "weights.graft.npz", shared)
    # each trial ran with its own values
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            resolved = (out / trial.user_attrs["folder"] / "spec.resolved.yaml").read_text()
            rate = trial.params["stages.transfer.optimizer.learning_rate"]
            assert f"learning_rate: {rate}" in resolved

    # the best trial is marked and usable as any finished stage
    best = json.loads((out / "best.json").read_text())
    assert best["number"] == study.best_trial.number
    assert os.readlink(out / "best") == os.path.join("trials", f"{best['number']:04d}")
    stage = load_stage(out / "best", "transfer")
    assert stage.report.final_metrics["val_loss"] == pytest.approx(study.best_value)
    inputs = np.random.default_rng(0).normal(size=(4, 10, 2)).astype("float32")
    assert stage.predict(inputs)["trend"].shape == (4, 3)

    report = (out / "report.md").read_text()
    assert f"| {best['number']} ★ |" in report
    assert "| 1 |" in report and "| failed |" in report
    assert (out / "params.png").stat().st_size > 0


def test_two_workers_sharing_one_study_run_every_trial_once(tmp_path):
    spec, space = write(tmp_path, trials=3)
    out = tmp_path / "sweep"
    workers = [sweep_process(spec, space, out) for _ in range(2)]
    try:
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    study = study_of(out)
    assert sorted(trial.number for trial in study.trials) == [0, 1, 2]
    assert {trial.state.name for trial in study.trials} == {"COMPLETE"}
    started = [line.split()[2] for output in outputs for line in output.splitlines() if line.startswith("== trial ")]
    assert sorted(started) == ["0", "1", "2"]  # each trial started by one worker only
    assert all("== trial" in output for output in outputs)  # both worked
    # every trial trained its stage once; the shared stage trained once (the other worker waited, then kept it)
    assert not [name for name in os.listdir(out / "shared") if ".replaced-" in name]
    for number in range(3):
        assert not [name for name in os.listdir(out / "trials" / f"{number:04d}") if ".replaced-" in name]
        RunDir(str(out / "trials" / f"{number:04d}")).read_report("transfer")
    assert sum(output.count("'pretrain': finished earlier, kept") for output in outputs) >= 3
    assert sum(output.count("== stage 1/1 'pretrain'") for output in outputs) == 1

