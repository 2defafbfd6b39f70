"""What a finished stage reports (``report.json``), as typed records read back strictly.

A report is the run directory's memory of a stage: resume, lineage, the summary
table and ``init: {stage: ...}`` all read it, so it is parsed with the same strict
converter as a spec and a damaged or foreign file is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from cattrs.gen import make_dict_unstructure_fn, override

from graft.base.problems import SpecProblem, format_path
from graft.model.losses import HeadLoss
from graft.planning.records import DataSummary, StagePlan
from graft.spec.convert import make_converter, structure

FORMAT = 2  # 2: file digests; reports without them (keras-graft 0.1 runs) are not reused


@attrs.frozen
class LayerLoad:
    """Where one layer's starting weights came from, and the proof that they arrived."""

    init: str  # new | loaded | reinitialised | none (as in the plan)
    source: str | None = None
    equal_to_source: bool | None = None
    source_layer: str | None = None  # the file's own name of a layer loaded under another (init.rename)


@attrs.frozen
class LayerCheck:
    """What training did to one layer that has weights."""

    trainable: bool
    changed: bool
    adapted: bool = False  # a low-rank adapter trained beside it and was merged into its weights


@attrs.frozen
class RoundResult:
    """One round of a stage trained in rounds (one round for most policies)."""

    round: int
    label: str
    unfrozen: list[str]
    trainable_params: int
    val_loss: float
    features_cached: bool
    kept: bool
    kept_epoch: int | None = None  # with a checkpoint: the epoch (0-based) whose weights the round kept


@attrs.frozen
class Versions:
    """What a stage ran with: TensorFlow, Keras and the backend Keras trained on (``"tensorflow"``, the only
    one keras-graft runs), keras-graft, and the distribution of every plugin it used (``{"graft-gru": "0.1.0"}``;
    keras-graft's built-ins are keras-graft's).  A report written before keras-graft recorded more than Keras
    and TensorFlow has ``keras_graft`` None and no ``plugins``; before 0.2 recorded it, ``backend`` is None."""

    tensorflow: str | None = None
    keras: str | None = None
    backend: str | None = None
    keras_graft: str | None = None
    # keras-graft run from a git checkout: its commit (``+dirty`` with uncommitted changes in core/)
    commit: str | None = None
    plugins: dict[str, str] = attrs.field(factory=dict)


def _versions(value: Versions | Mapping[str, Any]) -> Versions:
    """A mapping (``{"keras": ..., "tensorflow": ...}``, as reports used to say it) is read as ``Versions``."""
    return value if isinstance(value, Versions) else Versions(**value)


@attrs.frozen
class StageReport:
    """``report.json`` of a finished stage.

    ``files`` maps every other file the stage published to ``sha256:<hex>``;
    a finished stage is reused (resumed over, loaded from) only while they match.
    """

    stage: str
    fingerprint: str
    plan: StagePlan
    load: dict[str, LayerLoad]
    verification: dict[str, LayerCheck]
    final_metrics: dict[str, float]
    epochs_run: int
    features_cached: bool
    lineage: dict[str, list[str]]
    wall_time_s: float
    versions: Versions = attrs.field(converter=_versions)
    files: dict[str, str] = attrs.field(factory=dict)
    rounds: list[RoundResult] = attrs.field(factory=list)
    kept_round: int | None = None
    kept_epoch: int | None = None  # with a checkpoint: the epoch (0-based, of the kept round) published
    data: DataSummary | None = None
    # multi_worker: each replica's weights, equal (graft.distribute.strategy)
    worker_digests: list[str] = attrs.field(factory=list)
    heads: dict[str, HeadLoss] = attrs.field(factory=dict)  # how each head was compiled (graft evaluate reads it)
    seed: int | None = None  # the seed the stage trained with (None: written before keras-graft 0.2 recorded it)
    spec_file: str | None = None  # the spec file the run was started from, as given (None: a dict, or before 0.2)
    # per classification head, on the validation data: rows true class ids, columns predicted (graft.runs.confusion)
    confusion: dict[str, list[list[int]]] = attrs.field(factory=dict)
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        data = _CONVERTER.unstructure(self)
        if len(self.rounds) <= 1:  # one round: nothing to say beyond the stage itself
            del data["rounds"], data["kept_round"]
        if not self.worker_digests:
            del data["worker_digests"]
        if self.kept_epoch is None:  # no checkpoint: the last epoch's weights, as always
            del data["kept_epoch"]
        if self.versions.commit is None:  # an installed keras-graft
            del data["versions"]["commit"]
        if self.versions.backend is None:  # a report read back from before keras-graft recorded it
            del data["versions"]["backend"]
        if not self.confusion:  # no classification head with validation data
            del data["confusion"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> StageReport:
        """A report from parsed JSON; ``ValueError`` saying what is wrong if it is not one."""
        try:
            report = structure(_CONVERTER, data, cls)
        except SpecProblem as problem:
            path, message = problem.items[0]
            raise ValueError(f"{format_path(path)}: {message}") from None
        if report.format != FORMAT:
            raise ValueError(f"report format {report.format}, this keras-graft reads format {FORMAT}")
        return report

_CONVERTER = make_converter()
_CONVERTER.register_unstructure_hook(StagePlan, StagePlan.to_json)
_CONVERTER.register_structure_hook(StagePlan, lambda data, _: _stage_plan(data))
_CONVERTER.register_unstructure_hook(  # a layer not loaded has no proof to report
    LayerLoad,
    make_dict_unstructure_fn(
        LayerLoad,
        _CONVERTER,
        equal_to_source=override(omit_if_default=True),
        source_layer=override(omit_if_default=True),  # reports before init.rename stay as they were
    ),
)
_CONVERTER.register_unstructure_hook(  # a layer without an adapter: as reports were before adapters
    LayerCheck, make_dict_unstructure_fn(LayerCheck, _CONVERTER, adapted=override(omit_if_default=True))
)
_CONVERTER.register_unstructure_hook(  # a round without a checkpoint keeps its last epoch: nothing to say
    RoundResult, make_dict_unstructure_fn(RoundResult, _CONVERTER, kept_epoch=override(omit_if_default=True))
)


def _stage_plan(data: Any) -> StagePlan:
    try:
        return StagePlan.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpecProblem((), f"not a stage plan ({type(exc).__name__}: {exc})") from None
