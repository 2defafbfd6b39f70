"""Every example spec in configs/ validates and plans with the installed plugins."""

from __future__ import annotations

import glob
import os
import shutil

import pytest

from graft.planning.stageplan import plan_spec
from graft.spec.specfile import load_spec

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*.yaml")))
FOLDERS = {"mobilenet_folder.yaml": "data/digits_folder"}  # configs reading a folder a script writes first


def _with_its_data(path: str, tmp_path) -> str:
    """``path``, or for a config in FOLDERS a copy in ``tmp_path`` beside the folder it reads, written there."""
    folder = FOLDERS.get(os.path.basename(path))
    if folder is None:
        return path
    from graft_digits.folder import write_digits_folder

    write_digits_folder(str(tmp_path / folder))
    return shutil.copy(path, tmp_path)


def test_there_are_configs():
    assert len(CONFIGS) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_validates_and_plans(path, registry, tmp_path):
    spec_file = load_spec(_with_its_data(path, tmp_path), registry)
    plans = plan_spec(spec_file, registry)
    assert [plan.name for plan in plans] == [stage.name for stage in spec_file.spec.stages]
    for plan in plans:
        assert 0 < plan.trainable_params <= plan.total_params
        assert all(layer.init in ("new", "loaded", "reinitialised", "none") for layer in plan.layers)


@pytest.mark.slow
def test_seed_scenario_plan_freezes_the_first_two_grus(registry):
    path = next(p for p in CONFIGS if p.endswith("gru_transfer.yaml"))
    pretrain, transfer = plan_spec(load_spec(path, registry), registry)
    assert all(layer.trainable and layer.init == "new" for layer in pretrain.layers)
    frozen = {layer.name for layer in transfer.layers if not layer.trainable}
    assert frozen == {"gru_1", "gru_2"}
    assert {layer.name: layer.source for layer in transfer.layers} == dict.fromkeys(
        ["gru_1", "gru_2", "gru_3", "level", "trend"], "stage pretrain"
    )
