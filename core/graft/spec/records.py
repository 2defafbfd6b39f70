"""The YAML spec as attrs classes. No TensorFlow here: ``graft validate`` runs on this alone.

Each ``params`` field holds the plugin's own attrs params object once the spec is
loaded (see ``graft.spec.specfile``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

from graft.base.problems import Problems, SpecProblem
from graft.spec import optimizers
from graft.spec.augment import Augmentation
from graft.spec.callbacks import Callbacks
from graft.spec.validators import between, each, is_name, non_empty, non_negative, one_of, positive

LOSSES = (
    "mse",
    "mae",
    "mean_squared_error",
    "mean_absolute_error",
    "huber",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)
METRICS = (
    "accuracy",
    "mae",
    "mse",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
)
OPTIMIZERS = optimizers.NAMES
STRATEGIES = ("mirrored", "multi_worker")
CLASS_LOSSES = ("sparse_categorical_crossentropy",)
# losses of heads that predict one class per sample: a class_weight applies to them (graft.data.weighting)
CLASSIFICATION_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")
BALANCED = "balanced"
MAX_CLASS_ID = 2**31 - 1

MAX_SEED = 2**31 - 1  # the runner seeds keras.utils.set_random_seed(seed + stage index): a 32-bit seed
MAX_EPOCHS = 100_000
MAX_INT32 = 2**31 - 1  # batch sizes and shape dimensions are int32 in TensorFlow
# a stage folder is also written as <name>.partial and set aside as <name>.replaced-<time>[-n]:
# 100 characters leave room for those suffixes within the 255 bytes a file name may have
MAX_STAGE_NAME = 100
# names Windows cannot give a folder, in any case
RESERVED_FOLDER_NAMES = frozenset(
    ["con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))]
)


def stage_name(_instance, _attribute, value) -> None:
    """A stage name names its run folder: an identifier, short enough, not a reserved device name."""
    if not is_name(value):
        raise SpecProblem((), f"{value!r} is not a valid stage name: use letters, digits and _ (it names a folder)")
    if len(value) > MAX_STAGE_NAME:
        raise SpecProblem(
            (), f"a stage name has at most {MAX_STAGE_NAME} characters (it names a folder), got {len(value)}"
        )
    if value.lower() in RESERVED_FOLDER_NAMES:
        raise SpecProblem((), f"'{value}' cannot name a folder on Windows; choose another stage name")


def _optimizer_options(instance, attribute, options) -> None:
    found = optimizers.option_problems(instance.name, options)
    if found:  # paths start with the field's name: an option named "options" stays under options
        raise SpecProblem.of([((attribute.name, *path), message) for path, message in found])


@attrs.frozen
class ExtractorRef:
    """``model.extractor``: the ``build_extractor`` plugin and its params."""

    plugin: str
    params: Any = None


def class_weights(_instance, _attribute, value) -> None:
    """A ``class_weight`` mapping: class ids 0 or more, weights finite and 0 or more, not every one 0."""
    if not isinstance(value, dict):
        return
    problems = Problems()
    if not value:
        problems.add((), "must not be empty; leave class_weight out to weigh every class alike")
    for class_id, weight in value.items():
        if not 0 <= class_id <= MAX_CLASS_ID:
            problems.add((class_id,), f"class id {class_id} is not a class id: ids go from 0 to the head's classes - 1")
        elif not math.isfinite(weight) or weight < 0:
            problems.add((class_id,), f"must be a finite number, 0 or more, got {weight}")
    if value and all(weight == 0 for weight in value.values() if math.isfinite(weight)) and not problems:
        problems.add((), "every weight given is 0; a class with weight 0 adds nothing to the loss, so give at "
                         "least one class a weight above 0")
    problems.raise_all()


@attrs.frozen
class HeadSpec:
    """One output head: its ``build_head`` plugin, params and how it is trained.

    ``class_weight`` (classification heads): ``balanced`` weighs each class id by
    ``samples / (classes present * samples of that class)`` in the stage's training
    data, or a mapping ``{class id: weight}`` (ids left out weigh 1.0); it
    multiplies the head's per-sample loss in training, never in validation.
    """

    plugin: str
    loss: str = attrs.field(validator=one_of(LOSSES))
    params: Any = None
    metrics: list[str] = attrs.field(factory=list, validator=each(one_of(METRICS)))
    loss_weight: float = attrs.field(default=1.0, validator=non_negative)
    class_weight: Literal["balanced"] | dict[int, float] | None = attrs.field(
        default=None,
        validator=class_weights,
        metadata={"description": "classification heads: 'balanced' or {class id: weight} (ids left out weigh "
                                 "1.0); multiplies each sample's training loss by its class's weight"},
    )


@attrs.frozen
class PolicyRef:
    """A stage's ``policy``: the ``transfer_policy`` plugin and its params."""

    plugin: str = "continue"
    params: Any = None


@attrs.frozen
class DataRef:
    """A stage's ``data``: the ``load_data`` plugin (``source``), its params, and how training inputs are
    augmented (``graft.data.augment``; never validation inputs)."""

    source: str
    params: Any = None
    augment: list[Augmentation] = attrs.field(factory=list)


@attrs.frozen
class ModelSpec:
    input_shape: list[int] = attrs.field(validator=[non_empty, each(between(1, MAX_INT32))])
    extractor: ExtractorRef
    heads: dict[str, HeadSpec] = attrs.field(validator=non_empty)


@attrs.frozen
class Init:
    """Where a stage's starting weights come from: exactly one of an earlier ``stage``, a ``weights`` file
    (weights.graft.npz) or a Keras ``model`` file; ``rename`` maps a file's layer names (or globs) to this
    model's (``graft.spec.renaming``)."""

    stage: str | None = None
    weights: str | None = None
    model: str | None = None
    rename: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Optimizer:
    name: str = attrs.field(default="adam", validator=one_of(OPTIMIZERS))
    learning_rate: float = attrs.field(default=0.001, validator=positive)
    options: dict[str, Any] = attrs.field(
        factory=dict, converter=optimizers.integral_options, validator=_optimizer_options
    )
    schedule: optimizers.Schedule | None = None


@attrs.frozen
class Stage:
    """One training stage. ``heads``, if given, replaces ``model.heads`` for this stage; ``seed``, if given,
    replaces the spec's ``seed`` plus the stage's index (so two stages can be compared at one seed)."""

    name: str = attrs.field(validator=stage_name)
    data: DataRef
    epochs: int = attrs.field(validator=between(1, MAX_EPOCHS))
    batch_size: int = attrs.field(default=32, validator=between(1, MAX_INT32))
    init: Init | None = None
    policy: PolicyRef = attrs.field(factory=PolicyRef)
    optimizer: Optimizer = attrs.field(factory=Optimizer)
    heads: dict[str, HeadSpec] | None = attrs.field(default=None, validator=attrs.validators.optional(non_empty))
    callbacks: Callbacks = attrs.field(factory=Callbacks)
    seed: int | None = attrs.field(default=None, validator=attrs.validators.optional(between(0, MAX_SEED)))


@attrs.frozen
class Distribute:
    """``distribute``: train on TensorFlow's ``tf.distribute``.

    ``mirrored``: every local GPU (or the CPU), one process.  ``multi_worker``: one
    process per machine, started with ``graft run --local-workers N``,
    ``--workers``/``--worker-index`` or ``TF_CONFIG``.  ``batch_size`` stays the
    global batch, split across the replicas.
    """

    strategy: str = attrs.field(validator=one_of(STRATEGIES))

    def planned(self, batch_size: int) -> str:
        """What the plan says before any device or worker is known (the run reports the real numbers)."""
        if self.strategy == "mirrored":
            return f"mirrored: one replica per local GPU (else the CPU), global batch {batch_size} split across them"
        return (f"multi_worker: one replica per worker (per GPU on GPU machines), global batch {batch_size} split "
                f"across them ({-(-batch_size // 2)} per replica with 2 workers)")


@attrs.frozen
class Spec:
    model: ModelSpec
    stages: list[Stage] = attrs.field(validator=non_empty)
    seed: int = attrs.field(default=0, validator=between(0, MAX_SEED))
    distribute: Distribute | None = None

    def heads_of(self, stage: Stage) -> dict[str, HeadSpec]:
        """The heads a stage trains: its own ``heads`` or the model's."""
        return stage.heads if stage.heads is not None else self.model.heads

    def seed_of(self, index: int) -> int:
        """The seed of stage ``index`` (its initialisation, shuffling, dropout, augmentation): its own
        ``seed``, else the spec's ``seed`` plus its index."""
        own = self.stages[index].seed
        return own if own is not None else self.seed + index
