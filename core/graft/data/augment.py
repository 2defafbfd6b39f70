"""Augmentation at work: the Keras preprocessing layers that apply a stage's ``data.augment`` entries
(``graft.spec.augment``) to batches of training inputs.

``make_augmenter`` turns the entries into a callable that maps a batch of
training inputs to augmented inputs, each layer seeded from the stage's seed.
The layers keep their random state between calls, so every batch and every
epoch is augmented differently, and two runs with the same seed augment the
same batches the same way as long as the batches reach the callable one at a
time, in order (a sequential ``dataset.map``; parallel calls race for the
random state).  Keras is passed in; TensorFlow is imported only inside the callables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from graft.spec.augment import (
    Augmentation,
    Brightness,
    Contrast,
    Flip,
    Noise,
    Rotation,
    Translation,
    Zoom,
    describe,
)

PIXEL_RANGE = (0, 255)  # images arrive as raw pixel values (what image_dataset_from_directory gives)


def _flip(keras, entry: Flip, seed: int, name: str):
    return keras.layers.RandomFlip(entry.flip, seed=seed, name=name)


def _rotation(keras, entry: Rotation, seed: int, name: str):
    return keras.layers.RandomRotation(entry.rotation, seed=seed, name=name)


def _zoom(keras, entry: Zoom, seed: int, name: str):
    return keras.layers.RandomZoom(entry.zoom, seed=seed, name=name)


def _translation(keras, entry: Translation, seed: int, name: str):
    return keras.layers.RandomTranslation(entry.translation, entry.translation, seed=seed, name=name)


def _contrast(keras, entry: Contrast, seed: int, name: str):
    return keras.layers.RandomContrast(entry.contrast, seed=seed, name=name)


def _brightness(keras, entry: Brightness, seed: int, name: str):
    return keras.layers.RandomBrightness(entry.brightness, value_range=PIXEL_RANGE, seed=seed, name=name)


def _noise(keras, entry: Noise, seed: int, name: str):
    # Keras 3's GaussianNoise takes a stddev of at most 1: draw unit noise and scale it (see ScaledNoise).
    # Keras 2's draws with a stateless op by default, the same noise every epoch: force its generator.
    options = {"force_generator": True} if _keras_major(keras) < 3 else {}
    return ScaledNoise(keras.layers.GaussianNoise(1.0, seed=seed, name=name, **options), entry.noise)


# each augmentation's record -> (keras, entry, seed, name) -> the Keras layer that applies it to a batch
LAYERS: dict[type[Augmentation], Callable[[Any, Any, int, str], Any]] = {
    Flip: _flip,
    Rotation: _rotation,
    Zoom: _zoom,
    Translation: _translation,
    Contrast: _contrast,
    Brightness: _brightness,
    Noise: _noise,
}


def layer_seed(seed: int, index: int, name: str) -> int:
    """The seed of entry ``index``'s layer: derived from the stage's seed, distinct per entry, from 1 to 2**31 - 1.

    (Never 0: Keras 2 takes a seed of 0 for no seed.)
    """
    digest = hashlib.sha256(f"graft.augment:{seed}:{index}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1


@attrs.frozen
class ScaledNoise:
    """Gaussian noise of any standard deviation from a Keras ``GaussianNoise(1.0)``: ``x + stddev * noise``."""

    unit: Any
    stddev: float

    def __call__(self, x, training: bool = True):
        import tensorflow as tf

        return x + self.stddev * self.unit(tf.zeros_like(x), training=training)


@attrs.frozen
class Augmenter:
    """A batch of training inputs -> augmented inputs (float32, same shape), the entries applied in order.

    Call it on one batch at a time in order, e.g. in a sequential ``dataset.map``,
    for the same result from the same seed.
    """

    entries: tuple[Augmentation, ...]
    layers: tuple[Any, ...]

    def __call__(self, x):
        import tensorflow as tf

        x = tf.cast(x, tf.float32)
        for layer in self.layers:
            x = layer(x, training=True)
        return x

    def describe(self) -> str:
        return describe(self.entries)


def make_augmenter(keras, entries: Sequence[Augmentation], seed: int) -> Augmenter:
    """The callable that augments a batch ``[batch, *input_shape]`` of training inputs.

    Works with Keras 2 (``tf.keras``) and Keras 3 (TensorFlow backend), eagerly
    and inside ``tf.data`` ``map``. Each entry's layer is seeded by
    ``layer_seed(seed, index, name)`` and keeps its random state across calls:
    apply it with a sequential ``map`` (no ``num_parallel_calls``) for
    reproducible batches.
    """
    layers = tuple(
        LAYERS[type(entry)](keras, entry, layer_seed(seed, index, entry.name), f"graft_augment_{index}_{entry.name}")
        for index, entry in enumerate(entries)
    )
    return Augmenter(tuple(entries), layers)


def _keras_major(keras) -> int:
    return int(str(keras.__version__).split(".")[0])
