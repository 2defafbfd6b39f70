"""Checks a ``Dataset`` against the model before any training: pure numpy, no TensorFlow.

``check_dataset`` returns every problem as a message (an empty list means the
data fits), e.g. ``npz data/train.npz: training targets for head 'trend': class ids
go up to 7 but head 'trend' has 5 units; ...``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from graft.base.problems import listing
from graft.plugins.arrayfile import ArrayFile
from graft.plugins.datasets import Dataset

if TYPE_CHECKING:
    import numpy as np

    from graft.plugins.datasets import Array


def _dims(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


@attrs.frozen
class HeadTarget:
    """What one head needs of its targets: its per-sample output shape and its Keras loss name."""

    output_shape: tuple[int, ...] = attrs.field(converter=_dims)
    loss: str


def _canonical(loss: str) -> str:
    """``sparse_categorical_crossentropy`` and ``SparseCategoricalCrossentropy`` alike."""
    return re.sub(r"[^a-z]", "", loss.lower())


SPARSE = _canonical("sparse_categorical_crossentropy")
CATEGORICAL = _canonical("categorical_crossentropy")
BINARY = _canonical("binary_crossentropy")


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _non_finite(what: str, values: np.ndarray) -> list[str]:
    import numpy as np

    if values.dtype.kind not in "fc":
        return []
    bad = ~np.isfinite(values.reshape(len(values), -1))
    if not bad.any():
        return []
    rows = bad.any(axis=1)
    first = int(np.argmax(rows))
    return [
        f"{what} contain {int(bad.sum())} NaN/inf value(s) in {int(rows.sum())} sample(s), "
        f"first in sample {first}; remove or impute them"
    ]


NOT_NUMBERS = {
    "c": "are complex numbers ({dtype}); give their real part or split it into real and imaginary features",
    "O": "are Python objects ({dtype}, e.g. from a ragged list or mixed types); give one numeric array",
    "V": "have a structured dtype {dtype}; give a plain numeric array (one field, or the fields stacked)",
}


def _numeric(what: str, values: np.ndarray) -> list[str]:
    kind = values.dtype.kind
    if kind in "biuf":
        return []
    reason = NOT_NUMBERS.get(kind, "have dtype {dtype}, not numbers; convert them to float32 (or integer class ids)")
    return [f"{what} {reason.format(dtype=values.dtype)}"]


def _as_array(what: str, values) -> tuple[np.ndarray | None, list[str]]:
    """``values`` as an array, or a message saying why they are not one (targets on disk are read: they are small)."""
    import numpy as np

    if isinstance(values, ArrayFile):
        return values.to_array(), []
    try:
        return np.asarray(values), []
    except (ValueError, TypeError) as exc:
        return None, [f"{what} are not one array (a ragged list?): {exc}"]


def _finite(values: np.ndarray) -> np.ndarray:
    """The finite values, flattened (NaN/inf are reported separately)."""
    import numpy as np

    return values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()


def _check_target(what: str, head: str, y: np.ndarray, target: HeadTarget) -> list[str]:
    """Loss-specific checks of one head's (numeric, finite-checked) targets."""
    import numpy as np

    n, shape, loss = len(y), y.shape, _canonical(target.loss)
    out = tuple(target.output_shape)
    if loss == SPARSE:
        problems = []
        if shape not in ((n,), (n, 1)):
            problems.append(
                f"{what} have shape {_shape(shape)} but {target.loss} needs class ids shaped ({n},) or ({n}, 1); "
                "for one-hot targets use categorical_crossentropy"
            )
        finite = _finite(y)
        if y.dtype.kind == "f" and np.any(finite != np.round(finite)):
            rows = (np.isfinite(y) & (y != np.round(y))).reshape(n, -1).any(axis=1)
            problems.append(
                f"{what} must be integer class ids for {target.loss} but hold fractions "
                f"({int(rows.sum())} sample(s), first in sample {int(np.argmax(rows))})"
            )
        elif finite.size:
            units = out[-1] if out else 1
            low, high = finite.min(), finite.max()
            if low < 0:
                problems.append(f"{what}: class ids go down to {int(low)} but must be 0 or more")
            if high >= units:
                problems.append(
                    f"{what}: class ids go up to {int(high)} but head '{head}' has {units} units; "
                    f"give the head {int(high) + 1} units or fix the ids"
                )
        return problems
    if loss == CATEGORICAL:
        if shape != (n, *out):
            return [
                f"{what} have shape {_shape(shape)} but {target.loss} needs one-hot targets "
                f"shaped {_shape((n, *out))}; "
                "for integer class ids use sparse_categorical_crossentropy"
            ]
        return []
    problems = []
    allowed = [(n, *out)] + ([(n,)] if out == (1,) else [])
    if shape not in allowed:
        wanted = " or ".join(_shape(s) for s in allowed)
        problems.append(
            f"{what} have shape {_shape(shape)} but head '{head}' outputs {_shape(out)} per sample, "
            f"so {target.loss} needs {wanted}"
        )
    if loss == BINARY:
        finite = _finite(y)
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            problems.append(
                f"{what} range from {finite.min()} to {finite.max()} but {target.loss} needs values in [0, 1]"
            )
    return problems


def _check_values(what: str, head: str, values, n: int | None, target: HeadTarget) -> list[str]:
    """Problems of one head's target values, given ``n`` input samples (None if unknown)."""
    values, problems = _as_array(what, values)
    if values is None:
        return problems
    if values.ndim == 0:
        return [f"{what} are a single value, not one per sample"]
    if n is not None and len(values) != n:
        problems.append(f"{what} have {len(values)} samples but the inputs have {n}")
    numeric = _numeric(what, values)
    if numeric:
        return problems + numeric
    if len(values):
        problems += _non_finite(what, values)
        problems += _check_target(what, head, values, target)
    return problems


def _non_finite_on_disk(what: str, x: ArrayFile) -> list[str]:
    """``_non_finite`` of inputs on disk, read a chunk at a time."""
    import numpy as np

    if x.dtype.kind not in "fc":
        return []
    bad_values = bad_rows = 0
    first = None
    start = 0
    for chunk in x.chunks():
        rows = ~np.isfinite(chunk.reshape(len(chunk), -1))
        bad_values += int(rows.sum())
        rows = rows.any(axis=1)
        bad_rows += int(rows.sum())
        if first is None and rows.any():
            first = start + int(np.argmax(rows))
        start += len(chunk)
    if not bad_values:
        return []
    return [
        f"{what} contain {bad_values} NaN/inf value(s) in {bad_rows} sample(s), first in sample {first}; "
        "remove or impute them"
    ]


def _check_inputs_on_disk(split: str, x: ArrayFile, input_shape: tuple[int, ...]) -> list[str]:
    import numpy as np

    problems = [f"{split} data has no samples"] if len(x) == 0 else []
    numeric = _numeric(f"{split} inputs", np.empty(0, x.dtype))
    problems += numeric
    if x.sample_shape != tuple(input_shape):
        problems.append(
            f"{split} inputs are shaped {_shape(x.sample_shape)} per sample but the model expects "
            f"{_shape(input_shape)}; make model.input_shape match the data or reshape the data"
        )
    if not numeric and len(x):
        problems += _non_finite_on_disk(f"{split} inputs", x)
    return problems


def _check_split(
    split: str, x, y, input_shape: tuple[int, ...], heads: dict[str, HeadTarget]
) -> list[str]:
    if isinstance(x, ArrayFile):
        problems, n, x = _check_inputs_on_disk(split, x, input_shape), len(x), None
    else:
        x, problems = _as_array(f"{split} inputs", x)
        n = None
    if x is None:
        pass
    elif x.ndim == 0:
        problems.append(f"{split} inputs are a single value, not an array of samples")
    elif len(x) == 0:
        problems.append(f"{split} data has no samples")
    else:
        n = len(x)
        numeric = _numeric(f"{split} inputs", x)
        problems += numeric
        if x.shape[1:] != tuple(input_shape):
            problems.append(
                f"{split} inputs are shaped {_shape(x.shape[1:])} per sample but the model expects "
                f"{_shape(input_shape)}; make model.input_shape match the data or reshape the data"
            )
        if not numeric:
            problems += _non_finite(f"{split} inputs", x)
    if y is None:
        return problems + [f"{split} data has inputs but no targets"]
    if not isinstance(y, Mapping):
        return problems + [f"{split} targets are a {type(y).__name__}, not a mapping of head name to array"]
    for head, target in heads.items():
        if head not in y:
            problems.append(
                f"{split} data has no targets for head '{head}' (targets given: {listing(sorted(map(str, y)))}); "
                "map a target array to every head"
            )
            continue
        problems += _check_values(f"{split} targets for head '{head}'", head, y[head], n, target)
    for name in y:
        if name not in heads:
            problems.append(
                f"{split} data has targets {name!r} but the model has no head of that name; "
                f"heads: {listing(list(heads))}"
            )
    return problems


def _length(x) -> int | None:
    try:
        return len(x)
    except TypeError:
        return None


def _check_weights(split: str, weights, n: int | None, heads: dict[str, HeadTarget]) -> list[str]:
    """Sample weights: a mapping of head name to one finite number, 0 or more, per sample."""
    import numpy as np

    if not isinstance(weights, Mapping):
        return [f"{split} sample weights are a {type(weights).__name__}, not a mapping of head name to array"]
    problems = []
    for head, values in weights.items():
        what = f"{split} sample weights for head '{head}'"
        if head not in heads:
            problems.append(f"{split} data has sample weights for {head!r} but the model has no head of that name; "
                            f"heads: {listing(list(heads))}")
            continue
        array, found = _as_array(what, values)
        if array is None:
            problems += found
            continue
        if array.ndim == 0 or array.shape[1:] not in ((), (1,)):
            problems.append(f"{what} have shape {_shape(array.shape)}; give one number per sample, shaped (samples,)")
            continue
        if n is not None and len(array) != n:
            problems.append(f"{what} have {len(array)} samples but the inputs have {n}")
        numeric = _numeric(what, array)
        if numeric:
            problems += numeric
            continue
        problems += _non_finite(what, array)
        finite = _finite(array)
        if finite.size and finite.min() < 0:
            rows = np.flatnonzero(array.reshape(len(array)) < 0)
            problems.append(f"{what} are negative in {len(rows)} sample(s), first in sample {int(rows[0])}; "
                            "a weight is 0 (the sample counts for nothing) or more")
    return problems


def check_dataset(
    dataset: Dataset, input_shape: tuple[int, ...], heads: dict[str, HeadTarget], training: str = "training"
) -> list[str]:
    """Every problem of ``dataset`` for a model with ``input_shape`` and ``heads``, as messages.

    Checks training and validation arrays: emptiness, numeric dtypes, the
    per-sample input shape, NaN/inf, one target array per head and no others,
    sample counts, and each head's targets against its loss and output shape.
    ``training`` names the first split in messages (``"the"``: "the inputs are ...").
    """
    if not isinstance(dataset, Dataset):
        return [f"the data source returned a {type(dataset).__name__}, not a graft.Dataset"]
    splits: list[tuple[str, Array, Mapping[str, Array] | None]] = [(training, dataset.x, dataset.y)]
    if dataset.x_val is not None:
        splits.append(("validation", dataset.x_val, dataset.y_val))
    messages = [message for split, x, y in splits for message in _check_split(split, x, y, tuple(input_shape), heads)]
    if dataset.x_val is None and dataset.y_val is not None:
        messages.append("validation data has targets but no inputs (x_val)")
    weights = [(training, dataset.x, dataset.sample_weight)]
    if dataset.x_val is not None:
        weights.append(("validation", dataset.x_val, dataset.sample_weight_val))
    elif dataset.sample_weight_val is not None:
        messages.append("validation data has sample weights but no inputs (x_val)")
    for split, x, given in weights:
        if given is not None:
            messages += _check_weights(split, given, _length(x), heads)
    return [f"{dataset.description}: {message}" for message in messages]
