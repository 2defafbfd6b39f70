"""tf.distribute from the YAML: mirrored in this process, multi_worker as real worker processes on loopback.

The seed scenario on two workers must end with both workers bitwise identical,
publish stages that pass the same checks as a single-process run, and match that
run within 1e-5 (SGD, whole batches of the same global size).  A worker killed
mid-stage stops the other with a clear error; the finished stage survives and the
next run completes.  Workers run in their own sessions and are killed on timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graft.commands.cli import main
from graft.distribute.cluster import free_loopback_ports
from graft.distribute.launcher import GRACE_S
from graft.distribute.strategy import weights_digest
from graft.model.weights import FILENAME, read_weights
from graft.records.rundir import RunDir
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "gru_multiworker.yaml"
STAGES = ("pretrain", "transfer")
TIMEOUT_S = 420
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _without_distribute(tmp_path: Path, strategy: str | None = None) -> str:
    """The multi-worker config as one process (``strategy`` None) or under another strategy."""
    text = CONFIG.read_text().replace(
        "distribute: {strategy: multi_worker}\n", f"distribute: {{strategy: {strategy}}}\n" if strategy else ""
    )
    path = tmp_path / f"{strategy or 'single'}.yaml"
    path.write_text(text)
    return str(path)


def _graft(*arguments: str, timeout: float = TIMEOUT_S, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m graft ...`` in its own session; on timeout SIGINT (the launcher stops its workers), then SIGKILL."""
    process = subprocess.Popen([sys.executable, "-m", "graft", *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env or ENV, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        pytest.fail(f"graft {' '.join(arguments)} did not finish in {timeout} s:\n{output[-4000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def _weights(out: Path, stage: str) -> dict[str, list[np.ndarray]]:
    return read_weights(str(out / stage / FILENAME))


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, registry):
    """The same stages in this process, without tf.distribute."""
    folder = tmp_path_factory.mktemp("single")
    spec_file = load_spec(_without_distribute(folder), registry)
    run_spec(spec_file, registry, str(folder / "run"), log=lambda line: None)
    return folder / "run"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    out = tmp_path_factory.mktemp("workers") / "run"
    result = _graft("run", str(CONFIG), "--local-workers", "2", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:]
    return out, result.stdout


@pytest.mark.slow
def test_two_workers_end_bitwise_identical_with_the_published_weights(two_workers):
    out, output = two_workers
    for stage in STAGES:
        report = RunDir(str(out)).read_report(stage)  # verifies every published file's digest
        assert len(report.worker_digests) == 2
        assert report.worker_digests[0] == report.worker_digests[1] == weights_digest(_weights(out, stage))
        assert "multi_worker: 2 workers, 2 replicas, 16 samples per replica (global batch 32)" in report.plan.distribute
    assert "distributed: multi_worker: 2 workers" in output
    assert "[worker 1] worker 1 of 2: every stage done" in output


@pytest.mark.slow
def test_the_chief_alone_wrote_the_run_directory(two_workers):
    out, _ = two_workers
    assert sorted(entry.name for entry in out.iterdir() if not entry.name.startswith(".")) == sorted(
        [*STAGES, "report.md", "spec.resolved.yaml"]
    )
    assert not [path for path in out.rglob("*") if "partial" in path.name or "replaced" in path.name]
    assert not list(out.rglob("*.training"))  # where the chief's callbacks wrote while training


@pytest.mark.slow
def test_two_workers_match_one_process_within_1e_5(two_workers, single_run):
    out, _ = two_workers
    for stage in STAGES:
        distributed, single = _weights(out, stage), _weights(single_run, stage)
        assert distributed.keys() == single.keys()
        worst = max(
            float(np.max(np.abs(a - b)))
            for name in single
            for a, b in zip(distributed[name], single[name], strict=True)
        )
        assert worst < 1e-5, f"{stage}: {worst}"


@pytest.mark.slow
def test_published_stages_pass_the_checks_of_a_single_process_run(two_workers, single_run):
    out, _ = two_workers
    for stage in STAGES:
        distributed, single = RunDir(str(out)).read_report(stage), RunDir(str(single_run)).read_report(stage)
        assert distributed.verification == single.verification
        assert distributed.load == single.load
        assert distributed.lineage == single.lineage
        assert distributed.epochs_run == single.epochs_run
        assert distributed.kept_epoch == single.kept_epoch  # the checkpoint of transfer kept the same epoch
    transfer_report = RunDir(str(out)).read_report("transfer")
    assert transfer_report.kept_epoch is not None and "history.csv" in transfer_report.files
    pretrain, transfer = _weights(out, "pretrain"), _weights(out, "transfer")
    for frozen in ("gru_1", "gru_2"):  # frozen in transfer: bitwise the pretrained weights
        assert all(np.array_equal(a, b) for a, b in zip(pretrain[frozen], transfer[frozen], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(pretrain["gru_3"], transfer["gru_3"], strict=True))


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_with_a_clear_error_and_the_next_run_completes(tmp_path):
    out = tmp_path / "run"
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_loopback_ports(2))
    workers = [
        subprocess.Popen([sys.executable, "-m", "graft", "run", str(CONFIG), "--out", str(out), "--workers", addresses,
                          "--worker-index", str(index)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=ENV, start_new_session=True)
        for index in range(2)
    ]
    chief, other = workers
    seen: list[str] = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        for line in chief.stdout:  # kill worker 1 during the second stage's training
            seen.append(line)
            if line.startswith("Epoch 2/") and any("stage 2/2" in earlier for earlier in seen):
                break
            assert time.monotonic() < deadline, "".join(seen[-40:])
        else:
            pytest.fail("the chief ended before the second stage trained:\n" + "".join(seen[-40:]))
        os.killpg(other.pid, signal.SIGKILL)
        # the chief must stop by itself (TensorFlow's heartbeats notice in ~10 s); the launcher would kill it
        # after GRACE_S, so a chief still running long after that is a hang, whatever the machine's load
        try:
            rest, _ = chief.communicate(timeout=GRACE_S * 4)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the chief did not stop by itself within {GRACE_S * 4:.0f} s of its peer's death")
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert chief.returncode == 1, rest[-3000:]
    assert "error: worker 0 of 2: another worker stopped or cannot be reached during stage 'transfer'" in rest
    assert "Traceback" not in rest  # it stopped by itself, with its own error: not killed by a watchdog
    run_dir = RunDir(str(out))
    assert run_dir.is_finished("pretrain") and not run_dir.is_finished("transfer")
    pretrain_before = _weights(out, "pretrain")
    run_dir.read_report("pretrain")

    again = _graft("run", str(CONFIG), "--local-workers", "2", "--out", str(out))
    assert again.returncode == 0, again.stdout[-4000:]
    assert "stage 1/2 'pretrain': finished earlier, kept" in again.stdout
    assert RunDir(str(out)).read_report("transfer").worker_digests
    after = _weights(out, "pretrain")
    assert all(np.array_equal(a, b) for name in after for a, b in zip(after[name], pretrain_before[name], strict=True))


# Loaded by worker 1 alone (a sitecustomize on its PYTHONPATH): after every fit, one trained weight moves,
# as it would on a worker whose Keras/TensorFlow drifts apart from the others.
PERTURB_WORKER_1 = """
import sys

if "--worker-index" in sys.argv and sys.argv[sys.argv.index("--worker-index") + 1] == "1":
    import graft.runs.stages
    from graft.runs.observer import RunObserver

    class PerturbOneWeight(RunObserver):
        def after_fit(self, stage, round, built):
            layer = built.layer("level")
            weights = [value.copy() for value in layer.get_weights()]
            weights[0].flat[0] += 1e-3
            layer.set_weights(weights)

    graft.runs.stages.RunObserver = PerturbOneWeight
"""

TINY_MULTI_WORKER = """\
seed: 5
distribute: {strategy: multi_worker}
model:
  input_shape: [12, 3]
  extractor: {plugin: gru, params: {layers: [{name: gru_1, units: 4}]}}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
stages:
  - name: pretrain
    data:
      source: synthetic
      params: {samples: 80, timesteps: 12, channels: 3, seed: 1, targets: {level: level}}
    epochs: 1
    batch_size: 16
    optimizer: {name: sgd, learning_rate: 0.05}
"""


@pytest.mark.slow
def test_workers_that_end_a_stage_with_different_weights_publish_nothing(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(PERTURB_WORKER_1)
    (tmp_path / "spec.yaml").write_text(TINY_MULTI_WORKER)
    out = tmp_path / "run"
    env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"), ENV.get("PYTHONPATH")]))}
    result = _graft("run", str(tmp_path / "spec.yaml"), "--local-workers", "2", "--out", str(out), env=env)
    assert result.returncode == 1, result.stdout[-4000:]
    said = ("error: stage 'pretrain': the workers ended with different weights, so nothing of it was published. "
            "This Keras/TensorFlow does not keep workers in step; train in one process or report it")
    assert said in result.stdout.splitlines() and f"[worker 1] {said}" in result.stdout.splitlines()
    assert "Traceback" not in result.stdout
    assert not (out / "pretrain").exists()
    assert not [path for path in out.rglob("*") if "partial" in path.name or path.name.endswith(".training")]


@pytest.mark.slow
def test_mirrored_in_this_process_equals_no_strategy_bitwise(tmp_path, registry, single_run):
    spec_file = load_spec(_without_distribute(tmp_path, "mirrored"), registry)
    lines: list[str] = []
    reports = run_spec(spec_file, registry, str(tmp_path / "run"), log=lines.append)
    assert any("distributed: mirrored: 1 replica" in line for line in lines)
    assert reports[0].plan.distribute.startswith("mirrored: ")
    for stage in STAGES:
        mirrored, single = _weights(tmp_path / "run", stage), _weights(single_run, stage)
        assert all(
            np.array_equal(a, b) for name in single for a, b in zip(mirrored[name], single[name], strict=True)
        ), stage


def test_plan_shows_the_strategy_and_that_features_are_not_cached_across_workers(tmp_path, capsys):
    frozen = CONFIG.read_text().replace("freeze: [gru_1, gru_2]", "freeze: [gru_1, gru_2, gru_3]")
    frozen = frozen.replace("train: [gru_3, level, trend]", "train: [level, trend]")
    (tmp_path / "frozen.yaml").write_text(frozen)
    assert main(["plan", str(tmp_path / "frozen.yaml")]) == 0
    text = capsys.readouterr().out
    assert text.count("distributed: multi_worker: one replica per worker") == 2
    assert "16 per replica with 2 workers" in text
    assert "extractor features: not cached: under multi_worker" in text


@pytest.mark.slow
def test_a_chief_that_stops_before_training_stops_every_worker_and_changes_nothing(two_workers, tmp_path):
    out, _ = two_workers
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    changed = tmp_path / "changed.yaml"
    changed.write_text(CONFIG.read_text().replace("seed: 7", "seed: 8"))
    result = _graft("run", str(changed), "--local-workers", "2", "--out", str(out), timeout=180)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "pretrain was run from a different spec" in result.stdout
    assert "[worker 1] error: worker 1 of 2: the chief stopped before training; see its output" in result.stdout
    assert "Traceback" not in result.stdout
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before


BATCH_NORM_SPEC = """\
seed: 4
distribute: {strategy: multi_worker}
model:
  input_shape: [20, 3]
  extractor:
    plugin: conv1d
    params:
      layers: [{name: conv_1, filters: 8, kernel_size: 3}, {name: conv_2, filters: 8, kernel_size: 3}]
      batch_norm: true
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
stages:
  - name: pretrain
    data:
      source: synthetic
      params: {samples: 160, timesteps: 20, channels: 3, seed: 1, targets: {level: level}}
    epochs: 2
    batch_size: 32
    optimizer: {name: sgd, learning_rate: 0.05}
  - name: transfer
    init: {stage: pretrain}
    data:
      source: synthetic
      params: {samples: 160, timesteps: 20, channels: 3, seed: 2, frequency: 2.0, targets: {level: level}}
    epochs: 2
    batch_size: 32
    optimizer: {name: sgd, learning_rate: 0.05}
    policy: {plugin: layers, params: {freeze: ["conv_1*"], train: ["conv_2*", level], freeze_batch_norm: false}}
"""


@pytest.mark.slow
def test_batch_normalization_moving_statistics_agree_across_workers_and_frozen_ones_stay(tmp_path):
    """Each replica updates the moving averages from its share of the batch; the workers must still end
    bitwise equal (Keras 3 keeps each worker's apart unless averaged), and a frozen layer's stay as loaded."""
    spec = tmp_path / "batch_norm.yaml"
    spec.write_text(BATCH_NORM_SPEC)
    out = tmp_path / "run"
    result = _graft("run", str(spec), "--local-workers", "2", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:]
    pretrain, transfer = _weights(out, "pretrain"), _weights(out, "transfer")
    for stage, weights in (("pretrain", pretrain), ("transfer", transfer)):
        digests = RunDir(str(out)).read_report(stage).worker_digests
        assert len(set(digests)) == 1 and digests[0] == weights_digest(weights)
    assert all(np.array_equal(a, b) for a, b in zip(pretrain["conv_1_bn"], transfer["conv_1_bn"], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(pretrain["conv_2_bn"], transfer["conv_2_bn"], strict=True))


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "known, open: under load about 1 run in 6 on 2 cores, the non-chief worker aborts inside TensorFlow's "
    "collective teardown (free(): invalid next size) after the chief stopped; the chief, the exit code 143 and "
    "the kept stage hold every time"))
def test_sigterm_stops_every_worker_as_ctrl_c_does_and_keeps_the_finished_stage(tmp_path):
    """What a cluster's scheduler does on preemption: SIGTERM to the launcher reaches every worker,
    each says so in one line, the finished stage stays, the interrupted one leaves nothing; exit 143."""
    spec = tmp_path / "long.yaml"
    stage_2 = "    batch_size: 32\n    optimizer: {name: sgd, learning_rate: 0.05}\n    policy:"
    text = BATCH_NORM_SPEC.replace(f"    epochs: 2\n{stage_2}", f"    epochs: 5000\n{stage_2}")
    assert text != BATCH_NORM_SPEC
    spec.write_text(text)
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "graft", "run", str(spec), "--local-workers", "2", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if line.startswith("Epoch 2/5000"):  # the chief trains stage 2
                break
        assert seen and seen[-1].startswith("Epoch 2/5000"), "".join(seen)[-3000:]
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = "".join(seen) + rest
    assert process.returncode == 143, output[-3000:]
    assert "Traceback" not in output
    kept = f"during stage 'transfer'; the finished stages (pretrain) are kept in {out}; run the same command again"
    assert any(line.startswith(f"error: terminated (SIGTERM) {kept}") for line in output.splitlines())  # the chief
    assert f"[worker 1] error: terminated (SIGTERM) {kept}" in output
    assert sorted(entry.name for entry in out.iterdir() if not entry.name.startswith(".")) == [
        "pretrain", "spec.resolved.yaml"
    ]
    RunDir(str(out)).read_report("pretrain")
