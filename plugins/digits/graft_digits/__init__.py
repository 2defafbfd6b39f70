"""keras-graft plugin ``sklearn_digits``: scikit-learn's handwritten digits as images.

Real data that runs anywhere: the 1,797 8x8 grey images of digits 0..9
(about 180 per digit) that ship inside the scikit-learn wheel, so nothing is
downloaded.  They come out as images for convolutional extractors:

- only the digits in ``classes``, labelled ``0 .. len(classes) - 1`` in the
  order given (``[5, 6, 7, 8, 9]``: digit 5 is class id 0, digit 9 is id 4), as
  int64 targets of the head named ``head``;
- upsampled to ``size`` x ``size`` by nearest neighbour (each pixel becomes a
  ``size/8`` square), grey repeated to ``channels`` channels;
- float32 in raw-pixel range 0..255 (the original 0..16 times 255/16), because
  extractors do their own preprocessing.

Per digit, a shuffled ``holdout`` fraction of its images is held out as the
validation data (the held-out accuracy a report shows).  Which images are held
out depends only on ``seed``, ``holdout`` and the digit: not on ``per_class``
nor on which other digits are chosen, so a few-shot stage and a from-scratch
baseline are scored on identical held-out images.  ``per_class`` keeps only
that many training images per digit (few-shot), taken from the images not held
out; a smaller ``per_class`` keeps a subset of what a larger one keeps.

The model's ``input_shape`` is ``[size, size, channels]`` and the head needs
``len(classes)`` units with ``sparse_categorical_crossentropy``.

.. code-block:: yaml

    data:
      source: sklearn_digits
      params:
        classes: [5, 6, 7, 8, 9]   # which digits; class ids 0..4 in this order
        head: digit                # the head these labels are the target of
        size: 32                   # images 32x32 (a multiple of 8; 8 keeps them as they are)
        channels: 3                # grey repeated to 1 or 3 channels
        holdout: 0.3               # per digit, this fraction is the validation data (0: none)
        per_class: 20              # optional: only 20 training images per digit (few-shot)
        seed: 0                    # which images are held out and which are kept

Pure numpy and scikit-learn, no TensorFlow; scikit-learn is imported only when
data is loaded, so ``graft validate`` stays fast.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar

import attrs

import graft
from graft import Dataset, Problems, SpecProblem, validators

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DigitsParams", "SklearnDigits", "digit_images", "split_indices", "to_images"]

DIGITS = range(10)
SIDE = 8  # the digits are 8x8
SCALE = 255 / 16  # 0..16 -> 0..255, exact in float32 (15.9375)


def _digits(_instance, attribute, value: list[int]) -> None:
    """Every entry a digit 0..9, each at most once."""
    problems = Problems()
    seen: dict[int, int] = {}
    for index, digit in enumerate(value):
        if digit not in DIGITS:
            problems.add((attribute.name, index), f"digit {digit} is not 0..9")
        elif digit in seen:
            problems.add((attribute.name, index), f"digit {digit} appears twice (also {attribute.name}[{seen[digit]}])")
        else:
            seen[digit] = index
    problems.raise_all()


def _image_size(_instance, attribute, value: int) -> None:
    if value < SIDE or value % SIDE:
        raise SpecProblem((attribute.name,), f"must be a multiple of 8 (8, 16, 24, 32, ...), got {value}")


def _channels(_instance, attribute, value: int) -> None:
    if value not in (1, 3):
        raise SpecProblem((attribute.name,), f"must be 1 or 3, got {value}")


@attrs.frozen
class DigitsParams:
    """The ``params`` of ``data: {source: sklearn_digits}``; see the module docstring."""

    STARTER: ClassVar[dict] = {"classes": [0, 1, 2], "head": "label", "size": 32}  # graft new-spec
    STARTER_INPUT_SHAPE: ClassVar[tuple] = (32, 32, 3)

    classes: list[int] = attrs.field(validator=[validators.non_empty, _digits])
    head: str = attrs.field(default="digit", validator=validators.identifier)
    size: int = attrs.field(default=32, validator=_image_size)
    channels: int = attrs.field(default=3, validator=_channels)
    holdout: float = attrs.field(default=0.3, validator=validators.fraction)
    per_class: int | None = attrs.field(default=None, validator=attrs.validators.optional(validators.positive))
    seed: int = attrs.field(default=0, validator=validators.non_negative)


@functools.lru_cache(maxsize=1)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images ``(1797, 8, 8)`` (values 0..16) and digits ``(1797,)``, read-only.

    ``load_digits`` reads a file inside the scikit-learn package; it never downloads.
    """
    import numpy as np
    from sklearn.datasets import load_digits  # ~1.5 s: not at module import, graft validate must stay fast

    bunch = load_digits()
    images, digits = np.asarray(bunch.images), np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = digits.flags.writeable = False
    return images, digits


def _held_count(count: int, holdout: float) -> int:
    """How many of a digit's ``count`` images are held out: at least 1 and at most all but 1 when holdout > 0."""
    if holdout <= 0:
        return 0
    return min(max(1, int(round(count * holdout))), count - 1)


def split_indices(digits: np.ndarray, params: DigitsParams) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per digit of ``params.classes``, in that order: (training indices, held-out indices) into ``digits``.

    Each digit's images are shuffled by a generator seeded with ``(seed, digit)``;
    the first ``holdout`` fraction is held out and the first ``per_class`` of the
    rest are kept for training.  So the held-out images do not depend on
    ``per_class`` or on the other digits chosen.  Raises ``SpecProblem`` at
    ``per_class`` if a digit has fewer training images than that.
    """
    import numpy as np

    train, held, short = [], [], []
    for digit in params.classes:
        own = np.flatnonzero(digits == digit)
        order = np.random.default_rng([params.seed, digit]).permutation(own)
        cut = _held_count(len(own), params.holdout)
        rest = order[cut:]
        if params.per_class is not None and params.per_class > len(rest):
            short.append((len(rest), digit))
        held.append(order[:cut])
        train.append(rest[: params.per_class])
    if short:
        remaining, digit = min(short)
        raise SpecProblem(
            ("per_class",),
            f"only {remaining} training images of digit {digit} remain after holdout; use at most that",
        )
    return train, held


def to_images(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """8x8 images (values 0..16) -> float32 ``(n, size, size, channels)`` in 0..255, by nearest neighbour."""
    import numpy as np

    factor = size // SIDE
    x = np.asarray(images, dtype=np.float32) * np.float32(SCALE)
    x = x.repeat(factor, axis=1).repeat(factor, axis=2)
    return np.repeat(x[..., np.newaxis], channels, axis=-1)


class SklearnDigits:
    """The ``sklearn_digits`` data source; see the module docstring."""

    @graft.hookimpl
    def load_data(self, params: DigitsParams, base_dir: str) -> Dataset:
        import numpy as np

        images, digits = digit_images()
        train, held = split_indices(digits, params)

        def arrays(per_digit: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            index = np.concatenate(per_digit)
            ids = np.concatenate([np.full(len(part), i, dtype=np.int64) for i, part in enumerate(per_digit)])
            return to_images(images[index], params.size, params.channels), ids

        x, ids = arrays(train)
        # grouped by digit as split; shuffled (by seed) so no batch is one digit, whatever fit does
        order = np.random.default_rng(params.seed).permutation(len(x))
        x, ids = x[order], ids[order]
        which = ",".join(str(digit) for digit in params.classes)
        amount = f"{params.per_class} per class" if params.per_class is not None else "all training images"
        dataset = Dataset(x=x, y={params.head: ids}, description=f"sklearn digits {which} ({amount})")
        if params.holdout <= 0:
            return dataset
        x_val, ids_val = arrays(held)
        return attrs.evolve(dataset, x_val=x_val, y_val={params.head: ids_val})
