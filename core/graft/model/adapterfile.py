"""``adapters.graft.npz``: a stage's low-rank adapters alone, beside its merged ``model.keras``.

One array per ``"{layer}:{kernel}:A"`` and ``"{layer}:{kernel}:B"``, one per ``"{layer}:{index}"`` for
every layer the stage trained outright (its heads, typically), and a JSON index: each adapted
layer's class, rank, alpha and kernels; each trained layer's shapes; and ``base_digest``, the
digest of the adapted layers' weights the adapters were trained on (``graft.model.adapters.base_digest``).
With the base those weights came from, the file rebuilds the stage's model: one base, many tasks.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from graft.base.problems import GraftError, kind_of, printable
from graft.model.adapters import AdapterWeights
from graft.model.weights import open_npz, write_npz

if TYPE_CHECKING:
    import numpy as np

FILENAME = "adapters.graft.npz"
FORMAT = "keras-graft adapters 1"
INDEX_KEY = "__graft_index__"


class AdapterFileError(GraftError):
    """An adapters file that is missing, damaged or not a keras-graft adapters file."""


@attrs.frozen(eq=False)
class AdapterFile:
    """What ``adapters.graft.npz`` holds: the adapters by layer name, the trained layers' weights by name,
    and the digest of the base weights the adapters apply to."""

    base_digest: str
    adapters: dict[str, AdapterWeights]
    classes: dict[str, str]  # adapted layer -> its Keras class
    trained: dict[str, list[np.ndarray]] = attrs.field(factory=dict)


def save_adapters(path: str, adapter_file: AdapterFile) -> None:
    """Write ``adapter_file`` to ``path`` atomically (temporary file, then rename)."""
    import numpy as np

    arrays: dict[str, np.ndarray] = {}
    index: dict[str, Any] = {"format": FORMAT, "base_digest": adapter_file.base_digest, "adapters": {}, "trained": {}}
    for name, adapter in adapter_file.adapters.items():
        index["adapters"][name] = {
            "class": adapter_file.classes[name], "rank": adapter.rank, "alpha": adapter.alpha,
            "kernels": {kernel: adapter.positions.get(kernel, -1) for kernel in adapter.kernels},
        }
        for kernel, (a, b) in adapter.kernels.items():
            arrays[f"{name}:{kernel}:A"], arrays[f"{name}:{kernel}:B"] = a, b
    for name, values in adapter_file.trained.items():
        index["trained"][name] = [list(value.shape) for value in values]
        for position, value in enumerate(values):
            arrays[f"{name}:{position}"] = value
    arrays[INDEX_KEY] = np.array(json.dumps(index))
    write_npz(path, arrays)


def read_adapters(path: str) -> AdapterFile:
    """The adapters file at ``path``, every field and array checked; ``AdapterFileError`` if it is not one."""
    data = open_npz(path, AdapterFileError, "adapters", f"an {FILENAME}")
    with data:
        if INDEX_KEY not in data.files:
            raise AdapterFileError(f"{path} is not a keras-graft adapters file (no index)")
        try:
            index = json.loads(str(data[INDEX_KEY]))
        except (ValueError, RecursionError) as exc:
            raise AdapterFileError(f"{path} has a damaged index: {type(exc).__name__}: {exc}") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            found = index.get("format") if isinstance(index, dict) else index
            raise AdapterFileError(
                f"{path} has format {printable(repr(found)[:80])}; this keras-graft reads {FORMAT!r}"
            )
        return _structured(path, index, data)


def _structured(path: str, index: dict, data) -> AdapterFile:
    digest, adapted, trained = index.get("base_digest"), index.get("adapters"), index.get("trained")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        _damaged(path, "base_digest", "a sha256:<hex> digest", digest)
    if not isinstance(adapted, dict):
        _damaged(path, "adapters", "a mapping of layer names", adapted)
    if not isinstance(trained, dict):
        _damaged(path, "trained", "a mapping of layer names", trained)
    adapters, classes = {}, {}
    for name, entry in adapted.items():
        if not isinstance(entry, dict):
            _damaged(path, f"adapters[{name!r}]", "a mapping with class, rank, alpha and kernels", entry)
        rank, alpha, kernels = entry.get("rank"), entry.get("alpha"), entry.get("kernels")
        class_name = entry.get("class")
        if type(rank) is not int or rank < 1:
            _damaged(path, f"adapters[{name!r}].rank", "a whole number >= 1", rank)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            _damaged(path, f"adapters[{name!r}].alpha", "a number > 0", alpha)
        if not isinstance(class_name, str):
            _damaged(path, f"adapters[{name!r}].class", "a layer class name", class_name)
        if not isinstance(kernels, dict) or not kernels or not all(type(v) is int for v in kernels.values()):
            _damaged(path, f"adapters[{name!r}].kernels", "a mapping of kernel names to positions", kernels)
        pairs = {kernel: (_array(path, data, f"{name}:{kernel}:A"), _array(path, data, f"{name}:{kernel}:B"))
                 for kernel in kernels}
        for kernel, (a, b) in pairs.items():
            if a.shape[-1] != rank or b.ndim != 2 or b.shape[0] != rank:
                _damaged(path, f"{name}:{kernel}", f"A (..., {rank}) and B ({rank}, columns)",
                         f"{list(a.shape)} and {list(b.shape)}")
        adapters[name] = AdapterWeights(name, rank, float(alpha), pairs, dict(kernels))
        classes[name] = class_name
    layers = {}
    for name, shapes in trained.items():
        if not isinstance(shapes, list):
            _damaged(path, f"trained[{name!r}]", "a list of shapes", shapes)
        layers[name] = [_array(path, data, f"{name}:{position}") for position in range(len(shapes))]
        if [list(value.shape) for value in layers[name]] != shapes:
            _damaged(path, f"trained[{name!r}]", "the shapes of its arrays", shapes)
    return AdapterFile(digest, adapters, classes, layers)


def _array(path: str, data, key: str) -> np.ndarray:
    if key not in data.files:
        raise AdapterFileError(f"{path} is damaged: its index lists the array {printable(key)} it lacks")
    return data[key]


def _damaged(path: str, field: str, expected: str, found: object) -> NoReturn:
    shown = found if isinstance(found, str) and field.count(":") else kind_of(found)
    raise AdapterFileError(
        f"{path} has a damaged index: {printable(field)} should be {expected}, found {printable(str(shown))}"
    )
