"""The plan's records: each stage's layers, rounds and data as ``graft plan`` shows them and ``report.json`` keeps them.

Plain attrs classes with no model, data or TensorFlow behind them, so reading a finished
stage's report (``graft.records.report``) needs nothing of the planning machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from graft.model.weights import Shapes

NEW, LOADED, REINIT, NO_WEIGHTS = "new", "loaded", "reinitialised", "none"


@attrs.frozen
class AdapterPlan:
    """A layer's low-rank adapter: its rank, its alpha and how many parameters it trains."""

    rank: int
    alpha: float
    params: int

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "params": self.params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdapterPlan:
        return cls(int(data["rank"]), float(data["alpha"]), int(data["params"]))


@attrs.frozen
class LayerPlan:
    name: str
    class_name: str
    part: str
    output_shape: tuple[int | None, ...] | None
    params: int
    trainable: bool
    init: str  # new | loaded | reinitialised | none
    source: str | None  # "stage pretrain", "file /path/weights.graft.npz" or "model /path/m.keras" when loaded
    shapes: Shapes = attrs.field(eq=False, repr=False)
    lr_scale: float = 1.0  # the learning-rate multiplier of the layer in the rounds it trains in
    source_layer: str | None = None  # the file's own name of a layer loaded under another (init.rename)
    adapter: AdapterPlan | None = None  # a low-rank adapter trains beside the layer's frozen weights

    def to_json(self) -> dict[str, Any]:
        adapter = {"adapter": self.adapter.to_json()} if self.adapter is not None else {}
        return {
            "name": self.name,
            "type": self.class_name,
            "part": self.part,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params,
            "trainable": self.trainable,
            "init": self.init,
            "source": self.source,
            "weight_shapes": [list(shape) for shape in self.shapes],
            "lr_scale": self.lr_scale,
            "source_layer": self.source_layer,
            **adapter,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerPlan:
        shape = data["output_shape"]
        return cls(
            name=data["name"],
            class_name=data["type"],
            part=data["part"],
            output_shape=None if shape is None else tuple(shape),
            params=data["params"],
            trainable=data["trainable"],
            init=data["init"],
            source=data["source"],
            shapes=[tuple(shape) for shape in data["weight_shapes"]],
            lr_scale=data.get("lr_scale", 1.0),  # reports written before discriminative rates
            source_layer=data.get("source_layer"),  # and before init.rename
            adapter=AdapterPlan.from_json(data["adapter"]) if data.get("adapter") is not None else None,
        )


@attrs.frozen
class RoundPlan:
    """One round of a stage trained in rounds: what it unfreezes and how much then trains."""

    label: str
    unfrozen: tuple[str, ...]
    trainable_params: int

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "unfrozen": list(self.unfrozen), "trainable_params": self.trainable_params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundPlan:
        return cls(data["label"], tuple(data["unfrozen"]), data["trainable_params"])


@attrs.frozen
class StagePlan:
    """``layers`` show the first round; ``rounds`` has one entry per round (one for most policies)."""

    name: str
    policy: str
    source: str | None
    layers: tuple[LayerPlan, ...]
    trainable_params: int
    total_params: int
    outputs: dict[str, tuple[int, ...]]
    rounds: tuple[RoundPlan, ...] = ()
    features: str = ""  # what happens to the extractor's features (graft.features.cache.feature_plan)
    distribute: str = ""  # the tf.distribute strategy, replicas and per-replica batch (graft.distribute.strategy)
    notes: tuple[str, ...] = ()  # the extractor plugin's notes (graft.add_plan_note)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "policy": self.policy,
            "init": self.source,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "layers": [layer.to_json() for layer in self.layers],
            "rounds": [round_.to_json() for round_ in self.rounds],
            "outputs": {head: list(shape) for head, shape in self.outputs.items()},
            "features": self.features,
            "distribute": self.distribute,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StagePlan:
        """The plan ``to_json`` wrote; ``KeyError``/``TypeError``/``ValueError`` if ``data`` is not one."""
        return cls(
            name=data["name"],
            policy=data["policy"],
            source=data["init"],
            layers=tuple(LayerPlan.from_json(layer) for layer in data["layers"]),
            trainable_params=data["trainable_params"],
            total_params=data["total_params"],
            outputs={head: tuple(shape) for head, shape in data["outputs"].items()},
            rounds=tuple(RoundPlan.from_json(round_) for round_ in data["rounds"]),
            features=data.get("features", ""),
            distribute=data.get("distribute", ""),
            notes=tuple(data.get("notes", ())),
        )

    def layer(self, name: str) -> LayerPlan:
        return next(layer for layer in self.layers if layer.name == name)


@attrs.frozen
class HeadClasses:
    """A classification head's classes in a stage's data: the samples of each class id (training, and
    validation; None where unknown, as for a stream that does not say) and, with a ``class_weight``
    (``balanced`` or ``given``), the weight of each class id in its training loss."""

    counts: list[int] | None = None
    validation_counts: list[int] | None = None
    class_weight: str | None = None
    weights: list[float] = attrs.field(factory=list)

    @property
    def chance(self) -> float | None:
        """The validation accuracy of always answering the training data's most frequent class (the
        majority-class rate; the validation data's own majority class when the training counts are unknown)."""
        if not self.validation_counts or not sum(self.validation_counts):
            return None
        base = self.counts if self.counts and sum(self.counts) else self.validation_counts
        majority = max(range(len(base)), key=lambda index: base[index])
        return self.validation_counts[majority] / sum(self.validation_counts)


@attrs.frozen
class DataSummary:
    """What a stage trained on, as the plan and ``report.json`` show it; ``heads``: the classes of its
    classification heads; ``sample_weights``: the heads whose samples the source weighs."""

    description: str
    samples: int | None
    validation_samples: int | None
    checked: str
    classes: list[str] = attrs.field(factory=list)
    augment: str = ""
    heads: dict[str, HeadClasses] = attrs.field(factory=dict)
    sample_weights: list[str] = attrs.field(factory=list)
    # a digest of the source, its params and the files they read (the run adds it): equal for stages on equal data
    identity: str | None = None
