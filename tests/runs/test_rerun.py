"""Running again, end to end: a re-run that reuses the feature cache, and a run killed with SIGKILL that
resumes to the same bits as an uninterrupted run.  Real processes, real training: all slow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from graft.records.rundir import RunDir
from tests.conftest import TINY_GRU_SPEC
from tests.runs.test_runner import same_weights, tree


def env() -> dict[str, str]:
    """The environment now (the test's own GRAFT_CACHE_DIR included)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


# the transfer stage trains the heads alone on a frozen extractor: its features come from the cache
FROZEN_TRANSFER = TINY_GRU_SPEC.replace(
    "params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}",
    "params: {freeze: [gru_1, gru_2, gru_3], train: [level, trend]}",
)
# the transfer stage trains long enough to be killed in the middle
LONG_TRANSFER = TINY_GRU_SPEC.replace(
    "    epochs: 1\n    batch_size: 16\n    policy:", "    epochs: 40\n    batch_size: 16\n    policy:"
)


def graft_run(spec: str, out: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "graft", "run", spec, "--out", out], capture_output=True,
                            text=True, env=env(), timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def cache_files(folder) -> dict[str, tuple[int, int]]:
    """Every file of the feature cache: relative path -> (size, mtime in ns)."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            full = os.path.join(root, name)
            found[os.path.relpath(full, folder)] = (os.stat(full).st_size, os.stat(full).st_mtime_ns)
    return found


@pytest.mark.slow
def test_a_rerun_into_another_out_reuses_the_stored_features_and_trains_the_same_bits(tmp_path, feature_cache_dir):
    assert FROZEN_TRANSFER != TINY_GRU_SPEC
    (tmp_path / "spec.yaml").write_text(FROZEN_TRANSFER)
    first = graft_run(str(tmp_path / "spec.yaml"), str(tmp_path / "first"))
    assert "its features are computed once, stored on disk" in first.stdout
    stored = cache_files(feature_cache_dir)
    assert stored, "nothing was stored in the feature cache"

    again = graft_run(str(tmp_path / "spec.yaml"), str(tmp_path / "again"))
    assert "its features of this data are stored: the heads train on them" in again.stdout
    assert "computed once" not in again.stdout
    assert cache_files(feature_cache_dir) == stored  # read, not written again
    for stage in ("pretrain", "transfer"):
        assert same_weights(tmp_path / "first", tmp_path / "again", stage) == []
    assert RunDir(str(tmp_path / "again")).read_report("transfer").features_cached


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    (folder / "spec.yaml").write_text(LONG_TRANSFER)
    graft_run(str(folder / "spec.yaml"), str(folder / "out"))
    return folder / "out"


@pytest.mark.slow
def test_a_run_killed_during_a_stage_resumes_to_the_bits_of_an_uninterrupted_run(tmp_path, uninterrupted):
    assert LONG_TRANSFER != TINY_GRU_SPEC
    (tmp_path / "spec.yaml").write_text(LONG_TRANSFER)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "graft", "run", str(tmp_path / "spec.yaml"), "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env())
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("Epoch 3/40"):  # the second stage is training
                break
        else:
            pytest.fail("the run ended before the second stage trained:\n" + "".join(seen[-30:]))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    run_dir = RunDir(str(out))
    assert run_dir.is_finished("pretrain") and not run_dir.is_finished("transfer")
    pretrain_before = tree(out / "pretrain")

    resumed = graft_run(str(tmp_path / "spec.yaml"), str(out))
    assert "stage 1/2 'pretrain': finished earlier, kept" in resumed.stdout
    assert tree(out / "pretrain") == pretrain_before  # not trained or written again
    for stage in ("pretrain", "transfer"):
        assert same_weights(out, uninterrupted, stage) == []
    assert not [name for name in os.listdir(out) if "partial" in name or name.endswith(".training")]
