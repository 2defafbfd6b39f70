"""The command line people expect (issue #10): ``--version``, ``validate`` of several
files, ``plugins --format json``, the compact ``plan`` and ``--all``, ``--verbose``.

In-process through ``main([...])``; one subprocess, for the promise that
``graft --version`` does not import TensorFlow.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import graft
from graft.commands.cli import TENSORFLOW_DISTRIBUTIONS, main, version_lines
from graft.planning.stageplan import LOADED, NEW, NO_WEIGHTS, LayerPlan
from graft.planning.view import SHOWN_IN_FULL, layer_rows

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "gru_transfer.yaml"
COLUMNS = ["name", "provides", "distribution", "status"]
TABLE_HEADER = ["layer", "type", "output shape", "params", "trains", "starting weights"]

# 11 Conv1D blocks with batch norm: 33 layers, the pooling and a head: 35 layers, more than SHOWN_IN_FULL.
# The second stage freezes the early_* blocks; the late_* convolutions train while their batch norms stay frozen.
BIG_SPEC = """\
seed: 4
model:
  input_shape: [16, 2]
  extractor:
    plugin: conv1d
    params:
      batch_norm: true
      layers:
{layers}
  heads:
    trend: {{plugin: dense, loss: sparse_categorical_crossentropy, params: {{units: 3, activation: softmax}}}}
stages:
  - name: pretrain
    data: &data
      source: synthetic
      params: {{samples: 40, timesteps: 16, channels: 2, seed: 1, targets: {{trend: trend}}}}
    epochs: 1
    batch_size: 8
  - name: tune
    init: {{stage: pretrain}}
    data: *data
    epochs: 1
    batch_size: 8
    policy: {{plugin: layers, params: {{freeze: ["early_*"]}}}}
"""
BLOCKS = [f"early_{n}" for n in range(1, 9)] + [f"late_{n}" for n in range(1, 4)]


def table(out: str) -> list[list[str]]:
    """The rows of every layer table in ``out`` (header lines left out), cells split on 2+ spaces."""
    rows = [
        re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.startswith("  ") and "  " in line.strip()
    ]
    return [row for row in rows if len(row) == len(TABLE_HEADER) and row != TABLE_HEADER]


def stage_texts(out: str) -> list[str]:
    return out.rstrip("\n").split("\n\n")


# -- graft --version ------------------------------------------------------------


def test_version_names_keras_graft_tensorflow_keras_and_every_plugin_distribution(capsys):
    assert main(["--version"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == f"keras-graft {graft.__version__}"
    name, version = lines[1].split(" ")
    assert name in TENSORFLOW_DISTRIBUTIONS and version == importlib.metadata.version(name)
    assert lines[2] == f"keras {importlib.metadata.version('keras')}"
    assert lines[3].startswith("plugins: ")
    plugins = lines[3].removeprefix("plugins: ").split(", ")
    for distribution in ("graft-gru", "graft-conv1d"):
        assert f"{distribution} {importlib.metadata.version(distribution)}" in plugins
    assert plugins == sorted(plugins)
    assert not any(plugin.startswith("keras-graft ") for plugin in plugins)  # the core is line 1, not a plugin


def test_version_lists_installed_plugins_that_graft_plugins_leaves_disabled(monkeypatch, capsys):
    monkeypatch.setenv("GRAFT_PLUGINS", "gru")

    assert main(["--version"]) == 0

    assert f"graft-conv1d {importlib.metadata.version('graft-conv1d')}" in capsys.readouterr().out


def dist_info(folder: pathlib.Path, name: str, version: str, entry_points: str = "") -> None:
    """A real installed distribution's metadata, as pip leaves it in site-packages."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if entry_points:
        (info / "entry_points.txt").write_text(entry_points)


def test_version_without_tensorflow_says_how_to_install_it_and_never_loads_a_plugin(tmp_path, monkeypatch):
    dist_info(tmp_path, "keras", "3.9.9")
    dist_info(tmp_path, "graft-lstm", "2.0.1", "[graft]\nlstm = graft_lstm_probe:Plugin\n")
    (tmp_path / "graft_lstm_probe.py").write_text("class Plugin:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the plugin's module is importable: only not importing it passes
    monkeypatch.delenv("GRAFT_PLUGINS", raising=False)

    lines = version_lines([str(tmp_path)])

    assert lines == [
        f"keras-graft {graft.__version__}",
        "tensorflow not installed (graft plan and graft run need it): "
        "pip install 'keras-graft[cpu]' (CPU-only) or 'keras-graft[gpu]' (NVIDIA GPU)",
        "keras 3.9.9",
        "plugins: graft-lstm 2.0.1",
    ]
    assert "graft_lstm_probe" not in sys.modules


def test_version_with_nothing_installed(tmp_path):
    lines = version_lines([str(tmp_path)])

    assert lines[1].startswith("tensorflow not installed ")
    assert lines[2].startswith("keras not installed (it comes with TensorFlow): pip install ")
    assert lines[3] == "plugins: none installed (only the built-ins of keras-graft; graft plugins lists them)"


def test_version_does_not_import_tensorflow():
    code = (
        "import sys; from graft.commands.cli import main; rc = main(['--version']); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules); sys.exit(rc)"
    )
    env = {key: value for key, value in os.environ.items() if key != "GRAFT_PLUGINS"}  # every installed plugin
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"keras-graft {graft.__version__}"
    assert lines[-1] == "False False", result.stdout


def test_no_command_is_a_usage_error_that_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "choose a command: plugins, validate, plan, run, cache" in capsys.readouterr().err


# -- graft --verbose ------------------------------------------------------------


def test_verbose_sets_graft_verbose_for_what_runs_after(monkeypatch, capsys):
    monkeypatch.setenv("GRAFT_VERBOSE", "0")  # restored after the test

    assert main(["plugins"]) == 0
    assert os.environ["GRAFT_VERBOSE"] == "0"
    assert main(["--verbose", "plugins"]) == 0
    assert os.environ["GRAFT_VERBOSE"] == "1"


def test_verbose_is_in_the_help(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--verbose show TensorFlow's own log lines" in help_text
    assert "--version" in help_text


# -- graft validate A B ... -------------------------------------------------------


def test_validate_checks_every_file_despite_the_bad_ones(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("epochs: 3", "epochs: three", 1))
    missing = tmp_path / "absent.yaml"
    conv1d = ROOT / "configs" / "conv1d_transfer.yaml"

    assert main(["validate", str(CONFIG), str(bad), str(missing), str(conv1d)]) == 1

    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{CONFIG}: valid — extractor gru, heads level, trend, stages pretrain, transfer",
        f"{conv1d}: valid — extractor conv1d, heads trend, stages pretrain, new_head",
    ]
    err = captured.err.splitlines()
    assert err[0] == f"error: {bad}: 1 problem"
    assert "stages[0].epochs (line " in err[1] and "expected an integer, got str 'three'" in err[1]
    assert err[2:4] == [f"error: {missing}: 1 problem", "  cannot read the spec: No such file or directory"]
    assert err[4:] == [f"2 of 4 specs invalid: {bad}, {missing}"]


def test_validate_of_valid_files_exits_0_with_a_line_each(capsys):
    configs = [
        str(ROOT / "configs" / name) for name in ("gru_transfer.yaml", "conv1d_transfer.yaml", "gru_progressive.yaml")
    ]

    assert main(["validate", *configs]) == 0

    captured = capsys.readouterr()
    assert captured.err == ""
    assert [line.split(": valid — ")[0] for line in captured.out.splitlines()] == configs


def test_validate_needs_a_file(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["validate"])
    assert caught.value.code == 2
    assert "CONFIG" in capsys.readouterr().err


# -- graft plugins --format json ------------------------------------------------------


def test_plugins_json_has_the_rows_of_the_table(capsys):
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert main(["plugins", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)

    assert all(list(row) == COLUMNS for row in rows)
    table_rows = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]
    assert table_rows[0] == COLUMNS
    assert [list(row.values()) for row in rows] == table_rows[1:]
    gru = next(row for row in rows if row["name"] == "gru")
    assert gru == {
        "name": "gru",
        "provides": "extractor",
        "distribution": f"graft-gru {importlib.metadata.version('graft-gru')}",
        "status": "ok",
    }


# -- graft plan: compact by default, --all --------------------------------------------


def layer(name: str, params: int = 10, trainable: bool = True, init: str = NEW, part: str = "extractor",
          class_name: str = "Dense", source: str | None = None) -> LayerPlan:
    return LayerPlan(name, class_name, part, (None, 4), params if init != NO_WEIGHTS else 0, trainable, init,
                     source, shapes=[])


def test_a_stage_of_up_to_30_layers_keeps_a_row_for_each():
    assert SHOWN_IN_FULL == 30  # as the README and graft plan --help say
    layers = [layer(f"dense_{n}") for n in range(SHOWN_IN_FULL)]

    rows, grouped = layer_rows(layers, compact=True)

    assert (len(rows), grouped) == (SHOWN_IN_FULL, 0)
    assert [row[0] for row in rows] == [f"dense_{n}" for n in range(SHOWN_IN_FULL)]


def test_compact_rows_group_runs_of_three_or_more_weighted_layers_with_the_same_fate():
    pretrained = {"init": LOADED, "source": "stage pretrain"}
    layers = [
        *(layer(f"a{n}", trainable=False, **pretrained) for n in range(20)),  # one fate: 20 layers...
        layer("a_relu", init=NO_WEIGHTS, class_name="ReLU"),  # ...a layer without weights joins them
        layer("b0", **pretrained),  # trained: a fate of its own
        layer("b0_bn", trainable=False, class_name="BatchNormalization", **pretrained),
        layer("b1", **pretrained),
        layer("b1_bn", trainable=False, class_name="BatchNormalization", **pretrained),
        layer("b1_relu", init=NO_WEIGHTS, class_name="ReLU"),
        *(layer(f"c{n}", **pretrained) for n in range(3)),  # exactly MIN_GROUP
        layer("c_relu", init=NO_WEIGHTS, class_name="ReLU"),
        layer("pool", init=NO_WEIGHTS, class_name="Pooling"),
        layer("d0", trainable=False, **pretrained),
        layer("d1", trainable=False, **pretrained),  # only 2: rows of their own
        layer("e0", init="reinitialised"),
        layer("e1", init="reinitialised"),
        layer("head", part="head", init="reinitialised"),  # another part: the e run ends before it
    ]

    rows, grouped = layer_rows(layers, compact=True)

    assert rows == [
        ("a0 … a_relu (21 layers)", "Dense, ReLU", "(batch, 4)", "200", "FROZEN", "loaded from stage pretrain"),
        ("b0", "Dense", "(batch, 4)", "10", "yes", "loaded from stage pretrain"),
        ("b0_bn", "BatchNormalization", "(batch, 4)", "10", "FROZEN", "loaded from stage pretrain"),
        ("b1", "Dense", "(batch, 4)", "10", "yes", "loaded from stage pretrain"),
        ("b1_bn", "BatchNormalization", "(batch, 4)", "10", "FROZEN", "loaded from stage pretrain"),
        ("b1_relu", "ReLU", "(batch, 4)", "0", "yes", "none"),
        ("c0 … pool (5 layers)", "mixed", "(batch, 4)", "30", "yes", "loaded from stage pretrain"),
        ("d0", "Dense", "(batch, 4)", "10", "FROZEN", "loaded from stage pretrain"),
        ("d1", "Dense", "(batch, 4)", "10", "FROZEN", "loaded from stage pretrain"),
        ("e0", "Dense", "(batch, 4)", "10", "yes", "reinitialised"),
        ("e1", "Dense", "(batch, 4)", "10", "yes", "reinitialised"),
        ("head", "Dense", "(batch, 4)", "10", "yes", "reinitialised"),
    ]
    assert grouped == 21 + 5
    assert layer_rows(layers)[0] == layer_rows(layers, compact=False)[0]
    assert [row[0] for row in layer_rows(layers)[0]] == [each.name for each in layers]


@pytest.mark.slow
def test_the_seed_scenario_plan_looks_as_it_always_did(capsys):
    assert main(["plan", str(CONFIG)]) == 0
    compact = capsys.readouterr().out
    assert main(["plan", str(CONFIG), "--all"]) == 0

    assert capsys.readouterr().out == compact
    assert "groups" not in compact and "…" not in compact
    pretrain, transfer = (text.splitlines()[3:9] for text in stage_texts(compact))
    assert pretrain == [
        "  layer  type   output shape     params  trains  starting weights",
        "  gru_1  GRU    (batch, 50, 16)  1,248   yes     new",
        "  gru_2  GRU    (batch, 50, 16)  1,632   yes     new",
        "  gru_3  GRU    (batch, 16)      1,632   yes     new",
        "  level  Dense  (batch, 1)       17      yes     new",
        "  trend  Dense  (batch, 3)       51      yes     new",
    ]
    assert transfer == [
        "  layer  type   output shape     params  trains  starting weights",
        "  gru_1  GRU    (batch, 50, 16)  1,248   FROZEN  loaded from stage pretrain",
        "  gru_2  GRU    (batch, 50, 16)  1,632   FROZEN  loaded from stage pretrain",
        "  gru_3  GRU    (batch, 16)      1,632   yes     loaded from stage pretrain",
        "  level  Dense  (batch, 1)       17      yes     loaded from stage pretrain",
        "  trend  Dense  (batch, 3)       51      yes     loaded from stage pretrain",
    ]


@pytest.fixture
def big_spec(write_spec) -> str:
    blocks = "\n".join(f"        - {{name: {name}, filters: 2, kernel_size: 3}}" for name in BLOCKS)
    return write_spec(BIG_SPEC.format(layers=blocks))


@pytest.mark.slow
def test_a_big_plan_is_compact_and_all_shows_every_layer(big_spec, capsys):
    assert main(["plan", big_spec]) == 0
    compact = capsys.readouterr().out
    assert main(["plan", big_spec, "--all"]) == 0
    every = capsys.readouterr().out
    assert main(["plan", big_spec, "--format", "json"]) == 0
    stages = json.loads(capsys.readouterr().out)["stages"]

    names = [each["name"] for each in stages[0]["layers"]]
    assert len(names) == 35 > SHOWN_IN_FULL
    assert [[row[0] for row in table(text)] for text in stage_texts(every)] == [names, names]
    assert "groups" not in every

    pretrain, tune = stage_texts(compact)
    extractor_params = sum(each["params"] for each in stages[0]["layers"] if each["part"] == "extractor")
    assert table(pretrain) == [
        ["early_1 … conv_pool (34 layers)", "mixed", "(batch, 2)", f"{extractor_params:,}", "yes", "new"],
        ["trend", "Dense", "(batch, 3)", "9", "yes", "new"],
    ]
    assert "  (34 layers in groups; graft plan --all shows every layer)\n  trainable parameters: " in pretrain

    early = [each for each in stages[1]["layers"] if each["name"].startswith("early_")]
    rows = table(tune)
    assert rows[0] == [
        "early_1 … early_8_act (24 layers)", "mixed", "(batch, 16, 2)", f"{sum(each['params'] for each in early):,}",
        "FROZEN", "loaded from stage pretrain",
    ]
    assert [row[0] for row in rows[1:]] == names[24:]  # late_*: trained conv, frozen batch norm, each its own row
    assert [row[4] for row in rows[1:4]] == ["yes", "FROZEN", "yes"]
    assert "  (24 layers in groups; graft plan --all shows every layer)\n" in tune
    assert len(compact.splitlines()) < len(every.splitlines()) - 50
