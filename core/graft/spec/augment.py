"""Data augmentation declared in the YAML: ``augment: [{flip: horizontal}, {rotation: 0.1}]``.

Each entry of a stage's ``data.augment`` is a mapping of one name to its
setting, and becomes one of the records below; the record's one field is named
like the YAML key, so a problem with the setting is reported at the entry's
path (``stages[1].data.augment[2].zoom``). ``AUGMENTATIONS`` is the table of
known names.  No TensorFlow here: the Keras layers that apply the entries are
``graft.data.augment``'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, cast

import attrs

from graft.base.problems import SpecProblem, did_you_mean, kind_of, listing


def _bounded(low: float, high: float, high_inclusive: bool, meaning: str):
    """A validator: a finite number greater than ``low`` and below (or at most) ``high``, with what it means."""

    def check(_instance, _attribute, value) -> None:
        if not math.isfinite(value):
            raise SpecProblem((), f"must be a finite number, got {value}")
        if not (low < value and (value <= high if high_inclusive else value < high)):
            upper = "" if math.isinf(high) else f" and {'at most' if high_inclusive else 'below'} {high:g}"
            raise SpecProblem((), f"must be greater than {low:g}{upper} ({meaning}), got {value:g}")

    return check


class Augmentation:
    """One ``augment`` entry; subclasses are attrs records whose one field is named like the YAML key."""

    images_only: ClassVar[bool] = True  # works on images [height, width, channels] only
    example: ClassVar[str] = ""  # a setting, for messages

    @classmethod
    def key(cls) -> str:
        """The YAML key naming this augmentation: its one field's name."""
        return attrs.fields(cast("type[attrs.AttrsInstance]", cls))[0].name  # called on the attrs subclasses

    @property
    def name(self) -> str:
        return self.key()

    @property
    def value(self) -> Any:
        return getattr(self, self.key())

    def describe(self) -> str:
        value = self.value
        return f"{self.name} {value:g}" if isinstance(value, float) else f"{self.name} {value}"

    @classmethod
    def __graft_structure__(cls, data: Any, structure_record: Callable[[Any, type], Any]) -> Augmentation:
        """Structure one YAML entry (see ``structure_entry``); ``graft.spec.convert`` calls this."""
        return structure_entry(data, structure_record)


@attrs.frozen
class Flip(Augmentation):
    """``flip: horizontal | vertical | horizontal_and_vertical``: mirror each image or not, at random (RandomFlip)."""

    flip: Literal["horizontal", "vertical", "horizontal_and_vertical"]
    example: ClassVar[str] = "horizontal"



@attrs.frozen
class Rotation(Augmentation):
    """``rotation: F``: rotate by a random angle of up to ±F of a full turn (RandomRotation's factor)."""

    rotation: float = attrs.field(
        validator=_bounded(0, 0.5, True, "a fraction of a full turn: 0.1 rotates by up to ±36°")
    )
    example: ClassVar[str] = "0.1"



@attrs.frozen
class Zoom(Augmentation):
    """``zoom: F``: zoom in or out by up to F of the image size, keeping its aspect (RandomZoom's height_factor)."""

    zoom: float = attrs.field(
        validator=_bounded(0, 1, False, "a fraction of the image size: 0.1 zooms in or out by up to 10 %")
    )
    example: ClassVar[str] = "0.1"



@attrs.frozen
class Translation(Augmentation):
    """``translation: F``: shift by up to F of the height and of the width (RandomTranslation)."""

    translation: float = attrs.field(
        validator=_bounded(0, 1, False, "a fraction of the height and width: 0.1 shifts by up to 10 %")
    )
    example: ClassVar[str] = "0.1"



@attrs.frozen
class Contrast(Augmentation):
    """``contrast: F``: scale each image's contrast by a random factor in [1 - F, 1 + F] (RandomContrast)."""

    contrast: float = attrs.field(
        validator=_bounded(0, 1, True, "Keras's RandomContrast factor: contrast is scaled by 1 - F to 1 + F")
    )
    example: ClassVar[str] = "0.2"



@attrs.frozen
class Brightness(Augmentation):
    """``brightness: F``: add up to ±F × 255 to each image's pixels, clipped to 0..255 (RandomBrightness).

    The pixels are taken as raw values 0..255, as ``image_folder`` gives them.
    """

    brightness: float = attrs.field(
        validator=_bounded(0, 1, True, "Keras's RandomBrightness factor: adds up to ±F × 255 to pixels 0..255")
    )
    example: ClassVar[str] = "0.2"



@attrs.frozen
class Noise(Augmentation):
    """``noise: STDDEV``: add gaussian noise of this standard deviation; works on any input, also time series."""

    noise: float = attrs.field(validator=_bounded(0, math.inf, False, "the standard deviation of the noise"))
    images_only: ClassVar[bool] = False
    example: ClassVar[str] = "0.05"



AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.key(): cls for cls in (Flip, Rotation, Zoom, Translation, Contrast, Brightness, Noise)
}
NAMES = tuple(AUGMENTATIONS)


# -- from YAML ----------------------------------------------------------------------------


def structure_entry(data: Any, structure_record: Callable[[Any, type], Any]) -> Augmentation:
    """One ``augment`` entry as its record, or a ``SpecProblem`` at the entry (or its key) in words.

    ``structure_record(mapping, cls)`` structures a mapping as the attrs class
    ``cls`` (the strict converter's ``structure_attrs``): the setting's type and
    bounds are checked there, at the key's path.
    """
    known = f"augmentations: {listing(NAMES)}"
    if not isinstance(data, Mapping):
        if isinstance(data, str) and data in AUGMENTATIONS:
            raise SpecProblem((), f"'{data}' needs a setting: write {{{data}: {AUGMENTATIONS[data].example}}}")
        raise SpecProblem(
            (), f"expected one augmentation as a mapping of its name to its setting, such as {{flip: horizontal}}, "
                f"got {kind_of(data)}; {known}{did_you_mean(data, NAMES) if isinstance(data, str) else ''}"
        )
    if len(data) != 1:
        if not data:
            raise SpecProblem(
                (), f"an empty entry: name one augmentation and its setting, such as {{flip: horizontal}}; {known}"
            )
        items = ", ".join(f"- {{{key}: {_short(value)}}}" for key, value in data.items())
        raise SpecProblem((), f"one augmentation per entry, got {len(data)} ({listing(list(data))}); "
                              f"write each as its own item of the list: {items}")
    ((key, value),) = data.items()
    if not isinstance(key, str):
        raise SpecProblem((), f"expected the name of an augmentation as the key, got {kind_of(key)}; {known}")
    if key not in AUGMENTATIONS:
        raise SpecProblem((key,), f"unknown augmentation '{key}'; {known}{did_you_mean(key, NAMES)}")
    return structure_record({key: value}, AUGMENTATIONS[key])


def _short(value: Any) -> str:
    text = str(value) if isinstance(value, (str, int, float, bool)) else "..."
    return text if len(text) <= 30 else "..."


def describe(entries: Sequence[Augmentation]) -> str:
    """The augmentation in words, for the plan: ``flip horizontal, rotation 0.1, zoom 0.1``."""
    return ", ".join(entry.describe() for entry in entries)


def needs_images(entries: Sequence[Augmentation]) -> bool:
    """True if any entry works on images only (all but ``noise``): the input must be [height, width, channels]."""
    return any(entry.images_only for entry in entries)
