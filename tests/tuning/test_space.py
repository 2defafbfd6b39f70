"""A search space is vetted against its spec before anything trains: every error names the search file's line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graft.commands.cli import main
from graft.tuning.space import read_space
from tests.tuning.sweep_specs import write


def sweep(tmp_path, capsys, space: str) -> tuple[int, str]:
    spec, searched = write(tmp_path, space=space)
    code = main(["sweep", spec, searched, "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("space", "expected"), [
    ("""\
     stage: transfer
     params:
       stages.transfer.optimizer.learning_rte: {loguniform: [1.0e-4, 1.0e-2]}
     """, "params.stages.transfer.optimizer.learning_rte (line 3): not a path of the spec: "
          "--set stages.transfer.optimizer.learning_rte=0.0001: stages[1].optimizer has no key 'learning_rte'"),
    ("""\
     stage: transfer
     params:
       stages.transfer.optimizer.learning_rate: {uniform: [-1.0, 0.1]}
     """, "(line 3): -1.0 is refused by the spec: stages[1].optimizer.learning_rate (--set "
          "stages.transfer.optimizer.learning_rate=-1.0): "),
    ("""\
     stage: transfer
     params:
       stages.transfer.policy.params.layers: {int: [1, 9]}
     """, "params.stages.transfer.policy.params.layers (line 3): 9 is refused by the spec"),
    ("""\
     stage: transfer
     params:
       stages.transfer.epochs: {int: [3, 1]}
     """, "params.stages.transfer.epochs.int (line 3): low must be below high, got [3, 1]"),
    ("""\
     stage: transfer
     params:
       stages.transfer.optimizer.learning_rate: {loguniform: [0, 0.1]}
     """, "(line 3): a log range starts above 0, got [0, 0.1]"),
    ("""\
     stage: transfer
     params:
       stages.transfer.epochs: {range: [1, 3]}
     """, "'range' is not a kind of range; use one of uniform, loguniform, int, logint, choice"),
    ("""\
     stage: transfer
     params:
       stages.pretrain.epochs: {int: [1, 3]}
     """, "params.stages.pretrain.epochs (line 3): only the swept stage's values can be swept"),
    ("""\
     stage: transfer
     metric: val_acuracy
     params:
       stages.transfer.epochs: {int: [1, 3]}
     """, "metric (line 2): stage 'transfer' logs no 'val_acuracy' — did you mean 'val_accuracy'?"),
    ("""\
     stage: transfr
     params:
       stages.transfer.epochs: {int: [1, 3]}
     """, "stage (line 1): the spec has no stage 'transfr' — did you mean 'transfer'?"),
    ("""\
     stage: transfer
     trials: 0
     direction: up
     params:
       stages.transfer.policy.params.freeze_batch_norm: {choice: [true, {a: 1}]}
     """, "trials (line 2): a number of trials from 1"),
], ids=["path-typo", "range-refused", "beyond-layers", "low-above-high", "log-from-zero", "unknown-kind",
        "earlier-stage", "metric-typo", "stage-typo", "several"])
def test_a_bad_path_or_range_is_an_error_at_its_line_before_anything_is_written(tmp_path, capsys, space, expected):
    code, err = sweep(tmp_path, capsys, space)
    assert code == 1
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing trained, no sweep folder


def test_every_problem_of_a_space_is_listed_at_once(tmp_path):
    _, searched = write(tmp_path, space="""\
        trials: 0
        direction: up
        params:
          stages.transfer.policy.params.freeze_batch_norm: {choice: [true, {a: 1}]}
        """)
    with pytest.raises(Exception) as caught:
        read_space(searched)
    assert str(caught.value).splitlines()[1:] == [
        "  trials (line 1): a number of trials from 1 to 100,000, got int 0",
        "  direction (line 2): one of minimize, maximize, got str 'up'",
        "  params.stages.transfer.policy.params.freeze_batch_norm.choice (line 4): a choice is a plain value "
        "(a name, a number, true/false, null), got dict; Optuna records choices as such",
    ]


def test_a_missing_optuna_is_an_error_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError, as when not installed
    spec, searched = write(tmp_path)
    assert main(["sweep", spec, searched, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        "error: graft sweep needs Optuna, which is not installed: pip install 'keras-graft[sweep]' "
        "(it installs Optuna)\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_graft_and_its_other_commands_never_import_optuna():
    import subprocess

    code = ("import sys, graft; from graft.commands.cli import _parser, main; _parser(); "
            "main(['validate', sys.argv[1]]); assert 'optuna' not in sys.modules, 'optuna imported'")
    spec = str(Path(__file__).parents[2] / "configs" / "gru_transfer.yaml")
    result = subprocess.run([sys.executable, "-c", code, spec], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
