"""The built-in ``image_folder`` data source: images in one sub-folder per class, streamed from disk.

The folders are listed and every file checked (from its first and last bytes)
when the spec is loaded, so ``graft validate`` reports a stray ``notes.txt``, a
truncated PNG or a missing class folder before anything trains.  TensorFlow is
imported only inside ``load_data``.
"""

from __future__ import annotations

import os
import zlib
from typing import TYPE_CHECKING, ClassVar

import attrs

import graft
from graft.base.paths import shown
from graft.base.problems import Path, Problems, SpecProblem, did_you_mean, listing
from graft.data.imagedecode import COLOR_MODES, INTERPOLATIONS, MAX_SIDE, ImageDecoding, decode
from graft.data.imagefiles import MAX_PIXELS, ImageFolderListing, list_image_folder
from graft.plugins.datasets import Stream
from graft.validators import (
    between,
    each,
    folder_input,
    fraction,
    identifier,
    non_negative,
    one_of,
    positive,
    spec_folder,
)

if TYPE_CHECKING:
    import numpy as np

MAX_LISTED = 20  # file problems listed per folder; the rest are counted


def _class_names(_instance, _attribute, value) -> None:
    if value is None:
        return
    if not value:
        raise SpecProblem((), "must not be empty; leave class_names out to use every class folder")
    problems = Problems()
    seen: dict[str, int] = {}
    for index, name in enumerate(value):
        if str(name) in seen:
            problems.add((index,), f"'{name}' appears twice (also class_names[{seen[str(name)]}])")
        seen.setdefault(str(name), index)
    problems.raise_all()


@attrs.frozen
class ImageFolderParams:
    """Params of the ``image_folder`` source; see ``ImageFolder``."""

    STARTER: ClassVar[dict] = {"directory": "photos", "image_size": [96, 96], "validation_split": 0.2}
    STARTER_INPUT_SHAPE: ClassVar[tuple] = (96, 96, 3)

    directory: str = folder_input()
    head: str = attrs.field(default="label", validator=identifier)
    image_size: tuple[int, int] = attrs.field(default=(256, 256), validator=each(between(1, MAX_SIDE)))
    color_mode: str = attrs.field(default="rgb", validator=one_of(COLOR_MODES))
    class_names: list[str | int] | None = attrs.field(default=None, validator=_class_names)
    validation_split: float = attrs.field(default=0.0, validator=fraction)
    validation_directory: str | None = folder_input(optional=True, default=None)
    seed: int = attrs.field(default=0, validator=non_negative)
    interpolation: str = attrs.field(default="bilinear", validator=one_of(INTERPOLATIONS))
    max_pixels: int = attrs.field(default=MAX_PIXELS, validator=positive)

    def __attrs_post_init__(self) -> None:
        problems = Problems()
        if self.validation_directory is not None and self.validation_split > 0:
            problems.add(
                ("validation_directory",),
                f"give either validation_directory or validation_split, not both "
                f"(validation_split is {self.validation_split})",
            )
        folder = spec_folder()
        train = _listed(self, _resolve(folder, self.directory), ("directory",), problems, True)
        if self.validation_directory is not None:
            val = _listed(self, _resolve(folder, self.validation_directory), ("validation_directory",), problems, True)
            if train is not None and val is not None:
                _same_classes(train, val, problems)
        elif (
            train is not None and train.files and 0 < self.validation_split < 1 and self.seed >= 0
            and not split_files(train, self.validation_split, self.seed)[1].size
        ):
            problems.add(("validation_split",), f"no class in {shown(train.root)} has 2 or more images to hold one out")
        problems.raise_all()

    @property
    def decoding(self) -> ImageDecoding:
        """How each image is decoded and resized (``graft predict`` reads new images the same way)."""
        return ImageDecoding(self.image_size, self.color_mode, self.interpolation, self.max_pixels)

    @property
    def class_list(self) -> list[str] | None:
        """``class_names`` as strings (a YAML ``[0, 1]`` names the folders ``0`` and ``1``)."""
        return None if self.class_names is None else [str(name) for name in self.class_names]


def _resolve(base_dir: str, path: str) -> str:
    """``path`` relative to the spec's folder ``base_dir``, ``~`` expanded, normalised."""
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def _listed(
    params: ImageFolderParams, root: str, at: Path, problems: Problems, check: bool
) -> ImageFolderListing | None:
    """The listing of ``root``, its problems added at ``at`` (a missing folder is the field validator's to report)."""
    if not os.path.isdir(root):
        return None
    found = list_image_folder(root, params.class_list, check_content=check, max_pixels=params.max_pixels)
    for message in found.problems[:MAX_LISTED]:
        problems.add(at, message)
    if len(found.problems) > MAX_LISTED:
        problems.add(at, f"... and {len(found.problems) - MAX_LISTED} more problems in {shown(root)} like those above")
    if params.class_list is not None and found.folders and at == ("directory",):
        for index, name in enumerate(params.class_list):
            if name not in found.folders:
                problems.add(
                    ("class_names", index),
                    f"no class folder '{name}' in {shown(root)}; class folders: {listing(found.folders)}"
                    f"{did_you_mean(name, found.folders)}",
                )
    if params.color_mode in COLOR_MODES:
        decoding = attrs.evolve(ImageDecoding(), color_mode=params.color_mode)
        for kind in sorted({kind for kind in found.formats if decoding.undecodable(kind)}):
            files = [path for path, of in zip(found.files, found.formats, strict=True) if of == kind]
            message = decoding.why_undecodable(kind, len(files), files[0], root)
            if (("color_mode",), message) not in problems.items:  # the same folder given twice
                problems.add(("color_mode",), message)
    return found


def _same_classes(train: ImageFolderListing, val: ImageFolderListing, problems: Problems) -> None:
    """The validation folder has the training folder's classes: all of them, or those ``class_names`` chose."""
    if not train.folders or not val.folders:
        return
    chosen = train.classes != train.folders  # class_names: only the chosen classes must be there
    missing = [name for name in train.classes if name in train.folders and name not in val.folders]
    extra = [] if chosen else [name for name in val.folders if name not in train.folders]
    if not missing and not extra:
        return
    quoted = lambda names: listing([f"'{name}'" for name in names])  # noqa: E731
    said = [f"no {quoted(missing)}" if missing else "", f"extra {quoted(extra)}" if extra else ""]
    problems.add(
        ("validation_directory",),
        f"the class folders of {val.root} differ from those of {train.root}: {'; '.join(filter(None, said))}. "
        "Class ids follow the sorted folder names, so both folders need the same class folders"
        + ("" if chosen else " (or choose the classes with class_names)"),
    )


def _held_count(count: int, fraction_: float) -> int:
    """How many of a class's ``count`` images are held out: at least 1, at most all but 1 (0 if fraction is 0)."""
    if fraction_ <= 0:
        return 0
    return min(max(1, int(round(count * fraction_))), count - 1)


def split_files(found: ImageFolderListing, fraction_: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) indices into ``found.files``, each in listing order.

    Per class, the class's files (sorted by path) are permuted by a generator
    seeded with ``seed`` and the class name, and the first ``fraction_`` of
    them is held out: which files are held out depends only on the seed, the
    fraction and the class's file names, never on the order the file system
    lists them in nor on the other classes.
    """
    import numpy as np

    labels = np.asarray(found.labels, dtype=np.int64)
    train, held = [], []
    for label, name in enumerate(found.classes):
        own = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(own)
        cut = _held_count(len(own), fraction_)
        held.append(order[:cut])
        train.append(order[cut:])
    both = [np.sort(np.concatenate(part)).astype(np.int64) if part else np.zeros(0, np.int64) for part in (train, held)]
    return both[0], both[1]


class ImageFolder:
    """Images from a folder with one sub-folder per class, as ``keras.utils.image_dataset_from_directory`` reads it::

        data:
          source: image_folder
          params:
            directory: data/photos/train     # data/photos/train/cats/001.jpg, .../dogs/002.png; relative to the spec
            head: label                      # the head whose targets are the class ids (default label)
            image_size: [160, 160]           # [height, width]; every image is resized to it (default [256, 256])
            color_mode: rgb                  # grayscale (1 channel), rgb (3, default) or rgba (4)
            validation_directory: data/photos/val   # same class folders; or validation_split: 0.2
            # class_names: [cats, dogs]      # optional: only these class folders, class ids in this order
            # seed: 0                        # which files validation_split holds out (per class)
            # interpolation: bilinear        # how images are resized: bilinear, nearest, bicubic, area, ...
            # max_pixels: 50000000           # refuse an image whose width x height is larger (default 50 million)

    Class ids ``0..n-1`` follow the class folders' sorted names (or
    ``class_names``); the plan and the report list them.  Images (``.bmp .gif
    .jpeg .jpg .png``, sub-folders of a class folder included) are decoded,
    converted to ``color_mode`` and resized exactly as Keras does, to float32
    pixels in 0..255 (extractors do their own preprocessing), so the model's
    ``input_shape`` is ``[height, width, channels]``.  They are read from disk
    while training: memory does not grow with the folder.

    ``validation_split`` holds out that fraction of each class (at least one
    image of every class with two or more), chosen by ``seed``; a separate
    ``validation_directory`` must have the same class folders.

    ``graft validate`` lists the folders and checks every file from its first
    and last bytes: a file that is not an image (Keras would skip it silently),
    a file directly in the top folder, an empty, truncated or mislabelled
    image file, an image larger than ``max_pixels`` (width x height, read from
    its header; decoding and resizing one takes about 16 bytes a pixel), a FIFO,
    device or socket (never opened), an empty class folder, a format
    ``color_mode`` cannot decode (JPEG as rgba, GIF and BMP as grayscale) are
    each reported with the file and what to do.  Files in the folders count in the stage's fingerprint: a
    changed folder stops ``graft run`` from resuming over a finished stage.
    """

    @graft.hookimpl
    def load_data(self, params: ImageFolderParams, base_dir: str) -> Stream:
        import numpy as np
        import tensorflow as tf

        problems = Problems()
        train = _listed(params, _resolve(base_dir, params.directory), ("directory",), problems, False)
        val = None
        if params.validation_directory is not None:
            where = _resolve(base_dir, params.validation_directory)
            val = _listed(params, where, ("validation_directory",), problems, False)
        if train is None:
            problems.add(("directory",), f"folder not found: {_resolve(base_dir, params.directory)}")
        problems.raise_all()
        assert train is not None  # else raise_all raised

        def keys(found: ImageFolderListing, rows: np.ndarray | None = None):
            files, labels = np.asarray(found.files, dtype=object), np.asarray(found.labels, dtype=np.int64)
            if rows is not None:
                files, labels = files[rows], labels[rows]
            counts = [int(count) for count in np.bincount(labels, minlength=len(found.classes))]
            return tf.data.Dataset.from_tensor_slices((files.astype(str), labels)), len(labels), counts

        if val is not None:
            (train_keys, samples, counts), (val_keys, val_samples, val_counts) = keys(train), keys(val)
        elif params.validation_split > 0:
            rows, held = split_files(train, params.validation_split, params.seed)
            (train_keys, samples, counts), (val_keys, val_samples, val_counts) = keys(train, rows), keys(train, held)
        else:
            (train_keys, samples, counts), val_keys, val_samples, val_counts = keys(train), None, None, None
        return Stream(
            train=train_keys,
            validation=val_keys,
            read=image_reader(params),
            samples=samples,
            validation_samples=val_samples,
            classes=train.classes,
            description=f"image_folder {params.directory}",
            class_counts={params.head: counts},
            validation_class_counts=None if val_counts is None else {params.head: val_counts},
        )


def image_reader(params: ImageFolderParams):
    """``read(path, label) -> (image, {head: label})``: the image decoded and resized as Keras's
    ``image_dataset_from_directory`` does (``tf.io.read_file``, ``decode_image(channels,
    expand_animations=False)``, ``tf.image.resize``), as float32 in 0..255."""
    import tensorflow as tf

    decoding, head = params.decoding, params.head

    @tf.autograph.experimental.do_not_convert  # straight-line code: nothing to convert, no source to parse
    def read(path, label):
        return decode(path, decoding), {head: label}

    return read
