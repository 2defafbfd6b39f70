"""The layer lists that ship with keras_app and mobilenet equal the models built on this Keras (every avg-pooled
model, and a max-pooled one of each pooling layer's naming; the other max lists are the avg lists swapped)."""

from __future__ import annotations

import pathlib

import pytest

from graft.base.problems import SpecError
from graft.plugins.registry import Registry
from graft.spec.layernames import check_layer_names
from graft.spec.specfile import load_spec
from graft_applications import layerlists
from graft_mobilenet.layers import mobilenet_models

ROOT = pathlib.Path(__file__).resolve().parents[3]
SHIPPED = layerlists.declared("graft_mobilenet", "v2/avg") is not None  # lists for this Keras's major version
needs_lists = pytest.mark.skipif(not SHIPPED, reason=f"no layer lists ship for Keras {layerlists.keras_major()}")
ALL = [("graft_applications", key, build) for key, build in layerlists.keras_app_models()] + [
    ("graft_mobilenet", key, build) for key, build in mobilenet_models()
]
# avg and max pooling differ in one layer, the pooling, which Keras names as the application names its average
# pooling: every avg model is built, and the max models of each naming and layout (test_max_lists_swap_...)
POOLED = {("avg_pool", "GlobalAveragePooling2D"): ("max_pool", "GlobalMaxPooling2D"),
          ("global_average_pooling2d", "GlobalAveragePooling2D"): ("global_max_pooling2d", "GlobalMaxPooling2D")}
MAX_BUILT = {"ResNet50/max", "VGG16/max", "ConvNeXtTiny/max", "v2/max", "v3_small/max"}
MODELS = [(package, key, build) for package, key, build in ALL if key.endswith("/avg") or key in MAX_BUILT]
assert {key for _, key, _ in ALL} >= MAX_BUILT


def rows(package: str, key: str) -> list[list]:
    declared = layerlists.declared(package, key)
    assert declared is not None, (
        f"{package} ships no layer list of {key} for Keras {layerlists.keras_major()}: "
        "run python -m graft_applications.layerlists"
    )
    return [[layer.name, layer.class_name, layer.has_weights, layer.is_batch_norm, layer.can_train]
            for layer in declared]


@pytest.mark.slow
@needs_lists
@pytest.mark.parametrize(("package", "key", "build"), MODELS, ids=[f"{p}:{k}" for p, k, _ in MODELS])
def test_the_shipped_list_is_the_built_model(package, key, build):
    assert rows(package, key) == build()


@needs_lists
@pytest.mark.parametrize(("package", "key"), [(package, key) for package, key, _ in ALL if key.endswith("/max")])
def test_max_lists_swap_the_avg_lists_pooling_layer(package, key):
    """What the max models not built above are checked by: their list is the avg list with its pooling swapped."""
    avg = rows(package, key.replace("/max", "/avg"))
    swapped = [[*POOLED.get((name, cls), (name, cls)), *flags] for name, cls, *flags in avg]
    assert sum(swapped_row != row for swapped_row, row in zip(swapped, avg, strict=True)) == 1
    assert rows(package, key) == swapped


def test_a_keras_without_a_list_declares_nothing(monkeypatch):
    monkeypatch.setattr(layerlists, "keras_major", lambda: 99)

    assert layerlists.declared("graft_mobilenet", "v2/avg") is None


@needs_lists
def test_validate_checks_mobilenet_layer_names_without_building(tmp_path):
    text = (ROOT / "configs" / "mobilenet_digits.yaml").read_text()
    text = text.replace("policy: {plugin: fine_tune_top, params: {layers: 3}}",
                        "policy: {plugin: layers, params: {freeze: [block_16_projct]}}")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    registry = Registry.discover(enabled={"mobilenet", "sklearn_digits"})

    with pytest.raises(SpecError) as caught:
        check_layer_names(load_spec(str(path), registry), registry)

    [line] = caught.value.lines
    assert line.startswith("stages[2].policy.params.freeze[0] (line ")
    assert "no layer 'block_16_projct' in the model; layers: mobilenet_preprocess, Conv1, " in line
    assert line.endswith("did you mean 'block_16_project'?")
