"""Conformance checks for a plugin's own tests: one call checks what keras-graft relies on.

```python
from graft.testing import check_extractor_plugin, check_head_plugin, check_policy_plugin, check_data_plugin

def test_conformance():
    check_extractor_plugin("lstm", {"units": [8, 4]}, input_shape=(6, 3), bad_params={"units": [0]})
```

Every check, on the installed plugin (its ``graft`` entry point):

- it loads and provides its kind;
- ``graft validate`` of a spec that uses it with ``params`` passes in a fresh interpreter
  that imports neither TensorFlow nor Keras, plugin loading included;
- params problems are reported at their YAML path with the line: an unknown key always, and
  every problem of ``bad_params`` (raw params the plugin must refuse) if given.

Then, by kind:

- extractor, head: keras-graft's own builder builds the model on a tiny input, so every
  layer must carry an explicit name, head layers are named ``{head}`` and ``{head}_...``
  (two heads of the plugin, ``conformance_a`` and ``conformance_b``, are built side by
  side) and no name is used twice; a second build has the same layer names; the weights,
  saved by name and loaded by name into a fresh build with another seed, are bitwise equal
  and give the same outputs; no layer is a ``Lambda``, and the whole model saved as
  ``model.keras`` (as ``graft run`` saves a stage) loads back in Keras's safe mode, as
  ``graft evaluate``, ``predict`` and ``export`` load it, and computes the same.
- policy: on the conformance model (``CONFORMANCE_LAYERS``) it decides for every layer,
  and decides the same twice.
- data: it returns a ``graft.Dataset`` whose targets line up with its inputs, the same
  arrays twice (a ``graft.Stream`` is checked as keras-graft checks it).

A failure raises ``ConformanceError`` (an ``AssertionError``, raised by plain code so that the
checks hold under ``python -O`` too) or keras-graft's own error, which names the rule.
Heads, policies and data sources are checked with ``graft_conformance``, a small
extractor of keras-graft's own: input -> Dense ``conformance_dense`` ->
BatchNormalization ``conformance_norm`` -> Dense ``conformance_features``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from graft.authoring.conformance_spec import (
    CONFORMANCE_EXTRACTOR,
    CONFORMANCE_LAYERS,
    DENSE_HEAD,
    HEADS,
    PARAMS_PATH,
    ConformanceError,
    check_validation,
    conformance_registry,
)
from graft.base.problems import SpecProblem
from graft.plugins.arrayfile import ArrayFile
from graft.plugins.datasets import Dataset
from graft.plugins.layers import EXTRACTOR, DeclaredLayer, LayerDecision, LayerInfo
from graft.plugins.registry import PluginInfo, Registry
from graft.plugins.rounds import Rounds
from graft.spec.validators import loading_spec_in

__all__ = [
    "CONFORMANCE_EXTRACTOR",
    "CONFORMANCE_LAYERS",
    "Conformance",
    "ConformanceError",
    "built_extractor_layers",
    "check_data_plugin",
    "check_extractor_plugin",
    "check_head_plugin",
    "check_policy_plugin",
]

@attrs.frozen
class Conformance:
    """What a check built: the plugin, the layer names of the model (if any) and the hook's checked answer.

    ``answer`` is the built ``keras.Model`` for an extractor or a head (the whole model),
    the ``graft.Rounds`` of a policy, the ``graft.Dataset`` or ``graft.Stream`` of a data source.
    """

    plugin: PluginInfo
    layer_names: tuple[str, ...]
    answer: Any


def check_extractor_plugin(
    name: str,
    params: Mapping[str, Any] | None,
    input_shape: tuple[int, ...],
    *,
    bad_params: Any = None,
    base_dir: str | os.PathLike | None = None,
) -> Conformance:
    """Check the installed extractor plugin ``name`` with raw ``params`` on samples of ``input_shape``.

    Relative paths in params are relative to ``base_dir`` (see ``check_data_plugin``).
    """
    registry, info, parsed, folder = _prepare("extractor", name, params, bad_params, input_shape, base_dir)
    from graft.model.builder import ModelBuilder
    from graft.spec.records import ExtractorRef

    heads = {DENSE_HEAD: _dense_head(registry, {"units": 2})}
    at = PARAMS_PATH["extractor"][:-1]
    declared = {EXTRACTOR: registry.extractor_layers(name, parsed, tuple(input_shape), at=at)}
    builder = ModelBuilder(registry, tuple(input_shape), ExtractorRef(name, parsed), heads, folder)
    return _round_trip(builder, info, declared)


def built_extractor_layers(
    name: str, params: Mapping[str, Any] | None, input_shape: tuple[int, ...]
) -> tuple[DeclaredLayer, ...]:
    """The extractor layers keras-graft's builder builds with the installed plugin ``name`` and raw ``params``, as
    ``graft.DeclaredLayer``: what ``extractor_layers`` must declare (or a shipped layer list must hold)."""
    from graft.model.builder import ModelBuilder
    from graft.spec.records import ExtractorRef

    registry, _ = _installed(name, "extractor")
    with loading_spec_in(os.getcwd()):
        parsed = _structured(registry, "extractor", name, params, PARAMS_PATH["extractor"])
    heads = {DENSE_HEAD: _dense_head(registry, {"units": 2})}
    built = ModelBuilder(registry, tuple(input_shape), ExtractorRef(name, parsed), heads).build(seed=0)
    return tuple(DeclaredLayer.of(layer) for layer in built.layers if layer.in_extractor)


def check_head_plugin(
    name: str,
    params: Mapping[str, Any] | None,
    features: tuple[int, ...] = (8,),
    *,
    bad_params: Any = None,
    base_dir: str | os.PathLike | None = None,
) -> Conformance:
    """Check the installed head plugin ``name`` with raw ``params`` on features of shape ``features``.

    Two heads of the plugin, ``conformance_a`` and ``conformance_b``, are built on the
    features of ``graft_conformance`` (its input shape is ``features``).
    """
    registry, info, parsed, folder = _prepare("head", name, params, bad_params, features, base_dir)
    from graft.model.builder import ModelBuilder
    from graft.spec.records import ExtractorRef, HeadSpec

    heads = {head: HeadSpec(name, "mse", parsed) for head in HEADS}
    extractor = ExtractorRef(CONFORMANCE_EXTRACTOR)
    declared = {head: registry.head_layers(name, parsed, head, at=PARAMS_PATH["head"][:-1]) for head in HEADS}
    return _round_trip(ModelBuilder(registry, tuple(features), extractor, heads, folder), info, declared)


def check_policy_plugin(
    name: str, params: Mapping[str, Any] | None, *, bad_params: Any = None, base_dir: str | os.PathLike | None = None
) -> Conformance:
    """Check the installed policy plugin ``name`` with raw ``params`` on the conformance model.

    Its layers are ``CONFORMANCE_LAYERS``: the extractor's ``conformance_dense``,
    ``conformance_norm`` (BatchNormalization) and ``conformance_features``, then the head's
    ``conformance_head_hidden_1`` and ``conformance_head``; name them in ``params``.
    """
    registry, info, parsed, folder = _prepare("policy", name, params, bad_params, (4,), base_dir)
    from graft.model.builder import ModelBuilder
    from graft.spec.records import ExtractorRef

    heads = {DENSE_HEAD: _dense_head(registry, {"units": 2, "hidden": [4]})}
    built = ModelBuilder(registry, (4,), ExtractorRef(CONFORMANCE_EXTRACTOR), heads, folder).build(seed=0)
    names = tuple(layer.name for layer in built.layers)
    if names != CONFORMANCE_LAYERS:
        raise ConformanceError(f"the conformance model has layers {names}, not {CONFORMANCE_LAYERS}")
    first = registry.transfer_policy(name, parsed, built.layers, at=PARAMS_PATH["policy"][:-1])
    again = registry.transfer_policy(name, parsed, built.layers, at=PARAMS_PATH["policy"][:-1])
    if _decisions(first) != _decisions(again):
        raise ConformanceError(
            f"policy '{name}' decided differently the second time on the same model: a stage must plan the same every "
            f"time it is planned\nfirst: {_decisions(first)}\nagain: {_decisions(again)}"
        )
    return Conformance(info, names, first)


def check_data_plugin(
    name: str, params: Mapping[str, Any] | None, base_dir: str | os.PathLike, *, bad_params: Any = None
) -> Conformance:
    """Check the installed data source ``name`` with raw ``params``; relative paths are relative to ``base_dir``.

    The specs ``graft validate`` checks are written into ``base_dir`` for the time of the check
    (hidden, under names of their own), as a spec beside the data would be. Without a
    ``base_dir`` (the other checks) they go to a temporary folder: give absolute paths.
    """
    registry, info, parsed, folder = _prepare("data source", name, params, bad_params, (1,), base_dir)
    first = registry.load_data(name, parsed, folder, at=PARAMS_PATH["data source"][:-1])
    again = registry.load_data(name, parsed, folder, at=PARAMS_PATH["data source"][:-1])
    if isinstance(first, Dataset):
        _check_dataset(name, first)
        if not isinstance(again, Dataset):
            raise ConformanceError(f"data source '{name}' returned a Dataset, then a {type(again).__name__}")
        same = _arrays(first) == _arrays(again) and all(
            _same(a, b) for a, b in zip(_values(first), _values(again), strict=True)
        )
        if not same:
            raise ConformanceError(
                f"data source '{name}' loaded different arrays the second time: a stage's data must be reproducible"
            )
    return Conformance(info, (), first)


# -- parts -------------------------------------------------------------------------------------


def _prepare(
    kind: str, name: str, params: Any, bad_params: Any, input_shape: tuple[int, ...], base_dir: Any
) -> tuple[Registry, PluginInfo, Any, str]:
    """The registry, the plugin, its structured ``params`` and the folder of the spec; ``graft validate`` checked."""
    registry, info = _installed(name, kind)
    folder = os.path.abspath(base_dir) if base_dir is not None else None
    with loading_spec_in(folder or os.getcwd()):
        parsed = _structured(registry, kind, name, params, PARAMS_PATH[kind])
    check_validation(kind, name, params, bad_params, tuple(input_shape), base_dir=folder)
    return registry, info, parsed, folder or os.getcwd()


def _installed(name: str, kind: str) -> tuple[Registry, PluginInfo]:
    registry = conformance_registry(enabled={name})
    found = [info for info in registry.infos if info.name == name]
    if not found:
        raise ConformanceError(
            f"no entry point '{name}' in group 'graft': is the distribution installed (pip install -e .)?"
        )
    info = found[0]
    if info.status != "ok":
        raise ConformanceError(f"plugin '{name}' is {info.status}: {info.error}")
    if kind not in info.provides:
        raise ConformanceError(f"plugin '{name}' provides {', '.join(info.provides)}, not {kind}")
    return registry, info


def _structured(registry: Registry, kind: str, name: str, raw: Any, at: tuple) -> Any:
    """``raw`` params structured as a spec load does; a problem fails the check with its path."""
    from graft.spec.convert import make_converter, structure

    params_class = registry.params_class(kind, name)
    if params_class is None:
        if raw:
            raise ConformanceError(f"{kind} plugin '{name}' takes no params, but the check was given {raw!r}")
        return None
    try:
        return structure(make_converter(), raw if raw is not None else {}, params_class, at)
    except SpecProblem as problem:
        raise ConformanceError(f"the params given to the check are refused:\n{problem}") from None


def _dense_head(registry: Registry, raw: Mapping[str, Any]):
    from graft.spec.records import HeadSpec

    return HeadSpec("dense", "mse", _structured(registry, "head", "dense", dict(raw), ("params",)))


def _round_trip(builder, info: PluginInfo, declared: dict[str, tuple[LayerInfo, ...] | None]) -> Conformance:
    """Build twice with other seeds; the second takes the first's weights by name, bitwise, and computes the same.

    ``declared`` holds what ``extractor_layers``/``head_layers`` said of each part (None: nothing); it must
    be what was built."""
    from graft.model.weights import bitwise_equal, read_weights, save_weights, snapshot

    first = builder.build(seed=0)
    names = tuple(layer.name for layer in first.layers)
    for part, layers in declared.items():
        if layers is not None:
            _check_declared(info.name, part, layers, first.layers)
    inputs = np.random.default_rng(0).normal(size=(3, *builder.input_shape)).astype("float32")
    expected = _predict(first.model, inputs)
    saved = snapshot(first.layers)
    with tempfile.TemporaryDirectory(prefix="graft-conformance-") as folder:
        path = os.path.join(folder, "weights.graft.npz")
        save_weights(first.layers, path)
        second = builder.build(seed=1)
        again = tuple(layer.name for layer in second.layers)
        if again != names:
            raise ConformanceError(f"a second build named its layers differently:\nfirst:  {names}\nsecond: {again}")
        loaded = read_weights(path)
    for layer in second.layers:
        layer.layer.set_weights(loaded[layer.name])
        if not bitwise_equal(layer.layer.get_weights(), saved[layer.name]):
            raise ConformanceError(
                f"layer '{layer.name}': its weights saved by name and loaded by name into a fresh build "
                "are not bitwise equal"
            )
    found = _predict(second.model, inputs)
    for output, (want, got) in enumerate(zip(expected, found, strict=True)):
        if not np.allclose(want, got, rtol=1e-5, atol=1e-6):
            raise ConformanceError(
                f"output {output}: a fresh build with every layer's weights loaded by name computes something else; "
                "is some state of the model not in its layers' weights?"
            )
    with tempfile.TemporaryDirectory(prefix="graft-conformance-") as folder:
        _check_safe_mode(info.name, first.model, inputs, expected, os.path.join(folder, "model.keras"))
    return Conformance(info, names, first.model)


def _check_safe_mode(name: str, model, inputs: np.ndarray, expected: list[np.ndarray], path: str) -> None:
    """The model saved as ``graft run`` saves a stage loads back as ``graft evaluate`` loads it (safe mode, not
    compiled) and computes the same."""
    from graft.base.backend import import_keras
    from graft.model.modelfile import load_hint

    keras = import_keras()
    model.save(path)
    try:
        loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - whatever Keras raises, the plugin's model does not load back
        raise ConformanceError(
            f"plugin '{name}': the model saved as model.keras does not load back in Keras's safe mode, as graft "
            f"evaluate, predict and export load a finished stage: {type(exc).__name__}: {' '.join(str(exc).split())}"
            f"; {load_hint(keras, path)}; every layer must be one of Keras's own or a custom layer class with "
            "get_config, registered with @keras.saving.register_keras_serializable"
        ) from exc
    for output, (want, got) in enumerate(zip(expected, _predict(loaded, inputs), strict=True)):
        if not np.allclose(want, got, rtol=1e-5, atol=1e-6):
            raise ConformanceError(
                f"plugin '{name}': output {output} of the model loaded back from model.keras differs from the built "
                "model's; does a custom layer's get_config leave out something its constructor needs?"
            )


def _check_declared(name: str, part: str, declared: tuple[LayerInfo, ...], built: tuple[LayerInfo, ...]) -> None:
    """The layers a plugin declared from its params are the layers it built: name, class, weights, batch norm."""
    said = [DeclaredLayer.of(layer) for layer in declared]
    made = [DeclaredLayer.of(layer) for layer in built if layer.part == part]
    hook = "extractor_layers" if part == EXTRACTOR else "head_layers"
    if said != made:
        raise ConformanceError(
            f"plugin '{name}': {hook} declared other layers than it built ({part}), so graft validate would check "
            f"a spec's layer names against the wrong ones\ndeclared: {said}\nbuilt:    {made}"
        )


def _predict(model, inputs: np.ndarray) -> list[np.ndarray]:
    outputs = model(inputs, training=False)  # eager: faster than predict for three samples
    return [np.asarray(output) for output in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _decisions(rounds: Rounds) -> list[tuple[str, dict[str, LayerDecision]]]:
    return [(step.label, dict(step.decisions)) for step in rounds.steps]


def _check_dataset(name: str, data: Dataset) -> None:
    where = f"data source '{name}' ({data.description})"
    if not data.y:
        raise ConformanceError(f"{where}: no targets; y maps each head's name to its targets")
    if len(data.x) <= 0:
        raise ConformanceError(f"{where}: no samples")
    for head, target in data.y.items():
        if len(target) != len(data.x):
            raise ConformanceError(f"{where}: {len(target)} targets for head '{head}', {len(data.x)} inputs")
    if data.x_val is not None or data.y_val is not None:
        if not (data.x_val is not None and data.y_val is not None):
            raise ConformanceError(f"{where}: x_val and y_val come together")
        if set(data.y_val) != set(data.y):
            raise ConformanceError(f"{where}: y_val has heads {sorted(data.y_val)}, y {sorted(data.y)}")
        for head, target in data.y_val.items():
            if len(target) != len(data.x_val):
                raise ConformanceError(f"{where}: {len(target)} validation targets for '{head}'")


def _arrays(data: Dataset) -> list[str]:
    return sorted(data.y) + sorted(data.y_val or {})


def _values(data: Dataset) -> list[Any]:
    validation = data.y_val or {}
    return [data.x, *(data.y[k] for k in sorted(data.y)), data.x_val, *(validation[k] for k in sorted(validation))]


def _same(left: Any, right: Any) -> bool:
    """Bitwise equal arrays, or ``graft.ArrayFile``s of the same rows of the same file."""
    if isinstance(left, ArrayFile) and isinstance(right, ArrayFile):
        same_rows = (left.rows is None and right.rows is None) or (
            left.rows is not None and right.rows is not None and np.array_equal(left.rows, right.rows)
        )
        return same_rows and (left.path, left.shape, left.dtype, left.offset) == (
            right.path, right.shape, right.dtype, right.offset
        )
    if left is None or right is None:
        return left is right
    left, right = np.asarray(left), np.asarray(right)
    return left.shape == right.shape and left.dtype == right.dtype and left.tobytes() == right.tobytes()
