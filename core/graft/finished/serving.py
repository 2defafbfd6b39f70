"""A finished stage's saved model at work: its loss and metrics on data (``evaluate``), its outputs (``predict``).

The model is compiled as the stage trained it (each head's loss, metrics and
weight, from ``report.json``, or from the stage's spec for reports written before
keras-graft recorded them), so ``evaluate`` on the stage's own validation data
gives the ``val_*`` numbers its last epoch reported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from graft.base.problems import GraftError
from graft.base.table import format_table
from graft.data.datacheck import HeadTarget
from graft.model.losses import HeadLoss
from graft.plugins.arrayfile import CHUNK_BYTES, rows_of
from graft.plugins.datasets import Array, Data, Dataset

if TYPE_CHECKING:
    from graft.finished.stage import SavedStage
    from graft.spec.speclike import SpecLike

DEFAULT_BATCH = 32


@attrs.frozen
class HeadScores:
    """One head's loss (unweighted) and metrics, by the metric names of the spec."""

    loss: float
    metrics: dict[str, float]


@attrs.frozen
class Evaluation:
    """A stage's model evaluated on some data: the total (weighted) loss, as Keras reports it, and each head's."""

    stage: str
    data: str
    samples: int | None
    loss: float
    heads: dict[str, HeadScores]

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "data": self.data,
            "samples": self.samples,
            "loss": self.loss,
            "heads": {name: {"loss": scores.loss, **scores.metrics} for name, scores in self.heads.items()},
        }

    def table(self) -> str:
        """Head by head: loss and metrics (a blank where a head has not that metric), then the total."""
        metrics = list(dict.fromkeys(name for scores in self.heads.values() for name in scores.metrics))
        rows = [("head", "loss", *metrics)]
        for name, scores in self.heads.items():
            rows.append((name, _number(scores.loss), *(_number(scores.metrics.get(metric)) for metric in metrics)))
        if len(self.heads) > 1:
            rows.append(("total", _number(self.loss), *([""] * len(metrics))))
        return format_table(rows)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


class MissingHeads(GraftError):
    """Neither the stage's report nor a spec says how its heads were compiled."""


def stage_heads(stage: SavedStage, spec: SpecLike | None = None) -> dict[str, HeadLoss]:
    """How each head of ``stage`` was compiled: from its report, else from its spec (``--spec``)."""
    if stage.report.heads:
        return dict(stage.report.heads)
    if spec is None:
        raise MissingHeads(
            f"the report of stage '{stage.name}' ({stage.path}) was written by an earlier keras-graft and does not "
            "say which loss and metrics its heads trained with; give the spec it ran from with --spec CONFIG"
        )
    from graft.finished.stagespec import stage_spec
    from graft.model.losses import head_losses

    found = stage_spec(stage, spec)
    return head_losses(stage.model, found.spec_file.spec.heads_of(found.stage))


def evaluate(
    stage: SavedStage,
    data: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    spec: SpecLike | None = None,
    batch_size: int | None = None,
) -> Evaluation:
    """The loss and metrics of ``stage``'s model on ``data``, or on the stage's own validation data.

    ``data`` is an ``.npz`` path or a mapping with the inputs as ``input`` and each
    head's targets by its name.  Without it, the validation data of the stage's spec
    (``spec``, else the run folder's ``spec.resolved.yaml``, proven by the stage's
    fingerprint), in batches of the stage's ``batch_size``.
    """
    from graft.base.backend import import_keras
    from graft.data.pipeline import validation_batches
    from graft.model.losses import compile_arguments

    keras = import_keras()
    heads = stage_heads(stage, spec)
    targets = {name: HeadTarget(stage.report.plan.outputs[name], head.loss) for name, head in heads.items()}
    if data is None:
        from graft.finished.stagespec import stage_spec, validation_data
        from graft.plugins.registry import Registry

        found = stage_spec(stage, spec)
        loaded: Data = validation_data(found, Registry.discover())
        batch_size = batch_size or found.stage.batch_size
        samples = _validation_samples(loaded)
        description = f"the validation data of {loaded.description}"
    else:
        loaded = _labelled(data, input_shape(stage.model), targets)
        samples = len(loaded.x)
        description = loaded.description
        loaded = attrs.evolve(loaded, x_val=loaded.x, y_val=loaded.y)  # evaluated as validation data: in order
    model = stage.model
    model.compile(**compile_arguments(keras, heads))
    results = model.evaluate(validation_batches(loaded, batch_size or DEFAULT_BATCH), return_dict=True, verbose=0)
    return Evaluation(stage.name, description, samples, float(results["loss"]), _by_head(results, heads))


def _validation_samples(data: Data) -> int | None:
    if isinstance(data, Dataset):
        return None if data.x_val is None else len(data.x_val)
    return data.validation_samples


def _labelled(data, shape: tuple[int, ...], targets: dict[str, HeadTarget]) -> Dataset:
    from graft.finished.stagearrays import labelled_arrays, read_labelled

    if isinstance(data, Mapping):
        return labelled_arrays(data, shape, targets, "the arrays given")
    return read_labelled(os.fspath(data), shape, targets, "--data")


def _by_head(results: Mapping[str, Any], heads: Mapping[str, HeadLoss]) -> dict[str, HeadScores]:
    """Keras names a head's results ``<head>_loss``, ``<head>_<metric>``; with one head, ``loss`` (weighted) and
    ``<metric>``."""
    if len(heads) == 1:
        name, head = next(iter(heads.items()))
        loss = float(results["loss"]) / head.weight if head.weight else float("nan")
        return {name: HeadScores(loss, {metric: float(results[metric]) for metric in head.metrics})}
    return {
        name: HeadScores(
            float(results[f"{name}_loss"]), {metric: float(results[f"{name}_{metric}"]) for metric in head.metrics}
        )
        for name, head in heads.items()
    }


def input_shape(model: Any) -> tuple[int, ...]:
    """The shape of one sample the model takes."""
    return tuple(int(size) for size in model.input_shape[1:])


def predict(stage: SavedStage, inputs: Array, batch_size: int = DEFAULT_BATCH) -> dict[str, np.ndarray]:
    """Each head's outputs for ``inputs`` (an array, or rows on disk), by head name, in batches of ``batch_size``.

    Rows on disk are read a chunk (a whole number of batches) at a time, so the
    batches, and so the outputs, are those of one ``model.predict`` call.
    """
    model = stage.model
    names = list(model.output_names)
    row_bytes = max(1, int(np.prod(inputs.shape[1:])) * np.dtype(inputs.dtype).itemsize)
    step = max(1, CHUNK_BYTES // row_bytes // batch_size) * batch_size
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, len(inputs), step):
        rows = np.arange(start, min(start + step, len(inputs)))
        outputs = model.predict(rows_of(inputs, rows), batch_size=batch_size, verbose=0)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, values in zip(names, outputs, strict=True):
            parts[name].append(np.asarray(values))
    return {name: np.concatenate(values) for name, values in parts.items()}


def logits_heads(stage: SavedStage) -> list[str]:
    """The heads whose outputs are logits (a linear output under a cross-entropy), as the report says."""
    return [name for name, head in stage.report.heads.items() if head.from_logits]


def write_predictions(predictions: Mapping[str, np.ndarray], path: str, force: bool = False) -> str:
    """One array per head in an ``.npz`` at ``path`` (``numpy.savez``), never over an existing file unless
    ``force``; its absolute path."""
    from graft.finished.outfile import write_file

    def write(target: str) -> None:
        with open(target, "wb") as handle:
            np.savez(handle, **predictions)  # type: ignore[arg-type]  # numpy's stubs type the keywords as allow_pickle

    return write_file(path, write, force, "--output")


def default_predictions_path(inputs: str, stage: str) -> str:
    """``x.npz`` -> ``x.<stage>-predictions.npz`` beside it."""
    stem = inputs[: -len(".npz")] if inputs.endswith(".npz") else inputs
    return f"{stem}.{stage}-predictions.npz"
