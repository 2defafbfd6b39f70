"""Every stage's data, loaded and checked against that stage's model before anything trains.

Arrays (in memory or on disk) are checked whole; streams by their element spec
and their first batches (``graft.data.streamcheck``).  What was checked, the class
names and sample counts go into the plan and the stage's report as a
``DataSummary``.
"""

from __future__ import annotations

import attrs

from graft.base.classids import CLASS_IDS
from graft.base.problems import Path, Problems
from graft.data.datacheck import HeadTarget, check_dataset
from graft.data.pipeline import batches_in_order, sample_spec
from graft.data.weighting import ClassWeights, Weighting, count_classes, resolve
from graft.planning.records import DataSummary, HeadClasses, StagePlan
from graft.plugins.datasets import Data, Dataset, Stream
from graft.plugins.registry import Registry
from graft.spec.augment import describe
from graft.spec.callbacks import monitored
from graft.spec.records import BALANCED, HeadSpec
from graft.spec.specfile import SpecFile

COUNT_BATCH = 256  # samples a batch when a stream is read once to count its classes


@attrs.frozen
class StageData:
    """A stage's data as its source returned it, its summary, and how its heads weigh its samples."""

    data: Data
    summary: DataSummary
    weighting: Weighting


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
            if messages:  # data with problems has no summary (its arrays may not even have a length)
                continue
            heads_at: Path = ("stages", index, "heads") if stage.heads is not None else ("model", "heads")
            classes, weighting = weigh(data, spec.heads_of(stage), plan.outputs, heads_at, problems)
            summary = _summary(data, checked, describe(stage.data.augment))
            summary = attrs.evolve(summary, heads=classes, sample_weights=sorted(weighting.source))
            loaded.append(StageData(data, summary, weighting))
    if problems:
        raise spec_file.error(problems.items)
    return loaded


def weigh(
    data: Data, heads: dict[str, HeadSpec], outputs: dict[str, tuple[int, ...]], at: Path, problems: Problems
) -> tuple[dict[str, HeadClasses], Weighting]:
    """The classes of every classification head in ``data`` and how the stage weighs its samples; a
    ``class_weight`` the built heads cannot take is a problem at ``at``."""
    classes: dict[str, HeadClasses] = {}
    weights: dict[str, ClassWeights] = {}
    for name, head in heads.items():
        count = class_count(head.loss, outputs[name])
        where: Path = (*at, name, "class_weight")
        if count is None:
            if head.class_weight is not None:
                problems.add(where, f"class_weight needs one class per sample, but head '{name}' outputs "
                                    f"{tuple(outputs[name])} per sample under {head.loss}; remove class_weight")
            continue
        kind = CLASS_IDS[head.loss]
        given = head.class_weight if isinstance(head.class_weight, dict) else {}
        beyond = [class_id for class_id in given if class_id >= count]
        for class_id in beyond:
            problems.add((*where, class_id), f"class id {class_id} is beyond head '{name}', which outputs {count} "
                                             f"classes (ids 0 to {count - 1}); remove it or fix the id")
        counts, validation_counts = _counts(data, name, kind, count, head.class_weight == BALANCED)
        summary = HeadClasses(counts, validation_counts)
        if head.class_weight is not None and not beyond:
            resolved = resolve(head.class_weight, counts, count)
            weights[name] = ClassWeights(kind, resolved)
            summary = attrs.evolve(summary, class_weight=BALANCED if head.class_weight == BALANCED else "given",
                                   weights=list(resolved))
        classes[name] = summary
    return classes, Weighting(tuple(heads), weights, _source_weighed(data))


def class_count(loss: str, output: tuple[int, ...]) -> int | None:
    """How many classes a head of this loss and output shape (per sample) tells apart; None if it does not
    predict one class per sample."""
    if loss not in CLASS_IDS or len(output) != 1 or output[0] is None:
        return None
    if loss == "binary_crossentropy":
        return 2 if output[0] == 1 else None
    return output[0] if output[0] > 1 else None


def _counts(data: Data, head: str, kind: str, classes: int, needed: bool) -> tuple[list[int] | None, list[int] | None]:
    """Samples per class id of the training and validation targets of ``head``: arrays are counted, a stream
    says its counts or (if ``needed``, for ``balanced``) its training samples are read once to count them."""
    if isinstance(data, Dataset):
        validation = None
        if data.y_val is not None:
            validation = count_classes(kind, data.y_val[head], classes)
        return count_classes(kind, data.y[head], classes), validation
    train = _declared(data.class_counts, head, classes)
    validation = _declared(data.validation_class_counts, head, classes)
    if train is None and needed:
        train = [0] * classes
        for _x, y, _w in batches_in_order(data, COUNT_BATCH):
            train = [have + more for have, more in zip(train, count_classes(kind, y[head], classes), strict=True)]
    return train, validation


def _declared(counts, head: str, classes: int) -> list[int] | None:
    """A stream's own counts of ``head``, padded to ``classes`` class ids; None if it gives none."""
    if counts is None or head not in counts:
        return None
    own = [int(count) for count in counts[head]][:classes]
    return own + [0] * (classes - len(own))


def _source_weighed(data: Data) -> frozenset[str]:
    """The heads whose samples the source weighs."""
    if isinstance(data, Dataset):
        return frozenset({*(data.sample_weight or {}), *(data.sample_weight_val or {})})
    spec = sample_spec(data, data.train)
    return frozenset(spec[2]) if len(spec) == 3 else frozenset()


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
