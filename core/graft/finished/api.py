"""The Python API, for notebooks and scripts: ``import graft`` is the one import.

    spec = graft.load_spec("seed.yaml")             # or a dict, as yaml.safe_load gives it
    plans = graft.plan(spec)                         # each stage's layers: trainable or frozen, where weights start
    result = graft.run(spec, "runs/seed")            # train; finished stages are kept, as with graft run
    gru_1 = result.stage("transfer").layer("gru_1")  # a layer by its YAML name, in the saved model

These are the commands' internals (``graft validate``/``plan``/``run``) with the
installed plugins; errors are the same ``GraftError``s (``SpecError`` at YAML paths).
Importing this module does not import TensorFlow: ``plan``, ``run`` and
``load_stage`` do, when called, and refuse a Keras backend other than TensorFlow
(``graft.base.backend.check_backend``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from graft.base.backend import check_backend
from graft.base.paths import shown
from graft.base.problems import did_you_mean
from graft.finished.stage import SavedStage, UnknownName, read_stage
from graft.records.report import StageReport
from graft.spec.speclike import SpecLike, load_spec, spec_file_of

if TYPE_CHECKING:
    from graft.finished.exporting import Exported
    from graft.finished.serving import Evaluation
    from graft.planning.records import StagePlan

__all__ = ["FinishedStage", "ImagePredictions", "RunResult", "SpecLike", "UnknownName", "load_spec", "load_stage",
           "plan", "run"]


@attrs.frozen
class ImagePredictions:
    """What ``FinishedStage.predict_images`` gives: the image files in the order predicted (as given, or joined to
    a folder given) and each head's outputs, one row per file."""

    paths: tuple[str, ...]
    outputs: dict[str, Any]


def plan(spec: SpecLike) -> list[StagePlan]:
    """Every stage's plan, as ``graft plan`` shows it: each layer trainable or frozen, where its weights start.

    Builds each stage's model (this imports TensorFlow); the data is loaded and checked by
    ``graft plan`` and ``run``, not here.  ``plans[i].layer("gru_1").trainable``.
    """
    from graft.planning.stageplan import plan_spec
    from graft.plugins.registry import Registry

    check_backend()
    registry = Registry.discover()
    return plan_spec(spec_file_of(spec, None, registry), registry)


@attrs.frozen
class FinishedStage(SavedStage):
    """A finished stage of a run directory: its saved model, its verified report, its folder; and what
    the commands do with it (``graft evaluate``, ``predict``, ``export``)."""

    adapter: str | None = None  # the adapters file merged into the model by ``load_stage(..., adapter=...)``

    def evaluate(self, data: Any = None, *, spec: SpecLike | None = None, batch_size: int | None = None) -> Evaluation:
        """Loss and metrics per head (``graft evaluate``) on ``data`` (an ``.npz`` path, or a dict with the
        inputs as ``input`` and each head's targets by its name), or on the stage's own validation data as
        its spec (``spec``, else the run folder's copy) defines it.  A stage loaded with an ``adapter``
        needs ``data``: its own validation data is the base's task, not the adapters'."""
        from graft.finished.serving import evaluate

        if data is None and self.adapter is not None:
            from graft.finished.stagespec import StageSpecError

            raise StageSpecError(
                f"stage '{self.name}' with the adapters {shown(self.adapter)}: its own validation data is the base "
                "stage's task, not the one the adapters were trained for; pass the data to evaluate on "
                "(data=...), or evaluate the stage that trained the adapters (its model.keras holds them merged)"
            )

        return evaluate(self, data, spec=spec, batch_size=batch_size)

    def predict(self, inputs: Any, batch_size: int = 32) -> dict[str, Any]:
        """Each head's outputs by head name (``graft predict``), for ``inputs`` shaped
        ``(samples, *input_shape)``, or the ``input`` array of an ``.npz`` path."""
        from graft.finished.serving import input_shape, predict
        from graft.finished.stagearrays import checked_inputs, read_inputs

        if isinstance(inputs, (str, os.PathLike)):
            rows = read_inputs(os.fspath(inputs), input_shape(self.model), "inputs")
        else:
            rows = checked_inputs(inputs, input_shape(self.model), "the inputs given")
        return predict(self, rows, batch_size)

    def predict_images(self, inputs: Sequence[str | os.PathLike[str]], batch_size: int = 32) -> ImagePredictions:
        """Each head's outputs for image files and folders of them (``graft predict OUT STAGE images...``), for a
        stage that trained on ``image_folder`` data: decoded and resized as its ``image_folder`` params say."""
        from graft.finished.imageinputs import ImageInputError, image_inputs, predict_images
        from graft.finished.serving import input_shape

        images = image_inputs(os.path.dirname(self.path), self.name, self.report, [os.fspath(path) for path in inputs])
        if input_shape(self.model) != images.decoding.input_shape:
            raise ImageInputError(f"stage '{self.name}' takes inputs shaped {input_shape(self.model)}, but its "
                                  f"image_folder params decode images to {images.decoding.input_shape}")
        return ImagePredictions(images.paths, predict_images(self.model, images, batch_size))

    def export(self, path: str | os.PathLike[str], format: str = "saved_model", *, batch: int | None = None,
               select_tf_ops: bool = False, force: bool = False) -> Exported:
        """The model as a SavedModel folder or a ``.tflite`` file at ``path`` (``graft export``), checked
        against the Keras model on a few samples; an existing ``path`` only with ``force``."""
        from graft.finished.exporting import export

        return export(self.model, os.fspath(path), format, batch=batch, select_tf_ops=select_tf_ops, force=force)


def load_stage(out: str | os.PathLike[str], stage: str, *, adapter: str | os.PathLike[str] | None = None
               ) -> FinishedStage:
    """A finished stage of the run directory ``out``: its ``model.keras`` loaded (``compile=False``:
    for ``predict`` and weights; compile it to train or evaluate) and its ``report.json``, both
    checked against the digests the stage recorded (``RunError`` if they differ).

    With ``adapter`` (the ``adapters.graft.npz`` of a stage that adapted ``stage``), the model is
    ``stage`` with those adapters merged in and that stage's trained layers (its heads): one base,
    many tasks.  An adapter trained on another base is refused (``AdapterMismatch``)."""
    check_backend()
    saved = read_stage(out, stage)
    if adapter is not None:
        from graft.finished.adapted import with_adapters

        saved = with_adapters(saved, os.fspath(adapter))
    return FinishedStage(path=saved.path, report=saved.report, model=saved.model,
                         adapter=None if adapter is None else os.fspath(adapter))


@attrs.frozen
class RunResult:
    """What ``run`` leaves: the run directory and the verified report of every stage."""

    out: str
    reports: list[StageReport]

    def stage(self, name: str) -> FinishedStage:
        """The finished stage ``name`` of this run, its model loaded (``load_stage``)."""
        names = [report.stage for report in self.reports]
        if name not in names:
            raise UnknownName(
                f"the run has no stage '{name}'{did_you_mean(name, names)}; its stages: {', '.join(names)}"
            )
        return load_stage(self.out, name)


def run(
    spec: SpecLike,
    out: str | os.PathLike[str],
    *,
    restart_from: str | None = None,
    cache_features: bool = True,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train the spec's unfinished stages into the run directory ``out``, as ``graft run --out out`` does.

    Finished stages are kept; ``restart_from`` runs that stage and later ones again (the old
    folders are kept aside).  ``cache_features=False`` trains the whole model even where the
    extractor is frozen.  ``log`` receives every progress line (``log=lambda line: None``: quiet).
    A multi-worker spec runs from the command line (``graft run --local-workers`` or ``--workers``).
    """
    from graft.plugins.registry import Registry
    from graft.runs.stages import run_spec

    check_backend()
    registry = Registry.discover()
    spec_file = spec_file_of(spec, None, registry)
    out = os.fspath(out)
    reports = run_spec(spec_file, registry, out, restart_from=restart_from, log=log, cache_features=cache_features)
    return RunResult(out=out, reports=list(reports))
