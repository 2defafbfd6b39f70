"""The layers and weights of a plain Keras file, for ``init: {model: PATH}``.

``.keras`` and full-model ``.h5`` files are loaded with ``keras.saving.load_model(compile=False,
safe_mode=True)``; a Lambda layer is refused before loading, from the file's own config (Keras 2.15
ignores ``safe_mode`` for ``.h5`` and would run its code).  Nested models are walked to their leaf
layers, as ``graft.model.builder`` lists a model's layers.  A weights-only ``.h5`` written by Keras 2's
``save_weights`` keys weights by layer name and is read with h5py; a ``.weights.h5`` (Keras 3, or
Keras 2 given that name) keys them by position, so its layers cannot be named.

What is read before Keras is trusted with the file is bounded: only a regular file is opened (a
FIFO would block), and the members read from a ``.keras`` archive (``config.json``,
``metadata.json``) by their declared size (``MAX_MEMBER_BYTES``) before they are read, and again
as they are; a config nested too deep for Python's parser is a damaged file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

from graft.base.files import file_kind
from graft.base.memory import human_bytes
from graft.base.problems import GraftError, listing

if TYPE_CHECKING:
    from zipfile import ZipFile

    import numpy as np

_CACHE: dict[tuple[str, int, int], tuple[FileLayer, ...]] = {}
_CACHE_SIZE = 2  # files read once for the plan and again for the run; a few stages' files at most
MAX_MEMBER_BYTES = 64 * 2**20  # config.json or metadata.json of a .keras archive; the largest Keras application's
# config.json is a few MB


class ModelFileError(GraftError):
    """A Keras file that cannot be read, or whose layers cannot be named."""


@attrs.frozen
class FileLayer:
    """One leaf layer of a Keras file: its name, where it sits (``encoder/gru_1`` in a nested model),
    its weights in ``get_weights()`` order and its class (``""`` where the file does not say: Keras 2
    weights ``.h5``)."""

    name: str
    where: str
    weights: tuple[np.ndarray, ...] = attrs.field(eq=False, repr=False)
    class_name: str = ""

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in value.shape) for value in self.weights]


def read_model_file(path: str) -> tuple[FileLayer, ...]:
    """The leaf layers of the Keras file at ``path``, in model order; ``ModelFileError`` saying what to do
    if it cannot be read.  The last few files read are kept, keyed by their size and modification time."""
    try:
        status = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ModelFileError(f"cannot read the model file {path!r}: {getattr(exc, 'strerror', None) or exc}") from None
    kind = file_kind(status.st_mode)
    if kind is not None:
        raise ModelFileError(f"the model file {path} is {kind}, not a file; give the path of a .keras or .h5 file")
    key = (os.path.realpath(path), status.st_size, status.st_mtime_ns)
    if key not in _CACHE:
        layers = _read(path)
        while len(_CACHE) >= _CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
        _CACHE[key] = layers
    return _CACHE[key]


def _read(path: str) -> tuple[FileLayer, ...]:
    if path.lower().endswith(".keras"):
        _refuse_lambda(_keras_config(path), path)
        return _load(path)
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
            if config is None:
                return _by_name_weights(handle, path)
    except OSError as exc:
        raise ModelFileError(f"{path} is not an HDF5 file Keras wrote ({exc}); give a .keras or .h5 file "
                             "saved by Keras") from None
    _refuse_lambda(_json(config, path), path)
    return _load(path)


def _keras_config(path: str) -> dict:
    import zipfile  # here: re-running a finished run imports this module and reads no model file
    import zlib

    try:
        with zipfile.ZipFile(path) as archive:
            return _json(read_member(archive, "config.json", path), path)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise ModelFileError(f"{path} is not a .keras model file (a zip archive holding config.json): {exc}; "
                             "save the model again with model.save('model.keras')") from None


def read_member(archive: ZipFile, name: str, path: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """The member ``name`` of a ``.keras`` archive, refused before it is read if its declared size is over
    ``limit``, and while it is read if it turns out larger than declared."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise ModelFileError(
            f"{path} is damaged or not a Keras model: its {name} says it holds {info.file_size:,} bytes, more than "
            f"the {limit:,} ({human_bytes(limit)}) a model's {name} can need; save the model again"
        )
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelFileError(f"{path} is damaged: its {name} holds {'more' if len(data) > info.file_size else 'less'} "
                             f"than the {info.file_size:,} bytes it declares; save the model again")
    return data


def _json(text: str | bytes, path: str) -> dict:
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ModelFileError(f"{path} has a damaged model config: {exc}") from None
    except RecursionError:
        raise ModelFileError(f"{path} has a damaged model config: it is nested deeper than Python's JSON parser "
                             "goes, which no Keras model needs; save the model again") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path} has a damaged model config: not a mapping")
    return config


def _refuse_lambda(config: dict, path: str) -> None:
    """A Lambda layer anywhere in the model's config is refused: loading it would run its code."""
    for item in _mappings(config):
        if item.get("class_name") == "Lambda":
            name = (item.get("config") or {}).get("name", "?") if isinstance(item.get("config"), dict) else "?"
            raise ModelFileError(
                f"{path} holds a Lambda layer ('{name}'), whose Python code would run when the file is loaded; "
                "keras-graft loads Keras files in safe mode and runs no such code: replace the Lambda with a "
                "built-in or registered layer and save the model again"
            )


def _mappings(value) -> Iterator[dict]:
    """Every mapping in a JSON value, depth first, without recursion (a config may nest deep)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            yield item
            pending.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            pending.extend(reversed(item))


def _load(path: str) -> tuple[FileLayer, ...]:
    from graft.base.backend import import_keras

    keras = import_keras()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; what it says is the point
        text = " ".join(str(exc).split())
        text = text if len(text) <= 400 else text[:397] + "..."
        raise ModelFileError(
            f"keras.saving.load_model cannot load {path}: {type(exc).__name__}: {text}; {load_hint(keras, path)}"
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{path} holds a {type(model).__name__}, not a Keras model")
    return tuple(_leaves(keras, model, ""))


def load_hint(keras, path: str) -> str:
    """What to do about a file Keras cannot load: another major version wrote it, or it needs custom code."""
    written = _writer_version(path)
    if written and written.split(".")[0] != keras.__version__.split(".")[0]:
        return (f"Keras {written} wrote it and this is Keras {keras.__version__}: a whole model seldom loads across "
                "major versions; save its weights by name where it loads (Keras 2: model.save_weights('weights.h5')) "
                "and give that file, or run under the Keras that wrote it")
    custom = custom_classes(path)
    return ((f"it holds classes from outside Keras ({listing(custom)}): " if custom else "")
            + "a model with custom layers loads only where their classes are registered "
            "(@keras.saving.register_keras_serializable, imported by an installed plugin)")


def custom_classes(path: str) -> list[str]:
    """``Double (module graft_x)`` for every class from outside Keras a ``.keras`` file's config names; empty
    for another file, or one that cannot be read."""
    if not path.lower().endswith(".keras"):
        return []
    try:
        config = _keras_config(path)
    except ModelFileError:
        return []
    found = {
        f"{item['class_name']} (module {item['module']})"
        for item in _mappings(config)
        if isinstance(item.get("class_name"), str) and isinstance(item.get("module"), str)
        and item["module"].split(".")[0] not in ("keras", "tf_keras", "tensorflow", "builtins")
    }
    return sorted(found)


def _writer_version(path: str) -> str | None:
    """The Keras version recorded in the file, if it says."""
    import zipfile

    try:
        if path.lower().endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                version = json.loads(read_member(archive, "metadata.json", path)).get("keras_version")
        else:
            import h5py

            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("keras_version")
    except (OSError, KeyError, ValueError, AttributeError, RecursionError, zipfile.BadZipFile, ModelFileError):
        return None
    return _text(version) if version is not None else None


def _leaves(keras, model, prefix: str) -> Iterator[FileLayer]:
    """Leaf layers, nested models walked (as ``graft.model.builder.leaf_layers``), input layers left out."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaves(keras, layer, f"{prefix}{layer.name}/")
        elif not isinstance(layer, keras.layers.InputLayer):
            yield FileLayer(layer.name, prefix + layer.name, tuple(_frozen(value) for value in layer.get_weights()),
                            type(layer).__name__)


def _frozen(value) -> np.ndarray:
    import numpy as np

    array = np.array(value, copy=True)
    array.setflags(write=False)
    return array


def _by_name_weights(handle, path: str) -> tuple[FileLayer, ...]:
    """A Keras 2 ``save_weights`` ``.h5``: a group per top-level layer, its ``weight_names`` in order."""
    names = handle.attrs.get("layer_names")
    if names is None:
        raise ModelFileError(
            f"{path} keys weights by the position of each layer in the model that saved it (a .weights.h5 file, "
            "as Keras 3 writes, and Keras 2 for that name), not by layer name, so its layers cannot be matched "
            "to this model's; give the whole model file instead (model.save('model.keras')), or weights that "
            "Keras 2 saved to an .h5 name (model.save_weights('weights.h5'))"
        )
    layers: list[FileLayer] = []
    for name in (_text(raw) for raw in names):
        group = handle[name]
        weight_names = [_text(raw) for raw in group.attrs.get("weight_names", [])]
        layers += _split_group(name, group, weight_names, path)
    return tuple(layers)


def _split_group(name: str, group, weight_names: list[str], path: str) -> list[FileLayer]:
    """A top-level layer's weights; a nested model's group holds its leaves' weights, named ``leaf/...``."""

    if all(weight.startswith(f"{name}/") for weight in weight_names):
        return [FileLayer(name, name, tuple(_frozen(group[weight]) for weight in weight_names))]
    unnamed = [weight for weight in weight_names if "/" not in weight]
    if unnamed:
        raise ModelFileError(f"{path}: layer '{name}' holds weights without a layer name ({listing(unnamed)}), so "
                             "they cannot be matched by name; give the whole model file (model.save('model.keras'))")
    leaves: dict[str, list[np.ndarray]] = {}
    for weight in weight_names:
        leaves.setdefault(weight.split("/")[0], []).append(_frozen(group[weight]))
    return [FileLayer(leaf, f"{name}/{leaf}", tuple(values)) for leaf, values in leaves.items()]


def _text(raw) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
