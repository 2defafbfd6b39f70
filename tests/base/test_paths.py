"""Paths in messages as the user wrote them (issue #20): relative to the working folder, not made absolute."""

from __future__ import annotations

import os

import pytest

from graft.base.paths import as_written, shown, shown_source
from graft.commands.cli import main


def test_a_path_inside_the_working_folder_is_shown_relative_one_outside_as_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shown(str(tmp_path / "runs" / "seed")) == os.path.join("runs", "seed")
    assert shown("runs/seed") == "runs/seed"  # as given
    assert shown("../elsewhere/m.keras") == "../elsewhere/m.keras"
    assert shown(str(tmp_path.parent / "m.keras")) == str(tmp_path.parent / "m.keras")  # not ../m.keras
    # a spec's path: relative ones from the working folder (the spec may be elsewhere), absolute ones as written
    assert shown_source("model", "../models/m.keras", str(tmp_path / "models" / "m.keras")) == \
        f"model {os.path.join('models', 'm.keras')}"
    assert as_written(str(tmp_path / "m.keras"), str(tmp_path / "m.keras")) == str(tmp_path / "m.keras")
    assert as_written("~/m.keras", "/home/someone/m.keras") == "~/m.keras"


def test_a_run_folder_that_is_a_file_is_named_as_given(tmp_path, monkeypatch):
    from graft.records.rundir import RunDir, RunError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.txt").write_text("not a folder")
    with pytest.raises(RunError, match=r"^--out is a file, not a folder: out.txt; choose another --out$"):
        RunDir("out.txt").check_writable(["pretrain"])
    with pytest.raises(RunError, match=r"^out.txt, a parent of --out, is a file, not a folder: out.txt;"):
        RunDir(str(tmp_path / "out.txt" / "seed")).check_writable(["pretrain"])


def test_a_finished_stage_that_is_not_there_is_named_as_given(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "seed").mkdir(parents=True)
    assert main(["evaluate", "runs/seed", "transfer"]) == 1
    assert capsys.readouterr().err == "error: runs/seed has no finished stage 'transfer'; no stage has finished there\n"


def test_an_output_that_exists_is_named_as_given(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schema.json").write_text("{}")
    from graft.finished.outfile import OutputExists, check_free

    with pytest.raises(OutputExists, match=r"^schema.json exists \(file\); nothing was written"):
        check_free("schema.json", False, "--output")
    with pytest.raises(Exception, match=r"^cannot write missing/x.npz: the folder missing does not exist"):
        check_free("missing/x.npz", False, "--output")
