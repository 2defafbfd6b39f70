"""``graft.datacheck.check_dataset``: every check, with its message."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from graft.data import Dataset
from graft.datacheck import HeadTarget, check_dataset

INPUT = (4, 2)
HEADS = {
    "level": HeadTarget((1,), "mse"),
    "trend": HeadTarget((3,), "sparse_categorical_crossentropy"),
}
D = "npz t.npz"


def clean(n: int = 6, validation: bool = False) -> Dataset:
    x = np.zeros((n, *INPUT), np.float32)
    y = {"level": np.zeros((n, 1), np.float32), "trend": np.arange(n) % 3}
    data = Dataset(x=x, y=y, description=D)
    if validation:
        data = attrs.evolve(data, x_val=x[:2].copy(), y_val={k: v[:2].copy() for k, v in y.items()})
    return data


def check(data: Dataset, heads=HEADS, input_shape=INPUT) -> list[str]:
    return check_dataset(data, input_shape, heads)


def with_target(head: str, values, loss: str, output_shape=(3,)) -> list[str]:
    data = attrs.evolve(clean(len(values)), y={head: np.asarray(values)})
    return check(data, {head: HeadTarget(output_shape, loss)})


def test_clean_dataset_has_no_problems():
    assert check(clean()) == []
    assert check(clean(validation=True)) == []


def test_clean_alternatives_pass():
    assert with_target("t", [[0], [2]], "sparse_categorical_crossentropy") == []
    assert with_target("t", [0.0, 2.0], "sparse_categorical_crossentropy") == []
    assert with_target("t", np.eye(3)[[0, 2]], "categorical_crossentropy") == []
    assert with_target("b", [0.0, 1.0], "binary_crossentropy", (1,)) == []
    assert with_target("b", [[0, 1, 1], [1, 0, 0]], "binary_crossentropy") == []
    assert with_target("r", [1.5, -2.0], "mae", (1,)) == []
    assert with_target("r", np.zeros((2, 5)), "huber", (5,)) == []


def test_no_samples():
    data = Dataset(x=np.zeros((0, *INPUT)), y={"level": np.zeros((0, 1)), "trend": np.zeros(0, int)}, description=D)
    assert check(data) == [f"{D}: training data has no samples"]


def test_inputs_not_numeric():
    data = attrs.evolve(clean(), x=np.full((6, *INPUT), "a"))
    assert check(data) == [f"{D}: training inputs have dtype <U1, not numbers; convert them to float32 (or integer class ids)"]


def test_input_shape_mismatch():
    data = attrs.evolve(clean(), description="synthetic (seed 0)")
    assert check(data, input_shape=(50, 2)) == [
        "synthetic (seed 0): training inputs are shaped (4, 2) per sample but the model expects (50, 2); "
        "make model.input_shape match the data or reshape the data"
    ]


def test_non_finite_inputs():
    data = clean()
    data.x[3, 0, 0] = np.nan
    data.x[3, 1, 1] = np.inf
    data.x[5, 2, 0] = -np.inf
    assert check(data) == [
        f"{D}: training inputs contain 3 NaN/inf value(s) in 2 sample(s), first in sample 3; remove or impute them"
    ]


def test_non_finite_float_targets():
    data = clean()
    data.y["level"][4, 0] = np.nan
    assert check(data) == [
        f"{D}: training targets for head 'level' contain 1 NaN/inf value(s) in 1 sample(s), "
        "first in sample 4; remove or impute them"
    ]


def test_head_without_targets():
    data = attrs.evolve(clean(), y={"level": clean().y["level"]})
    assert check(data) == [
        f"{D}: training data has no targets for head 'trend' (targets given: level); map a target array to every head"
    ]


def test_targets_for_no_head():
    data = attrs.evolve(clean(), y={**clean().y, "extra": np.zeros(6)})
    assert check(data) == [
        f"{D}: training data has targets 'extra' but the model has no head of that name; heads: level, trend"
    ]


def test_target_sample_count():
    data = attrs.evolve(clean(), y={**clean().y, "trend": np.zeros(5, int)})
    assert check(data) == [f"{D}: training targets for head 'trend' have 5 samples but the inputs have 6"]


def test_targets_not_numeric():
    assert with_target("r", ["a", "b"], "mse", (1,)) == [
        f"{D}: training targets for head 'r' have dtype <U1, not numbers; convert them to float32 (or integer class ids)"
    ]


def test_sparse_needs_whole_numbers():
    assert with_target("t", [0.0, 1.5, 2.0, 0.5], "sparse_categorical_crossentropy") == [
        f"{D}: training targets for head 't' must be integer class ids for sparse_categorical_crossentropy "
        "but hold fractions (2 sample(s), first in sample 1)"
    ]


def test_sparse_shape():
    assert with_target("t", np.eye(3)[[0, 1]], "sparse_categorical_crossentropy") == [
        f"{D}: training targets for head 't' have shape (2, 3) but sparse_categorical_crossentropy needs "
        "class ids shaped (2,) or (2, 1); for one-hot targets use categorical_crossentropy"
    ]


def test_sparse_ids_out_of_range():
    assert with_target("trend", [0, 7, 3], "sparse_categorical_crossentropy", (5,)) == [
        f"{D}: training targets for head 'trend': class ids go up to 7 but head 'trend' has 5 units; "
        "give the head 8 units or fix the ids"
    ]
    assert with_target("trend", [0, -1], "sparse_categorical_crossentropy") == [
        f"{D}: training targets for head 'trend': class ids go down to -1 but must be 0 or more"
    ]


def test_categorical_shape():
    assert with_target("c", [0, 2], "categorical_crossentropy") == [
        f"{D}: training targets for head 'c' have shape (2,) but categorical_crossentropy needs one-hot targets "
        "shaped (2, 3); for integer class ids use sparse_categorical_crossentropy"
    ]


def test_binary_range_and_shape():
    assert with_target("b", [0.0, 2.0, -1.0], "binary_crossentropy", (1,)) == [
        f"{D}: training targets for head 'b' range from -1.0 to 2.0 but binary_crossentropy needs values in [0, 1]"
    ]
    assert with_target("b", [[0, 1], [1, 0]], "binary_crossentropy", (1,)) == [
        f"{D}: training targets for head 'b' have shape (2, 2) but head 'b' outputs (1,) per sample, "
        "so binary_crossentropy needs (2, 1) or (2,)"
    ]


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_shape(loss):
    assert with_target("r", np.zeros((2, 3)), loss, (2,)) == [
        f"{D}: training targets for head 'r' have shape (2, 3) but head 'r' outputs (2,) per sample, "
        f"so {loss} needs (2, 2)"
    ]
    assert with_target("r", np.zeros(2), loss, (2,))[0].endswith(f"so {loss} needs (2, 2)")


def test_validation_problems_say_validation():
    data = clean(validation=True)
    data.x_val[1, 0, 0] = np.nan
    data = attrs.evolve(data, y_val={"level": data.y_val["level"], "trend": np.array([0, 9])})
    assert check(data) == [
        f"{D}: validation inputs contain 1 NaN/inf value(s) in 1 sample(s), first in sample 1; remove or impute them",
        f"{D}: validation targets for head 'trend': class ids go up to 9 but head 'trend' has 3 units; "
        "give the head 10 units or fix the ids",
    ]


def test_validation_without_samples_or_targets():
    empty = attrs.evolve(clean(), x_val=np.zeros((0, *INPUT)), y_val={"level": np.zeros((0, 1)), "trend": np.zeros(0)})
    assert check(empty) == [f"{D}: validation data has no samples"]
    untargeted = attrs.evolve(clean(), x_val=np.zeros((2, *INPUT)))
    assert check(untargeted) == [f"{D}: validation data has inputs but no targets"]


def test_every_problem_is_reported():
    data = attrs.evolve(clean(), x=np.zeros((6, 3, 2)), y={"level": np.zeros((6, 2)), "other": np.zeros(6)})
    assert check(data) == [
        f"{D}: training inputs are shaped (3, 2) per sample but the model expects (4, 2); "
        "make model.input_shape match the data or reshape the data",
        f"{D}: training targets for head 'level' have shape (6, 2) but head 'level' outputs (1,) per sample, "
        "so mse needs (6, 1) or (6,)",
        f"{D}: training data has no targets for head 'trend' (targets given: level, other); "
        "map a target array to every head",
        f"{D}: training data has targets 'other' but the model has no head of that name; heads: level, trend",
    ]


def test_synthetic_data_passes_its_own_model_shape():
    from graft.builtins.sources import Synthetic, SyntheticParams

    params = SyntheticParams(targets={"level": "level", "trend": "trend"}, samples=20, timesteps=10, channels=3)
    data = Synthetic().load_data(params, ".")
    heads = {"level": HeadTarget((1,), "mse"), "trend": HeadTarget((3,), "sparse_categorical_crossentropy")}
    assert check_dataset(data, (10, 3), heads) == []
