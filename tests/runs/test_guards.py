"""Every guard of a run is seen to fire: each test breaks the thing a guard protects and checks the
documented error, the exit code of ``graft run``, and that nothing was published.

Guards tested elsewhere (not repeated here): a damaged file of a finished stage
(``tests/records/test_rundir.py``, ``test_run_safety.py``: before training), a data
file edited after its stage finished (``test_run_safety.py``), a live or dead
process's lock file (``tests/records/test_rundir.py``).  Here they are seen through the
command line too, with its exit code.  Workers that diverge: ``tests/distribute/test_distribute.py``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import graft.runs.stages
from graft.commands.cli import main
from graft.model.weights import FILENAME, read_weights
from graft.records.rundir import RunDir
from graft.runs.inputs import BLOCK, FULL_HASH_LIMIT, SAMPLED_BLOCKS, content_digest, input_digests
from graft.runs.observer import RunObserver
from tests.conftest import TINY_GRU_SPEC
from tests.runs.test_runner import PRETRAIN_ONLY, tree


def graft_run(capsys, *arguments: str) -> tuple[int, str, str]:
    """``graft run ...`` in this process: (exit code, stdout, stderr)."""
    code = main(["run", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- a frozen layer changed during fit ----------------------------------------------------------


class TouchFrozenLayer(RunObserver):
    """In stage 'transfer', a Keras callback adds 1.0 to one weight of the frozen ``gru_1`` when fit ends."""

    def before_fit(self, stage, round, built) -> None:
        self.stage, self.built = stage, built

    def keras_callbacks(self) -> list:
        from graft.base.backend import import_keras

        observer = self

        class WriteOneWeight(import_keras().callbacks.Callback):
            def on_train_end(self, logs=None):
                if observer.stage.name == "transfer":
                    layer = observer.built.layer("gru_1")
                    weights = [np.array(value, copy=True) for value in layer.get_weights()]
                    weights[0].flat[0] += 1.0
                    layer.set_weights(weights)

        return [WriteOneWeight()]


@pytest.mark.slow
def test_a_frozen_layer_changed_during_fit_stops_the_stage_and_publishes_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "spec.yaml").write_text(TINY_GRU_SPEC)
    out = tmp_path / "out"
    monkeypatch.setattr(graft.runs.stages, "RunObserver", TouchFrozenLayer)  # the run's default observer
    code, _, err = graft_run(capsys, str(tmp_path / "spec.yaml"), "--out", str(out))
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "error: stage 'transfer': frozen layer 'gru_1' changed during training; nothing was published for this stage"
    )
    assert "Traceback" not in err
    assert sorted(os.listdir(out)) == ["pretrain", "spec.resolved.yaml"]
    RunDir(str(out)).read_report("pretrain")


# -- a loaded layer that differs from its source ---------------------------------------------------


@pytest.mark.slow
def test_a_loaded_layer_that_differs_from_its_source_stops_the_stage_and_publishes_nothing(
    tmp_path, capsys, registry
):
    """A weights file in float64: loading casts it to the layer's float32, so the layer is not its source."""
    (tmp_path / "pretrain.yaml").write_text(PRETRAIN_ONLY)
    code, _, err = graft_run(capsys, str(tmp_path / "pretrain.yaml"), "--out", str(tmp_path / "first"))
    assert code == 0, err
    with np.load(tmp_path / "first" / "pretrain" / FILENAME) as saved:
        arrays = {key: saved[key].astype(np.float64) if saved[key].dtype == np.float32 else saved[key]
                  for key in saved.files}
    np.savez(tmp_path / "start.graft.npz", **arrays)
    assert read_weights(str(tmp_path / "start.graft.npz"))["gru_1"][0].dtype == np.float64
    (tmp_path / "from_file.yaml").write_text(
        PRETRAIN_ONLY.replace("  - name: pretrain\n", "  - name: pretrain\n    init: {weights: start.graft.npz}\n")
    )
    out = tmp_path / "out"
    code, _, err = graft_run(capsys, str(tmp_path / "from_file.yaml"), "--out", str(out))
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: stage 'pretrain': layer '") and last.endswith("after loading"), err
    assert f"differs from file {tmp_path / 'start.graft.npz'}" in last
    assert "Traceback" not in err
    assert [name for name in os.listdir(out) if not name.startswith(".")] == ["spec.resolved.yaml"]


# -- finished stages, data files and locks, through the command line ------------------------------


NPZ_PRETRAIN = PRETRAIN_ONLY.replace(
    "      source: synthetic\n"
    "      params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {level: level, trend: trend}}\n",
    "      source: npz\n"
    "      params: {path: data.npz, targets: {level: y_level, trend: y_trend}, validation_split: 0.25}\n",
)


def _write_data(folder, x_shift: float = 0.0) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 12, 3)).astype(np.float32)
    x[3, 4, 1] += x_shift
    np.savez(folder / "data.npz", x=x, y_level=rng.normal(size=(16, 1)).astype(np.float32),
             y_trend=np.arange(16) % 3)


@pytest.fixture(scope="module")
def finished_npz_run(tmp_path_factory):
    """A one-stage run that trained on ``data.npz`` beside its spec, finished by ``graft run``."""
    assert NPZ_PRETRAIN != PRETRAIN_ONLY
    folder = tmp_path_factory.mktemp("finished")
    _write_data(folder)
    (folder / "spec.yaml").write_text(NPZ_PRETRAIN)
    assert main(["run", str(folder / "spec.yaml"), "--out", str(folder / "out")]) == 0
    return folder


@pytest.fixture
def copy_of_run(finished_npz_run, tmp_path):
    """(the finished run's spec, a copy of its ``--out``): the spec and its data stay where they are, since a
    stage's fingerprint holds the absolute paths of the files it reads."""
    shutil.copytree(finished_npz_run / "out", tmp_path / "out")
    return str(finished_npz_run / "spec.yaml"), tmp_path / "out"


@pytest.mark.slow
def test_a_changed_file_of_a_finished_stage_stops_graft_run_before_training(copy_of_run, capsys):
    spec, out = copy_of_run
    weights = out / "pretrain" / FILENAME
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    weights.write_bytes(bytes(data))
    before = tree(out)
    code, printed, err = graft_run(capsys, spec, "--out", str(out))
    assert code == 1
    assert err.strip() == (
        f"error: the finished stage 'pretrain' cannot be trusted: {weights} is not the file this stage wrote "
        "(its digest differs). Nothing was changed; run it again with --restart-from pretrain (its folder is "
        "kept aside), or choose another --out"
    )
    assert "Epoch" not in printed and tree(out) == before


@pytest.mark.slow
def test_a_data_file_edited_after_its_stage_finished_stops_graft_run(copy_of_run, finished_npz_run, capsys):
    spec, out = copy_of_run
    original = (finished_npz_run / "data.npz").read_bytes()
    before = tree(out)
    try:
        _write_data(finished_npz_run, x_shift=1.0)  # one value of one sample
        code, printed, err = graft_run(capsys, spec, "--out", str(out))
    finally:
        (finished_npz_run / "data.npz").write_bytes(original)
    assert code == 1
    assert err.startswith("error: ") and "pretrain was run from a different spec" in err, err
    assert "Epoch" not in printed and tree(out) == before


HOLD = """
import sys
from graft.records.rundir import RunDir
with RunDir(sys.argv[1]).locked():
    print("locked", flush=True)
    sys.stdin.read()
"""


def _blocked_in_flock(process: subprocess.Popen, seconds: float) -> bool:
    """True once ``process`` waits for an flock (a ``->`` line of /proc/locks, Linux); False if it ended first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with open("/proc/locks") as handle:
            if any("->" in line and f" {process.pid} " in line for line in handle):
                return True
        time.sleep(0.05)
    return False


def _graft_process(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "graft", *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
def test_a_run_directory_held_by_another_process_is_refused_and_waited_for_with_wait(copy_of_run):
    """Another live process holds ``--out``: ``graft run`` stops at once, naming it; ``--wait`` waits for it,
    then goes on (here: confirms the finished stage)."""
    spec, out_path = copy_of_run
    out = str(out_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, out], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    waiting = None
    try:
        assert holder.stdout.readline() == "locked\n"
        refused = _graft_process("run", spec, "--out", out)
        _, err = refused.communicate(timeout=120)
        assert refused.returncode == 1
        assert err.strip().startswith(f"error: {out} is in use by graft run (pid {holder.pid} on "), err
        assert "graft run --wait waits for it" in err
        waiting = _graft_process("run", spec, "--out", out, "--wait")
        assert _blocked_in_flock(waiting, seconds=120), "graft run --wait did not wait for the lock"
        holder.communicate("", timeout=30)  # let go
        stdout, err = waiting.communicate(timeout=120)
    finally:
        for process in (holder, waiting):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert waiting.returncode == 0, err
    assert f"stage 1/1 'pretrain': finished earlier, kept ({os.path.join(out, 'pretrain')})" in stdout


@pytest.mark.slow
def test_a_lock_file_left_by_a_dead_run_does_not_stop_the_next(copy_of_run, capsys):
    spec, out = copy_of_run
    lock = out / ".graft.lock"
    lock.write_text("graft run (pid 999999 on elsewhere, started long ago)")  # what a killed run leaves
    code, printed, err = graft_run(capsys, spec, "--out", str(out))
    assert code == 0, err
    assert "'pretrain': finished earlier, kept" in printed and not lock.exists()


# -- a file over 64 MiB is fingerprinted by its size and sampled blocks ---------------------------


@pytest.fixture
def large_file(tmp_path):
    """A weights file just over the whole-file limit, sparse (nothing is written but a few bytes)."""
    path = tmp_path / "weights.graft.npz"
    with open(path, "wb") as handle:
        handle.truncate(FULL_HASH_LIMIT + 3 * BLOCK + 123)
        handle.seek(0)
        handle.write(b"PK\x03\x04 a large weights file")
    return path


def _flip(path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _sampled_offsets(size: int) -> list[int]:
    step = (size - BLOCK) // (SAMPLED_BLOCKS - 1)
    return [index * step for index in range(SAMPLED_BLOCKS)]


def test_a_large_file_is_digested_by_size_and_sampled_blocks_not_whole(large_file):
    size = large_file.stat().st_size
    digest = content_digest(str(large_file))
    whole = "sha256:" + hashlib.sha256(large_file.read_bytes()).hexdigest()
    assert digest.startswith("sha256:") and digest != whole
    assert input_digests({"init": {"weights": large_file.name}}, lambda name: str(large_file.parent / name)) == {
        str(large_file): digest
    }
    offsets = _sampled_offsets(size)
    assert size - SAMPLED_BLOCKS < offsets[-1] + BLOCK <= size  # the blocks reach (within bytes) the end


@pytest.mark.parametrize("where", ["first block", "middle block", "end of the last block", "inside a later block"])
def test_a_byte_changed_inside_a_sampled_block_of_a_large_file_changes_its_digest(large_file, where):
    size = large_file.stat().st_size
    offsets = _sampled_offsets(size)
    offset = {"first block": 10, "middle block": offsets[SAMPLED_BLOCKS // 2] + 7,
              "end of the last block": offsets[-1] + BLOCK - 1, "inside a later block": offsets[40] + BLOCK - 1}[where]
    before = content_digest(str(large_file))
    _flip(large_file, offset)
    assert content_digest(str(large_file)) != before


def test_a_large_file_that_grows_or_shrinks_changes_its_digest(large_file):
    before = content_digest(str(large_file))
    with open(large_file, "r+b") as handle:
        handle.truncate(large_file.stat().st_size + 1)
    grown = content_digest(str(large_file))
    with open(large_file, "r+b") as handle:
        handle.truncate(large_file.stat().st_size - 2)
    assert len({before, grown, content_digest(str(large_file))}) == 3


def test_a_byte_between_sampled_blocks_of_a_large_file_is_not_seen_as_documented(large_file):
    """The price of sampling (docs/explanation/run-folder.md): an edit between the blocks keeps the digest.
    A file at the limit is hashed whole and sees it."""
    offsets = _sampled_offsets(large_file.stat().st_size)
    before = content_digest(str(large_file))
    _flip(large_file, offsets[1] + BLOCK + 5)  # after the second block, before the third
    assert content_digest(str(large_file)) == before
    with open(large_file, "r+b") as handle:
        handle.truncate(FULL_HASH_LIMIT)
    at_limit = content_digest(str(large_file))
    _flip(large_file, offsets[1] + BLOCK + 5)
    assert content_digest(str(large_file)) != at_limit
