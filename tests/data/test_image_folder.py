"""The built-in ``image_folder`` source on tiny real PNG folders written by the tests.

Listing as Keras lists (compared with Keras's own ``index_directory``); every
folder problem reported by ``graft validate`` at its YAML path, naming the file
and what to do; the seeded, stratified split; the stream decoding to exactly
the pixels written; and one real run on a tiny MobileNet.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("graft_digits")

from graft.base.problems import SpecError  # noqa: E402
from graft.builtins.image_folder import ImageFolder, split_files  # noqa: E402
from graft.commands.cli import main  # noqa: E402
from graft.data.imagefiles import EXTENSIONS, list_image_folder  # noqa: E402
from graft.records.rundir import RunError  # noqa: E402
from graft.spec.specfile import load_spec  # noqa: E402
from graft_digits.folder import png_bytes, write_png  # noqa: E402

SIDE = 8
SPEC = """\
seed: 1
model:
  input_shape: [{side}, {side}, 3]
  extractor: {{plugin: mobilenet, params: {{variant: v2, alpha: 0.35, weights: none, pooling: avg}}}}
  heads:
    label: {{plugin: dense, loss: sparse_categorical_crossentropy, metrics: [accuracy], params: {{units: 3}}}}
stages:
  - name: only
    data:
      source: image_folder
      params: {params}
    epochs: 1
    batch_size: 4
"""
AT = "stages[0].data.params"
JPEG = (  # begins and ends like a JPEG, with a frame header (SOF0) of 8x8 pixels
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(9) + b"\xff\xc0\x00\x11\x08\x00\x08\x00\x08\x03" + bytes(9)
    + bytes(20) + b"\xff\xd9"
)


def pixels(seed: int, side: int = SIDE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)


def write_folder(root, classes: dict[str, int], side: int = SIDE, start: int = 0) -> dict[str, np.ndarray]:
    """``classes[name]`` PNG images per class folder under ``root``; returns {relative path: pixels}."""
    written = {}
    for index, (name, count) in enumerate(classes.items()):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for number in reversed(range(count)):  # written in reverse: the listing must not follow creation order
            relative = os.path.join(name, f"{number:03d}.png")
            written[relative] = pixels(start + 100 * index + number, side)
            write_png(os.path.join(root, relative), written[relative])
    return written


def spec_text(side: int = SIDE, **params) -> str:
    params.setdefault("directory", "train")
    params.setdefault("image_size", [side, side])
    return SPEC.format(side=side, params=json.dumps(params))


def problems(load, **params) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(spec_text(**params))
    return caught.value.lines


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder ``train`` with classes a, b, c (4, 3, 5 images) and ``val`` with the same classes."""
    root = tmp_path_factory.mktemp("images")
    written = write_folder(root / "train", {"b": 3, "a": 4, "c": 5})
    write_folder(root / "val", {"a": 2, "b": 2, "c": 2}, start=50)
    return root, written


# -- listing ----------------------------------------------------------------------------


def test_listing_matches_keras_index_directory(tmp_path):
    write_folder(tmp_path, {"dog": 2, "cat": 3})
    os.makedirs(tmp_path / "cat" / "more")
    write_png(tmp_path / "cat" / "more" / "x.png", pixels(9))
    (tmp_path / "dog" / "Z.PNG").write_bytes(png_bytes(pixels(8)))  # extensions in any case
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # ignored
    os.makedirs(tmp_path / ".hidden")  # not a class
    index_directory = pytest.importorskip("keras.src.utils.dataset_utils").index_directory  # Keras 2.13+ and 3
    paths, labels, classes = index_directory(str(tmp_path), "inferred", EXTENSIONS, shuffle=False)
    found = list_image_folder(str(tmp_path))
    assert found.problems == ()
    assert found.classes == tuple(classes) == ("cat", "dog")
    assert found.files == tuple(paths)
    assert found.labels == tuple(int(label) for label in labels) == (0, 0, 0, 0, 1, 1, 1)
    assert os.path.basename(found.files[-1]) == "Z.PNG" and found.formats == ("png",) * 7


def test_class_names_choose_and_order_the_classes(images):
    root, _ = images
    found = list_image_folder(str(root / "train"), ["c", "a"])
    assert found.classes == ("c", "a") and found.labels == (0,) * 5 + (1,) * 4
    assert found.folders == ("a", "b", "c")


# -- problems, at their YAML paths --------------------------------------------------------


def test_a_good_folder_validates(images):
    root, _ = images
    (root / "spec.yaml").write_text(spec_text(validation_directory="val"))
    assert main(["validate", str(root / "spec.yaml")]) == 0


@pytest.mark.parametrize(
    "name, content, said",
    [
        ("notes.txt", b"hello, these are notes", "is a text file beginning 'hello, these are not', not an image "
         "file, so Keras would skip it: remove it or move it out of the image folder"),
        ("empty.png", b"", "is empty (0 bytes), not an image: remove it or move it out of the image folder"),
        ("text.png", b"not a picture", "is a text file beginning 'not a picture', not a PNG, JPEG, GIF or BMP image"),
        ("cut.png", png_bytes(pixels(1))[:-20], "is a truncated PNG image (it ends before its IEND chunk): replace it"),
        ("cut.jpg", JPEG[:-2], "is a truncated JPEG image (it ends before its end marker FFD9)"),
        ("photo.webp", b"RIFF\0\0\0\0WEBPVP8 ", "is a WebP image, not an image file, so Keras would skip it: convert"),
        ("pic.tif", b"II*\x00" + bytes(20), "is a TIFF image, not an image file"),
        ("real.jpe", JPEG, "is a JPEG image with an extension Keras does not read, so it would be skipped: "
         "rename it to .jpg"),
    ],
)
def test_a_bad_file_in_a_class_folder_is_named(tmp_path, load, name, content, said):
    write_folder(tmp_path / "train", {"a": 1, "b": 1})
    (tmp_path / "train" / "b" / name).write_bytes(content)
    [line] = problems(load)
    assert line.startswith(f"{AT}.directory (line 11): {tmp_path / 'train' / 'b' / name} {said}")


def test_folder_level_problems_all_at_once(tmp_path, load):
    write_folder(tmp_path / "train", {"a": 1, "b": 1})
    os.makedirs(tmp_path / "train" / "empty")
    (tmp_path / "train" / "stray.png").write_bytes(png_bytes(pixels(1)))
    write_folder(tmp_path / "val", {"a": 1, "z": 1})
    lines = problems(load, validation_directory="val", class_names=["a", "c"])
    train, val = tmp_path / "train", tmp_path / "val"
    assert lines == [  # 'empty' and 'b' are not chosen; 'c' is reported once, at class_names
        f"{AT}.directory (line 11): {train / 'stray.png'} is directly in the image folder, where Keras ignores it: "
        f"move it into the folder of its class, or out of {train}",
        f"{AT}.class_names[1] (line 11): no class folder 'c' in {train}; class folders: a, b, empty",
    ]
    lines = problems(load, validation_directory="val")
    assert f"{AT}.directory (line 11): class folder {train / 'empty'} has no images (.bmp .gif .jpeg .jpg .png): " \
        "add images of class 'empty' or remove the folder" in lines
    assert lines[-1] == (
        f"{AT}.validation_directory (line 11): the class folders of {val} differ from those of {train}: "
        "no 'b', 'empty'; extra 'z'. Class ids follow the sorted folder names, so both folders need the same "
        "class folders (or choose the classes with class_names)"
    )


def test_no_class_folders_and_missing_folders(tmp_path, load):
    os.makedirs(tmp_path / "flat")
    (tmp_path / "flat" / "1.png").write_bytes(png_bytes(pixels(1)))
    [line] = problems(load, directory="flat")
    assert line.startswith(f"{AT}.directory (line 11): {tmp_path / 'flat'} has no class folders (it holds 1 files")
    assert "put the images of each class in a sub-folder named after the class" in line
    assert problems(load, directory="nowhere", validation_directory="none") == [
        f"{AT}.directory (line 11): folder not found: {tmp_path / 'nowhere'}",
        f"{AT}.validation_directory (line 11): folder not found: {tmp_path / 'none'}",
    ]


def test_params_are_checked(tmp_path, load):
    write_folder(tmp_path / "train", {"a": 2, "b": 2})
    (tmp_path / "train" / "b" / "x.jpg").write_bytes(JPEG)
    lines = problems(load, image_size=[0, 9000], color_mode="rgba", interpolation="cubic", head="1x",
                     validation_split=0.5, validation_directory="train", class_names=["b", "b"])
    assert lines == [
        f"{AT}.head (line 11): '1x' is not a valid name: use letters, digits and _",
        f"{AT}.image_size[0] (line 11): must be from 1 to 8,192, got 0",
        f"{AT}.image_size[1] (line 11): must be from 1 to 8,192, got 9,000",
        f"{AT}.class_names[1] (line 11): 'b' appears twice (also class_names[0])",
        f"{AT}.interpolation (line 11): 'cubic' is not one of: bilinear, nearest, bicubic, area, lanczos3, "
        "lanczos5, gaussian, mitchellcubic — did you mean 'bicubic'?",
        f"{AT}.validation_directory (line 11): give either validation_directory or validation_split, not both "
        "(validation_split is 0.5)",
        f"{AT}.color_mode (line 11): TensorFlow cannot decode JPEG images to 4 channels (color_mode rgba): 1 in "
        f"{tmp_path / 'train'}, e.g. {tmp_path / 'train' / 'b' / 'x.jpg'}; use color_mode rgb, or convert them to PNG",
    ]


# -- the split ----------------------------------------------------------------------------


def held_names(root, fraction: float, seed: int) -> set[str]:
    found = list_image_folder(str(root))
    _, held = split_files(found, fraction, seed)
    return {os.path.relpath(found.files[index], root) for index in held}


def test_the_split_is_seeded_stratified_and_stable(tmp_path):
    write_folder(tmp_path / "one", {"a": 10, "b": 10, "c": 4})
    held = held_names(tmp_path / "one", 0.3, seed=2)
    assert [sum(name.startswith(f"{c}/") for name in held) for c in "abc"] == [3, 3, 1]  # per class
    assert held_names(tmp_path / "one", 0.3, seed=2) == held
    assert held_names(tmp_path / "one", 0.3, seed=3) != held
    # the same files created in another order, with another class beside them: same files held out
    write_folder(tmp_path / "two", {"c": 4, "b": 10, "a": 10, "zz": 7})
    assert {name for name in held_names(tmp_path / "two", 0.3, seed=2) if not name.startswith("zz")} == held
    found = list_image_folder(str(tmp_path / "one"))
    train, val = split_files(found, 0.3, 2)
    assert sorted([*train, *val]) == list(range(24)) and list(train) == sorted(train)


# -- the stream -------------------------------------------------------------------------------


def stream_of(spec_file):
    params = spec_file.spec.stages[0].data.params
    return ImageFolder().load_data(params, spec_file.base_dir)


def read_all(stream, keys) -> list[tuple[np.ndarray, int]]:
    return [(x.numpy(), y["label"].numpy()) for x, y in keys.map(stream.read)]


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3)])
def test_the_stream_decodes_the_pixels_written(images, load, color_mode, channels):
    root, written = images
    text = spec_text(directory=str(root / "train"), validation_directory=str(root / "val"), color_mode=color_mode)
    spec_file = load(text)
    stream = stream_of(spec_file)
    assert stream.classes == ("a", "b", "c") and (stream.samples, stream.validation_samples) == (12, 6)
    assert stream.description == f"image_folder {root / 'train'}"
    samples = read_all(stream, stream.train)
    expected = sorted(written.items())
    assert [label for _, label in samples] == [0] * 4 + [1] * 3 + [2] * 5
    for (x, _), (_, values) in zip(samples, expected, strict=True):
        assert x.dtype == np.float32 and x.shape == (SIDE, SIDE, channels)
        np.testing.assert_array_equal(x, np.repeat(values[..., None], channels, axis=-1).astype(np.float32))
    assert len(read_all(stream, stream.validation)) == 6


def test_validation_split_streams_the_held_out_files(images, load):
    root, _ = images
    spec_file = load(spec_text(directory=str(root / "train"), validation_split=0.25, seed=1, image_size=[4, 6]))
    stream = stream_of(spec_file)
    assert (stream.samples, stream.validation_samples) == (9, 3)  # one of each class held out
    [(x, label)] = read_all(stream, stream.validation.take(1))
    assert x.shape == (4, 6, 3) and label == 0


def test_validate_cli_names_the_file(tmp_path, capsys):
    write_folder(tmp_path / "train", {"a": 1, "b": 1})
    (tmp_path / "train" / "a" / "notes.txt").write_text("to do")
    (tmp_path / "spec.yaml").write_text(spec_text())
    assert main(["validate", str(tmp_path / "spec.yaml")]) == 1
    err = capsys.readouterr().err
    assert f"{AT}.directory (line 11): {tmp_path / 'train' / 'a' / 'notes.txt'} is a text file" in err
    assert "Traceback" not in err


# -- a real run -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_on_an_image_folder_reports_its_classes(tmp_path, registry):
    pytest.importorskip("graft_mobilenet")
    from graft.runs.stages import run_spec

    write_folder(tmp_path / "train", {"square": 8, "circle": 8}, side=32)
    write_folder(tmp_path / "val", {"square": 2, "circle": 2}, side=32, start=50)
    text = spec_text(side=32, validation_directory="val").replace("units: 3", "units: 2")
    (tmp_path / "spec.yaml").write_text(text)
    reports = run_spec(load_spec(str(tmp_path / "spec.yaml"), registry), registry, str(tmp_path / "out"),
                       log=lambda _: None)
    assert [report.stage for report in reports] == ["only"]
    with open(tmp_path / "out" / "only" / "report.json") as handle:
        data = json.load(handle)["data"]
    assert data["classes"] == ["circle", "square"]
    assert (data["description"], data["samples"], data["validation_samples"]) == ("image_folder train", 16, 4)
    # an image replaced after the stage finished: the next run stops instead of resuming over it
    write_png(str(tmp_path / "train" / "circle" / "003.png"), pixels(999, 32))
    with pytest.raises(RunError, match="was run from a different spec .the stage, a file it reads"):
        run_spec(load_spec(str(tmp_path / "spec.yaml"), registry), registry, str(tmp_path / "out"), log=lambda _: None)
