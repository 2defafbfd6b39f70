"""The YAML spec as attrs classes. No TensorFlow here: ``graft validate`` runs on this alone.

Each ``params`` field holds the plugin's own attrs params object once the spec is
loaded (see ``graft.specfile``).
"""

from __future__ import annotations

from typing import Any

import attrs

from graft.validators import each, identifier, non_empty, non_negative, one_of, positive

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
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad")
CLASS_LOSSES = ("sparse_categorical_crossentropy",)


@attrs.frozen
class ExtractorRef:
    """``model.extractor``: the ``build_extractor`` plugin and its params."""

    plugin: str
    params: Any = None


@attrs.frozen
class HeadSpec:
    """One output head: its ``build_head`` plugin, params and how it is trained."""

    plugin: str
    loss: str = attrs.field(validator=one_of(LOSSES))
    params: Any = None
    metrics: list[str] = attrs.field(factory=list, validator=each(one_of(METRICS)))
    loss_weight: float = attrs.field(default=1.0, validator=non_negative)


@attrs.frozen
class PolicyRef:
    """A stage's ``policy``: the ``transfer_policy`` plugin and its params."""

    plugin: str = "continue"
    params: Any = None


@attrs.frozen
class DataRef:
    """A stage's ``data``: the ``load_data`` plugin (``source``) and its params."""

    source: str
    params: Any = None


@attrs.frozen
class ModelSpec:
    input_shape: list[int] = attrs.field(validator=[non_empty, each(positive)])
    extractor: ExtractorRef
    heads: dict[str, HeadSpec] = attrs.field(validator=non_empty)


@attrs.frozen
class Init:
    """Where a stage's starting weights come from: exactly one of the two."""

    stage: str | None = None
    weights: str | None = None


@attrs.frozen
class Optimizer:
    name: str = attrs.field(default="adam", validator=one_of(OPTIMIZERS))
    learning_rate: float = attrs.field(default=0.001, validator=positive)
    options: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = attrs.field(default=3, validator=non_negative)
    min_delta: float = attrs.field(default=0.0, validator=non_negative)
    restore_best_weights: bool = True


@attrs.frozen
class ReduceLR:
    monitor: str = "val_loss"
    factor: float = attrs.field(default=0.5, validator=positive)
    patience: int = attrs.field(default=2, validator=non_negative)
    min_lr: float = attrs.field(default=0.0, validator=non_negative)


@attrs.frozen
class Callbacks:
    early_stopping: EarlyStopping | None = None
    reduce_lr: ReduceLR | None = None


@attrs.frozen
class Stage:
    """One training stage. ``heads``, if given, replaces ``model.heads`` for this stage."""

    name: str = attrs.field(validator=identifier)
    data: DataRef
    epochs: int = attrs.field(validator=positive)
    batch_size: int = attrs.field(default=32, validator=positive)
    init: Init | None = None
    policy: PolicyRef = attrs.field(factory=PolicyRef)
    optimizer: Optimizer = attrs.field(factory=Optimizer)
    heads: dict[str, HeadSpec] | None = None
    callbacks: Callbacks = attrs.field(factory=Callbacks)


@attrs.frozen
class Spec:
    model: ModelSpec
    stages: list[Stage] = attrs.field(validator=non_empty)
    seed: int = 0

    def heads_of(self, stage: Stage) -> dict[str, HeadSpec]:
        """The heads a stage trains: its own ``heads`` or the model's."""
        return stage.heads if stage.heads is not None else self.model.heads
