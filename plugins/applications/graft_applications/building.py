"""Building blocks of an extractor around a ``keras.applications`` model (call them inside ``build_extractor``,
with ``keras`` imported there): the model itself with clear weights errors, the input preprocessing as
layers, BatchNormalization momentum, and the nested model.  Shared by ``keras_app`` and ``mobilenet``.

The preprocessing is made of Keras's own layers (and, for ``caffe``, a channel flip), never a
``Lambda``, so the saved ``model.keras`` loads with ``safe_mode`` on and without this plugin.
"""

from __future__ import annotations

from typing import Any

from graft import accepting_keras_names
from graft_applications.errors import WeightsLoadError
from graft_applications.offline import KerasFile, imagenet_error

# keras.applications.imagenet_utils.preprocess_input: the ImageNet statistics of each mode
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("caffe", "tf", "torch", "built-in")


def build_application(
    keras, constructor: str, options: dict[str, Any], *, what: str, imagenet: KerasFile | None, file_hint: str
):
    """``keras.applications.<constructor>(**options)``, its layer names accepted as they are.

    A failure to get the imagenet weights raises ``WeightsUnavailable`` naming the file,
    URL and cache folder (``imagenet`` says which file); a weights file that does not fit
    raises ``WeightsLoadError`` with ``file_hint`` (where such a file comes from).
    """
    weights = options.get("weights")
    try:
        with accepting_keras_names():  # Keras names some layers itself (global_average_pooling2d, tf.__operators__.add)
            return getattr(keras.applications, constructor)(**options)
    except Exception as exc:
        if weights == "imagenet" and imagenet is not None:
            error = imagenet_error(keras, what, imagenet, exc)
            if error is None:
                raise
            raise error from exc
        if weights not in (None, "imagenet"):
            message = f"the weights file {weights} does not load into {what}: {exc}\n  {file_hint}"
            raise WeightsLoadError(message) from exc
        raise


def preprocess(keras, x, mode: str, name: str):
    """``x`` (raw pixels, 0 to 255) as ``keras.applications.imagenet_utils.preprocess_input`` prepares it in ``mode``:

    - ``tf``: to [-1, 1], a ``Rescaling`` layer ``name``;
    - ``torch``: to [0, 1], then each channel less the ImageNet mean, over its standard deviation: one
      ``Normalization`` layer ``name`` (with the statistics scaled by 255);
    - ``caffe``: RGB to BGR (a channel flip), then each channel less the ImageNet mean: a ``Normalization``
      layer ``name`` (the flip is a Keras operation, under Keras 2 a layer ``tf.__operators__.getitem``);
    - ``built-in``: nothing, the model does it itself.
    """
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)(x)
    if mode == "torch":
        mean = [255.0 * value for value in TORCH_MEAN]
        variance = [(255.0 * value) ** 2 for value in TORCH_STD]
        return keras.layers.Normalization(mean=mean, variance=variance, name=name)(x)
    if mode == "caffe":
        with accepting_keras_names():  # Keras 2 makes the flip a layer and names it
            flipped = x[:, :, :, ::-1]
        return keras.layers.Normalization(mean=list(CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0], name=name)(flipped)
    if mode == "built-in":
        return x
    raise ValueError(f"unknown preprocessing mode {mode!r}; one of {', '.join(MODES)}")


def set_bn_momentum(keras, model, momentum: float | None) -> int:
    """Set ``momentum`` on every BatchNormalization layer of ``model`` (nested models included); how many."""
    if momentum is None:
        return 0
    count = 0
    for layer in _leaves(keras, model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def base_of(extractor):
    """The Keras application model nested in an extractor built with these blocks."""
    import keras

    return next(layer for layer in extractor.layers if isinstance(layer, keras.Model))


def _leaves(keras, model) -> list:
    found = []
    for layer in model.layers:
        found += _leaves(keras, layer) if isinstance(layer, keras.Model) else [layer]
    return found
