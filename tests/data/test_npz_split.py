"""Sample counts and dimensions are checked before data is split: never truncated, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from graft.base.problems import SpecProblem
from graft.builtins.npz import Npz, NpzParams
from graft.plugins.datasets import Dataset
from graft.spec.convert import make_converter, structure
from graft.validators import loading_spec_in


def items(tmp_path, **raw) -> list[tuple[tuple, str]]:
    with loading_spec_in(str(tmp_path)):
        params = structure(make_converter(), raw, NpzParams, ("params",))
    with pytest.raises(SpecProblem) as caught:
        Npz().load_data(params, str(tmp_path))
    return caught.value.items


@pytest.mark.parametrize("split", [0.0, 0.25])
def test_targets_shorter_or_longer_than_the_inputs(tmp_path, split):
    file = tmp_path / "d.npz"
    np.savez(file, x=np.zeros((8, 3)), short=np.zeros(5), long=np.zeros((12, 1)), ok=np.zeros(8))
    raw = dict(path="d.npz", targets={"a": "short", "b": "long", "c": "ok"}, validation_split=split)
    assert items(tmp_path, **raw) == [
        (("targets", "a"), f"array 'short' in {file} has 5 samples but the inputs 'x' have 8; "
         "give every target array one row per input sample"),
        (("targets", "b"), f"array 'long' in {file} has 12 samples but the inputs 'x' have 8; "
         "give every target array one row per input sample"),
    ]


def test_single_values_instead_of_arrays(tmp_path):
    file = tmp_path / "d.npz"
    np.savez(file, x=np.float32(1), y=np.int64(2))
    assert items(tmp_path, path="d.npz", targets={"t": "y"}, validation_split=0.2) == [
        (("inputs",), f"array 'x' in {file} is a single value (shape ()), not one row per sample"),
        (("targets", "t"), f"array 'y' in {file} is a single value (shape ()), not one row per sample"),
    ]


def test_validation_file_sample_counts(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((8, 3)), y=np.zeros(8))
    np.savez(tmp_path / "v.npz", x=np.zeros((4, 3)), y=np.zeros(9))
    assert items(tmp_path, path="d.npz", targets={"t": "y"}, validation_path="v.npz") == [
        (("validation_path",), f"array 'y' in {tmp_path / 'v.npz'} has 9 samples but the inputs 'x' have 4; "
         "give every target array one row per input sample"),
    ]


def test_two_heads_on_one_array_and_split(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(10.0)[:, None], y=np.arange(10))
    raw = dict(path="d.npz", targets={"a": "y", "b": "y"}, validation_split=0.3)
    with loading_spec_in(str(tmp_path)):
        params = structure(make_converter(), raw, NpzParams, ("params",))
    data = Npz().load_data(params, str(tmp_path))
    np.testing.assert_array_equal(data.y["a"], data.x[:, 0])
    np.testing.assert_array_equal(data.y_val["b"], data.x_val[:, 0])


# -- Dataset.split itself, as third-party sources call it -------------------


def split_problem(x, y) -> list[tuple[tuple, str]]:
    with pytest.raises(SpecProblem) as caught:
        Dataset(x=x, y=y, description="src").split(0.5)
    return caught.value.items


def test_split_refuses_to_truncate():
    assert split_problem(np.zeros((4, 2)), {"t": np.zeros(6)}) == [
        ((), "src: cannot hold out validation data: the targets for head 't' have 6 samples but the inputs have 4; "
         "give every target array one row per input sample")
    ]


def test_split_of_odd_values():
    assert split_problem(np.float32(3), {"t": np.zeros(6)}) == [
        ((), "src: cannot hold out validation data: the inputs are a single value, not one per sample")
    ]
    assert split_problem(np.zeros(4), [np.zeros(4)]) == [
        ((), "src: cannot hold out validation data: the targets are a list, not a mapping of head name to array")
    ]
    [(path, message)] = split_problem([[1.0], [1.0, 2.0]], {"t": np.zeros(2)})
    assert message.startswith("src: cannot hold out validation data: the inputs are not one array: ")


def test_split_accepts_lists_and_keeps_every_sample():
    data = Dataset(x=[[float(i)] for i in range(10)], y={"t": list(range(10))}, description="src").split(0.2, seed=1)
    assert data.x.shape == (8, 1) and data.x_val.shape == (2, 1)
    assert sorted(np.concatenate([data.y["t"], data.y_val["t"]])) == list(range(10))
    np.testing.assert_array_equal(data.y_val["t"], data.x_val[:, 0])
