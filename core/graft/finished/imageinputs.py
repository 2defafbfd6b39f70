"""Image files as the inputs of a finished stage that trained on ``image_folder`` data.

``graft predict OUT STAGE photo.jpg more/ ...`` finds the images (files given, and
every image under a folder given, in sorted order) and checks each from its first
and last bytes with the bounds of an image folder (regular files only, so a FIFO
never blocks; at most ``max_pixels`` by its header; a format ``color_mode`` can
decode), all before TensorFlow is imported.  How they are decoded and resized
(``ImageDecoding``) is read from the stage's ``image_folder`` params in the run
folder's copy of its spec, so the model sees new images as it saw its training
images (``graft.data.imagedecode``).  The predictions are written one row per file
(``write_rows``): a CSV with the file's path and each head's prediction, or an
``.npz`` with the paths and each head's outputs.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from graft.base.classids import CLASS_IDS
from graft.base.files import not_a_file
from graft.base.problems import GraftError, SpecProblem, format_path, listing
from graft.data.imagedecode import ImageDecoding
from graft.data.imagefiles import IGNORED, check_image_file, is_image_name
from graft.records.report import StageReport
from graft.runs.provenance import RESOLVED
from graft.spec.convert import make_converter, structure

IMAGE_SOURCE = "image_folder"
DECODING_KEYS = tuple(field.name for field in attrs.fields(ImageDecoding))
PATH_COLUMN = "path"
FORMATS = (".csv", ".npz")
MAX_LISTED = 20  # problems listed; the rest are counted


class ImageInputError(GraftError):
    """Images that cannot be predicted on: not found, not images, too large, or a stage that did not train on
    images."""


@attrs.frozen
class ImageInputs:
    """The images to predict on (paths as the user gave them, or joined to a folder given), how each is decoded,
    and the class names of the stage's image head."""

    paths: tuple[str, ...]
    decoding: ImageDecoding
    head: str
    classes: tuple[str, ...] = ()


def is_npz(inputs: Sequence[str]) -> bool:
    """True if ``inputs`` is one ``.npz`` archive (the inputs of any stage), not images."""
    return len(inputs) == 1 and inputs[0].lower().endswith(".npz")


def image_inputs(out: str, stage: str, report: StageReport, inputs: Sequence[str]) -> ImageInputs:
    """The images ``inputs`` name, checked, with the decoding of stage ``stage`` of the run folder ``out``
    (``ImageInputError`` saying what is wrong).  No TensorFlow."""
    decoding, head, shape = stage_decoding(out, stage)
    if decoding.input_shape != shape:
        raise ImageInputError(
            f"stage '{stage}': its image_folder params decode images to {decoding.input_shape}, but its "
            f"model.input_shape is {shape}; give an .npz whose array 'input' holds samples shaped {shape}"
        )
    paths = find_images(inputs, decoding)
    classes = tuple(report.data.classes) if report.data is not None else ()
    return ImageInputs(paths, decoding, head, classes)


def stage_decoding(out: str, stage: str) -> tuple[ImageDecoding, str, tuple[int, ...]]:
    """How stage ``stage`` decoded its images, its image head and its ``model.input_shape``, from the run
    folder's copy of its spec (the training images themselves need not be there any more)."""
    import yaml

    copy = os.path.join(out, RESOLVED)
    try:
        with open(copy, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ImageInputError(f"cannot read {copy}, the copy of the spec stage '{stage}' ran from, to see how it "
                              f"decoded its images ({exc}); predict on an .npz whose array 'input' holds the "
                              "samples") from None
    stages = data.get("stages") if isinstance(data, dict) else None
    found = next((entry for entry in stages or [] if isinstance(entry, dict) and entry.get("name") == stage), None)
    model = data.get("model") if isinstance(data, dict) else None
    if found is None or not isinstance(model, dict):
        raise ImageInputError(f"{copy} has no stage '{stage}'; it is not the spec the run folder ran from")
    source = (found.get("data") or {}).get("source")
    if source != IMAGE_SOURCE:
        raise ImageInputError(
            f"stage '{stage}' trained on {source} data, not {IMAGE_SOURCE}: images can only be predicted on by a "
            "stage that trained on images; give an .npz whose array 'input' holds the samples"
        )
    params = (found.get("data") or {}).get("params") or {}
    subset = {key: params[key] for key in DECODING_KEYS if key in params}
    try:
        decoding = structure(make_converter(), subset, ImageDecoding)
    except SpecProblem as problem:
        path, message = problem.items[0]
        raise ImageInputError(f"{copy}: stage '{stage}' data.params.{format_path(path)}: {message}") from None
    head = params.get("head", "label")
    shape = model.get("input_shape")
    return decoding, str(head), tuple(shape) if isinstance(shape, list) else ()


def find_images(inputs: Sequence[str], decoding: ImageDecoding) -> tuple[str, ...]:
    """Every image ``inputs`` name (files, and the images under folders, sorted), each checked as an image
    folder's files are; ``ImageInputError`` listing every problem."""
    paths: list[str] = []
    problems: list[str] = []
    for given in inputs:
        if os.path.isdir(given):
            found = _folder_images(given, problems)
            if not found:
                problems.append(f"{given} holds no image (.bmp .gif .jpeg .jpg .png); give image files or a folder "
                                "of them")
            paths += found
        elif not os.path.lexists(given):
            problems.append(f"{given}: no such file or folder")
        elif not is_image_name(given):
            kind = not_a_file(given)
            problems.append(f"{given} is {kind or 'not an image file by its name'}: give .bmp .gif .jpeg .jpg .png "
                            "files, a folder of them, or one .npz whose array 'input' holds the samples")
        else:
            paths.append(given)
    for path in paths:
        kind, problem = check_image_file(path, decoding.max_pixels)
        if problem:
            problems.append(problem.replace("remove it or move it out of the image folder", "leave it out"))
        elif decoding.undecodable(kind):
            problems.append(decoding.why_undecodable(kind, 1, path, path))
    if problems:
        shown = problems[:MAX_LISTED]
        if len(problems) > MAX_LISTED:
            shown.append(f"... and {len(problems) - MAX_LISTED} more problems like those above")
        raise ImageInputError(f"{len(problems)} problem{'s' * (len(problems) > 1)} with the images to predict on:\n  "
                              + "\n  ".join(shown))
    return tuple(paths)


def _folder_images(folder: str, problems: list[str]) -> list[str]:
    """The image files under ``folder`` (sub-folders too), sorted by path; other files (not hidden ones) are
    problems."""
    found = []
    for root, folders, files in os.walk(folder):
        folders.sort()
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in sorted(files):
            path = os.path.join(root, name)
            if is_image_name(name):
                found.append(path)
            elif not name.startswith(".") and name.lower() not in IGNORED:
                problems.append(f"{path} is not an image file by its name (.bmp .gif .jpeg .jpg .png): move it out "
                                "of the folder, or give the images one by one")
    return sorted(found)


def default_output(inputs: Sequence[str], stage: str) -> str:
    """``photos/`` -> ``photos.<stage>-predictions.csv`` beside the folder; ``a.png ...`` -> ``a.<stage>-...``."""
    first = os.path.normpath(inputs[0])
    stem = first if os.path.isdir(first) else os.path.splitext(first)[0]
    return f"{stem}.{stage}-predictions.csv"


def check_output_format(output: str, heads: Sequence[str]) -> None:
    """``--output`` must end in ``.csv`` or ``.npz``; an ``.npz`` keeps the paths as ``path``, so no head may have
    that name."""
    if not output.lower().endswith(FORMATS):
        raise ImageInputError(f"--output {output}: predictions on images are written as .csv or .npz; end the name "
                              f"in one of: {listing(FORMATS)}")
    if output.lower().endswith(".npz") and PATH_COLUMN in heads:
        raise ImageInputError(f"--output {output}: a head is named '{PATH_COLUMN}', the array that holds the files' "
                              "paths; write a .csv instead")


def predict_images(model: Any, images: ImageInputs, batch_size: int) -> dict[str, np.ndarray]:
    """Each head's outputs for the images, by head name, in order: decoded in a ``tf.data`` pipeline a batch
    at a time (memory does not grow with the number of images)."""
    import tensorflow as tf

    from graft.base.backend import tf_error_text
    from graft.data.imagedecode import decode

    decoding = images.decoding

    @tf.autograph.experimental.do_not_convert
    def read(path):
        return decode(path, decoding)

    batches = (tf.data.Dataset.from_tensor_slices(list(images.paths))
               .map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    try:
        outputs = model.predict(batches, verbose=0)
    except tf.errors.OpError as exc:
        raise ImageInputError(f"decoding the images failed: {tf_error_text(exc)}; was an image changed or "
                              "removed while graft predict ran?") from None
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {name: np.asarray(values) for name, values in zip(model.output_names, outputs, strict=True)}


def rows(paths: Sequence[str], predictions: Mapping[str, np.ndarray], report: StageReport,
         classes: Mapping[str, Sequence[str]]) -> tuple[list[str], list[list[Any]]]:
    """The CSV header and one row per file: its path; per classification head its class id (and name if
    known) then its outputs (``<head>_<unit>``); per other head its outputs."""
    header = [PATH_COLUMN]
    columns: list[np.ndarray] = []
    for head, values in predictions.items():
        values = values.reshape(len(values), -1)
        classified = _class_ids(head, values, report)
        if classified is not None:
            header.append(head)
            columns.append(classified)
            names = classes.get(head)
            if names:
                header.append(f"{head}_class")
                columns.append(np.asarray([names[i] if 0 <= i < len(names) else "" for i in classified], object))
        if values.shape[1] == 1 and classified is None:
            header.append(head)
        else:
            header += [f"{head}_{unit}" for unit in range(values.shape[1])]
        columns += [values[:, unit] for unit in range(values.shape[1])]
    table = [[path, *(_cell(column[index]) for column in columns)] for index, path in enumerate(paths)]
    return header, table


def _class_ids(head: str, values: np.ndarray, report: StageReport) -> np.ndarray | None:
    """The predicted class id of every row of a classification head's outputs; None for another head."""
    compiled = report.heads.get(head)
    if compiled is None or compiled.loss not in CLASS_IDS:
        return None
    if compiled.loss == "binary_crossentropy":
        if values.shape[1] != 1:
            return None
        return (values[:, 0] > (0.0 if compiled.from_logits else 0.5)).astype(np.int64)
    return np.argmax(values, axis=1).astype(np.int64)


def _cell(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return f"{float(value):.6g}"
    return value.item() if isinstance(value, np.generic) else value


def write_rows(path: str, paths: Sequence[str], predictions: Mapping[str, np.ndarray], report: StageReport,
               classes: Mapping[str, Sequence[str]], force: bool) -> str:
    """The predictions one row per file: a CSV (``rows``) or an ``.npz`` (``path`` and each head's outputs),
    written whole, never over an existing file unless ``force``; its absolute path."""
    from graft.finished.outfile import write_file

    def write(target: str) -> None:
        if path.lower().endswith(".npz"):
            with open(target, "wb") as handle:
                np.savez(handle, **{PATH_COLUMN: np.asarray(paths, dtype=str)}, **predictions)  # type: ignore[arg-type]
            return
        header, table = rows(paths, predictions, report, classes)
        with open(target, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(table)

    return write_file(path, write, force, "--output")

