"""keras-graft plugin ``mobilenet``: Keras's MobileNetV2 or MobileNetV3 as the feature extractor.

The extractor wraps ``keras.applications.MobileNetV2``, ``MobileNetV3Small`` or
``MobileNetV3Large``, always with ``include_top=False`` and global pooling, so the
features have shape ``(batch, channels)``: 1280 for v2 (more when alpha > 1),
``576 * alpha`` for v3_small and ``960 * alpha`` for v3_large, rounded to a multiple of 8
(432 and 720 at alpha 0.75).

**Feed raw pixels in [0, 255]**: preprocessing is part of the extractor.  For
v2 a ``Rescaling(1/127.5, offset=-1)`` layer named ``mobilenet_preprocess``
comes first (what ``keras.applications.mobilenet_v2.preprocess_input`` does);
the v3 models carry their own ``Rescaling`` layer (``include_preprocessing=True``).

The extractor is a model named ``mobilenet_extractor`` with the input
``mobilenet_input``; the Keras model sits inside it as a nested model (see
``base_of``) and keeps Keras's own layer names, which policies address by name
or glob (``graft validate`` checks them against the list of the installed Keras major
version that ships with this plugin): ``Conv1``, ``block_1_expand``, ..., ``block_16_project``, ``Conv_1``
for v2; for v3 ``conv``, ``expanded_conv_project``, ..., ``conv_1`` under Keras 3,
while Keras 2.15 names v3's layers differently (``Conv``, ``Conv/BatchNorm``,
``expanded_conv/project``, ``Conv_1``, ...).  ``graft plan`` lists them all.

``model.input_shape`` is ``[height, width, channels]``: square, at least 32x32
(``[224, 224, 3]`` matches the ImageNet training); ``imagenet`` weights need 3
channels (RGB).

.. code-block:: yaml

    extractor:
      plugin: mobilenet
      params:
        variant: v2         # v2 (default) | v3_small | v3_large
        alpha: 1.0          # width multiplier; default 1.0
        pooling: avg        # avg (default) | max
        weights: imagenet   # none (default) | imagenet | a local weights file

``weights``
-----------

``none``
    A fresh initialisation, seeded by the spec's ``seed``.

``imagenet``
    Keras's ImageNet weights, read from Keras's cache folder or downloaded into
    it on first use.  Keras has them for alpha 0.35, 0.5, 0.75, 1.0, 1.3 and
    1.4 (v2) and 0.75 and 1.0 (v3); another alpha is reported at
    ``params.alpha``.  The cache folder is ``<keras home>/models``: under Keras 3
    ``$KERAS_HOME/models`` if ``KERAS_HOME`` is set, else ``~/.keras/models``;
    under Keras 2.15 always ``~/.keras/models`` (its download ignores
    ``KERAS_HOME``); both use ``/tmp/.keras/models`` if that folder is not
    writable.  Without internet access and without the file, the build raises
    ``WeightsUnavailable`` naming the file Keras wants, its URL and the folder
    to put it in, so that it works offline next time.  Keras checks no hash
    of the v2 files (any file of that name with matching weights loads); it
    checks the MD5 of the v3 files and deletes a file that does not match
    before downloading again, so for v3 only the original file works.

a path ending ``.weights.h5``, ``.h5`` or ``.keras``
    Weights of the bare Keras model of the same variant and alpha (with
    include_top False), passed to the ``keras.applications`` constructor,
    which loads them with ``model.load_weights`` (by the model's structure,
    not by layer name).  For example save them from an extractor this
    plugin built: ``graft_mobilenet.base_of(extractor).save_weights("base.weights.h5")``.
    ``.h5`` is the legacy HDF5 format: Keras 2 ``save_weights("x.h5")``, or
    ``model.save("x.h5")`` of the bare model (Keras 3 can no longer write
    ``save_weights`` to ``.h5``).  A ``.keras`` file must hold the bare Keras
    model, not a whole keras-graft model (``model.keras`` of a run does not
    fit; start a stage from it with the stage's ``init`` instead).  A
    relative path is relative to the spec file's folder, like every path in
    a spec; ``~`` is expanded.
    A missing file raises ``WeightsFileNotFound`` (a ``FileNotFoundError``)
    naming the absolute path; a file that does not fit raises
    ``WeightsLoadError``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import graft
from graft import check_allocation, validators
from graft_applications.building import base_of, build_application, preprocess, set_bn_momentum
from graft_applications.layerlists import declared
from graft_applications.offline import KerasFile, keras_cache_folder
from graft_applications.weights import weights_argument as shared_weights_argument
from graft_applications.weights import weights_value
from graft_mobilenet.errors import (
    InputShapeError,
    MobileNetError,
    WeightsFileNotFound,
    WeightsLoadError,
    WeightsUnavailable,
)
from graft_mobilenet.imagenet import CONSTRUCTORS, describe, imagenet_file
from graft_mobilenet.layers import key

INPUT_NAME = "mobilenet_input"
PREPROCESS_NAME = "mobilenet_preprocess"
MODEL_NAME = "mobilenet_extractor"
MIN_SIZE = 32

VARIANTS = ("v2", "v3_small", "v3_large")
POOLINGS = ("avg", "max")
# The alphas Keras has ImageNet weights for (the checks in keras.applications.mobilenet_v2 / _v3).
IMAGENET_ALPHAS = {
    "v2": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    "v3_small": (0.75, 1.0),
    "v3_large": (0.75, 1.0),
}
# parameters of each variant without its top at alpha 1.0 (keras.applications, as built here)
BASE_PARAMS = {"v2": 2_257_984, "v3_small": 939_120, "v3_large": 2_996_352}


# -- params ------------------------------------------------------------------------


@attrs.frozen
class MobileNetParams:
    """The ``params`` of ``extractor: {plugin: mobilenet}``."""

    STARTER: ClassVar[dict] = {"alpha": 0.35}
    STARTER_INPUT_SHAPE: ClassVar[tuple] = (96, 96, 3)

    variant: str = attrs.field(default="v2", validator=validators.one_of(VARIANTS))
    alpha: float = attrs.field(default=1.0, validator=validators.positive)
    pooling: str = attrs.field(default="avg", validator=validators.one_of(POOLINGS))
    weights: str = attrs.field(default="none", validator=weights_value)
    bn_momentum: float | None = attrs.field(default=None, validator=attrs.validators.optional(validators.fraction))

    def __attrs_post_init__(self) -> None:
        # weights grow with alpha squared (channels scale with alpha on both sides of each convolution)
        check_allocation(
            int(BASE_PARAMS[self.variant] * max(self.alpha, 1.0) ** 2),
            f"{CONSTRUCTORS[self.variant]} with alpha {self.alpha}",
            ("alpha",),
        )
        allowed = IMAGENET_ALPHAS[self.variant]
        if self.weights == "imagenet" and self.alpha not in allowed:
            raise graft.SpecProblem(
                ("alpha",),
                f"Keras has imagenet weights for {self.variant} only with alpha "
                f"{', '.join(str(a) for a in allowed)}; got {self.alpha} (or use weights: none)",
            )


# -- the hook ------------------------------------------------------------------------


@graft.hookimpl
def build_extractor(params: MobileNetParams, input_shape, base_dir="."):
    """Keras's MobileNet (no top, pooled) behind its preprocessing, as ``mobilenet_extractor``."""
    import keras

    shape = check_input_shape(params, input_shape)
    weights = weights_argument(params.weights, base_dir)
    base = _build_base(keras, params, shape, weights)
    set_bn_momentum(keras, base, params.bn_momentum)
    inputs = keras.Input(shape=shape, name=INPUT_NAME)
    # v2: what keras.applications.mobilenet_v2.preprocess_input does, [0, 255] -> [-1, 1]; v3 has its own
    x = preprocess(keras, inputs, "tf" if params.variant == "v2" else "built-in", PREPROCESS_NAME)
    features = base(x)
    return keras.Model(inputs, features, name=MODEL_NAME)


@graft.hookimpl
def extractor_layers(params: MobileNetParams) -> list[graft.DeclaredLayer] | None:
    """The variant's layers under the installed Keras, from the list shipped with this plugin
    (``graft_applications.layerlists``): ``graft validate`` checks a spec's layer names against them."""
    return declared(__name__, key(params.variant, params.pooling))


def check_input_shape(params: MobileNetParams, input_shape) -> tuple[int, int, int]:
    """``input_shape`` as ``(height, width, channels)``, or an ``InputShapeError`` naming every problem."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise InputShapeError(
            f"the mobilenet extractor needs model.input_shape [height, width, channels], got {list(shape)}"
        )
    height, width, channels = shape
    problems = []
    if height != width:
        problems.append(f"the images must be square (height == width), got {height}x{width}")
    if min(height, width) < MIN_SIZE:
        problems.append(f"height and width must be at least {MIN_SIZE}, got {height}x{width}")
    if params.weights == "imagenet" and channels != 3:
        problems.append(f"imagenet weights need 3 channels (RGB), got {channels}")
    elif channels < 1:
        problems.append(f"channels must be at least 1, got {channels}")
    if problems:
        raise InputShapeError(
            f"model.input_shape {list(shape)} does not fit the mobilenet extractor: {'; '.join(problems)}"
        )
    return shape


def weights_argument(value: str, base_dir: str = ".") -> str | None:
    """The ``weights=`` argument for Keras: None, ``"imagenet"`` or the absolute path of an existing file
    (a relative path is relative to ``base_dir``, the spec's folder)."""
    return shared_weights_argument(value, base_dir, plugin="mobilenet")


def _build_base(keras, params: MobileNetParams, shape, weights):
    options = dict(input_shape=shape, alpha=params.alpha, include_top=False, weights=weights, pooling=params.pooling)
    if params.variant != "v2":
        options["include_preprocessing"] = True
    return build_application(
        keras, CONSTRUCTORS[params.variant], options, what=describe(params),
        imagenet=KerasFile(*imagenet_file(params, shape)),
        file_hint="It must hold the weights of the bare Keras model of the same variant and alpha, "
        "e.g. saved with graft_mobilenet.base_of(extractor).save_weights('base.weights.h5')",
    )


__all__ = [
    "InputShapeError",
    "MobileNetError",
    "MobileNetParams",
    "WeightsFileNotFound",
    "WeightsLoadError",
    "WeightsUnavailable",
    "base_of",
    "build_extractor",
    "check_input_shape",
    "imagenet_file",
    "keras_cache_folder",
    "weights_argument",
]
