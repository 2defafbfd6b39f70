"""The mobilenet plugin: params at YAML paths, the models it builds, weights (local files and
ImageNet offline), its packaging and its use through the core.

Models are tiny (alpha 0.35 or 0.75, 32x32x3) and nothing downloads: every build uses
weights none or local files, and the ImageNet tests run in a subprocess whose HOME,
KERAS_HOME and proxy point into a temporary folder and at a closed port.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import yaml

import graft
import graft_mobilenet
from graft import validators
from graft.plugins.registry import Registry
from graft.testing import assert_no_tensorflow_on_import, installed_plugin, params_problems, structure_params
from graft_mobilenet import MobileNetParams

SHAPE = (32, 32, 3)

# Keras's own noise, nothing to do with this plugin: Keras 3 on NumPy 2 warns about __array__ on
# every get_weights(); Keras 2.15's initialisers call random.randint with floats
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.filterwarnings("ignore:non-integer arguments to randrange"),
]


def params(raw):
    return structure_params(raw, MobileNetParams)


def problems(raw):
    return params_problems(raw, MobileNetParams)


def build(seed=1, shape=SHAPE, base_dir=".", **raw):
    import keras

    raw.setdefault("alpha", 0.35)
    keras.utils.set_random_seed(seed)
    return graft_mobilenet.build_extractor(params=params(raw), input_shape=shape, base_dir=base_dir)


def leaf_names(model):
    import keras

    from graft.model.builder import leaf_layers

    return [layer.name for layer in leaf_layers(keras, model)]


def keras3():
    import keras

    return int(keras.__version__.split(".")[0]) >= 3


@pytest.fixture(scope="module")
def v2():
    return build(variant="v2")


@pytest.fixture(scope="module")
def v3_small():
    return build(variant="v3_small", alpha=0.75)


# -- params ------------------------------------------------------------------


def test_docstring_example_is_valid_params():
    example = yaml.safe_load(
        textwrap.dedent(graft_mobilenet.__doc__.split(".. code-block:: yaml")[1].split("``weights``")[0])
    )
    assert params(example["extractor"]["params"]) == MobileNetParams(weights="imagenet")


def test_defaults():
    assert params({}) == MobileNetParams(variant="v2", alpha=1.0, pooling="avg", weights="none")


def test_bad_variant_with_did_you_mean():
    assert problems({"variant": "v3-small"}) == [
        (("params", "variant"), "'v3-small' is not one of: v2, v3_small, v3_large — did you mean 'v3_small'?")
    ]


@pytest.mark.parametrize("value", ["weights.npz", "model.pt", "", "imagenet21k", ".keras"])
def test_bad_weights(value):
    [(path, message)] = problems({"weights": value})
    assert path == ("params", "weights")
    assert message.startswith(
        f"'{value}' is not 'none', 'imagenet' or the path of a weights file ending .weights.h5, .h5 or .keras"
    )


def test_weights_typo_did_you_mean():
    [(path, message)] = problems({"weights": "imagenett"})
    assert path == ("params", "weights")
    assert message.endswith("— did you mean 'imagenet'?")


@pytest.mark.parametrize("value", ["none", "imagenet", "w/base.weights.h5", "base.h5", "{tmp}/model.keras", "~/x.h5"])
def test_good_weights(value, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    value = value.format(tmp=tmp_path)
    if value not in ("none", "imagenet"):
        file = tmp_path / os.path.expanduser(value)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"")
    with validators.loading_spec_in(str(tmp_path)):
        assert params({"weights": value, "alpha": 1.0}).weights == value


def test_a_missing_weights_file_is_a_params_problem_at_validate_time(tmp_path):
    (tmp_path / "w").mkdir()
    with validators.loading_spec_in(str(tmp_path)):
        assert problems({"weights": "nowhere/base.weights.h5"}) == [
            (("params", "weights"), f"file not found: {tmp_path / 'nowhere' / 'base.weights.h5'}")
        ]
        assert problems({"weights": "w.h5"}) == [(("params", "weights"), f"file not found: {tmp_path / 'w.h5'}")]


@pytest.mark.parametrize(
    ("variant", "alpha", "allowed"),
    [("v2", 0.4, "0.35, 0.5, 0.75, 1.0, 1.3, 1.4"), ("v3_small", 0.35, "0.75, 1.0"), ("v3_large", 1.4, "0.75, 1.0")],
)
def test_imagenet_alpha(variant, alpha, allowed):
    assert problems({"variant": variant, "alpha": alpha, "weights": "imagenet"}) == [
        (
            ("params", "alpha"),
            f"Keras has imagenet weights for {variant} only with alpha {allowed}; got {alpha} (or use weights: none)",
        )
    ]


def test_any_alpha_without_imagenet_and_imagenet_alphas():
    assert params({"variant": "v3_large", "alpha": 0.4}).alpha == 0.4
    assert params({"variant": "v2", "alpha": 1.3, "weights": "imagenet"}).alpha == 1.3
    assert params({"variant": "v3_small", "alpha": 1, "weights": "imagenet"}).alpha == 1.0


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ({"alpha": 0}, ("params", "alpha"), "must be greater than 0, got 0.0"),
        ({"alpha": "1.0"}, ("params", "alpha"), "expected a number, got str '1.0'"),
        ({"pooling": "average"}, ("params", "pooling"), "'average' is not one of: avg, max — did you mean 'avg'?"),
        ({"weights": None}, ("params", "weights"), "expected a string, got null"),
    ],
)
def test_other_problems(raw, path, message):
    assert problems(raw) == [(path, message)]


def test_unknown_key():
    [(path, message)] = problems({"varaint": "v2"})
    assert path == ("params", "varaint")
    assert message.startswith("unknown key 'varaint'") and message.endswith("did you mean 'variant'?")


def test_spec_reports_params_at_their_yaml_line(tmp_path):
    from graft.spec.specfile import parse_spec

    text = SPEC.replace("variant: v2", "variant: v3-large")
    (tmp_path / "data.npz").write_bytes(b"")  # validate checks that the data file exists, not what it holds
    with pytest.raises(graft.SpecError) as caught:
        parse_spec(text, str(tmp_path / "spec.yaml"), Registry.discover(enabled={"mobilenet"}))
    assert caught.value.lines == [
        "model.extractor.params.variant (line 7): 'v3-large' is not one of: v2, v3_small, v3_large "
        "— did you mean 'v3_large'?"
    ]


# -- the models ----------------------------------------------------------------


def test_v2_layers_preprocessing_and_output(v2):
    import keras

    assert v2.name == "mobilenet_extractor"
    assert v2.layers[0].name == "mobilenet_input"
    preprocess = v2.get_layer("mobilenet_preprocess")
    assert isinstance(preprocess, keras.layers.Rescaling)
    assert preprocess.scale == pytest.approx(1 / 127.5) and preprocess.offset == pytest.approx(-1.0)
    names = leaf_names(v2)
    assert names[0] == "mobilenet_preprocess"
    assert {"Conv1", "block_1_expand", "block_16_project", "Conv_1", "out_relu"} <= set(names)
    assert len(names) == len(set(names))
    assert tuple(v2.output_shape) == (None, 1280)
    assert isinstance(graft_mobilenet.base_of(v2).layers[-1], keras.layers.GlobalAveragePooling2D)


def test_v2_takes_raw_pixels(v2):
    from keras.applications import mobilenet_v2

    pixels = np.random.default_rng(0).uniform(0, 255, (2, *SHAPE)).astype("float32")
    features = np.asarray(v2(pixels, training=False))
    by_hand = np.asarray(graft_mobilenet.base_of(v2)(mobilenet_v2.preprocess_input(pixels.copy()), training=False))
    assert features.shape == (2, 1280) and np.isfinite(features).all()
    np.testing.assert_allclose(features, by_hand, rtol=1e-5, atol=1e-5)


def test_v3_small_has_its_own_preprocessing(v3_small):
    import keras

    names = leaf_names(v3_small)
    assert "mobilenet_preprocess" not in names
    assert len(names) == len(set(names))
    expected = {"conv", "conv_1", "expanded_conv_project"} if keras3() else {"Conv", "Conv_1", "expanded_conv/project"}
    assert expected <= set(names)
    rescaling = [
        layer for layer in graft_mobilenet.base_of(v3_small).layers if isinstance(layer, keras.layers.Rescaling)
    ]
    assert len(rescaling) == 1 and rescaling[0].scale == pytest.approx(1 / 127.5)
    assert tuple(v3_small.output_shape) == (None, 432)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, *SHAPE)).astype("float32")
    assert np.isfinite(np.asarray(v3_small(pixels, training=False))).all()


def test_v3_large_with_max_pooling():
    import keras

    model = build(variant="v3_large", alpha=0.75, pooling="max")
    assert tuple(model.output_shape) == (None, 720)
    assert isinstance(graft_mobilenet.base_of(model).layers[-1], keras.layers.GlobalMaxPooling2D)
    names = leaf_names(model)
    assert ("conv_1" if keras3() else "Conv_1") in names and len(names) == len(set(names))


@pytest.mark.parametrize(
    ("shape", "weights", "message"),
    [
        ((32, 32), "none", r"needs model.input_shape \[height, width, channels\], got \[32, 32\]"),
        ((32, 40, 3), "none", r"the images must be square \(height == width\), got 32x40"),
        ((16, 16, 3), "none", r"height and width must be at least 32, got 16x16"),
        ((32, 32, 1), "imagenet", r"imagenet weights need 3 channels \(RGB\), got 1"),
        (
            (16, 24, 4),
            "imagenet",
            r"square .*; height and width must be at least 32.*; imagenet weights need 3 channels",
        ),
    ],
)
def test_input_shape_problems(shape, weights, message):
    with pytest.raises(ValueError, match=message) as caught:
        graft_mobilenet.build_extractor(params=params({"weights": weights}), input_shape=shape)
    assert isinstance(caught.value, graft_mobilenet.InputShapeError)


# -- local weights files -------------------------------------------------------------


def save_base(base, path):
    """Save the bare Keras model's weights in the format ``path``'s suffix names."""
    if path.endswith(".keras") or (path.endswith(".h5") and not path.endswith(".weights.h5") and keras3()):
        base.save(path)  # Keras 3 writes .h5 (legacy HDF5) only with model.save, not save_weights
    else:
        base.save_weights(path)


@pytest.fixture(scope="module")
def fresh_seed_2():
    return build(seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".weights.h5", ".h5", ".keras"])
def test_local_weights_file_loads_bitwise(v2, fresh_seed_2, tmp_path, monkeypatch, suffix):
    source = graft_mobilenet.base_of(v2)
    (tmp_path / "w").mkdir()
    save_base(source, str(tmp_path / "w" / f"base{suffix}"))
    monkeypatch.chdir("/")  # a relative path is relative to the spec's folder, not the working directory
    with validators.loading_spec_in(str(tmp_path)):
        loaded = graft_mobilenet.base_of(build(seed=2, weights=f"w/base{suffix}", base_dir=str(tmp_path)))
    fresh = graft_mobilenet.base_of(fresh_seed_2)
    pairs = [(a, b, c) for a, b, c in zip(source.layers, loaded.layers, fresh.layers, strict=True) if a.weights]
    assert len(pairs) == len([layer for layer in loaded.layers if layer.weights]) > 100
    for saved, got, other in pairs:
        assert saved.name == got.name == other.name
        assert all(s.tobytes() == g.tobytes() for s, g in zip(saved.get_weights(), got.get_weights(), strict=True)), (
            saved.name
        )
    kernels = [(got, other) for _, got, other in pairs if "kernel" in got.weights[0].name]
    assert kernels and all(g.get_weights()[0].tobytes() != o.get_weights()[0].tobytes() for g, o in kernels)


def test_a_weights_file_gone_after_validate_names_the_absolute_path(tmp_path):
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "base.weights.h5").write_bytes(b"")
    with validators.loading_spec_in(str(tmp_path)):
        checked = params({"weights": "nowhere/base.weights.h5", "alpha": 0.35})
    (tmp_path / "nowhere" / "base.weights.h5").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        graft_mobilenet.build_extractor(params=checked, input_shape=SHAPE, base_dir=str(tmp_path))
    assert isinstance(caught.value, graft_mobilenet.WeightsFileNotFound)
    assert str(caught.value) == (
        f"mobilenet weights file not found: {tmp_path / 'nowhere' / 'base.weights.h5'} "
        f"(weights: 'nowhere/base.weights.h5'; a relative path is relative to the spec's folder ({tmp_path}))"
    )


@pytest.mark.slow
def test_bn_momentum_sets_every_batch_normalization_layer():
    import keras

    base = graft_mobilenet.base_of(build(bn_momentum=0.9))
    momenta = {layer.momentum for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
    default = graft_mobilenet.base_of(build())
    assert {layer.momentum for layer in default.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.999}


@pytest.mark.slow
def test_weights_of_another_width_are_a_clear_error(v2, tmp_path):
    path = str(tmp_path / "narrow.weights.h5")
    graft_mobilenet.base_of(v2).save_weights(path)
    with warnings.catch_warnings(), pytest.raises(graft_mobilenet.WeightsLoadError) as caught:
        warnings.simplefilter("ignore")  # Keras 3 warns per layer it skips before it raises
        build(alpha=0.5, weights=path)
    message = str(caught.value)
    assert message.startswith(
        f"the weights file {path} does not load into keras.applications.MobileNetV2(alpha=0.5, include_top=False): "
    )
    assert "bare Keras model of the same variant and alpha" in message


# -- imagenet weights offline ------------------------------------------------------------

OFFLINE = r"""
import json, os, sys
import keras
import graft_mobilenet as gm

home, keras_home = sys.argv[1:]
folder = os.path.join(keras_home if keras.__version__.startswith("3") else os.path.join(home, ".keras"), "models")
out = {"folder": folder, "computed_folder": gm.keras_cache_folder(keras), "errors": {}, "names": {}}
for variant, alpha in [("v2", 0.35), ("v3_small", 0.75)]:
    wanted = gm.MobileNetParams(variant=variant, alpha=alpha, weights="imagenet")
    out["names"][variant] = gm.imagenet_file(wanted, (32, 32, 3))[0]
    try:
        gm.build_extractor(params=wanted, input_shape=(32, 32, 3))
    except gm.WeightsUnavailable as exc:
        out["errors"][variant] = str(exc)

# put a v2 file in the folder, under the name, the message gave; Keras checks no hash of v2 files
name = re.search(r"Keras wants the file (\S+)", out["errors"]["v2"]).group(1)
keras.utils.set_random_seed(3)
base = gm.base_of(gm.build_extractor(params=gm.MobileNetParams(alpha=0.35), input_shape=(32, 32, 3)))
target = os.path.join(folder, name)
base.save(target) if keras.__version__.startswith("3") else base.save_weights(target)
keras.utils.set_random_seed(4)
loaded = gm.base_of(
    gm.build_extractor(params=gm.MobileNetParams(alpha=0.35, weights="imagenet"), input_shape=(32, 32, 3))
)
out["loaded_equal"] = [a.tobytes() == b.tobytes() for a, b in zip(base.get_weights(), loaded.get_weights())]
out["cache"] = sorted(os.listdir(folder))

# a damaged cached v2 file: Keras loads it (no hash) and fails; the error names the cached file
with open(target, "wb") as handle:
    handle.write(b"not an HDF5 file")
try:
    gm.build_extractor(params=gm.MobileNetParams(alpha=0.35, weights="imagenet"), input_shape=(32, 32, 3))
except gm.WeightsLoadError as exc:
    out["damaged"] = str(exc)

# a home-made v3 file: Keras checks its MD5, deletes it and tries to download again
v3_target = os.path.join(folder, out["names"]["v3_small"])
base.save(v3_target) if keras.__version__.startswith("3") else base.save_weights(v3_target)
try:
    gm.build_extractor(
        params=gm.MobileNetParams(variant="v3_small", alpha=0.75, weights="imagenet"), input_shape=(32, 32, 3)
    )
except gm.WeightsUnavailable as exc:
    out["v3_home_made"] = {"error": str(exc), "kept": os.path.exists(v3_target)}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_imagenet_offline_error_then_cached_file(tmp_path):
    home, keras_home = tmp_path / "home", tmp_path / "keras_home"
    (home / ".keras").mkdir(parents=True)  # both exist: else Keras falls back to the shared /tmp/.keras
    keras_home.mkdir()
    env = {key: value for key, value in os.environ.items() if key.lower() not in ("no_proxy", "keras_home")}
    closed = "http://127.0.0.1:9"  # offline even on a machine with internet access: nothing downloads
    env.update(HOME=str(home), KERAS_HOME=str(keras_home), TF_CPP_MIN_LOG_LEVEL="3",
               http_proxy=closed, https_proxy=closed, HTTP_PROXY=closed, HTTPS_PROXY=closed)
    run = subprocess.run(
        [sys.executable, "-c", "import re\n" + OFFLINE, str(home), str(keras_home)],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT ", 1)[1])
    folder = out["folder"]
    assert out["computed_folder"] == folder

    v2_file = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    v2_url = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + v2_file
    message = out["errors"]["v2"]
    assert message.startswith(
        "the imagenet weights of keras.applications.MobileNetV2(alpha=0.35, include_top=False) are not in "
        f"Keras's cache and could not be downloaded (Exception: URL fetch failure on {v2_url}: "
    )
    assert f"\n  Keras wants the file {v2_file}\n  from {v2_url}\n" in message
    assert (
        f"put it in the folder {folder} (as {os.path.join(folder, v2_file)}) so it works offline next time." in message
    )
    assert "MD5" not in message
    assert out["names"]["v2"] == v2_file

    v3_file = "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"
    message = out["errors"]["v3_small"]
    assert f"\n  Keras wants the file {v3_file}\n" in message
    assert f"put it in the folder {folder} " in message
    assert "Keras checks this file's MD5 (ebdb5cc8e0b497cd13a7c275d475c819): only the original file works" in message
    assert out["names"]["v3_small"] == v3_file

    assert out["cache"] == [v2_file]
    assert len(out["loaded_equal"]) > 100 and all(out["loaded_equal"])

    assert out["damaged"].startswith(
        "Keras found the imagenet weights of keras.applications.MobileNetV2(alpha=0.35, include_top=False) "
        f"in its cache, {os.path.join(folder, v2_file)}, but could not load them: "
    )
    assert out["damaged"].endswith(
        f"Delete the file (Keras downloads it again) or replace it with the original from {v2_url}"
    )
    assert f"Keras wants the file {v3_file}\n" in out["v3_home_made"]["error"]
    assert out["v3_home_made"]["kept"] is False


# -- packaging and the core ---------------------------------------------------------------


def test_import_does_not_import_tensorflow():
    assert_no_tensorflow_on_import("graft_mobilenet")


def test_entry_point_is_installed():
    info = installed_plugin("mobilenet")
    assert info.entry_point == "graft_mobilenet"
    assert info.distribution == "graft-mobilenet"


def test_core_discovers_and_builds_it():
    import keras

    from graft.model.builder import leaf_layers

    registry = Registry.discover(enabled={"mobilenet"})
    assert registry.get("extractor", "mobilenet").distribution == "graft-mobilenet"
    assert registry.params_class("extractor", "mobilenet") is MobileNetParams
    model = registry.build_extractor("mobilenet", params({"alpha": 0.35}), SHAPE)
    names = [layer.name for layer in leaf_layers(keras, model)]
    assert len(names) == len(set(names)) > 100
    assert {"mobilenet_preprocess", "block_16_project", "Conv_1"} <= set(names)
    assert tuple(model.output_shape) == (None, 1280)


SPEC = """\
seed: 3
model:
  input_shape: [32, 32, 3]
  extractor:
    plugin: mobilenet
    params:
      variant: v2
      alpha: 0.35
  heads:
    label: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 3, activation: softmax}}
stages:
  - name: top
    data: {source: npz, params: {path: data.npz, inputs: x, targets: {label: y}}}
    epochs: 1
    policy: {plugin: layers, params: {freeze: [Conv1, "block_*"], default: train}}
"""


@pytest.mark.slow
def test_spec_plans_with_keras_layer_names(tmp_path):
    from graft.planning.stageplan import plan_spec
    from graft.spec.specfile import parse_spec

    np.savez(tmp_path / "data.npz", x=np.zeros((4, *SHAPE), "float32"), y=np.zeros(4, "int64"))
    registry = Registry.discover(enabled={"mobilenet"})
    [plan] = plan_spec(parse_spec(SPEC, str(tmp_path / "spec.yaml"), registry), registry)
    layers = {layer.name: layer for layer in plan.layers}
    assert layers["mobilenet_preprocess"].part == "extractor"
    assert not layers["Conv1"].trainable and not layers["block_16_project"].trainable
    assert layers["Conv_1"].trainable and layers["label"].trainable and layers["label"].part == "label"
    assert plan.outputs == {"label": (3,)}


def test_an_alpha_too_large_for_memory_is_refused_at_validate_time():
    [(path, message)] = problems({"alpha": 1000.0})
    assert path == ("params", "alpha")
    assert message.startswith("MobileNetV2 with alpha 1000.0 would allocate") and message.endswith("make it smaller")
    assert params({"alpha": 1.4}).alpha == 1.4
