"""A real run with low-rank adapters, proven at the level of weights and files.

One tiny GRU run is shared by the module: ``pretrain``; ``transfer`` adapts gru_2 and gru_3 (gru_3 at a
learning-rate scale of 0), freezes gru_1 and trains the heads; ``after`` continues from ``transfer`` by
name; ``head_adapter`` adapts one head over a frozen extractor, on cached features.  An observer
records the model's outputs when training starts, so "the stage starts from exactly the base's outputs"
is observed, not taken from the runner's report.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import graft
from graft.finished.adapted import AdapterMismatch
from graft.model.adapterfile import FILENAME as ADAPTERS
from graft.model.adapterfile import read_adapters
from graft.model.weights import FILENAME, read_weights
from graft.runs.observer import RunObserver
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC
from tests.observers import Crash, bitwise, read_report
from tests.runs.test_runner import same_weights, tree

pytestmark = pytest.mark.slow

POLICY = "      params: {freeze: [gru_1, gru_2], train: [gru_3, level, trend]}\n"
SPEC = TINY_GRU_SPEC.replace(
    POLICY,
    '      params: {freeze: [gru_1], adapt: {"gru_[23]": {rank: 2, alpha: 4}}, lr_scale: {gru_3: 0}}\n'
    "    optimizer: {name: adam, learning_rate: 0.05}\n",
) + """\
  - name: after
    init: {stage: transfer}
    data:
      source: synthetic
      params: {samples: 48, timesteps: 12, channels: 3, seed: 4, targets: {level: level, trend: trend}}
    epochs: 1
    batch_size: 16
    policy: {plugin: continue}
  - name: head_adapter
    init: {stage: pretrain}
    data:
      source: synthetic
      params: {samples: 48, timesteps: 12, channels: 3, seed: 5, targets: {level: level, trend: trend}}
    epochs: 1
    batch_size: 16
    optimizer: {name: adam, learning_rate: 0.05}
    policy: {plugin: layers, params: {default: freeze, train: [level], adapt: {trend: {rank: 1}}}}
"""
X = np.random.default_rng(7).random((8, 12, 3), dtype=np.float32)


class Outputs(RunObserver):
    """The stage model's outputs on ``X`` when each stage starts training."""

    def __init__(self) -> None:
        self.at_start: dict[str, list[np.ndarray]] = {}

    def before_fit(self, stage, round, built) -> None:
        self.at_start[stage.name] = [np.array(out) for out in built.model(X)]


@pytest.fixture(scope="module")
def adapted_run(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("adapted")
    (folder / "spec.yaml").write_text(SPEC)
    out = str(folder / "out")
    outputs = Outputs()
    run_spec(load_spec(str(folder / "spec.yaml"), registry), registry, out, log=lambda _: None, observer=outputs)
    return out, outputs


def test_the_stage_starts_from_exactly_the_base_models_outputs(adapted_run):
    out, outputs = adapted_run
    base = [np.array(value) for value in graft.load_stage(out, "pretrain").model(X)]
    assert bitwise(outputs.at_start["transfer"], base)


def test_only_the_adapters_trained_and_the_published_weights_are_base_plus_the_update(adapted_run):
    out, _ = adapted_run
    before = read_weights(os.path.join(out, "pretrain", FILENAME))
    after = read_weights(os.path.join(out, "transfer", FILENAME))
    adapters = read_adapters(os.path.join(out, "transfer", ADAPTERS))
    report = read_report(out, "transfer")
    assert report["verification"]["gru_1"] == {"trainable": False, "changed": False}
    assert report["verification"]["gru_2"] == {"trainable": False, "changed": True, "adapted": True}
    assert report["verification"]["gru_3"] == {"trainable": False, "changed": False, "adapted": True}  # lr x0
    assert report["plan"]["layers"][1]["adapter"] == {"rank": 2, "alpha": 4.0, "params": 64}
    assert report["plan"]["trainable_params"] == 64 + 64 + 5 + 15
    assert report["plan"]["features"] == ""  # an adapted extractor is not constant: nothing cached
    assert bitwise(after["gru_1"], before["gru_1"])
    gru_2 = adapters.adapters["gru_2"]
    assert (gru_2.rank, gru_2.alpha, sorted(gru_2.kernels)) == (2, 4.0, ["kernel", "recurrent_kernel"])
    assert not np.any(adapters.adapters["gru_3"].kernels["kernel"][1])  # lr scale 0: B stays zero
    for kernel, position in gru_2.positions.items():
        a, b = gru_2.kernels[kernel]
        assert np.any(b)
        np.testing.assert_allclose(after["gru_2"][position], before["gru_2"][position] + 2.0 * a @ b,
                                   rtol=1e-5, atol=1e-6)
        assert np.linalg.matrix_rank(after["gru_2"][position] - before["gru_2"][position], tol=1e-5) <= 2
    assert bitwise([after["gru_2"][2]], [before["gru_2"][2]])  # the bias is not adapted
    assert sorted(adapters.trained) == ["level", "trend"]
    assert report["files"][ADAPTERS].startswith("sha256:")


def test_model_keras_is_a_plain_model_a_later_stage_continues_from_by_name(adapted_run):
    out, _ = adapted_run
    stage = graft.load_stage(out, "transfer")
    assert type(stage.layer("gru_2")).__name__ == "GRU"
    assert [weight.shape for weight in stage.layer("gru_2").get_weights()] == [(4, 12), (4, 12), (2, 12)]
    after = read_report(out, "after")
    assert after["load"]["gru_2"] == {"init": "loaded", "source": "stage transfer", "equal_to_source": True}


def test_the_base_plus_the_adapters_file_rebuilds_the_stage_and_another_base_is_refused(adapted_run):
    out, _ = adapted_run
    path = os.path.join(out, "transfer", ADAPTERS)
    rebuilt = graft.load_stage(out, "pretrain", adapter=path)
    published = graft.load_stage(out, "transfer")
    for got, want in zip(rebuilt.model(X), published.model(X), strict=True):
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-5, atol=1e-6)
    with pytest.raises(AdapterMismatch, match=r"was trained on another base: its adapted layers \(gru_2, gru_3\)"):
        graft.load_stage(out, "after", adapter=path)


def test_an_adapted_head_trains_on_cached_features(adapted_run):
    out, _ = adapted_run
    report = read_report(out, "head_adapter")
    assert report["features_cached"] is True
    assert report["verification"]["trend"] == {"trainable": False, "changed": True, "adapted": True}
    assert report["verification"]["gru_3"] == {"trainable": False, "changed": False}
    # a Dense(3) head on 4 features at rank 1: 1 * (4 + 3) parameters beside level's 5
    assert report["plan"]["trainable_params"] == 7 + 5


def test_a_restarted_stage_trains_the_same_adapter_bitwise(adapted_run, registry):
    """Resume and restart redo a stage from its source: the adapters' seeded start makes it the same run."""
    out, _ = adapted_run
    path = os.path.join(out, "head_adapter", ADAPTERS)
    with np.load(path) as saved:
        before = {key: saved[key] for key in saved.files}
    spec_file = load_spec(os.path.join(os.path.dirname(out), "spec.yaml"), registry)
    run_spec(spec_file, registry, out, restart_from="head_adapter", log=lambda _: None)
    with np.load(path) as saved:
        after = {key: saved[key] for key in saved.files}
    assert sorted(before) == sorted(after)
    assert all(bitwise([before[key]], [after[key]]) for key in before)


class StopAfterPretrain(RunObserver):
    """The run stops as a crash would, right after ``pretrain`` is published and before ``adapters`` starts."""

    def stage_published(self, report) -> None:
        if report.stage == "pretrain":
            raise Crash("stopped after pretrain")


def _adapter_arrays(path) -> dict[str, np.ndarray]:
    """Every array of an adapters file, its index (base digest, ranks, shapes) included."""
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def test_a_run_stopped_before_its_adapted_stage_resumes_to_the_same_adapters_bitwise(
        tmp_path, registry, adapted_gru_run):
    """The adapted stage of a resumed run trains the bits of an uninterrupted run (tests/runs/test_rerun.py
    resumes in a new process after SIGKILL; the adapters' seeded start is what this adds)."""
    (tmp_path / "spec.yaml").write_text((adapted_gru_run / "spec.yaml").read_text())
    out = tmp_path / "out"
    spec_file = load_spec(str(tmp_path / "spec.yaml"), registry)
    with pytest.raises(Crash):
        run_spec(spec_file, registry, str(out), log=lambda _: None, observer=StopAfterPretrain())
    assert sorted(name for name in os.listdir(out) if not name.startswith(".")) == ["pretrain", "spec.resolved.yaml"]
    pretrain = tree(out / "pretrain")

    lines: list[str] = []
    run_spec(spec_file, registry, str(out), log=lines.append)
    assert "stage 1/2 'pretrain': finished earlier, kept" in "\n".join(lines)
    assert tree(out / "pretrain") == pretrain  # not trained or written again
    uninterrupted = adapted_gru_run / "out"
    before, after = (_adapter_arrays(run / "adapters" / ADAPTERS) for run in (uninterrupted, out))
    assert sorted(after) == sorted(before) and len(before) == 11  # 2 GRUs x 2 kernels x (A, B), 2 head arrays, index
    assert [key for key in before if not np.array_equal(before[key], after[key])] == []
    assert same_weights(out, uninterrupted, "adapters") == []  # the merged model too
