"""What a data source returns: ``Dataset`` (arrays, in memory or on disk) or ``Stream`` (``tf.data``).

Either way the core batches, shuffles (seeded, every epoch) and prefetches the
samples itself, the same way for every source (``graft.data.pipeline``).  numpy is
imported when arrays are first split or checked, so ``import graft`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from graft.base.problems import SpecProblem
from graft.plugins.arrayfile import ArrayFile

if TYPE_CHECKING:
    import numpy as np

    Array = np.ndarray | ArrayFile


def __getattr__(name: str) -> Any:
    """``Array`` (a numpy array or an ``ArrayFile``), made when first imported: it needs numpy."""
    if name == "Array":
        import numpy as np

        return np.ndarray | ArrayFile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@attrs.frozen
class Dataset:
    """Inputs and one target array per head name, with optional validation arrays.

    Arrays are numpy arrays or ``graft.ArrayFile`` (rows on disk, read a batch at
    a time: memory does not grow with the file).

    ``description`` names where the data came from (e.g. ``npz data/train.npz``);
    every data error quotes it.

    Before any stage trains, the runner checks every stage's dataset against
    that stage's model (``graft.data.datacheck.check_dataset``): numeric, finite,
    non-empty arrays; inputs shaped ``(samples, *model.input_shape)``; exactly
    one target array per head, with as many samples as the inputs and a shape
    and values that fit the head's output and loss.  Sources need not repeat
    these checks; they report what only they know (missing files, keys).

    ``sample_weight`` (and ``sample_weight_val``) map a head name to one weight
    per sample (finite, 0 or more): that head's loss of each sample is
    multiplied by it, in training (and in validation), times the head's
    ``class_weight`` if the spec gives one.  Heads left out weigh every sample 1.
    """

    x: Array
    y: Mapping[str, Array]
    description: str
    x_val: Array | None = None
    y_val: Mapping[str, Array] | None = None
    sample_weight: Mapping[str, Array] | None = None
    sample_weight_val: Mapping[str, Array] | None = None

    @property
    def has_validation(self) -> bool:
        return self.x_val is not None

    def split(self, fraction: float, seed: int = 0) -> Dataset:
        """Hold out a shuffled ``fraction`` of the samples as validation data.

        Samples are never dropped: raises ``SpecProblem`` (at the source's
        params) if the inputs have no sample axis or a target array has a
        different number of samples than the inputs.
        """
        if not 0 < fraction < 1:
            return self
        import numpy as np

        try:
            x, y = _by_sample(self.x, self.y)
        except ValueError as exc:
            raise SpecProblem((), f"{self.description}: cannot hold out validation data: {exc}") from None
        weights = None
        if self.sample_weight is not None:
            try:
                _x, weights = _by_sample(x, self.sample_weight, "sample weights")
            except ValueError as exc:
                raise SpecProblem((), f"{self.description}: cannot hold out validation data: {exc}") from None
        order = np.random.default_rng(seed).permutation(len(x))
        cut = len(x) - max(1, int(round(len(x) * fraction)))
        train, val = order[:cut], order[cut:]
        return attrs.evolve(
            self,
            x=_rows(x, train),
            y={head: _rows(target, train) for head, target in y.items()},
            x_val=_rows(x, val),
            y_val={head: _rows(target, val) for head, target in y.items()},
            sample_weight=None if weights is None else {head: _rows(w, train) for head, w in weights.items()},
            sample_weight_val=None if weights is None else {head: _rows(w, val) for head, w in weights.items()},
        )


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Stream:
    """Samples read while the model trains, from ``tf.data`` pipelines of single samples.

    ``train`` (and ``validation``) yield one sample at a time as ``(inputs,
    {head name: target})``, unbatched: the core batches, shuffles, prefetches.

    With ``read``, they yield cheap keys instead (a file name and a label, a row
    number) and ``read(key)`` (a TensorFlow function) turns a key into a sample:
    the core shuffles all keys every epoch before reading them, so shuffling
    costs no memory.  Without ``read``, samples are shuffled in a buffer of
    ``shuffle_buffer`` samples.

    ``samples``/``validation_samples`` are the counts if known; ``classes`` names
    class ids ``0..n-1`` in order, for the plan and the report.  Before any stage
    trains, the core checks the element spec against the model and the values of
    the first batches (as many as the report says).

    A sample may carry weights: ``(inputs, {head: target}, {head: weight})``, a
    scalar per head (heads left out weigh 1), as ``Dataset.sample_weight`` says.
    ``class_counts`` (and ``validation_class_counts``) give, per classification
    head, how many samples each class id has, if the source knows without reading
    them (an image folder's listing): the report's chance level and
    ``class_weight: balanced`` use them; without them ``balanced`` counts the
    classes in one pass over the training samples before training.
    """

    train: Any
    description: str
    validation: Any = None
    read: Callable[..., Any] | None = None
    samples: int | None = None
    validation_samples: int | None = None
    shuffle_buffer: int = 10_000
    classes: tuple[str, ...] = attrs.field(default=(), converter=_names)
    class_counts: Mapping[str, Sequence[int]] | None = None
    validation_class_counts: Mapping[str, Sequence[int]] | None = None

    @property
    def has_validation(self) -> bool:
        return self.validation is not None


Data = Dataset | Stream


def _rows(values: Array, indices: np.ndarray) -> Array:
    return values.take(indices) if isinstance(values, ArrayFile) else values[indices]


def _by_sample(x, y, what: str = "targets") -> tuple[Array, dict[str, Array]]:
    """Inputs and targets (or sample weights) as arrays with equally long sample axes, or ``ValueError``
    saying why not."""
    if not isinstance(y, Mapping):
        raise ValueError(f"the {what} are a {type(y).__name__}, not a mapping of head name to array")
    x = _array("the inputs", x)
    y = {head: _array(f"the {what} for head '{head}'", values) for head, values in y.items()}
    for head, values in y.items():
        if len(values) != len(x):
            raise ValueError(
                f"the {what} for head '{head}' have {len(values)} samples but the inputs have {len(x)}; "
                f"give every {what.removesuffix('s')} array one row per input sample"
            )
    return x, y


def _array(what: str, values) -> Array:
    if isinstance(values, ArrayFile):
        return values
    import numpy as np

    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} are not one array: {exc}") from None
    if array.ndim == 0:
        raise ValueError(f"{what} are a single value, not one per sample")
    return array
