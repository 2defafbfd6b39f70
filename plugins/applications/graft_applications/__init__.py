"""keras-graft plugin ``keras_app``: a ``keras.applications`` backbone, by name, as the feature extractor.

The extractor wraps ``keras.applications.<backbone>`` with ``include_top=False`` and
global pooling, so the features have shape ``(batch, channels)``: 512 for VGG16,
2048 for ResNet50, 1280 for EfficientNetB0, ... (``BACKBONES`` has every backbone's).

.. code-block:: yaml

    extractor:
      plugin: keras_app
      params:
        backbone: ResNet50V2   # VGG16, VGG19, ResNet50, ResNet50V2, Xception, InceptionV3, DenseNet121,
                               # EfficientNetB0..B3, EfficientNetV2B0, ConvNeXtTiny, NASNetMobile, MobileNet
        pooling: avg           # avg (default) | max
        weights: imagenet      # none (default) | imagenet | a local weights file
        bn_momentum: 0.9       # optional: BatchNormalization momentum (Keras's default 0.99 or 0.999)

**Feed raw pixels in [0, 255]**: each family's ``preprocess_input`` is part of the
extractor, as Keras layers (no ``Lambda``: the saved ``model.keras`` loads in safe mode),
in a layer named ``keras_app_preprocess`` before the Keras model:

- ``caffe`` (VGG16, VGG19, ResNet50): RGB to BGR, less the ImageNet mean of each channel;
- ``tf`` (ResNet50V2, Xception, InceptionV3, NASNetMobile, MobileNet): to [-1, 1];
- ``torch`` (DenseNet121): to [0, 1], less the ImageNet mean, over the standard deviation;
- built in (EfficientNet, EfficientNetV2, ConvNeXt): the Keras model takes raw pixels itself.

The extractor is a model named ``keras_app_extractor`` with the input ``keras_app_input``;
the Keras model sits inside it as a nested model (``base_of``) and keeps Keras's own
layer names, which policies address by name or glob (``block5_conv3``, ``conv5_block3_out``,
``block14_sepconv2``, ``top_conv``, ...); ``graft plan`` lists them.  A few differ between
Keras 2.15 and Keras 3 (DenseNet's ``conv1_conv`` is ``conv1/conv`` under Keras 2.15):
``graft plan`` says so in a note under each stage, and the README has the table.
``graft validate`` checks the names a spec gives against the list of the installed Keras
major version that ships with this plugin (``graft_applications.layerlists``).

``model.input_shape`` is ``[height, width, channels]``, each side at least the backbone's
smallest input (71 for Xception, 75 for InceptionV3, 32 for the others), checked by
``graft validate``.  ``imagenet`` weights need 3 channels; so do the ``caffe`` and
``torch`` preprocessings (a mean per RGB channel).

``weights``
-----------

``none``
    A fresh initialisation, seeded by the spec's ``seed``.

``imagenet``
    Keras's ImageNet weights, read from Keras's cache folder or downloaded into it on
    first use.  Offline and without the file, the build raises ``WeightsUnavailable``
    naming the file Keras wants, its URL and the folder to put it in (``<keras home>/models``:
    ``$KERAS_HOME/models`` or ``~/.keras/models`` under Keras 3, ``~/.keras/models`` under
    Keras 2.15) so that it works offline next time.  Keras checks the file's hash
    (MobileNet's excepted), so only the original file works.

a path ending ``.weights.h5``, ``.h5`` or ``.keras``
    Weights of the bare Keras model of the same backbone (include_top False), passed to
    the ``keras.applications`` constructor, which loads them by the model's structure.
    Save them from an extractor this plugin built:
    ``graft_applications.base_of(extractor).save_weights("base.weights.h5")``.  A relative
    path is relative to the spec file's folder; ``~`` is expanded.  A missing file is
    reported by ``graft validate``; a file that does not fit raises ``WeightsLoadError``.
    EfficientNetB0..B3: Keras adds an ImageNet rescaling layer only for ``weights:
    imagenet``, so Keras's ImageNet file given as a path computes other features; put it in
    Keras's cache folder and use ``weights: imagenet`` instead.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import graft
from graft import validators
from graft_applications.backbones import BACKBONES, ELSEWHERE, NAMES, Backbone, keras2_differences
from graft_applications.building import base_of, build_application, preprocess, set_bn_momentum
from graft_applications.errors import (
    InputShapeError,
    KerasAppError,
    WeightsFileNotFound,
    WeightsLoadError,
    WeightsUnavailable,
)
from graft_applications.layerlists import declared
from graft_applications.offline import KerasFile, imagenet_error, keras_cache_folder
from graft_applications.weights import weights_argument, weights_value

INPUT_NAME = "keras_app_input"
PREPROCESS_NAME = "keras_app_preprocess"
MODEL_NAME = "keras_app_extractor"
POOLINGS = ("avg", "max")


# -- params ------------------------------------------------------------------------


def _offered_elsewhere(_instance, _attribute, value) -> None:
    if value in ELSEWHERE:
        raise graft.SpecProblem((), f"'{value}' is not offered by keras_app; use {ELSEWHERE[value]}")


@attrs.frozen
class KerasAppParams:
    """The ``params`` of ``extractor: {plugin: keras_app}``."""

    STARTER: ClassVar[dict] = {"backbone": "MobileNet"}
    STARTER_INPUT_SHAPE: ClassVar[tuple] = (96, 96, 3)

    backbone: str = attrs.field(validator=[_offered_elsewhere, validators.one_of(NAMES)])
    pooling: str = attrs.field(default="avg", validator=validators.one_of(POOLINGS))
    weights: str = attrs.field(default="none", validator=weights_value)
    bn_momentum: float | None = attrs.field(default=None, validator=attrs.validators.optional(validators.fraction))

    def __attrs_post_init__(self) -> None:
        backbone = BACKBONES.get(self.backbone)  # validators run after this: it may be a wrong name
        if backbone is None:
            return
        problems = graft.Problems()
        if self.bn_momentum is not None and not backbone.batch_norm:
            problems.add(("bn_momentum",), f"{backbone.name} has no BatchNormalization layers; remove bn_momentum")
        shape = validators.model_input_shape()
        if shape is not None:
            found = input_problems(backbone, self.weights, shape)
            if found:
                problems.add(("backbone",), _shape_message(backbone, self.weights, shape, found))
        problems.raise_all()


def input_problems(backbone: Backbone, weights: str, shape: tuple[int, ...]) -> list[str]:
    """What is wrong with ``model.input_shape`` ``shape`` for ``backbone`` with ``weights``, in words."""
    if len(shape) != 3:
        return [f"it takes images: model.input_shape must be [height, width, channels], got {list(shape)}"]
    height, width, channels = shape
    problems = []
    if min(height, width) < backbone.min_size:
        problems.append(f"height and width must be at least {backbone.min_size}, got {height}x{width}")
    if weights == "imagenet" and channels != 3:
        problems.append(f"imagenet weights need 3 channels (RGB), got {channels}")
    elif backbone.rgb_only and channels != 3:
        problems.append(
            f"its {backbone.preprocess} preprocessing subtracts the ImageNet mean of each RGB channel, "
            f"so it needs 3 channels, got {channels}"
        )
    return problems


def _shape_message(backbone: Backbone, weights: str, shape: tuple[int, ...], problems: list[str]) -> str:
    fitting = [other.name for other in BACKBONES.values() if not input_problems(other, weights, shape)]
    others = f"; or a backbone that takes it: {', '.join(fitting)}" if fitting else ""
    return f"model.input_shape {list(shape)} does not fit {backbone.name}: {'; '.join(problems)}{others}"


# -- the hook ------------------------------------------------------------------------


@graft.hookimpl
def build_extractor(params: KerasAppParams, input_shape, base_dir="."):
    """The Keras application (no top, pooled) behind its preprocessing, as ``keras_app_extractor``."""
    import keras

    backbone = BACKBONES[params.backbone]
    shape = check_input_shape(params, input_shape)
    options = dict(
        input_shape=shape, include_top=False, weights=weights_argument(params.weights, base_dir), pooling=params.pooling
    )
    base = build_application(
        keras, backbone.name, options, what=backbone.keras_call(), imagenet=backbone.imagenet_file(shape),
        file_hint=f"It must hold the weights of the bare keras.applications.{backbone.name} with include_top False, "
        "e.g. saved with graft_applications.base_of(extractor).save_weights('base.weights.h5')",
    )
    set_bn_momentum(keras, base, params.bn_momentum)
    inputs = keras.Input(shape=shape, name=INPUT_NAME)
    features = base(preprocess(keras, inputs, backbone.preprocess, PREPROCESS_NAME))
    model = keras.Model(inputs, features, name=MODEL_NAME)
    for note in plan_notes(backbone, params, int(keras.__version__.split(".")[0])):
        graft.add_plan_note(model, note)
    return model


@graft.hookimpl
def extractor_layers(params: KerasAppParams) -> list[graft.DeclaredLayer] | None:
    """The backbone's layers under the installed Keras, from the list shipped with this plugin
    (``graft_applications.layerlists``): ``graft validate`` checks a spec's layer names against them."""
    if params.weights == "imagenet" and BACKBONES[params.backbone].module == "efficientnet":
        return None  # Keras adds a rescaling layer for the ImageNet weights only
    return declared(__name__, f"{params.backbone}/{params.pooling}")


def check_input_shape(params: KerasAppParams, input_shape) -> tuple[int, int, int]:
    """``input_shape`` as ``(height, width, channels)``, or an ``InputShapeError`` naming every problem."""
    shape = tuple(int(size) for size in input_shape)
    problems = input_problems(BACKBONES[params.backbone], params.weights, shape)
    if problems:
        raise InputShapeError(_shape_message(BACKBONES[params.backbone], params.weights, shape, problems))
    return shape[0], shape[1], shape[2]  # three sizes: input_problems said so


def plan_notes(backbone: Backbone, params: KerasAppParams, keras_major: int) -> list[str]:
    """The lines ``graft plan`` shows under each stage: the preprocessing, and names that differ in Keras 2."""
    if backbone.preprocess == "built-in":
        preprocessing = "its own preprocessing is built in"
    else:
        preprocessing = f"{backbone.preprocess} preprocessing in {PREPROCESS_NAME}"
    notes = [
        f"keras_app: keras.applications.{backbone.name} without its top, {params.pooling} pooling, "
        f"weights {params.weights}; {preprocessing}: feed raw pixels (0-255)"
    ]
    differences = keras2_differences(backbone)
    if differences:
        notes.append(f"{differences}; this is Keras {keras_major}: a policy naming these layers works under one only")
    return notes


__all__ = [
    "BACKBONES",
    "Backbone",
    "InputShapeError",
    "KerasAppError",
    "KerasAppParams",
    "KerasFile",
    "WeightsFileNotFound",
    "WeightsLoadError",
    "WeightsUnavailable",
    "base_of",
    "build_extractor",
    "check_input_shape",
    "imagenet_error",
    "input_problems",
    "keras_cache_folder",
    "weights_argument",
]
