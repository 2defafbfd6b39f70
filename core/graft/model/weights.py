"""Weights saved and loaded by layer name (Keras 3's .weights.h5 is keyed by position).

The file is a NumPy ``.npz``: one array per ``"{layer}:{index}"`` in the order of
``layer.get_weights()`` (the same under Keras 2 and 3), plus a JSON index of
layer classes, variable names and shapes.  It loads under either Keras.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from typing import TYPE_CHECKING

from graft.base.problems import GraftError
from graft.plugins.layers import LayerInfo

if TYPE_CHECKING:
    import numpy as np

FILENAME = "weights.graft.npz"
FORMAT = "keras-graft weights 1"
INDEX_KEY = "__graft_index__"

Shapes = list[tuple[int, ...]]
Weights = dict[str, list["np.ndarray"]]  # layer name -> its arrays in get_weights() order


class WeightsFileError(GraftError):
    """A weights file that is missing or not a keras-graft weights file."""


def save_weights(layers: Iterable[LayerInfo], path: str) -> None:
    """Write every layer's weights to ``path`` atomically (temporary file, then rename)."""
    import numpy as np

    arrays: dict[str, np.ndarray] = {}
    index = {}
    for info in layers:
        values = info.layer.get_weights()
        index[info.name] = {
            "class": info.class_name,
            "variables": [_short_name(variable) for variable in info.layer.weights],
            "shapes": [list(value.shape) for value in values],
        }
        for position, value in enumerate(values):
            arrays[f"{info.name}:{position}"] = value
    arrays[INDEX_KEY] = np.array(json.dumps({"format": FORMAT, "layers": index}))
    temporary = f"{path}.partial.npz"
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # mypy fits **arrays to allow_pickle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _short_name(variable) -> str:
    name = getattr(variable, "path", None) or variable.name
    return name.split("/")[-1].split(":")[0]


def read_index(path: str) -> dict[str, Shapes]:
    """Layer name -> weight shapes, without reading the weights."""
    with _open(path) as data:
        index = _index(data, path)
    return {name: [tuple(shape) for shape in entry["shapes"]] for name, entry in index["layers"].items()}


def read_weights(path: str) -> Weights:
    """Layer name -> weight arrays in ``get_weights()`` order."""
    with _open(path) as data:
        index = _index(data, path)
        missing = [
            key
            for name, entry in index["layers"].items()
            for key in (f"{name}:{position}" for position in range(len(entry["shapes"])))
            if key not in data.files
        ]
        if missing:
            raise WeightsFileError(f"{path} is damaged: its index lists arrays it lacks: {', '.join(missing)}")
        return {
            name: [data[f"{name}:{position}"] for position in range(len(entry["shapes"]))]
            for name, entry in index["layers"].items()
        }


def _open(path: str):
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise WeightsFileError(f"weights file not found: {path}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise WeightsFileError(f"{path} is not a keras-graft weights file: {exc}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array
        raise WeightsFileError(f"{path} is not a keras-graft weights file: it holds one array, not an .npz archive")
    return data


def _index(data, path: str) -> dict:
    if INDEX_KEY not in data.files:
        raise WeightsFileError(f"{path} is not a keras-graft weights file (no index); save it with graft run")
    try:
        index = json.loads(str(data[INDEX_KEY]))
    except ValueError as exc:
        raise WeightsFileError(f"{path} has a damaged index: {exc}") from None
    found = index.get("format") if isinstance(index, dict) else None
    if found != FORMAT:
        raise WeightsFileError(f"{path} has format {found!r}; this keras-graft reads {FORMAT!r}")
    return index


def snapshot(layers: Iterable[LayerInfo]) -> Weights:
    """Copies of every layer's current weights, trainable and not (BN statistics included)."""
    import numpy as np

    return {info.name: [np.array(value, copy=True) for value in info.layer.get_weights()] for info in layers}


def bitwise_equal(left: list[np.ndarray], right: list[np.ndarray]) -> bool:
    """True if both weight lists have the same shapes and the same bytes."""
    return len(left) == len(right) and all(
        a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        for a, b in zip(left, right, strict=True)
    )
