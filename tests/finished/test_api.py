"""The Python API (``graft.finished.api``, exported from ``graft``) on the seed scenario (``TINY_GRU_SPEC``).

One module-scoped run of the tiny spec serves every test that needs a trained stage.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import graft
from graft.base.problems import SpecError
from graft.finished.api import FinishedStage, RunResult, UnknownName
from graft.model.weights import FILENAME, read_weights
from graft.records.report import StageReport
from graft.records.rundir import RunError
from graft.spec.specfile import SpecFile
from tests.conftest import TINY_GRU_SPEC

STAGES = ["pretrain", "transfer"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> tuple[str, RunResult, list[str]]:
    folder = tmp_path_factory.mktemp("api")
    path = folder / "spec.yaml"
    path.write_text(TINY_GRU_SPEC)
    lines: list[str] = []
    result = graft.run(str(path), folder / "out", log=lines.append)
    return str(path), result, lines


# -- load_spec ---------------------------------------------------------------------------


def test_load_spec_from_a_path(write_spec):
    path = write_spec(TINY_GRU_SPEC)
    spec = graft.load_spec(path)
    assert isinstance(spec, SpecFile)
    assert [stage.name for stage in spec.spec.stages] == STAGES
    assert graft.load_spec(spec) is spec


def test_load_spec_from_a_dict_equals_the_file(write_spec, tmp_path):
    from_file = graft.load_spec(write_spec(TINY_GRU_SPEC))
    from_dict = graft.load_spec(yaml.safe_load(TINY_GRU_SPEC), base_dir=tmp_path)
    assert from_dict.spec == from_file.spec
    assert from_dict.base_dir == str(tmp_path)


def test_load_spec_from_a_dict_resolves_paths_against_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert graft.load_spec(yaml.safe_load(TINY_GRU_SPEC)).base_dir == str(tmp_path)


def test_a_dict_with_problems_raises_spec_error_at_yaml_paths_without_line_numbers():
    data = yaml.safe_load(TINY_GRU_SPEC)
    data["stages"][0]["epochs"] = "3"
    data["stages"][1]["epochs"] = -1
    with pytest.raises(SpecError) as caught:
        graft.load_spec(data)
    error = caught.value
    assert error.source == "spec (a dict)"
    assert error.lines[0] == "stages[0].epochs: expected an integer, got str '3'"
    assert error.lines[1].startswith("stages[1].epochs: ")
    assert "(line" not in str(error)


def test_a_dict_holding_what_yaml_cannot_is_a_spec_error():
    data = yaml.safe_load(TINY_GRU_SPEC)
    data["seed"] = object()
    with pytest.raises(SpecError, match="YAML cannot"):
        graft.load_spec(data)


def test_base_dir_is_only_for_a_dict(write_spec):
    with pytest.raises(TypeError, match="base_dir"):
        graft.load_spec(write_spec(TINY_GRU_SPEC), base_dir=".")


def test_a_bad_file_is_the_spec_error_graft_validate_gives(write_spec):
    path = write_spec(TINY_GRU_SPEC.replace("epochs: 1\n", "epochs: '1'\n", 1))
    with pytest.raises(SpecError) as caught:
        graft.load_spec(path)
    assert caught.value.source == path
    assert caught.value.lines == ["stages[0].epochs (line 23): expected an integer, got str '1'"]


# -- plan ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("given", ["path", "dict", "loaded"])
def test_plan_freezes_gru_1_and_gru_2_in_transfer(given, write_spec):
    path = write_spec(TINY_GRU_SPEC)
    spec = {"path": path, "dict": yaml.safe_load(TINY_GRU_SPEC), "loaded": graft.load_spec(path)}[given]
    plans = graft.plan(spec)
    assert [plan.name for plan in plans] == STAGES
    pretrain, transfer = plans
    assert all(layer.trainable for layer in pretrain.layers)
    frozen = [layer.name for layer in transfer.layers if not layer.trainable]
    assert frozen == ["gru_1", "gru_2"]
    assert transfer.layer("gru_1").source == "stage pretrain"


@pytest.mark.slow
def test_a_policy_naming_a_missing_layer_is_a_spec_error_from_plan():
    data = yaml.safe_load(TINY_GRU_SPEC)
    data["stages"][1]["policy"]["params"]["freeze"] = ["gru_1", "gru_4"]
    with pytest.raises(SpecError, match=r"stages\[1\]\.policy\.params\.freeze\[1\]: no layer 'gru_4'"):
        graft.plan(data)


def test_graft_plan_stays_the_api_function_after_the_planner_module_is_imported():
    import graft.planning.stageplan  # noqa: F401 - a submodule import sets an attribute of the package

    assert graft.plan is graft.finished.api.plan


# -- run and load_stage ----------------------------------------------------------------------


@pytest.mark.slow
def test_run_returns_every_stage_report_and_the_folder(seed_run):
    _, result, lines = seed_run
    assert isinstance(result, RunResult)
    assert [report.stage for report in result.reports] == STAGES
    assert all(isinstance(report, StageReport) for report in result.reports)
    assert os.path.isdir(os.path.join(result.out, "transfer"))
    assert any("results:" in line for line in lines)


@pytest.mark.slow
def test_run_again_keeps_the_finished_stages(seed_run):
    path, result, _ = seed_run
    lines: list[str] = []
    again = graft.run(path, result.out, log=lines.append)
    assert again.reports == result.reports
    assert sum("finished earlier, kept" in line for line in lines) == 2


@pytest.mark.slow
def test_result_stage_loads_the_finished_stage(seed_run):
    _, result, _ = seed_run
    stage = result.stage("transfer")
    assert isinstance(stage, FinishedStage)
    assert stage.name == "transfer" and stage.report == result.reports[1]
    assert stage.path == os.path.join(result.out, "transfer")
    assert list(stage.model.output_names) == ["level", "trend"]
    with pytest.raises(UnknownName, match="its stages: pretrain, transfer"):
        result.stage("tranfser")


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_layer_gru_1_holds_the_published_weights(seed_run, stage):
    _, result, _ = seed_run
    finished = graft.load_stage(result.out, stage)
    saved = read_weights(os.path.join(result.out, stage, FILENAME))
    for name, weights in saved.items():
        found = finished.layer(name).get_weights()
        assert len(found) == len(weights)
        assert all(np.array_equal(a, b) for a, b in zip(found, weights, strict=True)), name
    assert type(finished.layer("gru_1")).__name__ == "GRU"


@pytest.mark.slow
def test_model_get_layer_misses_a_nested_extractor_layer_that_layer_finds(seed_run):
    """The documented reason for ``FinishedStage.layer``: model.keras nests the extractor."""
    _, result, _ = seed_run
    finished = graft.load_stage(result.out, "transfer")
    with pytest.raises(ValueError):
        finished.model.get_layer("gru_1")
    assert finished.layer("gru_1").name == "gru_1"
    assert finished.layer("level") is finished.model.get_layer("level")


@pytest.mark.slow
def test_an_unknown_layer_lists_the_known_names(seed_run):
    _, result, _ = seed_run
    with pytest.raises(UnknownName) as caught:
        graft.load_stage(result.out, "transfer").layer("nope")
    message = str(caught.value)
    assert "no layer 'nope'" in message
    for name in ["gru_1", "gru_2", "gru_3", "level", "trend"]:
        assert name in message
    with pytest.raises(UnknownName, match="did you mean 'gru_3'"):
        graft.load_stage(result.out, "transfer").layer("gru_33")


@pytest.mark.slow
def test_load_stage_of_a_stage_not_finished_names_the_finished_ones(seed_run, tmp_path):
    _, result, _ = seed_run
    with pytest.raises(UnknownName, match="no finished stage 'transfr' — did you mean 'transfer'.*pretrain, transfer"):
        graft.load_stage(result.out, "transfr")
    with pytest.raises(UnknownName, match="no stage has finished"):
        graft.load_stage(tmp_path, "transfer")


@pytest.mark.slow
def test_load_stage_refuses_a_model_that_is_not_the_published_one(seed_run, tmp_path):
    import shutil

    _, result, _ = seed_run
    out = tmp_path / "copy"
    shutil.copytree(result.out, out)
    with open(out / "pretrain" / "model.keras", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(RunError, match="digest differs"):
        graft.load_stage(out, "pretrain")


# -- import graft stays light -------------------------------------------------------------------


def test_import_graft_and_the_api_do_not_import_tensorflow():
    code = (
        "import graft, sys; graft.load_spec; graft.run; graft.load_stage; graft.RunResult; graft.plan;"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.split() == ["False", "False"]


def test_loading_a_spec_does_not_import_tensorflow():
    code = (
        "import graft, sys, yaml; from tests.conftest import TINY_GRU_SPEC;"
        "graft.load_spec(yaml.safe_load(TINY_GRU_SPEC)); print('tensorflow' in sys.modules)"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert found.stdout.strip() == "False"


def test_the_api_is_exported():
    for name in ["load_spec", "plan", "run", "load_stage", "FinishedStage", "RunResult"]:
        assert name in graft.__all__
        assert getattr(graft, name) is not None
    with pytest.raises(AttributeError):
        graft.no_such_name  # noqa: B018
