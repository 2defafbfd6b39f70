"""Checks a ``Stream`` against the model before any training: its element spec, then its first batches.

A stream may be larger than memory, so its values are checked on a bounded
sample: the first ``SAMPLE_SAMPLES`` samples (at most ``SAMPLE_BYTES`` of inputs)
of the training and of the validation data, with the same checks as arrays
(``graft.data.datacheck``).  What was checked is said in the plan and the report.
"""

from __future__ import annotations

import attrs
import numpy as np

from graft.base.backend import tf_error_text
from graft.base.problems import listing
from graft.data.datacheck import HeadTarget, check_dataset
from graft.data.pipeline import batches_in_order, sample_spec
from graft.plugins.datasets import Dataset, Stream

SAMPLE_SAMPLES = 1024
SAMPLE_BYTES = 64 * 2**20


@attrs.frozen
class StreamCheck:
    """The problems found (messages), and how many samples of each split were read to look for them."""

    problems: list[str]
    checked: int
    validation_checked: int


def check_stream(stream: Stream, input_shape: tuple[int, ...], heads: dict[str, HeadTarget]) -> StreamCheck:
    """Every problem of ``stream`` for a model with ``input_shape`` and ``heads`` that its spec and first
    batches show."""
    import tensorflow as tf

    problems = []
    splits = [("training", stream.train)] + ([("validation", stream.validation)] if stream.has_validation else [])
    for split, keys in splits:
        problems += _spec_problems(split, sample_spec(stream, keys), input_shape, heads)
    if problems:
        return StreamCheck([f"{stream.description}: {message}" for message in problems], 0, 0)
    try:
        x, y, w = _first_samples(stream, validation=False)
        x_val, y_val, w_val = _first_samples(stream, validation=True) if stream.has_validation else (None, None, None)
    except tf.errors.OpError as exc:
        return StreamCheck([f"{stream.description}: reading its first samples failed: {tf_error_text(exc)}"], 0, 0)
    sample = Dataset(x=x, y=y, description=f"{stream.description} (first {len(x):,} samples)", x_val=x_val,
                     y_val=y_val, sample_weight=w or None, sample_weight_val=w_val or None)
    return StreamCheck(check_dataset(sample, input_shape, heads), len(x), 0 if x_val is None else len(x_val))


def _spec_problems(split: str, spec, input_shape: tuple[int, ...], heads: dict[str, HeadTarget]) -> list[str]:
    """What the element spec already shows: the structure, the input shape, the heads with targets."""
    if not (isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(part, dict) for part in spec[1:])):
        return [
            f"{split} elements are {spec}, not (inputs, {{head name: target}}); "
            "yield one sample at a time as a pair of the inputs and a dict of targets "
            "(or a triple with a dict of sample weights)"
        ]
    x, y, *weights = spec
    problems = []
    for head, weight in (weights[0] if weights else {}).items():
        if head not in heads:
            problems.append(f"{split} elements have sample weights for '{head}' but the model has no head of that "
                            f"name; heads: {listing(list(heads))}")
        elif weight.shape.rank != 0:
            problems.append(f"{split} sample weights for head '{head}' are shaped {weight.shape} per sample; "
                            "give one number per sample")
    shape = tuple(x.shape) if x.shape.rank is not None else None
    wanted = tuple(input_shape)
    if (
        shape is None
        or len(shape) != len(wanted)
        or any(d is not None and d != w for d, w in zip(shape, wanted, strict=True))
    ):
        given = "unknown" if shape is None else str(shape).replace("None", "?")
        problems.append(
            f"{split} inputs are shaped {given} per sample but the model expects {wanted}; "
            "make model.input_shape match the data, or change what shapes the data in the source's params "
            "(e.g. image_size and color_mode of image_folder)"
        )
    missing = [head for head in heads if head not in y]
    if missing:
        problems.append(
            f"{split} elements have no targets for {_quoted(missing)} (targets given: {listing(list(y))}); "
            "give every head a target in the dict"
        )
    extra = [name for name in y if name not in heads]
    if extra:
        problems.append(f"{split} elements have targets {_quoted(extra)} but the model has no head of that name")
    return problems


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _first_samples(
    stream: Stream, validation: bool
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Up to ``SAMPLE_SAMPLES`` samples and ``SAMPLE_BYTES`` of inputs from the start of a split, in memory:
    the inputs, the targets and the sample weights (if the stream gives them), per head."""
    xs, ys, ws, count, size = [], [], [], 0, 0
    for x, y, w in batches_in_order(stream, min(32, SAMPLE_SAMPLES), validation):
        xs.append(x)
        ys.append(y)
        ws.append(w)
        count, size = count + len(x), size + x.nbytes
        if count >= SAMPLE_SAMPLES or size >= SAMPLE_BYTES:
            break
    if not xs:
        return np.empty((0,)), {}, {}
    return (np.concatenate(xs), {head: np.concatenate([y[head] for y in ys]) for head in ys[0]},
            {head: np.concatenate([w[head] for w in ws]) for head in ws[0]})
