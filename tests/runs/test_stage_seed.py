"""A stage's own ``seed``: two stages at one seed train alike wherever they stand in the spec."""

from __future__ import annotations

import re

import pytest

import graft
from graft.base.problems import SpecError
from graft.model.weights import FILENAME, read_weights
from graft.runs.resume import stage_fingerprints
from tests.observers import bitwise

SPEC = """\
seed: 3
model:
  input_shape: [12, 3]
  extractor: {plugin: gru, params: {layers: [{name: gru_1, units: 4}]}}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
stages:
"""


def stage(name: str, seed: str = "") -> str:
    return f"""\
  - name: {name}
    data: {{source: synthetic, params: {{samples: 32, timesteps: 12, channels: 3, seed: 1, targets: {{level: level}}}}}}
    epochs: 1
    batch_size: 8
{seed}"""


@pytest.mark.slow
def test_two_stages_at_one_seed_train_bitwise_alike_and_the_default_differs(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + stage("first", "    seed: 11\n") + stage("default") + stage("third", "    seed: 11\n"))
    graft.run(str(path), tmp_path / "out", log=lambda _line: None)
    first, default, third = (read_weights(str(tmp_path / "out" / name / FILENAME)) for name in
                             ("first", "default", "third"))
    assert all(bitwise(first[name], third[name]) for name in first)
    assert not all(bitwise(first[name], default[name]) for name in first)


def test_a_stage_seed_changes_only_its_fingerprint_and_is_checked(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + stage("a") + stage("b"))
    before = stage_fingerprints(graft.load_spec(str(path)))
    path.write_text(SPEC + stage("a", "    seed: 4\n") + stage("b"))
    after = stage_fingerprints(graft.load_spec(str(path)))
    assert after[0] != before[0] and after[1] != before[1]  # a later stage follows from the earlier ones
    text = SPEC + stage("a", "    seed: -1\n")
    path.write_text(text)
    with pytest.raises(SpecError, match=re.escape("stages[0].seed (line 12): must be from 0 to 2,147,483,647, got -1")):
        graft.load_spec(str(path))
