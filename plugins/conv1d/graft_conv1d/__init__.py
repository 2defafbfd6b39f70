"""keras-graft plugin ``conv1d``: a stack of Conv1D layers and global pooling as the feature extractor.

Each YAML layer becomes one ``keras.layers.Conv1D`` with exactly that name.  With
``batch_norm: true`` it is followed by a ``BatchNormalization`` named
``{name}_bn`` and an ``Activation`` named ``{name}_act`` (and the Conv1D has no
bias); otherwise the Conv1D applies the activation itself.  A final global
pooling layer named ``conv_pool`` gives features of shape ``(batch, filters)``.
``model.input_shape`` is ``[steps, channels]``; the input layer is named
``conv1d_input``.

.. code-block:: yaml

    extractor:
      plugin: conv1d
      params:
        layers:
          - {name: conv_1, filters: 16, kernel_size: 5}
          - {name: conv_2, filters: 16, kernel_size: 3, strides: 2, padding: valid}
        activation: relu    # default relu
        batch_norm: false   # default false
        pooling: average    # average (default) | max
"""

import math
from typing import ClassVar

import attrs

import graft
from graft import Problems, check_allocation, validators

MAX_SIZE = 2**31 - 1  # TensorFlow shapes are int32
INPUT_NAME = "conv1d_input"
POOL_NAME = "conv_pool"
# Activation names that Keras 2.15 and Keras 3 both accept.
ACTIVATIONS = (
    "relu", "elu", "selu", "gelu", "swish", "tanh", "sigmoid",
    "hard_sigmoid", "softplus", "softsign", "exponential", "linear",
)


@attrs.frozen
class ConvLayer:
    """One Conv1D: its layer name and shape."""

    name: str = attrs.field(validator=validators.identifier)
    filters: int = attrs.field(validator=validators.between(1, MAX_SIZE))
    kernel_size: int = attrs.field(validator=validators.between(1, MAX_SIZE))
    strides: int = attrs.field(default=1, validator=validators.between(1, MAX_SIZE))
    padding: str = attrs.field(default="same", validator=validators.one_of(("same", "valid")))


def _unique_names(instance, attribute, layers) -> None:
    """No two Keras layers the params create may share a name."""
    seen = {INPUT_NAME: "the input layer", POOL_NAME: "the pooling layer"}
    problems = Problems()
    for index, layer in enumerate(layers):
        made = {layer.name: f"layers[{index}]"}
        if instance.batch_norm:
            made[f"{layer.name}_bn"] = f"the batch norm of layers[{index}]"
            made[f"{layer.name}_act"] = f"the activation of layers[{index}]"
        clashes = [name for name in made if name in seen]
        if clashes:
            problems.add(
                (attribute.name, index, "name"), f"duplicate layer name '{clashes[0]}' (also {seen[clashes[0]]})"
            )
        seen = {**made, **seen}
    problems.raise_all()


@attrs.frozen
class Conv1DParams:
    """The ``params`` of ``extractor: {plugin: conv1d}``."""

    STARTER: ClassVar[dict] = {"layers": [{"name": "conv_1", "filters": 16, "kernel_size": 5},
                                          {"name": "conv_2", "filters": 16, "kernel_size": 3}]}
    STARTER_INPUT_SHAPE: ClassVar[tuple] = (50, 8)  # (timesteps, channels)

    layers: list[ConvLayer] = attrs.field(validator=[validators.non_empty, _unique_names])
    activation: str = attrs.field(default="relu", validator=validators.one_of(ACTIVATIONS))
    batch_norm: bool = False
    pooling: str = attrs.field(default="average", validator=validators.one_of(("average", "max")))


@graft.hookimpl
def build_extractor(params: Conv1DParams, input_shape):
    """Stack the convolutions, then pool globally over the steps."""
    import keras

    if len(input_shape) != 2:
        raise graft.SpecProblem(
            (), f"the conv1d extractor needs model.input_shape [steps, channels], got {list(input_shape)}"
        )
    check_shapes(params, input_shape)
    inputs = keras.Input(shape=tuple(input_shape), name=INPUT_NAME)
    x = inputs
    for layer in params.layers:
        x = keras.layers.Conv1D(
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            activation=None if params.batch_norm else params.activation,
            use_bias=not params.batch_norm,
            name=layer.name,
        )(x)
        if params.batch_norm:
            x = keras.layers.BatchNormalization(name=f"{layer.name}_bn")(x)
            x = keras.layers.Activation(params.activation, name=f"{layer.name}_act")(x)
    pool = keras.layers.GlobalAveragePooling1D if params.pooling == "average" else keras.layers.GlobalMaxPooling1D
    x = pool(name=POOL_NAME)(x)
    return keras.Model(inputs, x, name="conv1d_extractor")


@graft.hookimpl
def extractor_layers(params: Conv1DParams) -> list[graft.DeclaredLayer]:
    """The layers ``build_extractor`` builds, by name: ``graft validate`` checks a spec's layer names against them."""
    layers = []
    for layer in params.layers:
        layers.append(graft.DeclaredLayer(layer.name, "Conv1D"))
        if params.batch_norm:
            layers.append(graft.DeclaredLayer(f"{layer.name}_bn", "BatchNormalization", is_batch_norm=True))
            layers.append(graft.DeclaredLayer(f"{layer.name}_act", "Activation", has_weights=False))
    pool = "GlobalAveragePooling1D" if params.pooling == "average" else "GlobalMaxPooling1D"
    return [*layers, graft.DeclaredLayer(POOL_NAME, pool, has_weights=False)]


def check_shapes(params: Conv1DParams, input_shape) -> None:
    """Every kernel must fit the steps that reach its layer, and every layer's weights must fit in memory."""
    steps, channels = input_shape
    problems = Problems()
    for index, layer in enumerate(params.layers):
        with problems.collect(("layers", index)):
            check_allocation(layer.kernel_size * channels * layer.filters + layer.filters,
                             f"layer '{layer.name}' (filters {layer.filters:,}, kernel_size {layer.kernel_size:,})",
                             ("filters",))
        if layer.padding == "valid" and layer.kernel_size > steps:
            problems.add(
                ("layers", index, "kernel_size"),
                f"kernel_size {layer.kernel_size} is longer than the {steps} steps that reach layer '{layer.name}' "
                f"(model.input_shape {list(input_shape)}"
                f"{', after the layers before it' if index else ''}); use a smaller kernel or padding: same",
            )
            break  # the steps after this layer are undefined
        steps = (
            (steps - layer.kernel_size) // layer.strides + 1
            if layer.padding == "valid"
            else math.ceil(steps / layer.strides)
        )
        channels = layer.filters
    problems.raise_all()
