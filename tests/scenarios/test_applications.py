"""The keras_app plugin (graft-applications): keras.applications backbones by name.

Params and the smallest input of every backbone are checked without TensorFlow, and each
backbone's preprocessing against its module's ``preprocess_input``.  Two backbones (VGG16:
caffe preprocessing; MobileNet: tf) are built on their smallest input with weights none,
through keras-graft's own builder (so every layer name must be explicit or Keras's own);
every backbone builds on demand with ``GRAFT_ALL_BACKBONES=1`` (minutes: on a 2-core
machine NASNetMobile alone takes 20-35 s; ``benchmarks/applications_all.py`` times them).  Then one two-stage
transfer on VGG16, weights from a file the test writes, and ImageNet weights offline.
Nothing downloads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import yaml

pytest.importorskip("graft_applications")

import graft  # noqa: E402
import graft.testing  # noqa: E402
import graft_applications  # noqa: E402
from graft import validators  # noqa: E402
from graft.testing import params_problems, structure_params  # noqa: E402
from graft_applications import BACKBONES, KerasAppParams  # noqa: E402
from tests.observers import FitSpy, bitwise, read_report  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.filterwarnings("ignore:non-integer arguments to randrange"),
    pytest.mark.filterwarnings("ignore:This model usually expects 1 or 3 input channels"),
]
REPRESENTATIVE = ("VGG16", "MobileNet")  # caffe and tf preprocessing; the others on demand
ALL = os.environ.get("GRAFT_ALL_BACKBONES", "") not in ("", "0")


def params(raw):
    return structure_params(raw, KerasAppParams)


def problems(raw, shape=None):
    with validators.loading_model_input(shape):
        return params_problems(raw, KerasAppParams)


def keras_major() -> int:
    import keras

    return int(keras.__version__.split(".")[0])


def smallest(name: str) -> tuple[int, int, int]:
    return (BACKBONES[name].min_size, BACKBONES[name].min_size, 3)


# -- params, without TensorFlow ----------------------------------------------------------------


def test_docstring_example_is_valid_params():
    text = graft_applications.__doc__.split(".. code-block:: yaml")[1].split("**Feed raw pixels")[0]
    example = yaml.safe_load(textwrap.dedent(text))
    assert params(example["extractor"]["params"]) == KerasAppParams(
        backbone="ResNet50V2", weights="imagenet", bn_momentum=0.9
    )


def test_the_backbones_the_issue_names_are_offered():
    wanted = {"VGG16", "VGG19", "ResNet50", "ResNet50V2", "Xception", "InceptionV3", "DenseNet121", "EfficientNetB0",
              "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetV2B0", "ConvNeXtTiny", "NASNetMobile",
              "MobileNet"}
    assert wanted <= set(BACKBONES)
    assert params({"backbone": "Xception"}) == KerasAppParams("Xception", "avg", "none", None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, [(("params", "backbone"), "required key missing")]),
        ({"backbone": "resnet50"}, [(("params", "backbone"), "did you mean 'ResNet50'?")]),
        ({"backbone": "MobileNetV2"}, [(("params", "backbone"), "use plugin: mobilenet with variant: v2")]),
        ({"backbone": "VGG16", "pooling": "average"}, [(("params", "pooling"), "did you mean 'avg'?")]),
        ({"backbone": "VGG16", "weights": "imagenett"}, [(("params", "weights"), "did you mean 'imagenet'?")]),
        ({"backbone": "VGG16", "bn_momentum": 0.9},
         [(("params", "bn_momentum"), "VGG16 has no BatchNormalization layers; remove bn_momentum")]),
        ({"backbone": "ResNet50", "bn_momentum": 1.0}, [(("params", "bn_momentum"), "must be at least 0 and below 1")]),
    ],
)
def test_params_problems_at_their_paths(raw, expected):
    found = problems(raw)
    assert [path for path, _ in found][: len(expected)] == [path for path, _ in expected]
    for (_, message), (_, wanted) in zip(found, expected, strict=False):
        assert wanted in message


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_smallest_input_is_checked_when_the_spec_loads(name):
    backbone = BACKBONES[name]
    size = backbone.min_size
    assert params({"backbone": name}).backbone == name  # outside a spec load: nothing to compare with
    with validators.loading_model_input([size, size, 3]):
        assert params({"backbone": name, "weights": "imagenet"}).backbone == name
    [(path, message)] = problems({"backbone": name}, [size, size - 1, 3])
    assert path == ("params", "backbone")
    assert message.startswith(
        f"model.input_shape [{size}, {size - 1}, 3] does not fit {name}: "
        f"height and width must be at least {size}, got {size}x{size - 1}"
    )
    others = message.split("; or a backbone that takes it: ")[1].split(", ") if size > 32 else []
    assert others == [other for other, backbone in BACKBONES.items() if backbone.min_size <= size - 1]


def test_channels_rules():
    assert problems({"backbone": "MobileNet", "weights": "imagenet"}, [32, 32, 1]) == [
        (("params", "backbone"), "model.input_shape [32, 32, 1] does not fit MobileNet: imagenet weights need 3 "
         "channels (RGB), got 1")  # no backbone takes one channel with imagenet weights
    ]
    with validators.loading_model_input([32, 32, 1]):  # tf preprocessing and the built-in ones take any channels
        for name in ("MobileNet", "ResNet50V2", "EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny", "NASNetMobile"):
            assert params({"backbone": name}).backbone == name
    for name, mode in (("VGG16", "caffe"), ("ResNet50", "caffe"), ("DenseNet121", "torch")):
        [(_, message)] = problems({"backbone": name}, [32, 32, 1])
        assert f"its {mode} preprocessing subtracts the ImageNet mean of each RGB channel, so it needs 3" in message
    [(_, message)] = problems({"backbone": "VGG16"}, [32, 3])
    assert "it takes images: model.input_shape must be [height, width, channels], got [32, 3]" in message


def test_a_wrong_input_shape_is_reported_there_not_here():
    with validators.loading_model_input(["x", 3]):  # graft reports it at model.input_shape
        assert validators.model_input_shape() is None
        assert params({"backbone": "InceptionV3"}).backbone == "InceptionV3"
    assert validators.model_input_shape() is None


def test_graft_validate_reports_the_smallest_input_without_tensorflow(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "model:\n"
        "  input_shape: [64, 64, 3]\n"
        "  extractor:\n"
        "    plugin: keras_app\n"
        "    params: {backbone: InceptionV3, weights: imagenet}\n"
        "  heads: {label: {plugin: dense, loss: mse, params: {units: 1}}}\n"
        "stages:\n"
        "  - {name: one, epochs: 1, data: {source: synthetic, params: {samples: 4, targets: {label: level}}}}\n"
    )
    code = (
        "import sys\nfrom graft.commands.cli import main\ncode = main(['validate', sys.argv[1]])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print('HEAVY', heavy[:3], code)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, "spec.yaml"], cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert "HEAVY [] 1" in run.stdout, run.stdout + run.stderr
    assert (
        "error: spec.yaml: 1 problem\n"
        "  model.extractor.params.backbone (line 5): model.input_shape [64, 64, 3] does not fit InceptionV3: "
        "height and width must be at least 75, got 64x64; or a backbone that takes it: VGG16, VGG19, ResNet50, "
    ) in run.stderr


def test_keras2_differences_are_in_words():
    from graft_applications.backbones import keras2_differences

    assert keras2_differences(BACKBONES["DenseNet121"]) == (
        "DenseNet121 names layers differently under Keras 2.15 and Keras 3 (conv1_conv is conv1/conv, conv1_bn is "
        "conv1/bn, conv1_relu is conv1/relu under Keras 2.15)"
    )
    assert "tf.__operators__.add" in keras2_differences(BACKBONES["ConvNeXtTiny"])
    assert [name for name, backbone in BACKBONES.items() if keras2_differences(backbone)] == [
        "DenseNet121", "ConvNeXtTiny"
    ]


def test_import_does_not_import_tensorflow():
    graft.testing.assert_no_tensorflow_on_import("graft_applications")


def test_entry_point_is_installed():
    info = graft.testing.installed_plugin("keras_app")
    assert (info.entry_point, info.distribution) == ("graft_applications", "graft-applications")


# -- the models -----------------------------------------------------------------------------


def build_through_graft(name: str, shape=None, units: int = 2, **raw):
    """The extractor of ``name`` built by keras-graft's own builder (which refuses a layer Keras named
    unasked), with a dense head ``label`` of ``units``; the ``BuiltModel``."""
    from graft.model.builder import ModelBuilder
    from graft.plugins.registry import Registry
    from graft.spec.records import ExtractorRef, HeadSpec

    registry = Registry.discover(enabled={"keras_app"})
    head = HeadSpec("dense", "mse", structure_params({"units": units}, registry.params_class("head", "dense")))
    extractor = ExtractorRef("keras_app", params({"backbone": name, **raw}))
    return ModelBuilder(registry, shape or smallest(name), extractor, {"label": head}).build(seed=0)


_BUILT: dict[str, object] = {}


def built(name: str):
    if name not in _BUILT:
        _BUILT.clear()  # one model at a time: the memory of a 2-core test machine
        _BUILT[name] = build_through_graft(name)
    return _BUILT[name]


PREPROCESSING = {"caffe": "Normalization", "tf": "Rescaling", "torch": "Normalization", "built-in": None}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=[] if name in REPRESENTATIVE or ALL else [pytest.mark.skip(
        reason="GRAFT_ALL_BACKBONES=1 builds every backbone")]) for name in BACKBONES],
)
def test_builds_on_its_smallest_input_with_keras_names_and_its_preprocessing(name):
    import keras
    from keras import applications

    from graft.model.builder import leaf_layers

    backbone = BACKBONES[name]
    model = built(name)
    extractor = model.extractor
    assert extractor.name == "keras_app_extractor" and extractor.layers[0].name == "keras_app_input"
    assert tuple(extractor.output_shape) == (None, backbone.features)
    base = graft_applications.base_of(extractor)
    assert base.count_params() == backbone.params
    names = [layer.name for layer in leaf_layers(keras, extractor)]
    assert len(names) == len(set(names))
    assert [info.name for info in model.layers if info.in_extractor] == names
    kind = PREPROCESSING[backbone.preprocess]
    if kind is None:
        assert "keras_app_preprocess" not in names
    else:
        assert type(extractor.get_layer("keras_app_preprocess")).__name__ == kind
        assert not extractor.get_layer("keras_app_preprocess").weights
    # Keras 2.15 names some layers otherwise; the plan says so
    keras3 = {keras3 for keras3, _ in backbone.keras2_names}
    keras2 = {keras2 for _, keras2 in backbone.keras2_names}
    assert (keras3 if keras_major() >= 3 else keras2) <= set(names)
    assert not (keras2 if keras_major() >= 3 else keras3) & set(names)
    assert any(f"keras.applications.{name} without its top" in note for note in model.notes)
    assert any("differently under Keras 2.15" in note for note in model.notes) == bool(backbone.keras2_names)
    # raw pixels in: the same features as Keras's own preprocess_input before the bare model
    pixels = np.random.default_rng(0).uniform(0, 255, (2, *smallest(name))).astype("float32")
    module = getattr(applications, backbone.module)
    by_hand = np.asarray(base(module.preprocess_input(pixels.copy()), training=False))
    np.testing.assert_allclose(np.asarray(extractor(pixels, training=False)), by_hand, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_the_preprocessing_is_keras_preprocess_input(name):
    import keras
    from keras import applications

    from graft_applications.building import preprocess

    backbone = BACKBONES[name]
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, preprocess(keras, inputs, backbone.preprocess, "preprocess"))
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = getattr(applications, backbone.module).preprocess_input(pixels.copy())
    np.testing.assert_allclose(np.asarray(model(pixels)), np.asarray(expected), rtol=1e-5, atol=1e-4)
    if backbone.preprocess == "built-in":  # Keras's preprocess_input passes the pixels through: the model has it
        np.testing.assert_array_equal(np.asarray(expected), pixels)


@pytest.mark.slow
def test_max_pooling_and_bn_momentum():
    import keras

    model = build_through_graft("MobileNet", pooling="max", bn_momentum=0.9).extractor
    base = graft_applications.base_of(model)
    assert isinstance(base.layers[-1], keras.layers.GlobalMaxPooling2D)
    momenta = {layer.momentum for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}


def test_a_too_small_input_at_build_time_is_an_input_shape_error():
    with pytest.raises(graft_applications.InputShapeError) as caught:
        graft_applications.build_extractor(params=params({"backbone": "Xception"}), input_shape=(64, 80, 3))
    [(path, message)] = caught.value.items  # a SpecProblem: keras-graft reports it at model.extractor.params
    assert path == ()
    assert message.startswith(
        "model.input_shape [64, 80, 3] does not fit Xception: height and width must be at least 71, got 64x80"
    )


@pytest.mark.slow
def test_conformance():  # graft validate without TensorFlow, params at YAML paths, names, weights by name
    graft.testing.check_extractor_plugin(
        "keras_app", {"backbone": "MobileNet"}, input_shape=(32, 32, 3), bad_params={"backbone": "InceptionV3"}
    )


# -- a transfer on Keras's layer names ----------------------------------------------------------

SPEC = """\
seed: 5
model:
  input_shape: [32, 32, 3]
  extractor: {plugin: keras_app, params: {backbone: VGG16}}
  heads:
    label: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 3}}
stages:
  - name: pretrain
    data: {source: npz, params: {path: a.npz, inputs: x, targets: {label: y}}}
    epochs: 1
    batch_size: 4
  - name: top
    init: {stage: pretrain}
    data: {source: npz, params: {path: b.npz, inputs: x, targets: {label: y}}}
    epochs: 1
    batch_size: 4
    optimizer: {name: sgd, learning_rate: 0.01}
    policy: {plugin: layers, params: {train: ["block5_*", label], default: freeze}}
"""
TOP = ["block5_conv1", "block5_conv2", "block5_conv3", "label"]


@pytest.mark.slow
def test_a_transfer_stage_trains_keras_layers_by_name_and_keeps_the_rest_bitwise(tmp_path):
    from graft.model.weights import FILENAME, read_weights
    from graft.planning.stageplan import StagePlan
    from graft.planning.view import render_text
    from graft.plugins.registry import Registry
    from graft.runs.stages import run_spec
    from graft.spec.specfile import load_spec

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", x=rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32"),
                 y=rng.integers(0, 3, 8))
    (tmp_path / "spec.yaml").write_text(SPEC)
    registry = Registry.discover(enabled={"keras_app"})
    spy = FitSpy()
    run_spec(load_spec(str(tmp_path / "spec.yaml"), registry), registry, str(tmp_path / "out"), log=lambda _: None,
             observer=spy)
    pretrain = read_weights(str(tmp_path / "out" / "pretrain" / FILENAME))
    top = read_weights(str(tmp_path / "out" / "top" / FILENAME))
    assert sorted(name for name, flag in spy.trainable(1).items() if flag) == sorted(TOP)
    weighted = [name for name, weights in pretrain.items() if weights]
    assert len(weighted) == 14  # 13 convolutions and the head
    for name in weighted:
        assert bitwise(spy.start(1, name), pretrain[name]), f"{name} was not loaded from pretrain"
        assert bitwise(top[name], pretrain[name]) != (name in TOP), f"{name}: trains {name in TOP}"
    # the plan (as graft plan shows it, from the report) has Keras's names and the plugin's note
    plan = StagePlan.from_json(read_report(str(tmp_path / "out"), "top")["plan"])
    assert plan.notes[0] == (
        "keras_app: keras.applications.VGG16 without its top, avg pooling, weights none; caffe preprocessing in "
        "keras_app_preprocess: feed raw pixels (0-255)"
    )
    text = render_text([plan])
    assert f"  note: {plan.notes[0]}\n" in text
    for name in ("keras_app_preprocess", "block1_conv1", "block5_conv3"):
        assert f"  {name} " in text
    # model.keras loads with safe_mode on (the caffe channel flip is no Lambda) and computes the same
    finished = graft.load_stage(str(tmp_path / "out"), "top")
    x = np.load(tmp_path / "b.npz")["x"][:2]
    again = build_through_graft("VGG16", units=3)
    for info in again.layers:
        if info.has_weights:
            info.layer.set_weights(top[info.name])
    np.testing.assert_allclose(np.asarray(finished.model(x)), np.asarray(again.model(x)), rtol=1e-4, atol=1e-4)


# -- weights from a file ----------------------------------------------------------------------


def save_base(base, path: str) -> None:
    if path.endswith(".h5") and not path.endswith(".weights.h5") and keras_major() >= 3:
        base.save(path)  # Keras 3 writes .h5 (legacy HDF5) only with model.save
    else:
        base.save_weights(path)


def mobilenet_base(seed: int):
    """The bare Keras MobileNet of a keras_app extractor (32x32, weights none) built with ``seed``."""
    import keras

    keras.utils.set_random_seed(seed)
    extractor = graft_applications.build_extractor(params({"backbone": "MobileNet"}), (32, 32, 3))
    return graft_applications.base_of(extractor)


@pytest.mark.parametrize("suffix", [".h5"])  # the other suffixes go the same way (graft-mobilenet's tests)
def test_weights_from_a_local_file_load_bitwise(tmp_path, monkeypatch, suffix):
    import keras

    source = mobilenet_base(1)
    (tmp_path / "w").mkdir()
    save_base(source, str(tmp_path / "w" / f"base{suffix}"))
    monkeypatch.chdir("/")  # a relative path is relative to the spec's folder
    with validators.loading_spec_in(str(tmp_path)):
        checked = params({"backbone": "MobileNet", "weights": f"w/base{suffix}"})
    keras.utils.set_random_seed(2)
    loaded = graft_applications.base_of(graft_applications.build_extractor(checked, (32, 32, 3), str(tmp_path)))
    fresh = mobilenet_base(2)
    pairs = [(a, b, c) for a, b, c in zip(source.layers, loaded.layers, fresh.layers, strict=True) if a.weights]
    assert len(pairs) == 54
    for saved, got, _ in pairs:
        assert all(s.tobytes() == g.tobytes() for s, g in zip(saved.get_weights(), got.get_weights(), strict=True))
    conv = [(got, other) for _, got, other in pairs if got.name == "conv_pw_13"]
    assert conv and conv[0][0].get_weights()[0].tobytes() != conv[0][1].get_weights()[0].tobytes()


def test_weights_file_problems(tmp_path):
    with validators.loading_spec_in(str(tmp_path)):
        assert problems({"backbone": "VGG16", "weights": "gone.weights.h5"}) == [
            (("params", "weights"), f"file not found: {tmp_path / 'gone.weights.h5'}")
        ]
    mobilenet = mobilenet_base(1)
    path = str(tmp_path / "mobilenet.weights.h5")
    mobilenet.save_weights(path)
    with warnings.catch_warnings(), pytest.raises(graft_applications.WeightsLoadError) as caught:
        warnings.simplefilter("ignore")  # Keras 3 warns per layer it skips before it raises
        graft_applications.build_extractor(params({"backbone": "VGG16", "weights": path}), (32, 32, 3))
    assert str(caught.value).startswith(f"the weights file {path} does not load into "
                                        "keras.applications.VGG16(include_top=False): ")
    assert "bare keras.applications.VGG16 with include_top False" in str(caught.value)
    checked = params({"backbone": "VGG16", "weights": path})
    os.remove(path)  # gone between graft validate and the build
    with pytest.raises(graft_applications.WeightsFileNotFound, match=f"keras_app weights file not found: {path}"):
        graft_applications.build_extractor(checked, (32, 32, 3))


# -- imagenet weights offline -------------------------------------------------------------------

OFFLINE = r"""
import json, os, re, sys
import keras
import graft_applications as ga

folder = ga.keras_cache_folder(keras)
out = {"folder": folder, "errors": {}}
for name in ("VGG16", "MobileNet"):
    try:
        ga.build_extractor(ga.KerasAppParams(name, weights="imagenet"), (32, 32, 3))
    except ga.WeightsUnavailable as exc:
        out["errors"][name] = str(exc)
# MobileNet's file has no hash: one put where the message says loads
wanted = re.search(r"Keras wants the file (\S+)", out["errors"]["MobileNet"]).group(1)
keras.utils.set_random_seed(3)
base = ga.base_of(ga.build_extractor(ga.KerasAppParams("MobileNet"), (32, 32, 3)))
target = os.path.join(folder, wanted)
base.save(target) if keras.__version__.startswith("3") else base.save_weights(target)
loaded = ga.base_of(ga.build_extractor(ga.KerasAppParams("MobileNet", weights="imagenet"), (32, 32, 3)))
out["loaded_equal"] = [a.tobytes() == b.tobytes() for a, b in zip(base.get_weights(), loaded.get_weights())]
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_imagenet_offline_names_the_file_url_and_folder(tmp_path):
    home, keras_home = tmp_path / "home", tmp_path / "keras_home"
    (home / ".keras" / "models").mkdir(parents=True)
    (keras_home / "models").mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if key.lower() not in ("no_proxy", "keras_home")}
    closed = "http://127.0.0.1:9"  # offline even on a machine with internet access
    env.update(HOME=str(home), KERAS_HOME=str(keras_home), TF_CPP_MIN_LOG_LEVEL="3",
               http_proxy=closed, https_proxy=closed, HTTP_PROXY=closed, HTTPS_PROXY=closed)
    run = subprocess.run([sys.executable, "-c", OFFLINE], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT ", 1)[1])
    folder = out["folder"]
    assert folder == str((keras_home if keras_major() >= 3 else home / ".keras") / "models")
    vgg = out["errors"]["VGG16"]
    file = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    url = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{file}"
    assert vgg.startswith("the imagenet weights of keras.applications.VGG16(include_top=False) are not in Keras's "
                          f"cache and could not be downloaded (Exception: URL fetch failure on {url}: ")
    assert f"\n  Keras wants the file {file}\n  from {url}\n" in vgg
    assert f"put it in the folder {folder} (as {os.path.join(folder, file)}) so it works offline next time." in vgg
    assert "Keras checks this file's MD5 (6d6bbae143d832006294945121d1f1fc): only the original file works" in vgg
    mobilenet = out["errors"]["MobileNet"]
    assert "\n  Keras wants the file mobilenet_1_0_224_tf_no_top.h5\n" in mobilenet and "MD5" not in mobilenet
    assert len(out["loaded_equal"]) > 50 and all(out["loaded_equal"])
