"""Low-rank adapters (LoRA) on built Keras layers: attach them, freeze the base, merge them in.

An adapted layer keeps its own variables and gains two per adapted kernel, ``A`` (rows × rank) and
``B`` (rank × columns); while attached, the layer reads its kernel as ``W + (alpha / rank)·A·B``.
That is Keras 3's own ``enable_lora`` update for Dense and Conv layers (same shapes, same
initialisers, same formula: ``A`` He-uniform, ``B`` zero), extended to the input and recurrent
kernels of GRU and LSTM cells, which Keras 3 cannot adapt.  A kernel of more than two axes (a
convolution's ``(*kernel_size, in, out)``) is adapted as Keras does: ``A`` has shape
``(*kernel_size, in, rank)``, so its update reshaped to ``(prod(kernel_size) · in, out)`` has rank at
most ``rank``.

The layer is adapted in place, so it keeps its name, its place in the model, and its variables
(the adapter's come after them in ``get_weights()``): the class of the object that owns the
kernels (the layer, or an RNN layer's cell) is swapped for a subclass whose ``kernel`` (and
``recurrent_kernel``) properties add the update; a GRU's or LSTM's own class is swapped too, so that
the update is computed once per call of the layer rather than at every time step.  ``merge`` writes
``W + (alpha / rank)·A·B`` into the layer's own kernels, drops the adapter's variables and gives the
objects their classes back: the model is then a plain Keras model of the base's architecture.

On Keras 3 the layer's own variables are frozen by their ``trainable`` flag; Keras 2 cannot freeze one
variable of a trainable layer, so there the adapted object's class also says which of its weights train
(``_Keras2Weights``) and an RNN layer's weights keep its cell's order.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from graft.plugins.layers import ADAPTABLE, Adapter, LayerDecision, LayerInfo

if TYPE_CHECKING:
    import numpy as np

RECURRENT = ("GRU", "LSTM")  # kinds whose kernels live on their cell


def kernels_of(class_name: str) -> tuple[str, ...]:
    """The kernels an adapter of a ``class_name`` layer adapts (``kernel``, and ``recurrent_kernel`` for RNNs)."""
    return ADAPTABLE[class_name]


def kernel_dims(info: LayerInfo, kernel: str) -> tuple[int, int]:
    """The kernel as a matrix: (rows, columns), rows being every axis but the last."""
    shape = [int(size) for size in _base_variable(owner_of(info.layer), kernel).shape]
    return math.prod(shape[:-1]), shape[-1]


def rank_problem(info: LayerInfo, adapter: Adapter) -> str | None:
    """Why ``adapter`` cannot adapt the built layer ``info``, or None."""
    if info.class_name not in ADAPTABLE:
        return f"layer '{info.name}' ({info.class_name}) cannot be adapted; adaptable kinds: {', '.join(ADAPTABLE)}"
    for kernel in kernels_of(info.class_name):
        rows, columns = kernel_dims(info, kernel)
        if adapter.rank >= min(rows, columns):
            return (f"layer '{info.name}': rank {adapter.rank} is not below the dimensions of its {kernel} "
                    f"({rows} x {columns}); a low-rank adapter needs a rank of at most {min(rows, columns) - 1}, "
                    "or train the layer instead")
    return None


def adapter_params(info: LayerInfo, adapter: Adapter) -> int:
    """How many parameters the adapter of ``info`` trains: ``rank · (rows + columns)`` per kernel."""
    return sum(adapter.rank * sum(kernel_dims(info, kernel)) for kernel in kernels_of(info.class_name))


@attrs.frozen(eq=False)
class AdapterWeights:
    """One layer's trained adapter: by kernel, its ``A`` and ``B`` arrays, and the kernel's position in the
    layer's ``get_weights()``."""

    layer: str
    rank: int
    alpha: float
    kernels: dict[str, tuple[np.ndarray, np.ndarray]]
    positions: dict[str, int] = attrs.field(factory=dict)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self, kernel: str) -> np.ndarray:
        """``(alpha / rank)·A·B`` of ``kernel`` in the kernel's shape."""
        import numpy as np

        a, b = self.kernels[kernel]
        return (self.scale * np.matmul(a, b)).astype(a.dtype)


@attrs.define(eq=False)
class _State:
    """What an attached adapter keeps on the object that owns the kernels (set past Keras's tracking)."""

    scale: float
    pairs: dict[str, tuple[Any, Any]]  # kernel name -> (A, B) variables
    original: type
    base: tuple[Any, ...]  # the owner's own variables, frozen while adapted
    keras_2: bool = False
    layer_class: type | None = None  # an RNN layer's own class (swapped too: kernels once per call)
    trainable_list: list[Any] = attrs.field(factory=list)  # Keras 2: the owner's _trainable_weights before
    during_call: dict[str, Any] | None = None  # an RNN layer's kernels, computed once per call of the layer

    def adapter_variables(self) -> list[Any]:
        return [variable for pair in self.pairs.values() for variable in pair]


class _Kernels:
    """Mixed in before an adapted object's class: its kernels read as ``W + scale·A·B``."""

    def _graft_kernel(self, name: str) -> Any:
        state: _State = self.__dict__["_graft_adapter"]
        if state.during_call is not None:  # inside an RNN layer's call: not again at every time step
            return state.during_call[name]
        base = _base_variable(self, name)
        a, b = state.pairs[name]
        try:
            from keras import ops  # Keras 3: exactly enable_lora's update
        except ImportError:  # Keras 2
            import tensorflow as tf

            return tf.cast(base + state.scale * tf.matmul(a, b), self.compute_dtype)  # type: ignore[attr-defined]
        return ops.cast(ops.add(base, state.scale * ops.matmul(a, b)), dtype=self.compute_dtype)  # type: ignore[attr-defined]


class _Keras2Weights:
    """Keras 2 cannot freeze one variable of a trainable layer: the adapted object says itself which of its
    weights train (the adapter's) and keeps its own weights first, in their order."""

    @property
    def trainable_weights(self) -> list[Any]:
        state: _State = self.__dict__["_graft_adapter"]
        return state.adapter_variables() if self.trainable else []  # type: ignore[attr-defined]

    @property
    def non_trainable_weights(self) -> list[Any]:
        state: _State = self.__dict__["_graft_adapter"]
        return [*state.base, *([] if self.trainable else state.adapter_variables())]  # type: ignore[attr-defined]

    @property
    def weights(self) -> list[Any]:
        state: _State = self.__dict__["_graft_adapter"]
        return [*state.base, *state.adapter_variables()]


class _Keras2CellWeights:
    """Keras 2: an adapted RNN layer's weights in its cell's order (the cell's own, then the adapter's)."""

    @property
    def weights(self) -> list[Any]:
        return self.cell.weights  # type: ignore[attr-defined]


_RECURRENT_CLASSES: dict[type, type] = {}


def _recurrent_class(cls: type, keras_2: bool) -> type:
    """``cls`` (GRU, LSTM) computing its cell's adapted kernels once per call, not once per time step (the
    step function reads them in a loop); same name, same ``call`` signature."""
    if cls not in _RECURRENT_CLASSES:
        _RECURRENT_CLASSES[cls] = _make_recurrent_class(cls, keras_2)
    return _RECURRENT_CLASSES[cls]


def _make_recurrent_class(cls: type, keras_2: bool) -> type:
    original = cls.call  # type: ignore[attr-defined]

    @functools.wraps(original)
    def call(self, *args: Any, **kwargs: Any) -> Any:
        cell = self.cell
        state: _State = cell.__dict__["_graft_adapter"]
        state.during_call = None
        state.during_call = {name: cell._graft_kernel(name) for name in state.pairs}
        try:
            return original(self, *args, **kwargs)
        finally:
            state.during_call = None

    bases = (_Keras2CellWeights, cls) if keras_2 else (cls,)
    return type(cls.__name__, bases, {"call": call})


def _property(name: str) -> property:
    return property(lambda self: self._graft_kernel(name), doc=f"the {name}, with the adapter's update added")


_CLASSES: dict[tuple[type, tuple[str, ...]], type] = {}


def _adapted_class(cls: type, kernels: tuple[str, ...], keras_2: bool) -> type:
    """``cls`` with its kernels read through the adapter; one subclass per class, same name."""
    key = (cls, kernels)
    if key not in _CLASSES:
        bases = (_Kernels, _Keras2Weights, cls) if keras_2 else (_Kernels, cls)
        _CLASSES[key] = type(cls.__name__, bases, {name: _property(name) for name in kernels})
    return _CLASSES[key]


def _keras_2(keras) -> bool:
    return int(keras.__version__.split(".")[0]) < 3


def _base_variable(owner: Any, name: str) -> Any:
    """The owner's own variable ``name``: an attribute (a cell's kernel) or behind Keras's property (Dense)."""
    if name in owner.__dict__:
        return owner.__dict__[name]
    state = owner.__dict__.get("_graft_adapter")
    cls = state.original if state is not None else type(owner)
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name].__get__(owner, cls)
    raise AttributeError(f"{cls.__name__} has no {name}")


def is_adapted(layer: Any) -> bool:
    """True while ``layer`` has an adapter attached."""
    return "_graft_adapter" in owner_of(layer).__dict__


def owner_of(layer: Any) -> Any:
    """The object that holds the layer's kernels: the layer, or its cell for GRU and LSTM."""
    return layer.cell if type(layer).__name__ in RECURRENT else layer


def _state(layer: Any) -> _State:
    return owner_of(layer).__dict__["_graft_adapter"]


def attach(keras, info: LayerInfo, adapter: Adapter, seed: int) -> None:
    """Give the built layer ``info`` an adapter: ``A`` He-uniform (seeded), ``B`` zero; the layer's own
    variables become frozen (``set_trainable`` keeps them so) and its output is unchanged."""
    owner = owner_of(info.layer)
    if "_graft_adapter" in owner.__dict__:
        raise ValueError(f"layer '{info.name}' already has an adapter")
    kernels = kernels_of(info.class_name)
    base = tuple(owner.weights)
    pairs = {}
    tracker = getattr(owner, "_tracker", None)
    if tracker is not None:
        tracker.unlock()
    try:
        for number, kernel in enumerate(kernels):
            rows_shape = tuple(int(size) for size in _base_variable(owner, kernel).shape)
            a = owner.add_weight(
                name=f"lora_{kernel}_a", shape=(*rows_shape[:-1], adapter.rank),
                initializer=keras.initializers.HeUniform(seed=seed + number), trainable=True,
            )
            b = owner.add_weight(
                name=f"lora_{kernel}_b", shape=(adapter.rank, rows_shape[-1]), initializer="zeros", trainable=True,
            )
            pairs[kernel] = (a, b)
    finally:
        if tracker is not None:
            tracker.lock()
    keras_2 = _keras_2(keras)
    state = _State(adapter.scale, pairs, type(owner), base, keras_2)
    if keras_2:
        state.trainable_list = [variable for variable in owner._trainable_weights if not _among(variable, pairs)]
    if owner is not info.layer:
        state.layer_class = type(info.layer)
        info.layer.__class__ = _recurrent_class(state.layer_class, keras_2)
    object.__setattr__(owner, "_graft_adapter", state)
    owner.__class__ = _adapted_class(type(owner), kernels, keras_2)
    set_trainable(info, True)


def _among(variable: Any, pairs: Mapping[str, tuple[Any, Any]]) -> bool:
    return any(variable is one for pair in pairs.values() for one in pair)


def set_trainable(info: LayerInfo, trains: bool) -> None:
    """Set ``trainable`` on the layer; on an adapted one only its adapter trains, its own variables stay frozen."""
    info.layer.trainable = trains
    owner = owner_of(info.layer)
    state = owner.__dict__.get("_graft_adapter")
    if state is not None and not state.keras_2:  # Keras 3 freezes variables by their flag
        for variable in state.base:
            variable.trainable = False


def apply_decisions(layers: Iterable[LayerInfo], decisions: Mapping[str, LayerDecision]) -> None:
    """Set ``trainable`` on every layer as decided: trained layers train, adapted layers train their adapter
    only (a layer to be adapted whose adapter is not attached yet, as while planning, stays frozen)."""
    for info in layers:
        decision = decisions[info.name]
        set_trainable(info, decision.learns if is_adapted(info.layer) else decision.trainable)


def base_count(layer: Any) -> int:
    """How many of the layer's ``get_weights()`` are its own (the adapter's follow)."""
    state = owner_of(layer).__dict__.get("_graft_adapter")
    return len(layer.weights) if state is None else len(state.base)


def adapter_weights(info: LayerInfo) -> AdapterWeights:
    """The adapter's arrays as they are now."""
    state = _state(info.layer)
    rank = int(next(iter(state.pairs.values()))[1].shape[0])
    owner = owner_of(info.layer)
    ids = [id(variable) for variable in info.layer.weights]
    return AdapterWeights(
        info.name, rank, state.scale * rank,
        {kernel: (a.numpy(), b.numpy()) for kernel, (a, b) in state.pairs.items()},
        {kernel: ids.index(id(_base_variable(owner, kernel))) for kernel in state.pairs},
    )


def merge(info: LayerInfo) -> AdapterWeights:
    """Write ``W + (alpha / rank)·A·B`` into the layer's kernels and remove the adapter; the layer is left
    frozen (its trained part was the adapter).  Returns the adapter's arrays."""
    owner = owner_of(info.layer)
    state: _State = owner.__dict__["_graft_adapter"]
    trained = adapter_weights(info)
    merged = {kernel: getattr(owner, kernel).numpy() for kernel in state.pairs}
    owner.__class__ = state.original
    if state.layer_class is not None:
        info.layer.__class__ = state.layer_class
    del owner.__dict__["_graft_adapter"]
    for kernel, value in merged.items():
        _base_variable(owner, kernel).assign(value)
    if hasattr(owner, "_untrack_variable"):  # Keras 3
        for variable in state.adapter_variables():
            owner._untrack_variable(variable)
    else:  # Keras 2: the layer's own list of trainable weights as it was
        owner._trainable_weights[:] = state.trainable_list
    info.layer.trainable = False
    return trained


def attach_all(keras, built_layers: Iterable[LayerInfo], wanted: Mapping[str, Adapter], seed: int) -> None:
    """Attach ``wanted[name]`` to each named layer, each seeded by the stage's seed and the layer's position."""
    for position, info in enumerate(built_layers):
        if info.name in wanted:
            attach(keras, info, wanted[info.name], seed + 2 * position)


def merge_all(model: Any, built_layers: Iterable[LayerInfo]) -> dict[str, AdapterWeights]:
    """Merge every attached adapter into its layer (``merge``); ``model``'s traced functions are dropped, since
    they still read the adapters.  Returns the adapters' arrays by layer name."""
    trained = {info.name: merge(info) for info in built_layers if is_adapted(info.layer)}
    if trained:
        for attribute in ("train_function", "test_function", "predict_function"):
            if hasattr(model, attribute):
                setattr(model, attribute, None)
    return trained


def base_counts(built_layers: Iterable[LayerInfo]) -> dict[str, int]:
    """For every adapted layer, how many of its weights are its own."""
    return {info.name: base_count(info.layer) for info in built_layers if is_adapted(info.layer)}


def base_digest(weights: Mapping[str, list[np.ndarray]], names: Iterable[str]) -> str:
    """``sha256:<hex>`` of the named layers' weights (name, dtype, shape and bytes of each array, by name)."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0")
        for value in weights[name]:
            digest.update(f"{value.dtype.str}{tuple(value.shape)}".encode())
            digest.update(value.tobytes())
    return f"sha256:{digest.hexdigest()}"
