"""The run directory on its own (no TensorFlow): the lock, digests, damaged reports, publishing.

End-to-end runs over damaged or locked run directories are in ``test_runner.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import attrs
import pytest

from graft.planning.stageplan import StagePlan
from graft.records.report import LayerCheck, LayerLoad, StageReport
from graft.records.rundir import LOCK, RunDir, RunDirLocked, RunError
from graft.runs.resume import first_stage_to_run

FINGERPRINTS = ["a" * 16, "b" * 16]


def report(stage: str, fingerprint: str) -> StageReport:
    return StageReport(
        stage=stage,
        fingerprint=fingerprint,
        plan=StagePlan(stage, "continue", None, (), trainable_params=3, total_params=3, outputs={"dense": (1,)}),
        load={"dense": LayerLoad("new")},
        verification={"dense": LayerCheck(trainable=True, changed=True)},
        final_metrics={"loss": 0.5, "val_loss": float("nan")},
        epochs_run=1,
        features_cached=False,
        lineage={"dense": [stage]},
        wall_time_s=0.1,
        versions={"keras": "3"},
    )


def publish(run_dir: RunDir, stage: str, fingerprint: str, content: bytes = b"weights") -> StageReport:
    def write(folder: str) -> None:
        with open(os.path.join(folder, "weights.graft.npz"), "wb") as handle:
            handle.write(content + stage.encode())
        with open(os.path.join(folder, "history.json"), "w") as handle:
            handle.write("{}")

    return run_dir.publish(stage, write, report(stage, fingerprint))


@pytest.fixture
def finished(tmp_path) -> RunDir:
    """A run directory with both stages finished."""
    run_dir = RunDir(str(tmp_path / "out"))
    with run_dir.locked():
        for stage, fingerprint in zip(["pretrain", "transfer"], FINGERPRINTS, strict=True):
            publish(run_dir, stage, fingerprint)
    return run_dir


def test_a_published_report_records_the_digest_of_every_file_and_reads_back_typed(finished):
    assert sorted(os.listdir(finished.path)) == ["pretrain", "transfer"]  # no lock file, no probe left
    back = finished.read_report("transfer")
    assert set(back.files) == {"weights.graft.npz", "history.json"}
    assert all(digest.startswith("sha256:") for digest in back.files.values())
    assert back.load["dense"] == LayerLoad("new") and back.verification["dense"].changed
    assert back == attrs.evolve(report("transfer", FINGERPRINTS[1]), files=back.files, final_metrics=back.final_metrics)
    assert first_stage_to_run(finished, ["pretrain", "transfer"], FINGERPRINTS, None) == 2


def _damage(path: str, how: str) -> None:
    if how == "truncated":
        with open(path, "rb") as handle:
            data = handle.read()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
    elif how == "list":
        with open(path, "w") as handle:
            json.dump([1, 2], handle)
    elif how == "no-lineage":
        with open(path) as handle:
            data = json.load(handle)
        del data["lineage"]
        with open(path, "w") as handle:
            json.dump(data, handle)
    elif how == "no-plan-layers":
        with open(path) as handle:
            data = json.load(handle)
        del data["plan"]["layers"]
        with open(path, "w") as handle:
            json.dump(data, handle)
    elif how == "not-utf8":
        with open(path, "wb") as handle:
            handle.write(b"\xff\xfe{")


@pytest.mark.parametrize(
    ("file", "how", "says"),
    [
        ("report.json", "truncated", "cannot be read as a stage report"),
        ("report.json", "list", "expected a mapping"),
        ("report.json", "no-lineage", "lineage: required key missing"),
        ("report.json", "not-utf8", "cannot be read as a stage report"),
        ("report.json", "no-plan-layers", "plan: not a stage plan (KeyError: 'layers')"),
        ("weights.graft.npz", "truncated", "is not the file this stage wrote (its digest differs)"),
    ],
)
def test_a_damaged_finished_stage_is_an_error_naming_the_file_and_the_way_out(finished, file, how, says):
    path = os.path.join(finished.path, "pretrain", file)
    _damage(path, how)
    with pytest.raises(RunError) as caught:
        first_stage_to_run(finished, ["pretrain", "transfer"], FINGERPRINTS, None)
    message = str(caught.value)
    assert "the finished stage 'pretrain' cannot be trusted" in message and says in message
    assert "--restart-from pretrain" in message and path in message


def test_another_stages_weights_swapped_in_are_noticed(finished):
    os.replace(
        os.path.join(finished.path, "transfer", "weights.graft.npz"),
        os.path.join(finished.path, "pretrain", "weights.graft.npz"),
    )
    with pytest.raises(RunError, match="pretrain/weights.graft.npz is not the file this stage wrote"):
        finished.read_report("pretrain")
    with pytest.raises(RunError, match="transfer/weights.graft.npz is missing"):
        finished.read_report("transfer")


def test_a_report_copied_from_another_stage_is_noticed(finished):
    os.replace(
        os.path.join(finished.path, "transfer", "report.json"), os.path.join(finished.path, "pretrain", "report.json")
    )
    with pytest.raises(RunError, match="is the report of stage 'transfer', not of 'pretrain'"):
        finished.read_report("pretrain")


def test_restart_from_sets_damaged_later_stages_aside_but_checks_earlier_ones(finished):
    _damage(os.path.join(finished.path, "transfer", "report.json"), "truncated")
    assert first_stage_to_run(finished, ["pretrain", "transfer"], FINGERPRINTS, "transfer") == 1
    assert [name.split(".")[0] for name in sorted(os.listdir(finished.path))] == ["pretrain", "transfer"]
    _damage(os.path.join(finished.path, "pretrain", "report.json"), "truncated")
    with pytest.raises(RunError, match="cannot be trusted"):
        first_stage_to_run(finished, ["pretrain", "transfer"], FINGERPRINTS, "transfer")


# -- one run at a time -----------------------------------------------------------------------


HOLD = """
import sys
from graft.records.rundir import RunDir
with RunDir(sys.argv[1]).locked():
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_on_the_same_out_says_who_holds_it(tmp_path):
    out = str(tmp_path / "out")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, out], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(RunDirLocked) as caught, RunDir(out).locked():
            pass
        assert f"pid {holder.pid}" in str(caught.value) and "--wait" in str(caught.value)
    finally:
        holder.communicate("", timeout=30)
    with RunDir(out).locked():  # free again once the holder is gone
        pass


def test_wait_takes_the_lock_when_the_holder_lets_go(tmp_path):
    """Proved by order, not by timing (a loaded machine stretches any interval): the waiter starts waiting while
    the lock is held and holds it only after the holder let go."""
    out = str(tmp_path / "out")
    entered, waiting = threading.Event(), threading.Event()
    times: dict[str, float] = {}

    def hold() -> None:
        with RunDir(out).locked():
            entered.set()
            assert waiting.wait(60)
            time.sleep(0.2)  # the waiter is (most likely) blocked in flock by now; the order below holds anyway
            times["released"] = time.monotonic()

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(60)
    with pytest.raises(RunDirLocked), RunDir(out).locked():  # held: without wait, refused
        pass
    times["began"] = time.monotonic()
    waiting.set()
    with RunDir(out).locked(wait=True):
        times["got"] = time.monotonic()
    thread.join()
    assert times["began"] < times["released"] <= times["got"]


def test_a_lock_file_left_by_a_dead_process_is_not_a_lock(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text("graft run (pid 999999 on elsewhere, started long ago)")
    with RunDir(str(out)).locked():
        assert f"pid {os.getpid()}" in (out / LOCK).read_text()
    assert not (out / LOCK).exists()


# -- before anything is written ----------------------------------------------------------------


def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("mine")
    for out in (tmp_path / "file", tmp_path / "file" / "run"):
        with pytest.raises(RunError, match="is a file, not a folder"):
            RunDir(str(out)).check_writable(["pretrain"])
    assert (tmp_path / "file").read_text() == "mine"


def test_out_where_no_folder_can_be_made_is_refused(tmp_path):
    with (
        pytest.raises(RunError, match="cannot create the run directory /proc/graft-run"),
        RunDir("/proc/graft-run").locked(),
    ):
        pass


def test_a_stage_name_too_long_for_the_file_system_is_refused_before_writing(tmp_path):
    out = tmp_path / "out"
    RunDir(str(out)).check_writable(["p" * 200])
    with pytest.raises(RunError, match="too long for the file system"):
        RunDir(str(out)).check_writable(["p" * 240])
    assert not out.exists()


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_a_partial_that_keras_graft_did_not_make_is_set_aside_not_followed(tmp_path, kind):
    run_dir = RunDir(str(tmp_path / "out"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    os.makedirs(run_dir.path)
    partial = os.path.join(run_dir.path, "pretrain.partial")
    if kind == "file":
        with open(partial, "w") as handle:
            handle.write("mine")
    else:
        os.symlink(elsewhere, partial)
    with run_dir.locked():
        publish(run_dir, "pretrain", FINGERPRINTS[0])
    assert (elsewhere / "keep.txt").read_text() == "mine"
    (aside,) = [name for name in os.listdir(run_dir.path) if name.startswith("pretrain.partial.replaced-")]
    assert os.path.islink(os.path.join(run_dir.path, aside)) == (kind == "symlink")
    run_dir.read_report("pretrain")
