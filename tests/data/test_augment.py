"""``augment:`` on a stage's data: read from YAML with problems at their paths, and applied to real batches."""

from __future__ import annotations

import os
import pathlib
import random
import subprocess
import sys

import attrs
import numpy as np
import pytest

from graft.base.problems import SpecError
from graft.data.augment import layer_seed, make_augmenter
from graft.spec import augment
from graft.spec.augment import (
    AUGMENTATIONS,
    Brightness,
    Contrast,
    Flip,
    Noise,
    Rotation,
    Translation,
    Zoom,
    describe,
    needs_images,
)
from tests.conftest import TINY_GRU_SPEC

REPO = pathlib.Path(__file__).resolve().parents[2]
TRANSFER_DATA = "seed: 2, frequency: 2.0, targets: {level: level, trend: trend}}\n"
assert TRANSFER_DATA in TINY_GRU_SPEC


def spec_text(entries: list[str] | str, input_shape: str = "[8, 8, 3]") -> str:
    """The tiny spec with the transfer stage's data augmented, one entry a line (stages[1].data.augment[i])."""
    block = entries if isinstance(entries, str) else "\n" + "".join(f"        - {entry}\n" for entry in entries)
    text = TINY_GRU_SPEC.replace("input_shape: [12, 3]", f"input_shape: {input_shape}", 1)
    return text.replace(TRANSFER_DATA, TRANSFER_DATA + f"      augment: {block.rstrip()}\n", 1)


def first_entry_line(text: str) -> int:
    """The line of stages[1].data.augment[0]: the one after ``augment:``."""
    return (
        next(number for number, line in enumerate(text.splitlines(), start=1) if line.startswith("      augment:")) + 1
    )


def problems(load, entries, input_shape: str = "[8, 8, 3]") -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(spec_text(entries, input_shape))
    return caught.value.lines


# -- reading the YAML ------------------------------------------------------------------------


def test_entries_are_typed_records_in_order(load):
    spec = load(spec_text(["{flip: horizontal}", "{rotation: 0.1}", "{zoom: 0.1}", "{translation: 0.2}",
                           "{contrast: 0.3}", "{brightness: 0.2}", "{noise: 4}"])).spec

    entries = spec.stages[1].data.augment
    assert entries == [Flip("horizontal"), Rotation(0.1), Zoom(0.1), Translation(0.2), Contrast(0.3),
                       Brightness(0.2), Noise(4.0)]
    assert isinstance(entries[-1].noise, float)
    assert spec.stages[0].data.augment == []  # no augment: key, no augmentation
    assert describe(entries) == (
        "flip horizontal, rotation 0.1, zoom 0.1, translation 0.2, contrast 0.3, brightness 0.2, noise 4"
    )
    assert attrs.asdict(spec.stages[1].data)["augment"][:2] == [{"flip": "horizontal"}, {"rotation": 0.1}]


def test_the_table_names_each_record_by_its_one_field():
    assert list(AUGMENTATIONS) == ["flip", "rotation", "zoom", "translation", "contrast", "brightness", "noise"]
    for name, record in AUGMENTATIONS.items():
        assert [field.name for field in attrs.fields(record)] == [name]
    assert [name for name, record in AUGMENTATIONS.items() if not record.images_only] == ["noise"]
    assert needs_images([Noise(1.0), Zoom(0.1)]) and not needs_images([Noise(1.0)]) and not needs_images([])


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        ("{zom: 0.1}", ".zom", "unknown augmentation 'zom'; augmentations: flip, rotation, zoom, translation, "
                               "contrast, brightness, noise — did you mean 'zoom'?"),
        ("{Flip: horizontal}", ".Flip", "unknown augmentation 'Flip'; augmentations: flip, rotation, zoom, "
                                        "translation, contrast, brightness, noise — did you mean 'flip'?"),
        ("flip", "", "'flip' needs a setting: write {flip: horizontal}"),
        ("zoom", "", "'zoom' needs a setting: write {zoom: 0.1}"),
        ("3", "", "expected one augmentation as a mapping of its name to its setting, such as {flip: horizontal}, "
                  "got int 3; augmentations: flip, rotation, zoom, translation, contrast, brightness, noise"),
        ("[flip, horizontal]", "", "expected one augmentation as a mapping of its name to its setting, such as "
                                   "{flip: horizontal}, got list; augmentations: flip, rotation, zoom, translation, "
                                   "contrast, brightness, noise"),
        ("{flip: horizontal, rotation: 0.1}", "", "one augmentation per entry, got 2 (flip, rotation); write each "
                                                  "as its own item of the list: "
                                                  "- {flip: horizontal}, - {rotation: 0.1}"),
        ("{}", "", "an empty entry: name one augmentation and its setting, such as {flip: horizontal}; "
                   "augmentations: flip, rotation, zoom, translation, contrast, brightness, noise"),
        ("{1: 2}", "", "expected the name of an augmentation as the key, got int 1; augmentations: flip, rotation, "
                       "zoom, translation, contrast, brightness, noise"),
        ("{flip: horizonal}", ".flip", "'horizonal' is not one of: horizontal, vertical, horizontal_and_vertical "
                                       "— did you mean 'horizontal'?"),
        ("{flip: true}", ".flip", "'True' is not one of: horizontal, vertical, horizontal_and_vertical"),
        ("{rotation: '0.1'}", ".rotation", "expected a number, got str '0.1'"),
        ("{rotation: true}", ".rotation", "expected a number, got bool True"),
        ("{rotation: null}", ".rotation", "expected a number, got null"),
        ("{rotation: [0.1, 0.2]}", ".rotation", "expected a number, got list"),
        ("{rotation: 0.7}", ".rotation", "must be greater than 0 and at most 0.5 (a fraction of a full turn: 0.1 "
                                         "rotates by up to ±36°), got 0.7"),
        ("{rotation: -0.1}", ".rotation", "must be greater than 0 and at most 0.5 (a fraction of a full turn: 0.1 "
                                          "rotates by up to ±36°), got -0.1"),
        ("{zoom: 0}", ".zoom", "must be greater than 0 and below 1 (a fraction of the image size: 0.1 zooms in or "
                               "out by up to 10 %), got 0"),
        ("{zoom: 1}", ".zoom", "must be greater than 0 and below 1 (a fraction of the image size: 0.1 zooms in or "
                               "out by up to 10 %), got 1"),
        ("{translation: 1.5}", ".translation", "must be greater than 0 and below 1 (a fraction of the height and "
                                               "width: 0.1 shifts by up to 10 %), got 1.5"),
        ("{contrast: 1.2}", ".contrast", "must be greater than 0 and at most 1 (Keras's RandomContrast factor: "
                                         "contrast is scaled by 1 - F to 1 + F), got 1.2"),
        ("{brightness: -0.2}", ".brightness", "must be greater than 0 and at most 1 (Keras's RandomBrightness "
                                              "factor: adds up to ±F × 255 to pixels 0..255), got -0.2"),
        ("{noise: 0}", ".noise", "must be greater than 0 (the standard deviation of the noise), got 0"),
        ("{noise: .nan}", ".noise", "must be a finite number, got nan"),
        ("{noise: .inf}", ".noise", "must be a finite number, got inf"),
        ("{brightness: 1e999}", ".brightness", "must be a finite number, got inf"),
        ("{noise: " + "9" * 400 + "}", ".noise",
         "expected a number, got an integer too large for one (int of about 400 digits)"),
    ],
)
def test_a_bad_entry_is_one_problem_at_its_path_and_line(load, entry, where, message):
    text = spec_text(["{flip: horizontal}", entry])

    assert problems(load, ["{flip: horizontal}", entry]) == [
        f"stages[1].data.augment[1]{where} (line {first_entry_line(text) + 1}): {message}"
    ]


def test_every_bad_entry_is_reported_at_once(load):
    lines = problems(load, ["{zom: 0.1}", "{flip: horizontal}", "{rotation: 2}", "rotation", "{noise: -1}"])

    assert [line.split(" (line")[0] for line in lines] == [
        "stages[1].data.augment[0].zom",
        "stages[1].data.augment[2].rotation",
        "stages[1].data.augment[3]",
        "stages[1].data.augment[4].noise",
    ]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("flip", "expected a list, got str 'flip'"),
        ("{flip: horizontal}", "expected a list, got dict"),
        ("7", "expected a list, got int 7"),
    ],
)
def test_augment_must_be_a_list(load, block, message):
    [line] = problems(load, block)
    assert line.startswith("stages[1].data.augment (line ") and line.endswith(f"): {message}")


def test_an_empty_list_or_null_augments_nothing(load):
    assert load(spec_text("[]")).spec.stages[1].data.augment == []
    [line] = problems(load, "null")
    assert line.endswith("expected a list, got null")


def test_image_augmentations_need_an_image_input_shape(load):
    entries = ["{noise: 0.1}", "{flip: horizontal}", "{rotation: 0.1}"]
    text = spec_text(entries, input_shape="[12, 3]")

    assert problems(load, entries, input_shape="[12, 3]") == [
        f"stages[1].data.augment[{index}].{name} (line {first_entry_line(text) + index}): '{name}' works on images, "
        "but model.input_shape is [12, 3], not [height, width, channels]; remove this entry (noise works on any input)"
        for index, name in [(1, "flip"), (2, "rotation")]
    ]
    assert load(spec_text(["{noise: 0.1}"], input_shape="[12, 3]")).spec.stages[1].data.augment == [Noise(0.1)]
    assert problems(load, ["{zoom: 0.1}"], input_shape="[4, 8, 8, 3]")[0].endswith(
        "'zoom' works on images, but model.input_shape is [4, 8, 8, 3], not [height, width, channels]; "
        "remove this entry (noise works on any input)"
    )


def test_validate_with_augment_does_not_import_tensorflow(write_spec):
    path = write_spec(spec_text(["{flip: horizontal}", "{rotation: 0.1}", "{noise: 2}"]))
    code = (
        "import sys; from graft.commands.cli import main; "
        f"rc = main(['validate', {path!r}]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    env = {**os.environ, "GRAFT_PLUGINS": "gru,conv1d", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                            cwd=REPO)

    assert result.returncode == 0, result.stderr + result.stdout
    assert ": valid" in result.stdout


# -- on real batches ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    from graft.base.backend import import_keras

    return import_keras()


def images(count: int = 8, size: int = 8) -> np.ndarray:
    """Distinct pixel values 0..255 (no image equals its mirror), float32 ``[count, size, size, 3]``."""
    values = np.random.default_rng(0).permutation(count * size * size * 3) % 256
    return values.reshape(count, size, size, 3).astype("float32")


def test_flip_horizontal_mirrors_some_images_and_keeps_the_others(keras):
    batch = images(16)
    out = np.asarray(make_augmenter(keras, [Flip("horizontal")], seed=5)(batch))

    mirrored = [np.array_equal(image, original[:, ::-1, :]) for image, original in zip(out, batch, strict=True)]
    kept = [np.array_equal(image, original) for image, original in zip(out, batch, strict=True)]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True)), "each image is exactly the original or its mirror"
    assert any(mirrored) and any(kept)


def test_flip_vertical_mirrors_top_to_bottom(keras):
    batch = images(16)
    out = np.asarray(make_augmenter(keras, [Flip("vertical")], seed=5)(batch))

    assert all(
        np.array_equal(image, original) or np.array_equal(image, original[::-1])
        for image, original in zip(out, batch, strict=True)
    )
    assert not np.array_equal(out, batch)


@pytest.mark.parametrize("entry", [Rotation(0.2), Zoom(0.3), Translation(0.3), Contrast(0.5), Brightness(0.3)])
def test_image_augmentations_keep_shape_and_dtype_and_change_values(keras, entry):
    batch = images(4)
    out = np.asarray(make_augmenter(keras, [entry], seed=3)(batch))

    assert out.shape == batch.shape and out.dtype == np.float32
    assert not np.allclose(out, batch)
    assert np.isfinite(out).all()
    if isinstance(entry, (Contrast, Brightness)):
        assert out.min() >= 0 and out.max() <= 255  # clipped to pixel values


def test_noise_has_the_asked_standard_deviation_on_any_input(keras):
    series = np.linspace(-1, 1, 64 * 20 * 4, dtype="float32").reshape(64, 20, 4)  # a time-series batch
    for stddev in (0.05, 7.0):  # Keras 3's GaussianNoise alone takes at most 1
        added = np.asarray(make_augmenter(keras, [Noise(stddev)], seed=1)(series)) - series
        assert added.shape == series.shape
        assert abs(added.std() / stddev - 1) < 0.05 and abs(added.mean()) < 0.05 * stddev


def test_integer_inputs_come_out_float32(keras):
    out = make_augmenter(keras, [Flip("horizontal")], seed=1)(images(2).astype("uint8"))
    assert np.asarray(out).dtype == np.float32


def augmented_epochs(keras, entries, seed: int, epochs: int = 2) -> list[list[np.ndarray]]:
    """Every epoch's batches of a tf.data pipeline that augments its inputs in a ``map``; targets checked unchanged."""
    import tensorflow as tf

    augmenter = make_augmenter(keras, entries, seed)
    x, y = images(6), np.arange(6)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y)).batch(2).map(lambda inputs, targets: (augmenter(inputs), targets))
    )
    result = []
    for _ in range(epochs):
        batches = []
        for index, (inputs, targets) in enumerate(dataset):
            assert inputs.shape == (2, 8, 8, 3) and inputs.dtype == tf.float32
            assert np.array_equal(targets, y[2 * index: 2 * index + 2])
            batches.append(inputs.numpy())
        result.append(batches)
    return result


ALL = [Flip("horizontal_and_vertical"), Rotation(0.1), Zoom(0.1), Translation(0.1), Contrast(0.2), Brightness(0.1),
       Noise(2.0)]


def test_inside_a_tf_data_map_every_epoch_is_augmented_anew(keras):
    first, second = augmented_epochs(keras, ALL, seed=9)

    assert not any(np.allclose(a, b) for a, b in zip(first, second, strict=True))
    assert not np.allclose(first[0], images(6)[:2])


def test_the_same_seed_augments_the_same_way_and_another_seed_differently(keras):
    run = augmented_epochs(keras, ALL, seed=9)
    again = augmented_epochs(keras, ALL, seed=9)  # fresh layers, as in a fresh process
    other = augmented_epochs(keras, ALL, seed=10)

    assert all(
        np.array_equal(a, b)
        for epoch, epoch_again in zip(run, again, strict=True)
        for a, b in zip(epoch, epoch_again, strict=True)
    )
    assert not np.allclose(run[0][0], other[0][0])


def test_each_entry_has_its_own_seed_and_name(keras):
    augmenter = make_augmenter(keras, [Zoom(0.1), Zoom(0.1)], seed=4)

    assert [layer.name for layer in augmenter.layers] == ["graft_augment_0_zoom", "graft_augment_1_zoom"]
    seeds = [layer_seed(4, index, "zoom") for index in range(2)]
    assert seeds[0] != seeds[1] and all(1 <= seed < 2**31 for seed in seeds)
    assert layer_seed(0, 0, "flip") != 0


def test_making_an_augmenter_leaves_the_global_random_state_alone(keras):
    random.seed(1)
    np.random.seed(1)
    python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()

    make_augmenter(keras, ALL, seed=2)(images(2))

    assert random.getstate() == python_state and np.array_equal(np.random.get_state()[1], numpy_state)


def test_importing_augment_does_not_import_tensorflow():
    code = ("import sys, graft.data.augment, graft.spec.records; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert augment.__doc__


def test_the_pipeline_augments_the_same_way_for_the_same_seed(keras):
    import graft
    from graft.data.pipeline import training_batches

    x = images(16)
    data = graft.Dataset(x, {"y": np.arange(16)}, "tiny")

    def run() -> list[np.ndarray]:
        batches = training_batches(data, 2, 3, make_augmenter(keras, ALL, seed=5))
        return [np.concatenate([inputs for inputs, _ in batches.as_numpy_iterator()]) for _ in range(2)]

    first, second = run(), run()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
