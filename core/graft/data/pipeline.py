"""The one way samples reach ``fit``: batched, shuffled every epoch (seeded), augmented, prefetched.

Every source's data goes through here, so arrays in memory, arrays on disk and
``tf.data`` streams with the same samples and the same seed give the same
batches in the same order.  Arrays are shuffled as row numbers and read a batch
at a time; a ``Stream`` with ``read`` is shuffled as keys before they are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from graft.base.backend import per_head
from graft.data.weighting import Weighting, batch_weights
from graft.plugins.arrayfile import ArrayFile, rows_of
from graft.plugins.datasets import Data, Dataset, Stream

if TYPE_CHECKING:
    import numpy as np

Augment = Callable[[Any], Any]


def training_batches(
    data: Data,
    batch_size: int,
    seed: int,
    augment: Augment | None = None,
    whole_batches: bool = False,
    weighting: Weighting | None = None,
) -> Any:
    """The training samples as a ``tf.data`` pipeline for ``fit``: reshuffled every epoch, augmented if asked,
    each head's samples weighed as ``weighting`` says (``graft.data.weighting``).

    ``whole_batches`` leaves out each epoch's last, partial batch (a different one
    every epoch): a distributed run splits every batch evenly over its replicas.
    """
    import tensorflow as tf

    shape = tf.autograph.experimental.do_not_convert(_for_keras(weighting, True))
    if isinstance(data, Dataset):
        batches = _array_batches(data.x, data.y, data.sample_weight, batch_size, seed, shape, whole_batches)
    else:
        batches = _stream_batches(data, data.train, data.samples, batch_size, seed, whole_batches).map(shape)
    if augment is not None:
        # sequential: parallel calls would race for the layers' random state, and the same seed must augment alike
        batches = batches.map(lambda x, *rest: (augment(x), *rest))
    return _sharded_by_data(batches.prefetch(tf.data.AUTOTUNE))


def validation_batches(data: Data, batch_size: int, weighting: Weighting | None = None) -> Any | None:
    """The validation samples in order, never augmented, weighed by the source's sample weights only (class
    weights count in training); ``None`` without validation data."""
    import tensorflow as tf

    if not data.has_validation:
        return None
    shape = tf.autograph.experimental.do_not_convert(_for_keras(weighting, False))
    if isinstance(data, Dataset):
        assert data.x_val is not None and data.y_val is not None  # has_validation, and checked (graft.data.datacheck)
        batches = _array_batches(data.x_val, data.y_val, data.sample_weight_val, batch_size, None, shape)
    else:
        batches = _stream_batches(data, data.validation, data.validation_samples, batch_size, None).map(shape)
    return _sharded_by_data(batches.prefetch(tf.data.AUTOTUNE))


def _for_keras(weighting: Weighting | None, training: bool) -> Callable[..., tuple]:
    """A batch ``(inputs, {head: targets}[, {head: weights}])`` as ``fit`` takes it: targets per head
    (``per_head``), and the weights of every head in output order when ``weighting`` weighs anything (else
    the source's are dropped).  Applied in the map that makes the batch: each map is a function traced."""
    if weighting is None or not weighting.weighs(training):
        return lambda x, y, *_weights: (x, per_head(y)[0])

    def weighed(x, y, given=None):
        return x, per_head(y)[0], batch_weights(y, given, weighting, training)

    return weighed


def _sharded_by_data(batches: Any) -> Any:
    """Under ``multi_worker``, each worker keeps its share of every batch (never whole files of a stream):
    every global batch holds the samples one process would train on.  Inert in one process."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.with_options(options)


def batches_in_order(
    data: Data, batch_size: int, validation: bool = False
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """The training (or validation) samples in order, as numpy ``(inputs, {head: targets}, {head: weights})``
    batches; the weights are the source's (an empty dict if it gives none)."""
    import numpy as np

    if isinstance(data, Dataset):
        x, y = (data.x_val, data.y_val) if validation else (data.x, data.y)
        w = (data.sample_weight_val if validation else data.sample_weight) or {}
        assert x is not None and y is not None  # validation only with validation data (graft.data.datacheck)
        for start in range(0, len(x), batch_size):
            rows = np.arange(start, min(start + batch_size, len(x)))
            yield (_native(rows_of(x, rows)), {head: _native(rows_of(values, rows)) for head, values in y.items()},
                   {head: _native(rows_of(values, rows)) for head, values in w.items()})
        return
    import tensorflow as tf

    keys = data.validation if validation else data.train
    samples = keys.map(data.read, num_parallel_calls=tf.data.AUTOTUNE) if data.read is not None else keys
    for batch in samples.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        x, y, *given = batch
        yield x, y, (given[0] if given else {})


def sample_spec(stream: Stream, keys: Any) -> Any:
    """The element spec of one sample of ``keys`` (the stream's ``train`` or ``validation``), read if need be."""
    import tensorflow as tf

    if stream.read is None:
        return keys.element_spec
    return keys.map(stream.read, num_parallel_calls=tf.data.AUTOTUNE).element_spec


def _array_batches(
    x, y: Mapping, weights: Mapping | None, batch_size: int, seed: int | None, shape: Callable[..., tuple],
    whole_batches: bool = False,
) -> Any:
    """Row numbers, shuffled if ``seed`` is given, batched, then the rows gathered (in memory) or read (on disk)
    as ``(inputs, {head: targets})``, or with ``weights`` ``(inputs, {head: targets}, {head: weights})``, and
    given to ``shape`` in the same map."""
    import numpy as np
    import tensorflow as tf

    heads, weighed = list(y), list(weights or {})
    columns = [x, *(y[head] for head in heads), *(weights[head] for head in weighed)] if weights else \
        [x, *(y[head] for head in heads)]
    order = tf.data.Dataset.range(len(x))
    if seed is not None:
        order = order.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    order = order.batch(batch_size, drop_remainder=whole_batches)

    def pair(values):
        targets = dict(zip(heads, values[1:1 + len(heads)], strict=True))
        if not weighed:
            return shape(values[0], targets)
        return shape(values[0], targets, dict(zip(weighed, values[1 + len(heads):], strict=True)))

    if not any(isinstance(column, ArrayFile) for column in columns):  # as Keras does for arrays: one gather
        tensors = tf.data.Dataset.from_tensors(tuple(_native(np.asarray(column)) for column in columns)).repeat()
        gathered = tf.data.Dataset.zip((order, tensors))
        # in sequence: a gather from memory per batch is cheap, and a parallel map's auto-tuned threads spin on
        # every core for it (the prefetch keeps fit fed all the same)
        # not converted by AutoGraph (nothing in these maps branches on a tensor): converting parses the source
        gather_rows = tf.autograph.experimental.do_not_convert(
            lambda rows, values: pair([tf.gather(value, rows) for value in values]))
        return gathered.map(gather_rows)
    dtypes = [tf.as_dtype(np.dtype(column.dtype).newbyteorder("=")) for column in columns]

    def gather(rows: np.ndarray) -> list[np.ndarray]:
        return [_native(rows_of(column, rows)) for column in columns]

    def read(rows):
        values = tf.numpy_function(gather, [rows], dtypes, stateful=False)
        for value, column in zip(values, columns, strict=True):
            value.set_shape((None, *column.shape[1:]))
        return pair(values)

    return order.map(tf.autograph.experimental.do_not_convert(read), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)


def _stream_batches(
    stream: Stream, samples: Any, count: int | None, batch_size: int, seed: int | None, whole_batches: bool = False
) -> Any:
    """A stream's samples, shuffled if ``seed`` is given (all keys, or a buffer of samples), batched."""
    import tensorflow as tf

    if seed is not None:
        known = int(samples.cardinality())
        size = count or (known if known > 0 else stream.shuffle_buffer)
        if stream.read is None:
            size = min(size, stream.shuffle_buffer)
        samples = samples.shuffle(max(1, size), seed=seed, reshuffle_each_iteration=True)
    if stream.read is not None:
        samples = samples.map(stream.read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return samples.batch(batch_size, drop_remainder=whole_batches)


def _native(values: np.ndarray) -> np.ndarray:
    """``values`` in the machine's byte order (TensorFlow has no big-endian dtypes)."""
    return values if values.dtype.isnative else values.astype(values.dtype.newbyteorder("="))
