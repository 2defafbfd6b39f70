"""A finished base stage with a stage's adapters applied: ``graft.load_stage(out, base, adapter=...)``.

``adapters.graft.npz`` (``graft.model.adapterfile``) holds a stage's low-rank adapters and the
weights of the layers it trained outright; with the base stage the adapters were trained on, it
rebuilds that stage's model.  It applies only to the base whose adapted layers' weights have the
digest the file recorded.
"""

from __future__ import annotations

from typing import Any

from graft.base.problems import GraftError
from graft.finished.stage import SavedStage
from graft.model.adapterfile import AdapterFile, read_adapters
from graft.model.adapters import base_digest
from graft.model.weights import bitwise_equal


class AdapterMismatch(GraftError):
    """An adapters file given a base it was not trained on."""


def with_adapters(saved: SavedStage, path: str) -> SavedStage:
    """``saved`` with the adapters file at ``path`` applied to its model (in place): each adapted kernel
    plus ``(alpha / rank)·A·B``, each trained layer's weights from the file; ``AdapterMismatch`` if the
    base is not the one the adapters were trained on, or a layer is missing or differs in shape."""
    adapters = read_adapters(path)
    layers = {name: _layer(saved, name, path) for name in (*adapters.adapters, *adapters.trained)}
    base = {name: layers[name].get_weights() for name in adapters.adapters}
    found = base_digest(base, adapters.adapters)
    if found != adapters.base_digest:
        raise AdapterMismatch(
            f"{path} was trained on another base: its adapted layers ({', '.join(adapters.adapters)}) had the "
            f"digest {adapters.base_digest}, stage '{saved.name}' has {found}; load the stage the adapters "
            "were trained from"
        )
    _apply(saved, adapters, layers, base, path)
    return saved


def _layer(saved: SavedStage, name: str, path: str) -> Any:
    try:
        return saved.layer(name)
    except LookupError as exc:
        raise AdapterMismatch(f"{path} adapts or trains layer '{name}', which stage '{saved.name}' lacks: {exc}") \
            from None


def _apply(saved: SavedStage, adapters: AdapterFile, layers: dict[str, Any], base, path: str) -> None:
    for name, adapter in adapters.adapters.items():
        weights = list(base[name])
        for kernel, position in adapter.positions.items():
            if not 0 <= position < len(weights) or adapter.delta(kernel).shape != weights[position].shape:
                raise AdapterMismatch(f"{path}: the {kernel} of layer '{name}' does not fit stage '{saved.name}'")
            weights[position] = weights[position] + adapter.delta(kernel)
        layers[name].set_weights(weights)
    for name, values in adapters.trained.items():
        shapes = [tuple(weight.shape) for weight in layers[name].get_weights()]
        if shapes != [tuple(value.shape) for value in values]:
            raise AdapterMismatch(
                f"{path}: layer '{name}' has the shapes {shapes} in stage '{saved.name}', the file "
                f"{[list(value.shape) for value in values]}: its heads differ from the base's; load the adapted "
                "stage's own model.keras instead"
            )
        layers[name].set_weights(values)
        if not bitwise_equal(layers[name].get_weights(), list(values)):
            raise AdapterMismatch(f"{path}: layer '{name}' differs from the file after loading")
