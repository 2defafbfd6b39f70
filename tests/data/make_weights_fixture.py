"""Write the cross-version weights fixtures of ``tests/test_weights.py``.

Run it once under Keras 2 (TensorFlow 2.15) and once under Keras 3::

    /path/to/tf215-venv/bin/python tests/data/make_weights_fixture.py   # -> weights_keras2*.graft.npz
    /path/to/tf2xx-venv/bin/python tests/data/make_weights_fixture.py   # -> weights_keras3*.graft.npz

For each model variant it builds the fixed tiny model with the installed plugins,
sets EVERY weight (BatchNormalization statistics included) to ``pattern()``, and
saves it with ``graft.model.weights.save_weights`` as
``weights_keras{major}{suffix}.graft.npz``; ``fixtures.json`` records which Keras
wrote each file and its SHA-256.  The test loads every file under the running Keras
and checks each variable against ``pattern()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RECORD = os.path.join(HERE, "fixtures.json")

# variant -> (file suffix, the ``model:`` section of a spec)
VARIANTS = {
    "gru": (
        "",
        """\
model:
  input_shape: [6, 3]
  extractor:
    plugin: gru
    params:
      layers:
        - {name: gru_1, units: 4}
        - {name: gru_2, units: 4}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
    trend: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 3, hidden: [2], activation: softmax}}
""",
    ),
    "conv1d_bn": (
        "_conv1d_bn",
        """\
model:
  input_shape: [6, 3]
  extractor:
    plugin: conv1d
    params:
      batch_norm: true
      layers:
        - {name: conv_1, filters: 4, kernel_size: 3}
        - {name: conv_2, filters: 2, kernel_size: 3}
  heads:
    trend: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 3, activation: softmax}}
""",
    ),
}

STAGE = """\
stages:
  - name: only
    data: {source: synthetic, params: {samples: 8, timesteps: 6, channels: 3, targets: {trend: trend}}}
    epochs: 1
"""


def spec_text(variant: str, init: str | None = None) -> str:
    """A one-stage spec of the variant's model, optionally starting from weights file ``init``."""
    text = VARIANTS[variant][1] + STAGE
    if init is not None:
        text += f"    init: {{weights: {init}}}\n"
    return text


def filename(variant: str, major: int) -> str:
    return f"weights_keras{major}{VARIANTS[variant][0]}.graft.npz"


def pattern(names: list[str], layer: str, position: int, shape: tuple[int, ...]) -> np.ndarray:
    """The deterministic value of weight ``position`` of ``layer``: unique per layer and variable.

    ``names`` are the model's weighted layers; the layer's rank among them (sorted) is
    the integer part, ``position / 10`` the first decimal, and ``arange * 1e-4`` the rest.
    """
    size = int(np.prod(shape, dtype=np.int64))
    assert size < 1000, "keep fixture variables below 1000 values so patterns stay unique"
    rank = sorted(names).index(layer)
    return (rank + position / 10 + np.arange(size, dtype=np.float64) * 1e-4).reshape(shape).astype(np.float32)


def weighted_names(layers) -> list[str]:
    return [info.name for info in layers if info.has_weights]


def set_pattern(layers) -> None:
    names = weighted_names(layers)
    for info in layers:
        if info.has_weights:
            shapes = [tuple(value.shape) for value in info.layer.get_weights()]
            info.layer.set_weights([pattern(names, info.name, p, shape) for p, shape in enumerate(shapes)])


def main() -> None:
    from graft.base.backend import import_keras, keras_major
    from graft.model.weights import save_weights
    from graft.planning.stageplan import build_stage_model
    from graft.plugins.registry import Registry
    from graft.spec.specfile import parse_spec

    keras = import_keras()
    major = keras_major()
    registry = Registry.discover()
    record = {}
    if os.path.exists(RECORD):
        with open(RECORD, encoding="utf-8") as handle:
            record = json.load(handle)
    for variant in VARIANTS:
        spec_file = parse_spec(spec_text(variant), os.path.join(HERE, f"{variant}.yaml"), registry)
        built = build_stage_model(spec_file, registry, 0)
        set_pattern(built.layers)
        path = os.path.join(HERE, filename(variant, major))
        save_weights(built.layers, path)
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        record[os.path.basename(path)] = {"keras": keras.__version__, "sha256": digest}
        print(f"wrote {path} ({os.path.getsize(path)} bytes) with Keras {keras.__version__}", file=sys.stderr)
    with open(RECORD, "w", encoding="utf-8") as handle:
        json.dump(dict(sorted(record.items())), handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
