"""keras-graft plugin ``gru``: a stack of GRU layers as the feature extractor.

Each YAML layer becomes one ``keras.layers.GRU`` with exactly that name; all
but the last return sequences, so the features are the last GRU's final state,
shape ``(batch, units)``.  ``model.input_shape`` is ``[timesteps, features]``.
The input layer is named ``gru_input``.

.. code-block:: yaml

    extractor:
      plugin: gru
      params:
        layers:
          - {name: gru_1, units: 16}
          - {name: gru_2, units: 16, dropout: 0.2}   # per-layer dropout wins
          - {name: gru_3, units: 16}
        dropout: 0.0        # optional: GRU input dropout for every layer
"""

from typing import ClassVar

import attrs

import graft
from graft import Problems, check_allocation, validators

INPUT_NAME = "gru_input"
MAX_UNITS = 2**31 - 1  # TensorFlow shapes are int32


@attrs.frozen
class GRULayer:
    """One GRU: its layer name, size and optional own dropout."""

    name: str = attrs.field(validator=validators.identifier)
    units: int = attrs.field(validator=validators.between(1, MAX_UNITS))
    dropout: float | None = attrs.field(default=None, validator=attrs.validators.optional(validators.fraction))


def _unique_names(_instance, attribute, layers) -> None:
    seen = {INPUT_NAME: "the input layer"}
    problems = Problems()
    for index, layer in enumerate(layers):
        if layer.name in seen:
            problems.add(
                (attribute.name, index, "name"), f"duplicate layer name '{layer.name}' (also {seen[layer.name]})"
            )
        seen.setdefault(layer.name, f"layers[{index}]")
    problems.raise_all()


@attrs.frozen
class GRUParams:
    """The ``params`` of ``extractor: {plugin: gru}``."""

    STARTER: ClassVar[dict] = {"layers": [{"name": "gru_1", "units": 16}, {"name": "gru_2", "units": 16}]}
    STARTER_INPUT_SHAPE: ClassVar[tuple] = (50, 8)  # (timesteps, channels)

    layers: list[GRULayer] = attrs.field(validator=[validators.non_empty, _unique_names])
    dropout: float = attrs.field(default=0.0, validator=validators.fraction)


@graft.hookimpl
def build_extractor(params: GRUParams, input_shape):
    """Stack the GRUs; every layer but the last returns sequences."""
    import keras

    if len(input_shape) != 2:
        raise graft.SpecProblem(
            (), f"the gru extractor needs model.input_shape [timesteps, features], got {list(input_shape)}"
        )
    check_weights(params, input_shape[-1])
    inputs = keras.Input(shape=tuple(input_shape), name=INPUT_NAME)
    x = inputs
    last = len(params.layers) - 1
    for index, layer in enumerate(params.layers):
        x = keras.layers.GRU(
            layer.units,
            return_sequences=index < last,
            dropout=params.dropout if layer.dropout is None else layer.dropout,
            name=layer.name,
        )(x)
    return keras.Model(inputs, x, name="gru_extractor")


@graft.hookimpl
def extractor_layers(params: GRUParams) -> list[graft.DeclaredLayer]:
    """One GRU per YAML layer, by its name: ``graft validate`` checks a spec's layer names against these."""
    return [graft.DeclaredLayer(layer.name, "GRU") for layer in params.layers]


def check_weights(params: GRUParams, features: int) -> None:
    """Refuse a GRU whose weights (3 * units * (inputs + units + 2) values) would not fit in memory."""
    size = features
    for index, layer in enumerate(params.layers):
        check_allocation(3 * layer.units * (size + layer.units + 2), f"layer '{layer.name}' (units {layer.units:,})",
                         ("layers", index, "units"))
        size = layer.units
