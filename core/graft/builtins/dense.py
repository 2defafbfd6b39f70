"""The ``dense`` head: optional hidden Dense layers, optional dropout, a Dense output.

```yaml
heads:
  trend:
    plugin: dense
    loss: sparse_categorical_crossentropy
    params: {units: 3, activation: softmax, hidden: [16], dropout: 0.2}
```

Layers are named ``{head}_hidden_1``, ..., ``{head}_dropout_1``, ... and the
output layer ``{head}``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from graft import DeclaredLayer, hookimpl
from graft.base.memory import check_allocation
from graft.base.problems import Problems
from graft.validators import between, each, fraction, one_of

MAX_UNITS = 2**31 - 1  # TensorFlow shapes are int32

ACTIVATIONS = (
    "linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu",
    "softplus", "softsign", "swish", "gelu", "exponential",
)


@attrs.frozen
class DenseHeadParams:
    STARTER: ClassVar[dict] = {"units": 3}  # graft new-spec: one unit per class

    units: int = attrs.field(validator=between(1, MAX_UNITS))
    activation: str = attrs.field(default="linear", validator=one_of(ACTIVATIONS))
    hidden: list[int] = attrs.field(factory=list, validator=each(between(1, MAX_UNITS)))
    hidden_activation: str = attrs.field(default="relu", validator=one_of(ACTIVATIONS))
    dropout: float = attrs.field(default=0.0, validator=fraction)


@hookimpl
def build_head(params: DenseHeadParams, features, name):
    import keras

    check_weights(params, features.shape[-1], name)
    x = features
    sizes = [*params.hidden, params.units]
    for index, units in enumerate(sizes, start=1):
        if params.dropout:
            x = keras.layers.Dropout(params.dropout, name=f"{name}_dropout_{index}")(x)
        last = index == len(sizes)
        x = keras.layers.Dense(
            units,
            activation=params.activation if last else params.hidden_activation,
            name=name if last else f"{name}_hidden_{index}",
        )(x)
    return x


@hookimpl
def head_layers(params: DenseHeadParams, name: str) -> list[DeclaredLayer]:
    """The layers ``build_head`` builds, from the params alone (``graft validate`` checks names against them)."""
    layers = []
    count = len(params.hidden) + 1
    for index in range(1, count + 1):
        if params.dropout:
            layers.append(DeclaredLayer(f"{name}_dropout_{index}", "Dropout", has_weights=False))
        layers.append(DeclaredLayer(name if index == count else f"{name}_hidden_{index}", "Dense"))
    return layers


def check_weights(params: DenseHeadParams, features: int | None, name: str) -> None:
    """Refuse Dense layers whose weights ((inputs + 1) * units values) would not fit in memory."""
    problems = Problems()
    size = int(features or 1)  # an unknown feature size counts as 1
    paths = [("hidden", index) for index in range(len(params.hidden))] + [("units",)]
    for units, path in zip([*params.hidden, params.units], paths, strict=True):
        with problems.collect():
            check_allocation((size + 1) * units, f"head '{name}' Dense of {units:,} units on {size:,} inputs", path)
        size = units
    problems.raise_all()
