"""``optimizer.schedule: {name: one_cycle}``: warm-up then cosine over exactly the batches a stage trains."""

from __future__ import annotations

import math

import pytest

import graft
from graft.base.backend import import_keras
from graft.base.problems import SpecError
from graft.model.optimizers import make_optimizer, one_cycle
from graft.runs.observer import RunObserver
from graft.spec.optimizers import Schedule
from graft.spec.records import Optimizer
from tests.conftest import TINY_GRU_SPEC

ONE_CYCLE = "    optimizer: {name: adam, learning_rate: 0.01, schedule: {name: one_cycle, warmup: 0.25, end: 0.01}}\n"


def test_one_cycle_rises_from_start_to_the_peak_then_falls_on_a_cosine_to_end():
    keras = import_keras()
    rate = one_cycle(keras, 0.01, Schedule("one_cycle", warmup=0.25, start=0.04, end=0.01), 100)
    assert float(rate(0)) == pytest.approx(0.0004)
    assert float(rate(12)) == pytest.approx(0.0004 + 12 / 25 * (0.01 - 0.0004), rel=1e-5)  # linear warm-up
    assert float(rate(25)) == pytest.approx(0.01)  # the peak is the spec's learning_rate
    cosine = 0.5 * (1 + math.cos(math.pi * 37 / 75))  # 37 of the 75 steps after the warm-up
    assert float(rate(25 + 37)) == pytest.approx(0.01 * (0.01 + 0.99 * cosine), rel=1e-4)
    assert float(rate(100)) == pytest.approx(0.0001)  # end x learning_rate


def test_without_steps_or_a_schedule_the_rate_is_the_spec_rate():
    keras = import_keras()
    plain = make_optimizer(keras, Optimizer(learning_rate=0.01, schedule=Schedule("one_cycle")))
    assert float(plain.learning_rate) == pytest.approx(0.01)


class LastRate(RunObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[int, float, dict]] = []

    def after_fit(self, stage, round, built) -> None:
        if stage.optimizer.schedule is None:
            return
        optimizer = built.model.optimizer
        schedule = optimizer._learning_rate
        steps = int(optimizer.iterations.numpy())
        self.seen.append((steps, float(schedule(steps)), schedule.get_config()))


@pytest.mark.slow
def test_a_stage_with_one_cycle_ends_its_cycle_on_its_last_batch(tmp_path):
    text = TINY_GRU_SPEC.replace("    epochs: 1\n    batch_size: 16\n    policy:",
                                 "    epochs: 2\n    batch_size: 16\n" + ONE_CYCLE + "    policy:")
    assert text != TINY_GRU_SPEC
    (tmp_path / "spec.yaml").write_text(text)
    from graft.plugins.registry import Registry
    from graft.runs.stages import run_spec
    from graft.spec.specfile import load_spec

    watch = LastRate()
    registry = Registry.discover()
    run_spec(load_spec(str(tmp_path / "spec.yaml"), registry), registry, str(tmp_path / "out"), log=lambda _: None,
             observer=watch)
    [(steps, rate, config)] = watch.seen  # the transfer stage: 48 samples, 20% held out -> 39 -> 3 batches x 2 epochs
    assert steps == 6
    assert rate == pytest.approx(0.0001)
    assert config["warmup_target"] == pytest.approx(0.01)
    assert config["warmup_steps"] == 2  # round(0.25 * 6)
    assert graft.load_stage(tmp_path / "out", "transfer").report.fingerprint  # published as any stage


def test_a_schedule_with_reduce_lr_is_refused_at_its_line(tmp_path):
    text = TINY_GRU_SPEC.replace("    epochs: 1\n    batch_size: 16\n    policy:",
                                 "    epochs: 1\n    batch_size: 16\n" + ONE_CYCLE
                                 + "    callbacks: {reduce_lr: {monitor: val_loss}}\n    policy:")
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        graft.load_spec(str(tmp_path / "spec.yaml"))
    assert "stages[1].callbacks.reduce_lr (line 33): the optimizer has a schedule" in str(caught.value)


@pytest.mark.parametrize(("schedule", "message"), [
    ("{name: one_cyle}",
     "stages[1].optimizer.schedule.name (line 32): 'one_cyle' is not one of: one_cycle — did you mean 'one_cycle'?"),
    ("{name: one_cycle, warmup: 1.5}", "schedule.warmup (line 32): must be at least 0 and below 1, got 1.5"),
    ("{name: one_cycle, start: 0}", "schedule.start (line 32): must be above 0 and at most 1, got 0"),
])
def test_a_wrong_schedule_is_an_error_at_its_path(tmp_path, schedule, message):
    optimizer = f"    optimizer: {{schedule: {schedule}}}\n"
    text = TINY_GRU_SPEC.replace("    epochs: 1\n    batch_size: 16\n    policy:",
                                 f"    epochs: 1\n    batch_size: 16\n{optimizer}    policy:")
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        graft.load_spec(str(tmp_path / "spec.yaml"))
    assert message in str(caught.value)
