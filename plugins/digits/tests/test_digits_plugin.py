"""The sklearn_digits plugin: params validation at YAML paths, the images and splits it makes, its packaging."""

import importlib.metadata
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

import graft
import graft_digits
from graft.data.datacheck import HeadTarget, check_dataset
from graft.plugins.registry import Registry
from graft.spec.specfile import parse_spec
from graft.testing import installed_plugin, params_problems, structure_params
from graft_digits import DigitsParams, SklearnDigits, digit_images, split_indices

TOP = [5, 6, 7, 8, 9]
# scikit-learn's digits: images per digit 0..9 (fixed data shipped in the wheel)
COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def params(raw):
    return structure_params(raw, DigitsParams)


def problems(raw):
    return params_problems(raw, DigitsParams)


def load(**raw):
    return SklearnDigits().load_data(params=params(raw), base_dir=".")


def load_problems(**raw):
    with pytest.raises(graft.SpecProblem) as caught:
        load(**raw)
    return caught.value.items


def rows(x):
    """Each image as bytes, to compare sets of images (the 1797 digits are all distinct)."""
    return {image.tobytes() for image in x}


def original(x):
    """The 8x8 0..16 images an upsampled batch came from."""
    factor = x.shape[1] // 8
    return x[:, ::factor, ::factor, 0] / graft_digits.SCALE


# -- the data itself ---------------------------------------------------------


def test_the_digits_are_as_expected():
    images, digits = digit_images()
    assert images.shape == (1797, 8, 8) and digits.shape == (1797,)
    assert np.bincount(digits).tolist() == COUNTS
    assert images.min() == 0 and images.max() == 16
    assert len(rows(images)) == 1797
    with pytest.raises(ValueError):
        images[0, 0, 0] = 1  # the cached arrays are read-only


# -- params ------------------------------------------------------------------


def test_docstring_example_is_valid_params():
    example = yaml.safe_load(textwrap.dedent(graft_digits.__doc__.split(".. code-block:: yaml")[1].split("\nPure")[0]))
    assert example["data"]["source"] == "sklearn_digits"
    parsed = params(example["data"]["params"])
    assert parsed == DigitsParams(classes=TOP, head="digit", size=32, channels=3, holdout=0.3, per_class=20, seed=0)


def test_defaults():
    assert params({"classes": [3]}) == DigitsParams(
        classes=[3], head="digit", size=32, channels=3, holdout=0.3, per_class=None, seed=0
    )


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ({"classes": [5, 6, 12]}, ("params", "classes", 2), "digit 12 is not 0..9"),
        ({"classes": [-1]}, ("params", "classes", 0), "digit -1 is not 0..9"),
        ({"classes": [5, 6, 5]}, ("params", "classes", 2), "digit 5 appears twice (also classes[0])"),
        ({"classes": []}, ("params", "classes"), "must not be empty"),
        ({"classes": 5}, ("params", "classes"), "expected a list, got int 5"),
        ({"classes": [5, "6"]}, ("params", "classes", 1), "expected an integer, got str '6'"),
        ({"classes": [5, True]}, ("params", "classes", 1), "expected an integer, got bool True"),
        ({}, ("params", "classes"), "required key missing"),
        (
            {"classes": [5], "head": "my head"},
            ("params", "head"),
            "'my head' is not a valid name: use letters, digits and _",
        ),
        ({"classes": [5], "size": 12}, ("params", "size"), "must be a multiple of 8 (8, 16, 24, 32, ...), got 12"),
        ({"classes": [5], "size": 0}, ("params", "size"), "must be a multiple of 8 (8, 16, 24, 32, ...), got 0"),
        ({"classes": [5], "size": 32.5}, ("params", "size"), "expected an integer, got float 32.5"),  # 32.0 is 32
        ({"classes": [5], "channels": 2}, ("params", "channels"), "must be 1 or 3, got 2"),
        ({"classes": [5], "holdout": 1.0}, ("params", "holdout"), "must be at least 0 and below 1, got 1.0"),
        ({"classes": [5], "holdout": -0.1}, ("params", "holdout"), "must be at least 0 and below 1, got -0.1"),
        ({"classes": [5], "per_class": 0}, ("params", "per_class"), "must be greater than 0, got 0"),
        ({"classes": [5], "per_class": "all"}, ("params", "per_class"), "expected an integer, got str 'all'"),
        ({"classes": [5], "seed": -1}, ("params", "seed"), "must be 0 or more, got -1"),
    ],
)
def test_bad_params(raw, path, message):
    assert problems(raw) == [(path, message)]


def test_every_bad_digit_is_reported():
    assert problems({"classes": [10, 3, 3, 11]}) == [
        (("params", "classes", 0), "digit 10 is not 0..9"),
        (("params", "classes", 2), "digit 3 appears twice (also classes[1])"),
        (("params", "classes", 3), "digit 11 is not 0..9"),
    ]


def test_unknown_key():
    ((path, message),) = problems({"classes": [5], "per_clas": 3})
    assert path == ("params", "per_clas")
    assert message.startswith("unknown key 'per_clas'") and "did you mean 'per_class'?" in message


def test_per_class_beyond_what_remains_after_holdout():
    # digit 8 has the fewest images (174); 52 of them are held out at 0.3
    assert load_problems(classes=TOP, per_class=123) == [
        (("per_class",), "only 122 training images of digit 8 remain after holdout; use at most that")
    ]
    assert np.bincount(load(classes=TOP, per_class=122).y["digit"]).tolist() == [122] * 5
    assert load_problems(classes=[5], per_class=200, holdout=0.5) == [
        (("per_class",), "only 91 training images of digit 5 remain after holdout; use at most that")
    ]


# -- images ------------------------------------------------------------------


def test_shapes_dtypes_and_range():
    data = load(classes=TOP)
    held = [round(COUNTS[d] * 0.3) for d in TOP]
    assert data.x.shape == (sum(COUNTS[d] for d in TOP) - sum(held), 32, 32, 3)
    assert data.x_val.shape == (sum(held), 32, 32, 3)
    assert data.x.dtype == data.x_val.dtype == np.float32
    assert set(data.y) == set(data.y_val) == {"digit"}
    assert data.y["digit"].dtype == data.y_val["digit"].dtype == np.int64
    assert data.y["digit"].shape == (len(data.x),) and data.y_val["digit"].shape == (len(data.x_val),)
    for x in (data.x, data.x_val):
        assert x.min() == 0.0 and x.max() == 255.0
        levels = x / np.float32(255 / 16)
        assert np.array_equal(levels, np.round(levels))  # exactly the 17 levels 0..16 scaled
    assert data.description == "sklearn digits 5,6,7,8,9 (all training images)"


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (16, 3), (32, 3), (32, 1), (24, 1)])
def test_size_and_channels(size, channels):
    data = load(classes=[0, 1], size=size, channels=channels)
    assert data.x.shape[1:] == data.x_val.shape[1:] == (size, size, channels)


def test_upsampling_is_exact_nearest_neighbour():
    data = load(classes=TOP, size=32, channels=3, holdout=0.0)
    x = data.x
    small = original(x)
    for image, eight in zip(x[:50], small[:50], strict=True):
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])
        blocks = image[..., 0].reshape(8, 4, 8, 4)  # (row, within row, column, within column)
        assert (blocks == blocks[:, :1, :, :1]).all()  # every 4x4 block is one value
        assert np.array_equal(blocks[:, 0, :, 0], eight * graft_digits.SCALE)
    # and the 8x8 pictures are scikit-learn's own
    images, _ = digit_images()
    assert rows(small.astype(np.float64)) <= rows(images)


def test_size_8_is_the_original_pictures_scaled():
    data = load(classes=list(range(10)), size=8, channels=1, holdout=0.0)
    images, _ = digit_images()
    assert data.x.shape == (1797, 8, 8, 1)
    assert rows(data.x[..., 0]) == rows((images * (255 / 16)).astype(np.float32))


# -- labels --------------------------------------------------------------------


def test_relabelling_in_the_order_given():
    images, digits = digit_images()
    digit_of = {image.tobytes(): digit for image, digit in zip(images, digits, strict=True)}
    classes = [9, 3, 5]
    data = load(classes=classes)
    for x, y in ((data.x, data.y["digit"]), (data.x_val, data.y_val["digit"])):
        assert set(y.tolist()) == {0, 1, 2}
        found = [digit_of[image.tobytes()] for image in original(x).astype(np.float64)]
        assert found == [classes[i] for i in y]
    assert np.bincount(np.concatenate([data.y["digit"], data.y_val["digit"]])).tolist() == [
        COUNTS[9], COUNTS[3], COUNTS[5]
    ]


def test_head_name():
    data = load(classes=TOP, head="number")
    assert set(data.y) == set(data.y_val) == {"number"}


def test_training_data_is_not_grouped_by_class():
    y = load(classes=TOP).y["digit"]
    assert not np.array_equal(y, np.sort(y))
    assert len(set(y[:32].tolist())) > 1


# -- splits --------------------------------------------------------------------


def test_per_class_counts():
    data = load(classes=TOP, per_class=20)
    assert np.bincount(data.y["digit"]).tolist() == [20] * 5
    assert np.bincount(data.y_val["digit"]).tolist() == [round(COUNTS[d] * 0.3) for d in TOP]
    assert data.description == "sklearn digits 5,6,7,8,9 (20 per class)"
    assert np.bincount(load(classes=[2], per_class=1).y["digit"]).tolist() == [1]


def test_held_out_set_is_the_same_whatever_per_class_and_disjoint_from_training():
    baseline = load(classes=TOP)
    for per_class in (1, 5, 20, 100):
        few = load(classes=TOP, per_class=per_class)
        assert np.array_equal(few.x_val, baseline.x_val)
        assert np.array_equal(few.y_val["digit"], baseline.y_val["digit"])
        assert not rows(few.x) & rows(few.x_val)
        assert rows(few.x) <= rows(baseline.x)  # few-shot training images are a subset of the full ones
    assert not rows(baseline.x) & rows(baseline.x_val)
    # together, training and held-out are every image of those digits
    assert len(rows(baseline.x) | rows(baseline.x_val)) == sum(COUNTS[d] for d in TOP)


def test_smaller_per_class_keeps_a_subset_of_a_larger_one():
    assert rows(load(classes=TOP, per_class=5).x) <= rows(load(classes=TOP, per_class=20).x)


def test_split_indices_are_disjoint_and_independent_of_the_other_digits():
    _, digits = digit_images()
    train, held = split_indices(digits, params({"classes": TOP, "per_class": 10}))
    for digit, t, h in zip(TOP, train, held, strict=True):
        assert (digits[t] == digit).all() and (digits[h] == digit).all()
        assert not set(t.tolist()) & set(h.tolist())
        assert len(t) == 10
    train_9, held_9 = split_indices(digits, params({"classes": [9, 0], "per_class": 10}))
    assert np.array_equal(held_9[0], held[TOP.index(9)]) and np.array_equal(train_9[0], train[TOP.index(9)])


def test_same_seed_same_data():
    a, b = load(classes=TOP, per_class=20, seed=4), load(classes=TOP, per_class=20, seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y["digit"], b.y["digit"])
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_val["digit"], b.y_val["digit"])


def test_different_seeds_differ():
    a, b = load(classes=TOP, per_class=20, seed=0), load(classes=TOP, per_class=20, seed=1)
    assert rows(a.x_val) != rows(b.x_val)
    assert rows(a.x) != rows(b.x)
    assert len(a.x_val) == len(b.x_val)


def test_no_holdout_gives_no_validation_data():
    data = load(classes=TOP, holdout=0.0)
    assert not data.has_validation and data.y_val is None
    assert len(data.x) == sum(COUNTS[d] for d in TOP)


def test_tiny_holdout_still_holds_out_one_image_per_digit():
    data = load(classes=TOP, holdout=0.001)
    assert np.bincount(data.y_val["digit"]).tolist() == [1] * 5


def test_fits_a_model_of_the_matching_shape():
    data = load(classes=TOP, per_class=20, size=16, channels=1)
    assert check_dataset(data, (16, 16, 1), {"digit": HeadTarget((5,), "sparse_categorical_crossentropy")}) == []
    found = check_dataset(data, (16, 16, 1), {"digit": HeadTarget((4,), "sparse_categorical_crossentropy")})
    assert found and all(message.startswith("sklearn digits 5,6,7,8,9 (20 per class)") for message in found)


# -- packaging and the core ----------------------------------------------------


def test_import_leaves_tensorflow_and_sklearn_out():
    code = textwrap.dedent(
        """
        import sys
        import graft_digits
        from graft.plugins.registry import Registry
        Registry.discover(enabled={"sklearn_digits"})
        assert "tensorflow" not in sys.modules, "tensorflow imported"
        assert "sklearn" not in sys.modules, "sklearn imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_loading_data_does_not_import_tensorflow():
    code = "import sys, graft_digits as g; g.digit_images(); assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entry_point_is_installed():
    info = installed_plugin("sklearn_digits")
    assert info.entry_point == "graft_digits:SklearnDigits"
    assert info.distribution == "graft-digits"
    assert importlib.metadata.version("graft-digits") == "0.1.0"


@pytest.fixture(scope="module")
def registry():
    return Registry.discover(enabled={"sklearn_digits"})


def test_core_discovers_and_loads_it(registry):
    info = registry.get("data source", "sklearn_digits")
    assert info.distribution == "graft-digits" and info.provides == ("data source",)
    assert registry.params_class("data source", "sklearn_digits") is DigitsParams
    data = registry.load_data("sklearn_digits", params({"classes": TOP, "per_class": 20}), ".")
    assert isinstance(data, graft.Dataset)
    assert data.x.shape == (100, 32, 32, 3)
    assert np.bincount(data.y["digit"]).tolist() == [20] * 5
    assert np.array_equal(data.x_val, load(classes=TOP, per_class=3).x_val)


def test_core_passes_hook_problems_on(registry):
    with pytest.raises(graft.SpecProblem) as caught:
        registry.load_data("sklearn_digits", params({"classes": [8], "per_class": 500}), ".")
    assert caught.value.items == [
        (("per_class",), "only 122 training images of digit 8 remain after holdout; use at most that")
    ]


class StubExtractor:
    """Stands in for a convolutional extractor: validating a spec builds no model."""

    @graft.hookimpl
    def build_extractor(self, input_shape):
        raise AssertionError("validation must not build a model")


SPEC = """\
model:
  input_shape: [32, 32, 3]
  extractor: {plugin: stub}
  heads:
    digit: {plugin: dense, loss: sparse_categorical_crossentropy, params: {units: 5}}
stages:
  - name: few_shot
    data:
      source: sklearn_digits
      params:
        classes: [5, 6, 12]
        size: 30
    epochs: 1
"""


def test_spec_problems_carry_yaml_paths_and_lines():
    registry = Registry.discover(enabled={"sklearn_digits"})
    registry.register(StubExtractor(), "stub")
    with pytest.raises(graft.SpecError) as caught:
        parse_spec(SPEC, "digits.yaml", registry)
    assert caught.value.lines == [  # every field's problems at once
        "stages[0].data.params.classes[2] (line 11): digit 12 is not 0..9",
        "stages[0].data.params.size (line 12): must be a multiple of 8 (8, 16, 24, 32, ...), got 30",
    ]
    spec_file = parse_spec(
        SPEC.replace("5, 6, 12", "5, 6, 7, 8, 9").replace("size: 30", "size: 32"), "digits.yaml", registry
    )
    assert spec_file.spec.stages[0].data.params == DigitsParams(classes=TOP)


def test_it_passes_the_conformance_kit(tmp_path):
    from graft.testing import check_data_plugin

    found = check_data_plugin(
        "sklearn_digits", {"classes": [3, 4], "per_class": 4, "size": 8}, tmp_path, bad_params={"classes": [3, 3]}
    )
    assert found.plugin.distribution == "graft-digits"
    assert isinstance(found.answer, graft.Dataset) and set(found.answer.y) == {"digit"}
