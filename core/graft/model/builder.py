"""ModelBuilder: composes a keras.Model from an extractor delegate and heads built by plugins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from graft.base.backend import clear_session, import_keras
from graft.base.problems import Path, Problems
from graft.plugins.autonames import recording_auto_names
from graft.plugins.layers import EXTRACTOR, INPUT_NAME, LayerInfo
from graft.plugins.plannotes import plan_notes
from graft.plugins.registry import PluginError, Registry, debug_enabled
from graft.spec.records import ExtractorRef, HeadSpec

EXTRACTOR_AT: Path = ("model", "extractor")
MODEL_HEADS_AT: Path = ("model", "heads")


@attrs.frozen
class BuiltModel:
    """A composed model, its extractor delegate, and the layers policies can address.

    ``features`` is the extractor's output tensor inside ``model``, where the heads start;
    ``notes`` are the extractor plugin's lines for ``graft plan`` (``graft.add_plan_note``).
    """

    model: Any
    extractor: Any
    layers: tuple[LayerInfo, ...]
    features: Any = None
    notes: tuple[str, ...] = ()

    def layer(self, name: str) -> Any:
        return next(info.layer for info in self.layers if info.name == name)

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Head name -> shape of one output sample."""
        return {
            name: tuple(int(d) for d in tensor.shape[1:])
            for name, tensor in zip(self.model.output_names, self.model.outputs, strict=True)
        }


class ModelBuilder:
    """Holds the extractor plugin's model as a delegate and composes it with the heads.

    Swapping the extractor changes only ``extractor``; the heads and everything
    downstream stay as they are.
    """

    def __init__(
        self,
        registry: Registry,
        input_shape: tuple[int, ...],
        extractor: ExtractorRef,
        heads: Mapping[str, HeadSpec],
        base_dir: str = ".",
        heads_at: Path = MODEL_HEADS_AT,
    ) -> None:
        """``heads_at`` is the YAML path of ``heads`` (``("stages", 1, "heads")`` for a stage's own)."""
        self.registry = registry
        self.base_dir = base_dir
        self.input_shape = tuple(input_shape)
        self.extractor_ref = extractor
        self.head_specs = dict(heads)
        self.heads_at = tuple(heads_at)

    def build(self, seed: int) -> BuiltModel:
        """A fresh model with seeded initial weights; the same seed gives the same weights.

        Problems of the spec (a plugin's ``SpecProblem``, a head name taken by the
        extractor) raise ``SpecProblem`` at their YAML paths; a plugin that breaks
        the hook contract raises ``PluginError``.
        """
        keras = import_keras()
        import tensorflow as tf

        if not tf.distribute.has_strategy():  # inside a strategy's scope the runner cleared it before entering
            clear_session(keras)  # Keras's own names restart, so they are stable across builds
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(shape=self.input_shape, name=INPUT_NAME)
        with recording_auto_names(keras) as generated:
            extractor = self.registry.build_extractor(
                self.extractor_ref.plugin, self.extractor_ref.params, self.input_shape, self.base_dir, at=EXTRACTOR_AT
            )
            self._check_head_names(keras, extractor)
            features = self._apply_extractor(extractor, inputs)
            outputs = [
                self.registry.build_head(head.plugin, head.params, features, name, at=(*self.heads_at, name))
                for name, head in self.head_specs.items()
            ]
        model = self._compose(keras, inputs, outputs)
        infos = self._layer_infos(keras, model, extractor)
        self._reject_generated_names(infos, generated)
        self._reject_lambda(keras, infos)
        return BuiltModel(model, extractor, infos, features, plan_notes(extractor))

    def _blame(self, part: str) -> str:
        """``extractor plugin 'gru' (distribution ...)`` for a part of the model."""
        kind, plugin = (
            ("extractor", self.extractor_ref.plugin) if part == EXTRACTOR else ("head", self.head_specs[part].plugin)
        )
        return f"{kind} plugin '{plugin}' ({self.registry.origin(kind, plugin)})"

    def _check_head_names(self, keras, extractor) -> None:
        """A head is named after its output layer, so it must not take a name the model already uses."""
        taken = {INPUT_NAME: "the model's input", extractor.name: "the extractor model"}
        for layer in leaf_layers(keras, extractor, inputs=True):
            taken.setdefault(layer.name, f"a layer of the extractor ({type(layer).__name__})")
        problems = Problems()
        for name in self.head_specs:
            if name in taken:
                problems.add((*self.heads_at, name), f"head name '{name}' is taken by {taken[name]}; rename the head")
        problems.raise_all()

    def _apply_extractor(self, extractor, inputs):
        try:
            return extractor(inputs)
        except Exception as exc:  # noqa: BLE001 - Keras says why the model does not take this input
            raise PluginError(
                f"{self._blame(EXTRACTOR)} built a model that does not take model.input_shape "
                f"{list(self.input_shape)}: {type(exc).__name__}: {exc}"
            ) from (exc if debug_enabled() else None)

    def _compose(self, keras, inputs, outputs):
        try:
            return keras.Model(inputs, outputs, name="graft_model")
        except ValueError as exc:  # a head built on something else than the features, or a name used twice
            plugins = ", ".join(sorted({f"'{head.plugin}'" for head in self.head_specs.values()}))
            raise PluginError(
                f"the heads (plugins {plugins}) do not compose with the extractor into one model: {exc}"
            ) from (exc if debug_enabled() else None)

    def _reject_generated_names(self, infos: tuple[LayerInfo, ...], generated: set[str]) -> None:
        """Every layer must carry an explicit name: a name Keras made up changes with build order."""
        for info in infos:
            if info.name in generated:
                raise PluginError(
                    f"{self._blame(info.part)} created layer '{info.name}' ({info.class_name}) without a name, "
                    f"so Keras named it '{info.name}', a name that changes with what was built before; "
                    "give every layer an explicit name=, policies and weight transfer address layers by name"
                )

    def _reject_lambda(self, keras, infos: tuple[LayerInfo, ...]) -> None:
        """A ``Lambda`` layer is refused: the saved ``model.keras`` would not load in Keras's safe mode (its Python
        code would have to run), so ``graft evaluate``, ``predict`` and ``export`` could not use the stage."""
        for info in infos:
            if isinstance(info.layer, keras.layers.Lambda):
                raise PluginError(
                    f"{self._blame(info.part)} built a Lambda layer '{info.name}': a model holding one does not load "
                    "back in Keras's safe mode (its Python code would have to run), so graft evaluate, predict and "
                    "export could not load the finished stage; build it from Keras's own layers, or make it a custom "
                    "layer class (a keras.layers.Layer with get_config) registered with "
                    "@keras.saving.register_keras_serializable"
                )

    def _layer_infos(self, keras, model, extractor) -> tuple[LayerInfo, ...]:
        extractor_layers = [(layer, EXTRACTOR) for layer in leaf_layers(keras, extractor)]
        head_layers = [
            (layer, self._head_of(layer.name))
            for layer in model.layers
            if layer is not extractor and not isinstance(layer, keras.layers.InputLayer)
        ]
        head_order = list(self.head_specs)
        head_layers.sort(key=lambda pair: head_order.index(pair[1]))
        infos = tuple(describe_layer(keras, layer, part) for layer, part in extractor_layers + head_layers)
        names = [info.name for info in infos] + [extractor.name, INPUT_NAME]
        clashes = sorted({name for name in names if names.count(name) > 1})
        problems = Problems()
        for info in infos:
            if info.name in clashes and not info.in_extractor:
                problems.add(
                    (*self.heads_at, info.part),
                    f"layer '{info.name}' of head '{info.part}' has the name of an extractor layer; "
                    "rename that extractor layer or the head",
                )
        problems.raise_all()
        if clashes:
            raise PluginError(
                f"layer names must be unique across the extractor and the heads; used twice: {', '.join(clashes)}"
            )
        return infos

    def _head_of(self, layer_name: str) -> str:
        owners = [head for head in self.head_specs if layer_name == head or layer_name.startswith(head + "_")]
        if not owners:
            raise PluginError(
                f"layer '{layer_name}' belongs to no head: head plugins must name their layers "
                f"'{{head}}' or '{{head}}_...' (heads: {', '.join(self.head_specs)})"
            )
        return max(owners, key=len)


def leaf_layers(keras, model, inputs: bool = False) -> list:
    """The layers of ``model``, nested models flattened, in model order; input layers only if ``inputs``."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += leaf_layers(keras, layer, inputs)
        elif inputs or not isinstance(layer, keras.layers.InputLayer):
            found.append(layer)
    return found


def describe_layer(keras, layer, part: str) -> LayerInfo:
    is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
    return LayerInfo(
        name=layer.name,
        part=part,
        class_name=type(layer).__name__,
        has_weights=bool(layer.weights),
        is_batch_norm=is_batch_norm,
        layer=layer,
        can_train=not layer.weights or is_batch_norm or _has_trainable_weights(layer),
    )


def _has_trainable_weights(layer) -> bool:
    """Whether ``layer`` trains any weight while trainable (asked of the layer made trainable for a moment:
    a plugin may hand it over frozen, and Keras 3 marks a frozen layer's variables non-trainable)."""
    was = layer.trainable
    layer.trainable = True
    try:
        return bool(layer.trainable_weights)
    finally:
        layer.trainable = was
