"""The built-in data sources ``npz`` and ``synthetic``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from graft.base.problems import SpecProblem
from graft.builtins.npz import Npz, NpzParams
from graft.builtins.synthetic import Synthetic, SyntheticParams, generate
from graft.spec.convert import make_converter, structure
from graft.validators import loading_spec_in


def params(cls, **raw):
    return structure(make_converter(), raw, cls, ("params",))


def problem_items(cls, **raw):
    with pytest.raises(SpecProblem) as caught:
        params(cls, **raw)
    return caught.value.items


# -- synthetic -----------------------------------------------------------


def synthetic(**raw):
    raw.setdefault("targets", {"level": "level", "trend": "trend"})
    return Synthetic().load_data(params(SyntheticParams, **raw), "/nowhere")


def test_synthetic_shapes_dtypes_and_split():
    data = synthetic(samples=40, timesteps=20, channels=3, classes=4, validation_split=0.25)
    assert data.description == "synthetic (seed 0)"
    assert data.x.shape == (30, 20, 3) and data.x.dtype == np.float32
    assert data.x_val.shape == (10, 20, 3)
    assert data.y["level"].shape == (30, 1) and data.y["level"].dtype == np.float32
    assert data.y["trend"].shape == (30,) and data.y["trend"].dtype == np.int64
    assert data.y_val["trend"].shape == (10,)
    ids = np.concatenate([data.y["trend"], data.y_val["trend"]])
    assert ids.min() >= 0 and ids.max() < 4
    assert np.isfinite(data.x).all()


def test_synthetic_level_is_mean_of_channel_0_over_last_tenth():
    x, y = generate(params(SyntheticParams, targets={"lv": "level"}, samples=5, timesteps=30))
    np.testing.assert_array_equal(y["lv"][:, 0], x[:, -3:, 0].mean(axis=1))


def test_synthetic_is_deterministic():
    first, second = synthetic(seed=3), synthetic(seed=3)
    assert first.description == "synthetic (seed 3)"
    assert first.x.tobytes() == second.x.tobytes()
    assert first.x_val.tobytes() == second.x_val.tobytes()
    for head in ("level", "trend"):
        assert first.y[head].tobytes() == second.y[head].tobytes()
        assert first.y_val[head].tobytes() == second.y_val[head].tobytes()


def test_synthetic_seed_and_frequency_change_the_data():
    base = synthetic(validation_split=0.0)
    other_seed = synthetic(seed=1, validation_split=0.0)
    other_frequency = synthetic(frequency=2.5, validation_split=0.0)
    assert not np.array_equal(base.x, other_seed.x)
    assert not np.array_equal(base.x, other_frequency.x)
    # a related task: same slope classes, different seasonality
    np.testing.assert_array_equal(base.y["trend"], other_frequency.y["trend"])


def test_synthetic_no_validation_when_split_is_zero():
    data = synthetic(samples=12, validation_split=0.0)
    assert not data.has_validation and data.x.shape[0] == 12


def test_synthetic_all_channels_carry_signal():
    x, _ = generate(params(SyntheticParams, targets={"t": "trend"}, noise=0.0))
    assert (x.std(axis=(0, 1)) > 0.1).all()


def test_synthetic_rejects_unknown_target_kind_with_path():
    assert problem_items(SyntheticParams, targets={"level": "level", "slope": "trnd"}) == [
        (("params", "targets", "slope"), "'trnd' is not one of: level, trend — did you mean 'trend'?")
    ]


def test_synthetic_refuses_sizes_larger_than_memory(monkeypatch):
    monkeypatch.setattr("graft.base.memory.available_bytes", lambda: 2**30)
    [(path, message)] = problem_items(SyntheticParams, targets={"t": "trend"}, samples=1_000_000_000)
    assert path == ("params", "samples")
    assert message.startswith("synthetic data of 1,000,000,000 samples x 50 timesteps x 8 channels would allocate ")
    assert message.endswith("but only 1.0 GiB of memory is available; make it smaller")
    [(path, message)] = problem_items(
        SyntheticParams, targets={"t": "trend"}, samples=4, timesteps=10**6, channels=10**4
    )
    assert path == ("params", "samples") and "1,000,000 timesteps x 10,000 channels" in message
    [(path, message)] = problem_items(SyntheticParams, targets={"t": "trend"}, classes=10**12)
    assert path == ("params", "classes") and message.startswith("1,000,000,000,000 classes would allocate 7.3 TiB")


def test_synthetic_size_check_is_not_in_the_way():
    assert synthetic(samples=2000, timesteps=100, channels=16).x.shape == (1600, 100, 16)


def test_synthetic_rejects_empty_targets_and_bad_numbers():
    assert problem_items(SyntheticParams, targets={}) == [(("params", "targets"), "must not be empty")]
    assert problem_items(SyntheticParams, targets={"t": "trend"}, samples=0) == [
        (("params", "samples"), "must be greater than 0, got 0")
    ]
    assert problem_items(SyntheticParams, targets={"t": "trend"}, validation_split=1.0) == [
        (("params", "validation_split"), "must be at least 0 and below 1, got 1.0")
    ]


# -- npz -----------------------------------------------------------------


@pytest.fixture
def arrays():
    x = np.arange(10 * 4 * 2, dtype=np.float32).reshape(10, 4, 2)
    return {"x": x, "y_level": x[:, -1, :1].copy(), "y_trend": np.arange(10) % 3}


def npz(tmp_path, **raw):
    with loading_spec_in(str(tmp_path)):  # as when a spec in tmp_path is loaded
        loaded = params(NpzParams, **raw)
    return Npz().load_data(loaded, str(tmp_path))


@pytest.fixture
def in_tmp(tmp_path):
    """Params structured as for a spec in ``tmp_path``, which holds a.npz and b.npz."""
    np.savez(tmp_path / "a.npz", x=np.zeros(2))
    np.savez(tmp_path / "b.npz", x=np.zeros(2))
    with loading_spec_in(str(tmp_path)):
        yield tmp_path


def test_npz_loads_inputs_and_targets(tmp_path, arrays):
    np.savez(tmp_path / "train.npz", **arrays)
    data = npz(tmp_path, path="train.npz", targets={"level": "y_level", "trend": "y_trend"})
    assert data.description == "npz train.npz"
    assert not data.has_validation
    np.testing.assert_array_equal(data.x, arrays["x"])
    np.testing.assert_array_equal(data.y["level"], arrays["y_level"])
    np.testing.assert_array_equal(data.y["trend"], arrays["y_trend"])


def test_npz_custom_inputs_key(tmp_path, arrays):
    np.savez(tmp_path / "d.npz", series=arrays["x"], y=arrays["y_trend"])
    data = npz(tmp_path, path="d.npz", inputs="series", targets={"trend": "y"})
    np.testing.assert_array_equal(data.x, arrays["x"])


def test_npz_validation_split(tmp_path, arrays):
    np.savez(tmp_path / "train.npz", **arrays)
    data = npz(tmp_path, path="train.npz", targets={"trend": "y_trend"}, validation_split=0.3)
    assert data.x.shape == (7, 4, 2) and data.x_val.shape == (3, 4, 2)
    assert data.y["trend"].shape == (7,) and data.y_val["trend"].shape == (3,)
    # every sample lands on exactly one side, with its own target
    rows = np.concatenate([data.x, data.x_val])[:, 0, 0]
    assert sorted(rows) == sorted(arrays["x"][:, 0, 0])
    np.testing.assert_array_equal(data.y_val["trend"], (data.x_val[:, 0, 0] // 8).astype(int) % 3)


def test_npz_validation_path(tmp_path, arrays):
    np.savez(tmp_path / "train.npz", **arrays)
    (tmp_path / "val").mkdir()
    np.savez(tmp_path / "val" / "v.npz", x=arrays["x"][:2], y_trend=arrays["y_trend"][:2])
    data = npz(tmp_path, path="train.npz", targets={"trend": "y_trend"}, validation_path="val/v.npz")
    assert data.x.shape == (10, 4, 2)
    np.testing.assert_array_equal(data.x_val, arrays["x"][:2])
    np.testing.assert_array_equal(data.y_val["trend"], arrays["y_trend"][:2])


def test_npz_validation_path_and_split_are_exclusive(in_tmp):
    assert problem_items(
        NpzParams, path="a.npz", targets={"t": "y"}, validation_split=0.2, validation_path="b.npz"
    ) == [
        (
            ("params", "validation_path"),
            "give either validation_path or validation_split, not both (validation_split is 0.2)",
        )
    ]


def test_npz_params_require_targets(in_tmp):
    assert problem_items(NpzParams, path="a.npz", targets={}) == [(("params", "targets"), "must not be empty")]
    assert problem_items(NpzParams, path="a.npz") == [(("params", "targets"), "required key missing")]


def test_npz_missing_files_are_found_when_the_spec_is_loaded(in_tmp):
    assert problem_items(NpzParams, path="data/missing.npz", targets={"t": "y"}, validation_path="~/nope.npz") == [
        (("params", "path"), f"file not found: {in_tmp / 'data' / 'missing.npz'}"),
        (("params", "validation_path"), "file not found: ~/nope.npz"),  # as written
    ]
    assert problem_items(NpzParams, path=".", targets={"t": "y"}) == [
        (("params", "path"), f"{in_tmp} is a folder; give the path of a file")
    ]


def test_npz_file_gone_between_validate_and_run(tmp_path, arrays):
    np.savez(tmp_path / "train.npz", **arrays)
    with loading_spec_in(str(tmp_path)):
        loaded = params(NpzParams, path="train.npz", targets={"t": "y_trend"})
    (tmp_path / "train.npz").unlink()
    with pytest.raises(SpecProblem) as caught:
        Npz().load_data(loaded, str(tmp_path))
    assert caught.value.items == [(("path",), f"file not found: {tmp_path / 'train.npz'}")]


def test_npz_missing_keys_are_all_reported(tmp_path, arrays):
    np.savez(tmp_path / "train.npz", **arrays)
    file = tmp_path / "train.npz"
    with pytest.raises(SpecProblem) as caught:
        npz(tmp_path, path="train.npz", inputs="inputs", targets={"level": "y_level", "trend": "y_trnd"})
    assert caught.value.items == [
        (("inputs",), f"no array 'inputs' in {file}; arrays: x, y_level, y_trend"),
        (("targets", "trend"), f"no array 'y_trnd' in {file}; arrays: x, y_level, y_trend — did you mean 'y_trend'?"),
    ]


def test_npz_validation_file_problems_point_at_validation_path(tmp_path, arrays):
    np.savez(tmp_path / "train.npz", **arrays)
    np.savez(tmp_path / "val.npz", x=arrays["x"])
    raw = dict(path="train.npz", targets={"trend": "y_trend"})
    with pytest.raises(SpecProblem) as caught:
        npz(tmp_path, **raw, validation_path="val.npz")
    assert caught.value.items == [
        (("validation_path",), f"no array 'y_trend' in {tmp_path / 'val.npz'}; arrays: x"),
    ]


# -- plugin wiring and imports ---------------------------------------------


def test_sources_are_registered_entry_points():
    from graft.plugins.registry import Registry

    registry = Registry.discover()
    assert {"npz", "synthetic"} <= set(registry.names("data source"))
    assert registry.params_class("data source", "npz") is NpzParams
    assert registry.params_class("data source", "synthetic") is SyntheticParams
    data = registry.load_data("synthetic", params(SyntheticParams, targets={"t": "trend"}, samples=8), ".")
    assert data.description == "synthetic (seed 0)"


def test_no_tensorflow_import():
    code = (
        "import sys, graft.builtins.npz, graft.builtins.synthetic, graft.data.datacheck; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
