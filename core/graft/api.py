"""The Python API, for notebooks and scripts: ``import graft`` is the one import.

    spec = graft.load_spec("seed.yaml")             # or a dict, as yaml.safe_load gives it
    plans = graft.plan(spec)                         # each stage's layers: trainable or frozen, where weights start
    result = graft.run(spec, "runs/seed")            # train; finished stages are kept, as with graft run
    gru_1 = result.stage("transfer").layer("gru_1")  # a layer by its YAML name, in the saved model

These are the commands' internals (``graft validate``/``plan``/``run``) with the
installed plugins; errors are the same ``GraftError``s (``SpecError`` at YAML paths).
Importing this module does not import TensorFlow: ``plan``, ``run`` and
``load_stage`` do, when called.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union

import attrs

from graft.overrides import Override, as_overrides
from graft.problems import GraftError, SpecError, did_you_mean, listing
from graft.report import StageReport
from graft.rundir import RunDir, RunError
from graft.specfile import SpecFile

if TYPE_CHECKING:
    from graft.exporting import Exported
    from graft.planning import StagePlan
    from graft.serving import Evaluation

SpecLike = Union[str, "os.PathLike[str]", Mapping[str, Any], SpecFile]
DICT_SOURCE = "spec (a dict)"  # what errors of a spec given as a dict name as its source
DICT_ANCHOR = "<spec dict>"  # the file name of a spec given as a dict (in base_dir, which anchors its paths)
MODEL = "model.keras"  # graft.stages.MODEL, without importing graft.stages (it is heavier)
_LINE = re.compile(r" \(line \d+\)(?=: )")


class UnknownName(GraftError, LookupError):
    """A stage or layer name that is not there; the message lists the names that are."""


def load_spec(
    spec: SpecLike, *, base_dir: str | os.PathLike[str] | None = None, overrides: Iterable[str | Override] = ()
) -> SpecFile:
    """Load and check a spec, as ``graft validate`` does; raise ``SpecError`` listing every problem.

    ``spec`` is the path of a YAML file, or a dict as ``yaml.safe_load`` gives it (its
    relative paths resolve against ``base_dir``, by default the current folder; its
    problems are named by YAML path, without line numbers).  A loaded spec is returned as is.
    ``overrides`` are ``--set`` strings (``["stages.transfer.epochs=5"]``, see ``graft.overrides``),
    applied before the spec is checked.
    """
    from graft.registry import Registry

    overrides = as_overrides(overrides)
    if isinstance(spec, SpecFile):
        if overrides:
            raise TypeError(
                "overrides apply to a spec as it is read: give them with its path or dict, not a loaded spec"
            )
        return spec
    return _spec_file(spec, base_dir, Registry.discover(), overrides)


def _spec_file(spec: SpecLike, base_dir, registry, overrides: tuple[Override, ...] = ()) -> SpecFile:
    if isinstance(spec, SpecFile):
        return spec
    if isinstance(spec, Mapping):
        return _load_dict(spec, os.fspath(base_dir) if base_dir is not None else os.getcwd(), registry, overrides)
    if base_dir is not None:
        raise TypeError("base_dir is only for a spec given as a dict: a spec file's paths are relative to its folder")
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"expected the path of a YAML spec, a dict or a loaded spec, got {type(spec).__name__}")
    from graft.specfile import load_spec as load_file

    return load_file(os.fspath(spec), registry, overrides)


def _load_dict(data: Mapping[str, Any], base_dir: str, registry, overrides: tuple[Override, ...]) -> SpecFile:
    """The dict as YAML text in memory, checked by the same code as a file; its line numbers dropped
    (they would be lines of text the user never saw)."""
    import yaml

    from graft.specfile import parse_spec

    try:
        text = yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise SpecError(DICT_SOURCE, [f"the dict holds a value YAML cannot: {exc}; use str, int, float, bool, "
                                      "None, lists and dicts, as yaml.safe_load gives them"]) from None
    anchor = os.path.join(os.path.abspath(base_dir), DICT_ANCHOR)  # SpecFile.base_dir is its folder
    try:
        spec_file = parse_spec(text, anchor, registry, overrides)
    except SpecError as exc:
        raise SpecError(DICT_SOURCE, [_LINE.sub("", line, count=1) for line in exc.lines]) from None
    # later problems (graft.plan, graft.run) are named by path alone too (or by their --set)
    return attrs.evolve(spec_file, document=attrs.evolve(spec_file.document, lines={}))


def _plain(value: Any) -> Any:
    """Mappings as dicts (safe_dump refuses other mapping types); everything else as given."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def plan(spec: SpecLike) -> list[StagePlan]:
    """Every stage's plan, as ``graft plan`` shows it: each layer trainable or frozen, where its weights start.

    Builds each stage's model (this imports TensorFlow); the data is loaded and checked by
    ``graft plan`` and ``run``, not here.  ``plans[i].layer("gru_1").trainable``.
    """
    from graft.planning import plan_spec
    from graft.registry import Registry

    registry = Registry.discover()
    return plan_spec(_spec_file(spec, None, registry), registry)


@attrs.frozen
class FinishedStage:
    """A finished stage of a run directory: its saved model, its verified report, its folder."""

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

    def evaluate(self, data: Any = None, *, spec: SpecLike | None = None, batch_size: int | None = None) -> Evaluation:
        """Loss and metrics per head (``graft evaluate``) on ``data`` (an ``.npz`` path, or a dict with the
        inputs as ``input`` and each head's targets by its name), or on the stage's own validation data as
        its spec (``spec``, else the run folder's copy) defines it."""
        from graft.serving import evaluate

        return evaluate(self, data, spec=spec, batch_size=batch_size)

    def predict(self, inputs: Any, batch_size: int = 32) -> dict[str, Any]:
        """Each head's outputs by head name (``graft predict``), for ``inputs`` shaped
        ``(samples, *input_shape)``, or the ``input`` array of an ``.npz`` path."""
        from graft.serving import input_shape, predict
        from graft.stagearrays import checked_inputs, read_inputs

        if isinstance(inputs, (str, os.PathLike)):
            rows = read_inputs(os.fspath(inputs), input_shape(self.model), "inputs")
        else:
            rows = checked_inputs(inputs, input_shape(self.model), "the inputs given")
        return predict(self, rows, batch_size)

    def export(self, path: str | os.PathLike[str], format: str = "saved_model", *, batch: int | None = None,
               select_tf_ops: bool = False, force: bool = False) -> Exported:
        """The model as a SavedModel folder or a ``.tflite`` file at ``path`` (``graft export``), checked
        against the Keras model on a few samples; an existing ``path`` only with ``force``."""
        from graft.exporting import export

        return export(self.model, os.fspath(path), format, batch=batch, select_tf_ops=select_tf_ops, force=force)


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


def load_stage(out: str | os.PathLike[str], stage: str) -> FinishedStage:
    """A finished stage of the run directory ``out``: its ``model.keras`` loaded (``compile=False``:
    for ``predict`` and weights; compile it to train or evaluate) and its ``report.json``, both
    checked against the digests the stage recorded (``RunError`` if they differ)."""
    out = os.fspath(out)
    run_dir = RunDir(out)
    if not run_dir.is_finished(stage):
        raise UnknownName(f"{os.path.abspath(out)} has no finished stage '{stage}'"
                          + _finished_hint(out, stage))
    report = run_dir.read_report(stage)
    if MODEL not in report.files:
        raise RunError(f"the finished stage '{stage}' in {os.path.abspath(out)} published no {MODEL}")
    from graft.backend import import_keras
    from graft.registry import Registry

    Registry.discover()  # plugins register their Keras classes, if any, before the model is read
    keras = import_keras()
    model = keras.saving.load_model(os.path.join(run_dir.stage_path(stage), MODEL), compile=False)
    return FinishedStage(path=run_dir.stage_path(stage), report=report, model=model)


def _finished_hint(out: str, stage: str) -> str:
    try:
        names = sorted(name for name in os.listdir(out) if RunDir(out).is_finished(name))
    except OSError:
        return " (the folder cannot be read)"
    if not names:
        return "; no stage has finished there"
    return f"{did_you_mean(stage, names)}; finished stages: {listing(names)}"


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
    from graft.registry import Registry
    from graft.stages import run_spec

    registry = Registry.discover()
    spec_file = _spec_file(spec, None, registry)
    out = os.fspath(out)
    reports = run_spec(spec_file, registry, out, restart_from=restart_from, log=log, cache_features=cache_features)
    return RunResult(out=out, reports=list(reports))
