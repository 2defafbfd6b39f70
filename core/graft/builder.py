"""ModelBuilder: composes a keras.Model from an extractor delegate and heads built by plugins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from graft.backend import import_keras
from graft.layers import EXTRACTOR, LayerInfo
from graft.registry import PluginError, Registry
from graft.spec import ExtractorRef, HeadSpec

INPUT_NAME = "input"


@attrs.frozen
class BuiltModel:
    """A composed model, its extractor delegate, and the layers policies can address.

    ``features`` is the extractor's output tensor inside ``model``, where the heads start.
    """

    model: Any
    extractor: Any
    layers: tuple[LayerInfo, ...]
    features: Any = None

    def layer(self, name: str) -> Any:
        return next(info.layer for info in self.layers if info.name == name)

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Head name -> shape of one output sample."""
        return {
            name: tuple(int(d) for d in tensor.shape[1:])
            for name, tensor in zip(self.model.output_names, self.model.outputs)
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
    ) -> None:
        self.registry = registry
        self.base_dir = base_dir
        self.input_shape = tuple(input_shape)
        self.extractor_ref = extractor
        self.head_specs = dict(heads)

    def build(self, seed: int) -> BuiltModel:
        """A fresh model with seeded initial weights; the same seed gives the same weights."""
        keras = import_keras()
        keras.backend.clear_session()  # auto-generated names restart, so names are stable across builds
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(shape=self.input_shape, name=INPUT_NAME)
        extractor = self.registry.build_extractor(
            self.extractor_ref.plugin, self.extractor_ref.params, self.input_shape, self.base_dir
        )
        if not isinstance(extractor, keras.Model):
            raise PluginError(
                f"extractor plugin '{self.extractor_ref.plugin}' "
                f"({self.registry.origin('extractor', self.extractor_ref.plugin)}) returned "
                f"{type(extractor).__name__}, not a keras.Model"
            )
        features = extractor(inputs)
        outputs = [
            self.registry.build_head(head.plugin, head.params, features, name)
            for name, head in self.head_specs.items()
        ]
        model = keras.Model(inputs, outputs, name="graft_model")
        for name, head in self.head_specs.items():
            if name not in model.output_names:
                raise PluginError(
                    f"head plugin '{head.plugin}' ({self.registry.origin('head', head.plugin)}) must name "
                    f"the output layer of head '{name}' '{name}'; outputs are named {', '.join(model.output_names)}"
                )
        return BuiltModel(model, extractor, self._layer_infos(keras, model, extractor), features)

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


def leaf_layers(keras, model) -> list:
    """The non-input layers of ``model``, nested models flattened, in model order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += leaf_layers(keras, layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            found.append(layer)
    return found


def describe_layer(keras, layer, part: str) -> LayerInfo:
    return LayerInfo(
        name=layer.name,
        part=part,
        class_name=type(layer).__name__,
        has_weights=bool(layer.weights),
        is_batch_norm=isinstance(layer, keras.layers.BatchNormalization),
        layer=layer,
    )
