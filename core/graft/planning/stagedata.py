"""Every stage's data, loaded and checked against that stage's model before anything trains.

Arrays (in memory or on disk) are checked whole; streams by their element spec
and their first batches (``graft.data.streamcheck``).  What was checked, the class
names and sample counts go into the plan and the stage's report as a
``DataSummary``.
"""

from __future__ import annotations

import attrs

from graft.base.problems import Path, Problems
from graft.data.datacheck import HeadTarget, check_dataset
from graft.planning.stageplan import StagePlan
from graft.plugins.datasets import Data, Stream
from graft.plugins.registry import Registry
from graft.spec.augment import describe
from graft.spec.callbacks import monitored
from graft.spec.specfile import SpecFile


@attrs.frozen
class DataSummary:
    """What a stage trained on, as the plan and ``report.json`` show it."""

    description: str
    samples: int | None
    validation_samples: int | None
    checked: str
    classes: list[str] = attrs.field(factory=list)
    augment: str = ""


@attrs.frozen
class StageData:
    """A stage's data as its source returned it, and its summary."""

    data: Data
    summary: DataSummary


def load_and_check_data(spec_file: SpecFile, registry: Registry, plans: list[StagePlan]) -> list[StageData]:
    """Load every stage's data and check it against that stage's model; all problems at once."""
    spec = spec_file.spec
    loaded: list[StageData] = []
    problems = Problems()
    for index, (stage, plan) in enumerate(zip(spec.stages, plans, strict=True)):
        at: Path = ("stages", index, "data")
        with problems.collect():
            data = registry.load_data(stage.data.source, stage.data.params, spec_file.base_dir, at=at)
            heads = {name: HeadTarget(plan.outputs[name], head.loss) for name, head in spec.heads_of(stage).items()}
            messages, checked = _check(data, tuple(spec.model.input_shape), heads)
            for message in messages:
                problems.add(at, message)
            for key, callback in monitored(stage.callbacks):
                if callback.monitor.startswith("val_") and not data.has_validation:
                    problems.add(
                        ("stages", index, "callbacks", key, "monitor"),
                        f"'{callback.monitor}' needs validation data but {data.description} has none; "
                        "set validation_split in the data params",
                    )
            if len(plan.rounds) > 1 and not data.has_validation:
                problems.add(
                    ("stages", index, "policy"),
                    f"policy '{plan.policy}' trains in rounds and compares them on validation loss, "
                    f"but {data.description} has no validation data; set a validation split in the data params",
                )
            if not messages:  # data with problems has no summary (its arrays may not even have a length)
                loaded.append(StageData(data, _summary(data, checked, describe(stage.data.augment))))
    if problems:
        raise spec_file.error(problems.items)
    return loaded


def _check(data: Data, input_shape: tuple[int, ...], heads: dict[str, HeadTarget]) -> tuple[list[str], str]:
    """The problems of ``data`` and a phrase saying how much of it was checked."""
    if isinstance(data, Stream):
        from graft.data.streamcheck import check_stream

        result = check_stream(data, input_shape, heads)
        checked = _portion(result.checked, data.samples, "training")
        if data.has_validation:
            checked += " and " + _portion(result.validation_checked, data.validation_samples, "validation")
        return result.problems, checked + " (a stream is checked on its first batches)"
    messages = check_dataset(data, input_shape, heads)
    if messages:
        return messages, "none"
    checked = f"all {len(data.x):,} training samples"
    if data.x_val is not None:  # has_validation
        checked += f" and all {len(data.x_val):,} validation samples"
    return messages, checked


def _portion(checked: int, total: int | None, split: str) -> str:
    if total is not None and checked >= total:
        return f"all {total:,} {split} samples"
    return f"the first {checked:,}" + (f" of {total:,}" if total is not None else "") + f" {split} samples"


def _summary(data: Data, checked: str, augment: str) -> DataSummary:
    if isinstance(data, Stream):
        return DataSummary(
            data.description, data.samples, data.validation_samples, checked, list(data.classes), augment
        )
    validation = len(data.x_val) if data.x_val is not None else None  # has_validation
    return DataSummary(data.description, len(data.x), validation, checked, [], augment)
