"""Images decoded and resized as ``keras.utils.image_dataset_from_directory`` does it: for training and predicting.

The ``image_folder`` source reads its training images with ``decode`` and
``graft predict`` reads new images with the same function and the same params
(``ImageDecoding``, from the stage's ``image_folder`` params), so a model sees
the pixels it was trained on.  TensorFlow is imported only by ``decode``.
"""

from __future__ import annotations

from typing import Any

import attrs

from graft.base.paths import shown
from graft.data.imagefiles import MAX_PIXELS
from graft.spec.validators import between, each, one_of, positive

COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}  # color_mode -> channels, as Keras names them
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
MAX_SIDE = 8192
UNDECODABLE = {  # (color_mode, format): TensorFlow's decode_image refuses this many channels for this format
    ("grayscale", "gif"), ("grayscale", "bmp"), ("rgba", "jpeg"), ("rgba", "gif"),
}


@attrs.frozen
class ImageDecoding:
    """How an image file becomes a model input: ``image_size`` ``[height, width]``, ``color_mode`` (its
    channels), the resize ``interpolation``, and the largest image (width x height) read."""

    image_size: tuple[int, int] = attrs.field(default=(256, 256), validator=each(between(1, MAX_SIDE)))
    color_mode: str = attrs.field(default="rgb", validator=one_of(COLOR_MODES))
    interpolation: str = attrs.field(default="bilinear", validator=one_of(INTERPOLATIONS))
    max_pixels: int = attrs.field(default=MAX_PIXELS, validator=positive)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one decoded image: ``(height, width, channels)``."""
        return (*self.image_size, COLOR_MODES[self.color_mode])

    def undecodable(self, kind: str) -> bool:
        """True if TensorFlow cannot decode an image of format ``kind`` (``png``, ``gif``...) to ``color_mode``."""
        return (self.color_mode, kind) in UNDECODABLE

    def why_undecodable(self, kind: str, count: int, example: str, where: str) -> str:
        """The problem of ``count`` images of format ``kind`` that ``color_mode`` cannot decode, in ``where``."""
        channels = COLOR_MODES[self.color_mode]
        return (
            f"TensorFlow cannot decode {kind.upper()} images to {channels} channel{'s' * (channels > 1)} "
            f"(color_mode {self.color_mode}): {count} in {shown(where)}, e.g. {shown(example)}; use color_mode rgb, "
            "or convert them to PNG"
        )


def decode(path: Any, decoding: ImageDecoding) -> Any:
    """The image file at ``path`` (a string tensor) as float32 pixels in 0..255 shaped ``decoding.input_shape``:
    ``tf.io.read_file``, ``decode_image(channels, expand_animations=False)``, ``tf.image.resize``, as Keras's
    ``image_dataset_from_directory`` reads it."""
    import tensorflow as tf

    channels, size = COLOR_MODES[decoding.color_mode], tuple(decoding.image_size)
    image = tf.image.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    image = tf.image.resize(image, size, method=decoding.interpolation)  # nearest keeps uint8; cast below
    image.set_shape((*size, channels))
    return tf.cast(image, tf.float32)
