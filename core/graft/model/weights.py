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
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from graft.base.files import not_a_file
from graft.base.problems import GraftError, kind_of, printable
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
    write_npz(path, arrays)


def write_npz(path: str, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` as an npz at ``path`` whole or not at all: into ``<path>.partial.npz``, flushed to disk,
    then renamed over ``path``."""
    import numpy as np

    temporary = f"{path}.partial.npz"
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
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
    return {name: [tuple(shape) for shape in entry.shapes] for name, entry in index.items()}


def read_weights(path: str) -> Weights:
    """Layer name -> weight arrays in ``get_weights()`` order."""
    with _open(path) as data:
        index = _index(data, path)
        missing = [
            key
            for name, entry in index.items()
            for key in (f"{name}:{position}" for position in range(len(entry.shapes)))
            if key not in data.files
        ]
        if missing:
            raise WeightsFileError(f"{path} is damaged: its index lists arrays it lacks: {', '.join(missing)}")
        weights = {
            name: [data[f"{name}:{position}"] for position in range(len(entry.shapes))]
            for name, entry in index.items()
        }
    for name, entry in index.items():
        for position, (value, shape) in enumerate(zip(weights[name], entry.shapes, strict=True)):
            if tuple(value.shape) != shape:
                raise WeightsFileError(
                    f"{path} is damaged: array {name}:{position} has the shape {list(value.shape)}, its index says "
                    f"{list(shape)}; save it again with graft run"
                )
    return weights


def _open(path: str):
    return open_npz(path, WeightsFileError, "weights", "a .graft.npz file")


def open_npz(path: str, error: type[Exception], what: str, expected: str):
    """The npz archive at ``path`` (``numpy.load``, no pickles), or ``error`` saying what it is instead: a FIFO or a
    folder, missing, not an npz, a bare array. ``what`` names the file (``weights``), ``expected`` what to give."""
    import numpy as np

    kind = not_a_file(path)
    if kind is not None:
        raise error(f"the {what} file {path} is {kind}, not a file; give the path of {expected}")
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise error(f"{path} is not a keras-graft {what} file: {exc}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array
        raise error(f"{path} is not a keras-graft {what} file: it holds one array, not an .npz archive")
    return data


@attrs.frozen
class IndexEntry:
    """One layer in a weights file's index: its class, its variables' short names, its weights' shapes."""

    class_name: str
    variables: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]


def _index(data, path: str) -> dict[str, IndexEntry]:
    """The index of an open weights file, every field checked: layer name -> ``IndexEntry``."""
    if INDEX_KEY not in data.files:
        raise WeightsFileError(f"{path} is not a keras-graft weights file (no index); save it with graft run")
    try:
        index = json.loads(str(data[INDEX_KEY]))
    except (ValueError, RecursionError) as exc:
        raise WeightsFileError(f"{path} has a damaged index: {type(exc).__name__}: {exc}") from None
    found = index.get("format") if isinstance(index, dict) else None
    if found != FORMAT:
        raise WeightsFileError(f"{path} has format {printable(repr(found)[:80])}; this keras-graft reads {FORMAT!r}")
    layers = index.get("layers")
    if not isinstance(layers, dict):
        _damaged(path, "layers", "a mapping of layer names", layers)
    return {name: _entry(path, name, entry) for name, entry in layers.items()}


def _entry(path: str, name: str, entry: object) -> IndexEntry:
    at = f"layers[{name!r}]"
    if not isinstance(entry, dict):
        _damaged(path, at, "a mapping with class, variables and shapes", entry)
    for key in entry:
        if key not in ("class", "variables", "shapes"):
            _damaged(path, f"{at}.{key}", "no such field (class, variables, shapes)", entry[key])
    class_name, variables, shapes = entry.get("class"), entry.get("variables"), entry.get("shapes")
    if not isinstance(class_name, str):
        _damaged(path, f"{at}.class", "a layer class name", class_name)
    if not isinstance(variables, list) or not all(isinstance(item, str) for item in variables):
        _damaged(path, f"{at}.variables", "a list of variable names", variables)
    if not isinstance(shapes, list) or not all(
        isinstance(shape, list) and all(type(size) is int and size >= 0 for size in shape) for shape in shapes
    ):
        _damaged(path, f"{at}.shapes", "a list of shapes (lists of sizes, 0 or more)", shapes)
    if len(variables) != len(shapes):
        _damaged(path, f"{at}.variables", f"one name per shape ({len(shapes)})", variables)
    return IndexEntry(class_name, tuple(variables), tuple(tuple(shape) for shape in shapes))


def _damaged(path: str, field: str, expected: str, found: object) -> NoReturn:
    raise WeightsFileError(
        f"{path} has a damaged index: {printable(field)} should be {expected}, found {printable(kind_of(found))}; "
        "save the weights again with graft run"
    )


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
