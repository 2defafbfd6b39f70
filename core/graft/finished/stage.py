"""A finished stage read back from its run directory: the saved model and the report, both checked
against the digests the stage recorded."""

from __future__ import annotations

import os
from typing import Any

import attrs

from graft.base.paths import shown
from graft.base.problems import GraftError, did_you_mean, listing
from graft.records.report import StageReport
from graft.records.rundir import RunDir, RunError

MODEL = "model.keras"  # graft.runs.stagerun.MODEL, without importing graft.runs.stagerun (it is heavier)


class UnknownName(GraftError, LookupError):
    """A stage or layer name that is not there; the message lists the names that are."""


class StageLoadError(GraftError):
    """A finished stage's ``model.keras``, proven by its digest, that Keras cannot load here."""


@attrs.frozen
class SavedStage:
    """A finished stage of a run directory, loaded: its saved model, its verified report, its folder.
    (``graft.FinishedStage`` adds what can be done with it: evaluate, predict, export.)"""

    path: str
    report: StageReport
    model: Any = attrs.field(repr=False)  # keras.Model, loaded from model.keras (not compiled)

    @property
    def name(self) -> str:
        return self.report.stage

    def layer(self, name: str) -> Any:
        """The layer the spec calls ``name``, wherever it sits.

        The saved model holds the extractor as one nested sub-model, so Keras's
        ``model.get_layer("gru_1")`` does not find the extractor's layers; this does.
        """
        layers = _layers_by_name(self.model)
        if name not in layers:
            raise UnknownName(
                f"stage '{self.name}' has no layer '{name}'{did_you_mean(name, layers)}; "
                f"its layers: {', '.join(layers)}"
            )
        return layers[name]


def _layers_by_name(model) -> dict[str, Any]:
    """Every layer of ``model`` by name, those of nested models too (and the nested models themselves), in
    model order; not the input layers."""
    found: dict[str, Any] = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        found.setdefault(layer.name, layer)
        if hasattr(layer, "layers"):  # a nested model (the extractor)
            for name, inner in _layers_by_name(layer).items():
                found.setdefault(name, inner)
    return found


def read_stage(out: str | os.PathLike[str], stage: str) -> SavedStage:
    """A finished stage of the run directory ``out``: its ``model.keras`` loaded (``compile=False``:
    for ``predict`` and weights; compile it to train or evaluate) and its ``report.json``, both
    checked against the digests the stage recorded (``RunError`` if they differ)."""
    out = os.fspath(out)
    run_dir = RunDir(out)
    report = finished_report(out, stage)
    if MODEL not in report.files:
        raise RunError(f"the finished stage '{stage}' in {shown(out)} published no {MODEL}")
    from graft.base.backend import import_keras
    from graft.model.modelfile import load_hint
    from graft.plugins.registry import Registry

    Registry.discover().load_all()  # every plugin registers its Keras classes, if any, before the model is read
    keras = import_keras()
    path = os.path.join(run_dir.stage_path(stage), MODEL)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; what it says is the point
        text = " ".join(str(exc).split())
        text = text if len(text) <= 400 else text[:397] + "..."
        weights = shown(os.path.join(out, stage, "weights.graft.npz"))
        hint = LAMBDA_HINT.format(weights=weights) if "Lambda" in text else load_hint(keras, path)
        raise StageLoadError(
            f"the finished stage '{stage}' in {shown(out)}: keras.saving.load_model cannot load its {MODEL} in safe "
            f"mode: {type(exc).__name__}: {text}; {hint}"
        ) from None
    return SavedStage(path=run_dir.stage_path(stage), report=report, model=model)


LAMBDA_HINT = (
    "the model holds a Lambda layer, whose Python code keras-graft does not run (keras-graft now refuses such a "
    "model at graft plan): start a stage from its weights (init: {{weights: {weights}}}) with an "
    "extractor built without Lambda layers, or, if you trust the file, load it yourself with "
    "keras.saving.load_model(path, safe_mode=False)"
)


def finished_report(out: str | os.PathLike[str], stage: str) -> StageReport:
    """The report of the finished stage ``stage`` of the run directory ``out``, checked against its digests;
    ``UnknownName`` listing the finished stages if it is not one.  No TensorFlow."""
    out = os.fspath(out)
    run_dir = RunDir(out)
    if not run_dir.is_finished(stage):
        raise UnknownName(f"{shown(out)} has no finished stage '{stage}'" + _finished_hint(out, stage))
    return run_dir.read_report(stage)


def _finished_hint(out: str, stage: str) -> str:
    try:
        names = sorted(name for name in os.listdir(out) if RunDir(out).is_finished(name))
    except OSError:
        return " (the folder cannot be read)"
    if not names:
        return "; no stage has finished there"
    return f"{did_you_mean(stage, names)}; finished stages: {listing(names)}"
