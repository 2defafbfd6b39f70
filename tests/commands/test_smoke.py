"""``graft run --smoke``: every stage one epoch of a few batches, in a throwaway folder unless ``--out``."""

from __future__ import annotations

import json

import pytest

from graft.base.backend import import_keras
from graft.commands import smoke
from graft.commands.cli import main
from graft.runs.observer import RunObserver
from graft.runs.stages import run_spec
from graft.spec.overrides import parse_override
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC

LONGER = TINY_GRU_SPEC.replace("    epochs: 1\n", "    epochs: 4\n")  # every stage: --smoke must cut it to 1


class BatchCount(RunObserver):
    """Training and validation batches of every fit."""

    def __init__(self) -> None:
        self.fits: list[dict[str, int]] = []

    def before_fit(self, stage, round, built) -> None:
        self.fits.append({"train": 0, "validation": 0})

    def keras_callbacks(self) -> list:
        keras, fits = import_keras(), self.fits

        class Count(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                fits[-1]["train"] += 1

            def on_test_batch_end(self, batch, logs=None):
                fits[-1]["validation"] += 1

        return [Count()]


@pytest.mark.slow
def test_smoke_runs_every_stage_for_one_epoch_into_a_folder_it_removes(write_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_spec(LONGER)

    assert main(["run", path, "--smoke"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("smoke run: every stage 1 epoch of at most 3 training and 3 validation batches, into "
                             "a throwaway folder ")
    scratch = out[0].split("throwaway folder ")[1].split(" ")[0]
    assert out[-1] == f"smoke run: removed {scratch}"
    assert any(line.startswith("== stage 2/2 'transfer'") for line in out)
    assert not (tmp_path / scratch).exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_smoke_with_out_keeps_the_folder_and_trains_a_few_batches(write_spec, tmp_path, registry, capsys):
    out = tmp_path / "smoke"
    assert main(["run", write_spec(LONGER), "--smoke", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"smoke run: every stage 1 epoch of at most 3 training and 3 "
                                              f"validation batches, into {out} (kept;")
    for stage in ("pretrain", "transfer"):
        assert json.loads((out / stage / "report.json").read_text())["epochs_run"] == 1

    counted = BatchCount()  # what --smoke asks of the runner, with batches so small that 3 are fewer than all
    more = [parse_override("stages.*.batch_size=4"), parse_override("stages.*.data.params.samples=96")]  # 77 + 19
    spec_file = load_spec(write_spec(LONGER), registry, [*smoke.overrides(), *more])
    run_spec(spec_file, registry, str(tmp_path / "counted"), log=lambda line: None, observer=counted,
             cache_features=False, max_batches=smoke.BATCHES)
    assert counted.fits == [{"train": 3, "validation": 3}] * 2


def test_smoke_refuses_workers(write_spec, capsys):
    assert main(["run", write_spec(LONGER), "--smoke", "--local-workers", "2"]) == 1
    assert capsys.readouterr().err == (
        "error: --smoke runs in this one process: leave out --local-workers, --workers and --worker-index\n"
    )
