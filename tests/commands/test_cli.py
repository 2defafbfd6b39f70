"""The ``graft`` command line.

Few subprocesses (the real console script, and the property that ``validate``
never imports TensorFlow); ``plan`` runs in-process through ``main([...])``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from graft.commands.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "gru_transfer.yaml"


def graft_command() -> list[str]:
    """The console script of the Python running the tests, else the module."""
    beside = pathlib.Path(sys.executable).with_name("graft")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("graft")
    return [found] if found else [sys.executable, "-m", "graft"]


def run(args: list[str], all_plugins: bool = False) -> subprocess.CompletedProcess:
    """Run in the repository root; GRAFT_PLUGINS=gru,conv1d unless ``all_plugins``."""
    env = {**os.environ, "GRAFT_PLUGINS": "gru,conv1d", "TF_CPP_MIN_LOG_LEVEL": "3"}
    if all_plugins:
        del env["GRAFT_PLUGINS"]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


@pytest.fixture
def misspelt(tmp_path) -> tuple[str, int]:
    """configs/gru_transfer.yaml with ``freeze: [gru_1, gru_4]``; its path and the line of the typo."""
    text = CONFIG.read_text()
    assert text.count("freeze: [gru_1, gru_2]") == 1
    text = text.replace("freeze: [gru_1, gru_2]", "freeze: [gru_1, gru_4]")
    path = tmp_path / "gru_transfer.yaml"
    path.write_text(text)
    line = next(number for number, line in enumerate(text.splitlines(), 1) if "gru_4" in line)
    return str(path), line


# -- subprocesses ----------------------------------------------------------------


def test_plugins_console_script_lists_the_installed_plugins():
    result = run([*graft_command(), "plugins"])

    assert result.returncode == 0, result.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines()]
    assert rows[0] == ["name", "provides", "distribution", "status"]
    by_name = {row[0]: row for row in rows[1:]}
    for name, provides, distribution in [
        ("gru", "extractor", "graft-gru"),
        ("conv1d", "extractor", "graft-conv1d"),
        ("dense", "head", "keras-graft"),
        ("layers", "policy", "keras-graft"),
        ("synthetic", "data source", "keras-graft"),
    ]:
        version = importlib.metadata.version(distribution)
        assert by_name[name] == [name, provides, f"{distribution} {version}", "ok"], by_name.get(name)
    assert [row[0] for row in rows[1:]] == sorted(row[0] for row in rows[1:])


def test_validate_and_plugins_do_not_import_tensorflow_nor_matplotlib():
    code = (
        "import sys; from graft.commands.cli import main; "
        f"rc = main(['validate', {str(CONFIG)!r}]) or main(['plugins']); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'matplotlib')); "
        "assert not heavy, heavy; "
        "sys.exit(rc)"
    )
    result = run([sys.executable, "-c", code], all_plugins=True)  # every installed plugin must obey too

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"{CONFIG}: valid — extractor gru, heads level, trend, stages pretrain, transfer"
    )


@pytest.mark.slow
def test_predict_with_a_misnamed_array_fails_before_tensorflow_is_imported(tmp_path):
    import numpy as np

    np.savez(tmp_path / "x.npz", inputs=np.zeros((2, 12, 3), np.float32))  # 'inputs', not 'input'
    code = (
        "import sys; from graft.commands.cli import main; "
        f"rc = main(['predict', {str(tmp_path / 'no-such-run')!r}, 'pretrain', {str(tmp_path / 'x.npz')!r}]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
        "assert not heavy, heavy; "
        "sys.exit(rc)"
    )
    result = run([sys.executable, "-c", code])

    assert result.returncode == 1, result.stderr
    assert f"no array 'input' in {tmp_path / 'x.npz'}; arrays: inputs" in result.stderr  # not the missing run folder
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.pretrain-predictions.npz").exists()


def test_help_and_validate_import_no_numpy_and_only_the_plugins_the_spec_names():
    """Start-up: ``import graft``, ``--help`` and ``validate`` stay light (numpy only where arrays are read;
    the registry lists every plugin but imports only those a spec names)."""
    code = (
        "import sys, contextlib, io; from graft.commands.cli import main\n"
        "import graft; assert 'numpy' not in sys.modules, 'import graft'\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit): main(['--help'])\n"
        "assert 'graft.spec.overrides' not in sys.modules and 'graft.records.rundir' not in sys.modules\n"
        f"rc = main(['validate', {str(CONFIG)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'tensorflow', 'keras', 'matplotlib'))\n"
        "assert not heavy, heavy\n"
        "assert 'graft_gru' in sys.modules and 'graft_conv1d' not in sys.modules, 'only the named plugins'\n"
        "sys.exit(rc)"
    )
    result = run([sys.executable, "-c", code], all_plugins=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"{CONFIG}: valid")


def test_validate_console_script_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("epochs: 3", "epochs: three", 1))

    good = run([*graft_command(), "validate", "configs/gru_transfer.yaml"])
    failed = run([*graft_command(), "validate", str(bad)])

    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("configs/gru_transfer.yaml: valid — ")
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert f"error: {bad}: 1 problem\n" in failed.stderr
    assert "stages[0].epochs (line " in failed.stderr and "expected an integer, got str 'three'" in failed.stderr
    assert "Traceback" not in failed.stderr


# -- in-process: validate ---------------------------------------------------------


def test_validate_reports_a_misspelt_layer_name_as_plan_does(misspelt, capsys):
    path, line = misspelt

    assert main(["validate", path]) == 1  # gru and dense declare their layers: no model is built

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [  # word for word what graft plan says (test_plan_reports_a_misspelt_...)
        f"error: {path}: 1 problem",
        f"  stages[1].policy.params.freeze[1] (line {line}): no layer 'gru_4' in the model; "
        "layers: gru_1, gru_2, gru_3, level, trend — did you mean 'gru_3'?",
    ]


def test_validate_reports_every_problem_on_stderr(tmp_path, capsys):
    text = CONFIG.read_text().replace("plugin: gru ", "plugin: gur ").replace("loss: mse", "loss: mes")
    path = tmp_path / "two.yaml"
    path.write_text(text)
    lines = text.splitlines()
    gur = next(n for n, line in enumerate(lines, 1) if "plugin: gur" in line)
    mes = next(n for n, line in enumerate(lines, 1) if "loss: mes" in line)

    assert main(["validate", str(path)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err[0] == f"error: {path}: 2 problems"
    assert err[1].startswith(f"  model.extractor.plugin (line {gur}): unknown extractor 'gur'; ")
    assert err[1].endswith(" — did you mean 'gru'?")
    assert err[2].startswith(f"  model.heads.level.loss (line {mes}): 'mes' is not one of: ")


def test_validate_of_a_missing_file(tmp_path, capsys):
    path = tmp_path / "absent.yaml"
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"error: {path}: 1 problem\n  cannot read the spec: No such file or directory\n"
    )


# -- in-process: plan ---------------------------------------------------------------


def test_plan_reports_a_misspelt_policy_layer(misspelt, capsys):
    path, line = misspelt

    assert main(["plan", path]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: {path}: 1 problem",
        f"  stages[1].policy.params.freeze[1] (line {line}): no layer 'gru_4' in the model; "
        "layers: gru_1, gru_2, gru_3, level, trend — did you mean 'gru_3'?",
    ]


def test_plan_json(capsys):
    assert main(["plan", str(CONFIG), "--format", "json"]) == 0

    plan = json.loads(capsys.readouterr().out)
    assert [stage["name"] for stage in plan["stages"]] == ["pretrain", "transfer"]
    pretrain, transfer = plan["stages"]
    names = ["gru_1", "gru_2", "gru_3", "level", "trend"]
    assert [layer["name"] for layer in pretrain["layers"]] == names
    assert [layer["name"] for layer in transfer["layers"]] == names

    assert (pretrain["policy"], pretrain["init"]) == ("continue", None)
    assert all(layer["trainable"] and layer["init"] == "new" for layer in pretrain["layers"])

    assert (transfer["policy"], transfer["init"]) == ("layers", "stage pretrain")
    assert {layer["name"]: layer["trainable"] for layer in transfer["layers"]} == {
        "gru_1": False,
        "gru_2": False,
        "gru_3": True,
        "level": True,
        "trend": True,
    }
    assert {layer["init"] for layer in transfer["layers"]} == {"loaded"}
    assert {layer["source"] for layer in transfer["layers"]} == {"stage pretrain"}
    frozen = sum(layer["params"] for layer in transfer["layers"] if not layer["trainable"])
    assert transfer["trainable_params"] == transfer["total_params"] - frozen
    assert pretrain["trainable_params"] == pretrain["total_params"] > 0


def test_plan_text_shows_frozen_rows(capsys):
    assert main(["plan", str(CONFIG)]) == 0

    out = capsys.readouterr().out
    first, second = out.split("\n\n")
    assert first.splitlines()[0] == "stage 1/2 'pretrain': policy continue, starts from fresh initialisation"
    assert second.splitlines()[0] == "stage 2/2 'transfer': policy layers, starts from stage pretrain"
    assert "FROZEN" not in first
    frozen = [row.split()[0] for row in second.splitlines() if "FROZEN" in row]
    assert frozen == ["gru_1", "gru_2"]
    lines = second.splitlines()
    assert lines[1].strip().startswith("data: synthetic (seed 2): ")
    assert lines[2].strip().startswith("checked: all ")
    header = next(index for index, line in enumerate(lines) if line.split()[:2] == ["layer", "type"])
    rows = {row.split()[0]: row for row in lines[header + 1 : -1]}
    assert set(rows) == {"gru_1", "gru_2", "gru_3", "level", "trend"}
    assert all(row.endswith("loaded from stage pretrain") for row in rows.values())
    assert re.search(r"\s yes\s+loaded from stage pretrain$", rows["gru_3"])
    assert second.splitlines()[-1].strip().startswith("trainable parameters: ")


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["plam", str(CONFIG)])
    assert caught.value.code == 2
    assert "invalid choice: 'plam'" in capsys.readouterr().err


def test_new_plugin_offers_the_kinds_and_licences_the_scaffold_writes():
    """The command lists them without importing the scaffold at every start of graft."""
    from graft.authoring import scaffold
    from graft.commands import new_plugin

    assert tuple(scaffold.KINDS) == new_plugin.KINDS
    assert new_plugin.LICENSES == scaffold.LICENSES
