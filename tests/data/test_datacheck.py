"""``graft.data.datacheck.check_dataset``: every check, with its message."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from graft.data.datacheck import HeadTarget, check_dataset
from graft.plugins.datasets import Dataset

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
    assert check(data) == [
        f"{D}: training inputs have dtype <U1, not numbers; convert them to float32 (or integer class ids)"
    ]


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
        f"{D}: training targets for head 'r' have dtype <U1, not numbers; "
        "convert them to float32 (or integer class ids)"
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
    from graft.builtins.synthetic import Synthetic, SyntheticParams

    params = SyntheticParams(targets={"level": "level", "trend": "trend"}, samples=20, timesteps=10, channels=3)
    data = Synthetic().load_data(params, ".")
    heads = {"level": HeadTarget((1,), "mse"), "trend": HeadTarget((3,), "sparse_categorical_crossentropy")}
    assert check_dataset(data, (10, 3), heads) == []


# -- odd arrays a plugin can return: always messages, never an exception ------


def odd(x=None, y=None, **extra) -> list[str]:
    data = Dataset(x=clean().x if x is None else x, y=clean().y if y is None else y, description=D, **extra)
    return check(data)


def test_zero_d_inputs_and_targets():
    assert odd(x=np.float32(3)) == [f"{D}: training inputs are a single value, not an array of samples"]
    assert odd(y={**clean().y, "level": np.array(1.0)}) == [
        f"{D}: training targets for head 'level' are a single value, not one per sample"
    ]


def test_inputs_as_a_list_are_accepted_and_ragged_lists_reported():
    assert odd(x=clean().x.tolist()) == []
    [message] = odd(x=[[1.0, 2.0], [3.0]])
    assert message.startswith(f"{D}: training inputs are not one array (a ragged list?): ")
    [message] = odd(y={**clean().y, "trend": [[0], [1, 2]]})
    assert message.startswith(f"{D}: training targets for head 'trend' are not one array (a ragged list?): ")


@pytest.mark.parametrize(
    "values, says",
    [
        (np.array([{"a": 1}] * 6, dtype=object), "are Python objects (object"),
        (np.ones(6, complex), "are complex numbers (complex128)"),
        (np.zeros(6, [("a", "i4"), ("b", "f4")]), "have a structured dtype"),
        (np.array(["1"] * 6), "have dtype <U1, not numbers"),
        (np.zeros(6, "datetime64[s]"), "have dtype datetime64[s], not numbers"),
    ],
)
def test_non_numeric_dtypes(values, says):
    [inputs] = odd(x=values.reshape(6, 1).repeat(8, axis=1).reshape(6, 4, 2))
    assert inputs.startswith(f"{D}: training inputs {says}")
    [targets] = odd(y={**clean().y, "trend": values})
    assert targets.startswith(f"{D}: training targets for head 'trend' {says}")


def test_bool_targets_are_numbers():
    assert with_target("b", [True, False], "binary_crossentropy", (1,)) == []


def test_targets_longer_than_inputs():
    assert odd(y={**clean().y, "trend": np.zeros(9, int)}) == [
        f"{D}: training targets for head 'trend' have 9 samples but the inputs have 6"
    ]


def test_targets_not_a_mapping_or_with_odd_keys():
    assert odd(y=[np.zeros(6)]) == [f"{D}: training targets are a list, not a mapping of head name to array"]
    assert odd(y={**clean().y, 3: np.zeros(6), None: np.zeros(6)}) == [
        f"{D}: training data has targets 3 but the model has no head of that name; heads: level, trend",
        f"{D}: training data has targets None but the model has no head of that name; heads: level, trend",
    ]
    assert odd(y={0: np.zeros(6), "level": clean().y["level"]}) == [
        f"{D}: training data has no targets for head 'trend' (targets given: 0, level); "
        "map a target array to every head",
        f"{D}: training data has targets 0 but the model has no head of that name; heads: level, trend",
    ]


def test_not_a_dataset_or_validation_targets_without_inputs():
    assert check_dataset((np.zeros(3), {}), INPUT, HEADS) == ["the data source returned a tuple, not a graft.Dataset"]
    assert odd(y_val=clean().y) == [f"{D}: validation data has targets but no inputs (x_val)"]


DTYPES = st.sampled_from(
    ["bool", "int8", "uint64", "int64", "float16", "float32", "float64", "complex64", "U3", "S2", "datetime64[s]",
     "m8[ms]", [("a", "i4"), ("b", "f8")]]
)
ODD_ARRAYS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
ODD_VALUES = st.one_of(
    ODD_ARRAYS,
    ODD_ARRAYS.map(lambda a: a.astype(object)),
    ODD_ARRAYS.map(lambda a: a.tolist()),
    st.recursive(
        st.none() | st.integers() | st.floats() | st.text(max_size=2), lambda inner: st.lists(inner, max_size=4)
    ),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
ODD_TARGETS = st.one_of(
    st.dictionaries(st.sampled_from(["level", "trend", "x", 0, None, 1.5]), ODD_VALUES, max_size=3),
    ODD_VALUES,
)
LOSSES = st.sampled_from(["mse", "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"])


@pytest.mark.slow
@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    x=ODD_VALUES,
    y=ODD_TARGETS,
    validation=st.none() | st.tuples(ODD_VALUES, st.none() | ODD_TARGETS),
    losses=st.tuples(LOSSES, LOSSES),
)
def test_odd_arrays_give_messages_not_exceptions(x, y, validation, losses):
    x_val, y_val = validation or (None, None)
    heads = {"level": HeadTarget((1,), losses[0]), "trend": HeadTarget((3,), losses[1])}
    messages = check_dataset(Dataset(x=x, y=y, description=D, x_val=x_val, y_val=y_val), INPUT, heads)
    assert all(isinstance(message, str) and message.startswith(D) for message in messages)
