"""The layers of the ``keras.applications`` backbones, per Keras major version, shipped as package data.

A backbone's layer names are fixed by Keras, so ``graft validate`` can check a spec's
layer names (``freeze: [block5_conv3]``) without building it, from a list written
once per Keras major version by building every model::

    python -m graft_applications.layerlists           # writes the lists of this Keras

Each list is ``<package>/layers/keras<major>.json``: for each key (``ResNet50/avg``,
``v2/max``) the extractor's leaf layers as keras-graft's builder sees them,
``[name, class, has_weights, is_batch_norm, can_train]``.  A test builds the models
and compares (``plugins/applications/tests/test_layer_lists.py``).  Under a Keras with
no list, the plugins declare nothing and ``graft plan`` checks the names, as before.
No TensorFlow here: the Keras version comes from the installed distribution's metadata.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable
from functools import cache, partial
from importlib import resources
from typing import Any

import graft

FOLDER = "layers"
# backbones whose layers depend on more than the params: no list, graft plan checks their names
SHAPE_DEPENDENT = {"NASNetMobile": "its reduction cells add layers that depend on the input size"}


def keras_major() -> int | None:
    """The major version of the installed Keras, from its metadata (None without Keras)."""
    import importlib.metadata  # here: importing the plugin (graft plugins) does not pay for it

    try:
        return int(importlib.metadata.version("keras").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def list_name(major: int) -> str:
    return f"keras{major}.json"


@cache
def _read(package: str, major: int) -> dict[str, list[list[Any]]] | None:
    path = resources.files(package).joinpath(FOLDER).joinpath(list_name(major))
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return data["models"]


def declared(package: str, key: str) -> list[graft.DeclaredLayer] | None:
    """The layers of model ``key`` under the installed Keras, from ``package``'s list; None if it has none."""
    major = keras_major()
    models = _read(package, major) if major is not None else None
    rows = models.get(key) if models is not None else None
    if rows is None:
        return None
    return [graft.DeclaredLayer(name, cls, bool(weights), bool(norm), bool(train))
            for name, cls, weights, norm, train in rows]


def build_rows(plugin: str, params: dict[str, Any], input_shape: tuple[int, ...]) -> list[list[Any]]:
    """Build ``plugin``'s extractor with raw ``params`` through keras-graft's builder; its layers as list rows."""
    from graft.testing import built_extractor_layers

    return [[layer.name, layer.class_name, layer.has_weights, layer.is_batch_norm, layer.can_train]
            for layer in built_extractor_layers(plugin, params, input_shape)]


def write(package: str, models: dict[str, list[list[Any]]], folder: str | None = None) -> str:
    """Write ``models`` as ``package``'s list for the installed Keras; the path."""
    major = keras_major()
    if major is None:
        raise SystemExit("no Keras installed: install TensorFlow to write the layer lists")
    folder = folder or os.path.join(os.path.dirname(str(resources.files(package).joinpath("__init__.py"))), FOLDER)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, list_name(major))
    import importlib.metadata

    header = {"keras": importlib.metadata.version("keras"), "generated_by": "python -m graft_applications.layerlists"}
    lines = [json.dumps(header)[:-1] + ', "models": {']
    for number, (key, rows) in enumerate(sorted(models.items()), start=1):  # a model a line: diffs stay readable
        compact = [[name, cls, *(int(flag) for flag in flags)] for name, cls, *flags in rows]
        lines.append(f"{json.dumps(key)}: {json.dumps(compact, separators=(',', ':'))}"
                     + ("," if number < len(models) else ""))
    lines.append("}}")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return path


def keras_app_models() -> Iterable[tuple[str, Callable[[], list[list[Any]]]]]:
    """(key, how to build its rows) for every ``keras_app`` backbone and pooling that has a list."""
    from graft_applications.backbones import BACKBONES

    for backbone in BACKBONES.values():
        if backbone.name in SHAPE_DEPENDENT:
            continue
        for pooling in ("avg", "max"):
            shape = (backbone.min_size, backbone.min_size, 3)
            params = {"backbone": backbone.name, "pooling": pooling}
            yield f"{backbone.name}/{pooling}", partial(build_rows, "keras_app", params, shape)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the layer lists of keras_app and mobilenet for this Keras")
    parser.add_argument("--only", choices=("keras_app", "mobilenet"), help="one plugin's list only")
    args = parser.parse_args(argv)
    plugins: dict[str, tuple[str, Callable[[], Iterable[tuple[str, Callable[[], list[list[Any]]]]]]]] = {
        "keras_app": ("graft_applications", keras_app_models),
    }
    try:
        from graft_mobilenet.layers import mobilenet_models
    except ImportError:
        pass
    else:
        plugins["mobilenet"] = ("graft_mobilenet", mobilenet_models)
    for plugin, (package, models) in plugins.items():
        if args.only and plugin != args.only:
            continue
        rows = {}
        for key, build in models():
            rows[key] = build()
            print(f"{plugin} {key}: {len(rows[key])} layers", flush=True)
        print(f"wrote {write(package, rows)}")


if __name__ == "__main__":
    main()
