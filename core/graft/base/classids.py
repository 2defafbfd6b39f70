"""How a classification head's targets name a class: its loss says (an id, a one-hot row, a 0/1 value).

The one reader of class ids from targets, for every place that counts or weighs classes: the class
counts and weights (``graft.data.weighting``), the confusion matrices counted while validating
(``graft.model.confusion``) and the predictions of a finished stage (``graft.finished``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# loss -> how a target names its class: an id, a one-hot row, a 0/1 value
CLASS_IDS = {
    "sparse_categorical_crossentropy": "id",
    "categorical_crossentropy": "one_hot",
    "binary_crossentropy": "binary",
}


def class_ids(kind: str, targets: np.ndarray) -> np.ndarray:
    """The class id of every sample (int64, one per sample) of targets read as ``kind``."""
    import numpy as np

    values = np.asarray(targets)
    if kind == "one_hot":
        return np.argmax(values.reshape(len(values), -1), axis=-1).astype(np.int64)
    flat = values.reshape(len(values))
    return (np.round(flat) if kind == "binary" else flat).astype(np.int64)


def tensor_class_ids(tf: Any, kind: str, targets: Any) -> Any:
    """``class_ids`` of a batch of targets inside a TensorFlow graph (an int64 tensor); ``tf`` is the
    ``tensorflow`` module (the caller's: this wing imports no TensorFlow)."""
    if kind == "one_hot":
        return tf.argmax(tf.reshape(targets, [tf.shape(targets)[0], -1]), axis=-1, output_type=tf.int64)
    flat = tf.reshape(targets, [-1])
    if kind == "binary":
        flat = tf.round(tf.cast(flat, tf.float64))
    return tf.cast(flat, tf.int64)
