"""A stage with low-rank adapters under tf.distribute: ``mirrored`` in this process, ``multi_worker`` as two
real worker processes on loopback.  Each publishes the merged model and the adapters file, and matches the
same spec run without a strategy (``adapted_gru_run``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from graft.distribute.strategy import weights_digest
from graft.model.adapterfile import FILENAME as ADAPTERS
from graft.model.adapterfile import AdapterFile, read_adapters
from graft.model.weights import FILENAME, read_weights
from graft.records.rundir import RunDir
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import ADAPTED_GRU_SPEC
from tests.distribute.test_distribute import ENV, _graft

pytestmark = pytest.mark.slow

STAGES = ("pretrain", "adapters")


def _with_strategy(folder: Path, strategy: str) -> str:
    path = folder / f"{strategy}.yaml"
    path.write_text(ADAPTED_GRU_SPEC.replace("seed: 5\n", f"seed: 5\ndistribute: {{strategy: {strategy}}}\n", 1))
    return str(path)


def _arrays(adapters: AdapterFile) -> dict[str, np.ndarray]:
    """Every array of an adapters file by a name of its own: A and B by layer and kernel, trained weights."""
    found = {f"{name}:{kernel}:{which}": value
             for name, adapter in adapters.adapters.items()
             for kernel, pair in adapter.kernels.items()
             for which, value in zip("AB", pair, strict=True)}
    found.update({f"{name}:{i}": value for name, values in adapters.trained.items() for i, value in enumerate(values)})
    return found


def _assert_published_merged(out: Path) -> AdapterFile:
    """The adapted stage's published weights are the base's plus ``(alpha/r)·A·B``, its report names the
    adapters file with its digest (``read_report`` checks every file against it); the adapters."""
    report = RunDir(str(out)).read_report("adapters")
    assert ADAPTERS in report.files
    assert {name: (check.adapted, check.changed) for name, check in report.verification.items()} == {
        "gru_1": (True, True), "gru_2": (True, True), "trend": (False, True)}
    base, merged = read_weights(str(out / "pretrain" / FILENAME)), read_weights(str(out / "adapters" / FILENAME))
    adapters = read_adapters(str(out / "adapters" / ADAPTERS))
    assert sorted(adapters.adapters) == ["gru_1", "gru_2"]
    for name, adapter in adapters.adapters.items():
        for kernel, position in adapter.positions.items():
            a, b = adapter.kernels[kernel]
            assert np.any(b)
            np.testing.assert_allclose(merged[name][position], base[name][position] + 2.0 * a @ b,
                                       rtol=1e-5, atol=1e-6)
        assert all(np.array_equal(merged[name][i], base[name][i])
                   for i in range(len(base[name])) if i not in adapter.positions.values())  # the biases
    return adapters


def test_mirrored_trains_the_adapters_bitwise_as_one_process_does(tmp_path, registry, adapted_gru_run):
    lines: list[str] = []
    run_spec(load_spec(_with_strategy(tmp_path, "mirrored"), registry), registry, str(tmp_path / "run"),
             log=lines.append)
    assert any("distributed: mirrored: 1 replica" in line for line in lines)
    assert RunDir(str(tmp_path / "run")).read_report("adapters").plan.distribute.startswith("mirrored: ")
    adapters = _assert_published_merged(tmp_path / "run")
    single = read_adapters(str(adapted_gru_run / "out" / "adapters" / ADAPTERS))
    assert adapters.base_digest == single.base_digest
    mirrored, alone = _arrays(adapters), _arrays(single)
    assert mirrored.keys() == alone.keys()
    assert [key for key in alone if not np.array_equal(mirrored[key], alone[key])] == []


def test_two_workers_end_with_equal_weights_and_publish_the_merged_model(tmp_path, adapted_gru_run):
    out = tmp_path / "run"
    env = {**ENV, "GRAFT_CACHE_DIR": os.environ["GRAFT_CACHE_DIR"]}  # this test's cache, never ~/.cache
    result = _graft("run", _with_strategy(tmp_path, "multi_worker"), "--local-workers", "2", "--out", str(out),
                    env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "[worker 1] worker 1 of 2: every stage done" in result.stdout
    for stage in STAGES:
        report = RunDir(str(out)).read_report(stage)
        assert len(report.worker_digests) == 2
        assert report.worker_digests[0] == report.worker_digests[1] == weights_digest(
            read_weights(str(out / stage / FILENAME)))
        assert report.plan.distribute.startswith("multi_worker: 2 workers, 2 replicas")
    adapters = _assert_published_merged(out)
    single = _arrays(read_adapters(str(adapted_gru_run / "out" / "adapters" / ADAPTERS)))
    distributed = _arrays(adapters)
    assert distributed.keys() == single.keys()
    worst = max(float(np.max(np.abs(distributed[key] - single[key]))) for key in single)
    assert worst < 1e-5  # SGD on whole batches of the same global size: one process's result, summed otherwise
