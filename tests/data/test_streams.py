"""Streams and arrays reach fit the same way: same samples and seed give the same weights; streams are vetted."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest

import graft
from graft.builtins.synthetic import SyntheticParams, generate
from graft.model.weights import read_weights
from graft.plugins.registry import PluginError, Registry
from graft.records.rundir import RunError
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC

PRETRAIN_ONLY = TINY_GRU_SPEC[: TINY_GRU_SPEC.index("  - name: transfer")]


@attrs.frozen
class StreamParams:
    """How the test source hands over the synthetic samples, and what it spoils."""

    mode: str = "arrays"  # arrays | stream | keyed
    spoil: str = ""  # "" | nan | shape | heads


class TestSource:
    """The synthetic task of the pretrain stage as arrays, as a stream of samples, or as keys read one by one."""

    @graft.hookimpl
    def load_data(self, params: StreamParams, base_dir: str):
        import tensorflow as tf

        x, y = generate(SyntheticParams(targets={"level": "level", "trend": "trend"}, samples=48, timesteps=12,
                                        channels=3, seed=1))
        if params.spoil == "nan":
            x[40, 2, 1] = np.nan  # in the first batches the check reads
        cut = 38
        if params.mode == "arrays":
            return graft.Dataset(
                x[:cut], {k: v[:cut] for k, v in y.items()}, "arrays", x[cut:], {k: v[cut:] for k, v in y.items()}
            )
        if params.spoil == "shape":
            x = x[:, :, :2]
        if params.spoil == "heads":
            y = {"level": y["level"]}
        if params.mode == "stream":
            def part(rows):
                return tf.data.Dataset.from_tensor_slices((x[rows], {k: v[rows] for k, v in y.items()}))

            return graft.Stream(part(slice(None, cut)), "stream", part(slice(cut, None)), samples=cut)
        xs, ys = tf.constant(x), {k: tf.constant(v) for k, v in y.items()}

        def read(row):
            return tf.gather(xs, row), {k: tf.gather(v, row) for k, v in ys.items()}

        keys = tf.data.Dataset.range(len(x))
        return graft.Stream(
            keys.take(cut), "keyed", keys.skip(cut), read=read, samples=cut, validation_samples=len(x) - cut
        )


def registry_with_source() -> Registry:
    registry = Registry.discover()
    registry.register(TestSource(), "test_source", distribution="graft-test-source", version="1.0")
    return registry


def spec_with(tmp_path, mode: str, spoil: str = "") -> str:
    data = f"source: test_source\n      params: {{mode: {mode}, spoil: '{spoil}'}}"
    text = PRETRAIN_ONLY.replace(
        "source: synthetic\n"
        "      params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {level: level, trend: trend}}",
        data,
    )
    assert text != PRETRAIN_ONLY
    path = tmp_path / f"{mode}{spoil}.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same pretrain stage on the same samples from arrays, a stream and a keyed stream."""
    registry, folder = registry_with_source(), tmp_path_factory.mktemp("streams")
    weights = {}
    for mode in ("arrays", "stream", "keyed"):
        out = folder / f"out_{mode}"
        run_spec(load_spec(spec_with(folder, mode), registry), registry, str(out), log=lambda _: None)
        weights[mode] = read_weights(str(out / "pretrain" / "weights.graft.npz"))
        weights[f"{mode}_report"] = json.loads((out / "pretrain" / "report.json").read_text())
    return weights


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stream", "keyed"])
def test_a_stream_and_arrays_of_the_same_samples_train_to_the_same_weights(trained, mode):
    arrays, streamed = trained["arrays"], trained[mode]
    assert arrays.keys() == streamed.keys()
    for name in arrays:
        for a, b in zip(arrays[name], streamed[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{mode}: {name}")


@pytest.mark.slow
def test_the_report_says_how_much_of_the_data_was_checked(trained):
    assert trained["arrays_report"]["data"]["checked"] == "all 38 training samples and all 10 validation samples"
    stream = trained["keyed_report"]["data"]
    assert stream["checked"].startswith("all 38 training samples and all 10 validation samples (a stream")
    assert (stream["samples"], stream["validation_samples"]) == (38, 10)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        ("nan", r"stages\[0\]\.data .*keyed \(first 38 samples\): validation inputs contain 1 NaN/inf value"),
        (
            "shape",
            r"stages\[0\]\.data .*training inputs are shaped \(12, 2\) per sample but the model expects \(12, 3\)",
        ),
        ("heads", r"stages\[0\]\.data .*training elements have no targets for 'trend'"),
    ],
)
def test_a_spoiled_stream_is_stopped_before_anything_trains(tmp_path, spoil, message):
    registry = registry_with_source()
    with pytest.raises(graft.SpecError, match=message):
        run_spec(load_spec(spec_with(tmp_path, "keyed", spoil), registry), registry, str(tmp_path / "out"), log=print)
    assert not (tmp_path / "out").exists()


def test_the_pipeline_never_augments_validation_data():
    from graft.data.pipeline import training_batches, validation_batches

    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    data = graft.Dataset(x[:4], {"y": np.arange(4)}, "tiny", x[4:], {"y": np.arange(2)})

    def augment(batch):
        return batch + 1000.0

    training = np.concatenate([batch for batch, _ in training_batches(data, 2, 0, augment).as_numpy_iterator()])
    validation = np.concatenate([batch for batch, _ in validation_batches(data, 2).as_numpy_iterator()])
    np.testing.assert_array_equal(np.sort(training, axis=0), x[:4] + 1000.0)
    np.testing.assert_array_equal(validation, x[4:])


def test_batches_are_reshuffled_every_epoch_and_the_same_for_the_same_seed():
    from graft.data.pipeline import training_batches

    data = graft.Dataset(np.arange(32, dtype=np.float32)[:, None], {"y": np.arange(32)}, "tiny")

    def epochs(seed):
        batches = training_batches(data, 8, seed)
        return [np.concatenate([y for _, y in batches.as_numpy_iterator()]) for _ in range(2)]

    first, second = epochs(7)
    assert sorted(first) == list(range(32)) and not np.array_equal(first, second)
    assert all(np.array_equal(a, b) for a, b in zip(epochs(7), (first, second), strict=True))


def test_a_stream_whose_train_is_not_a_tf_dataset_is_an_error_naming_the_plugin(tmp_path):
    class ListSource:
        @graft.hookimpl
        def load_data(self, params: StreamParams, base_dir: str):
            return graft.Stream([1, 2, 3], "a list")

    registry = Registry.discover()
    registry.register(ListSource(), "test_source", distribution="graft-lists", version="0.1")
    with pytest.raises(
        PluginError,
        match=r"graft-lists.*load_data: returned a graft.Stream whose train is a list, not a tf.data.Dataset",
    ):
        run_spec(load_spec(spec_with(tmp_path, "keyed"), registry), registry, str(tmp_path / "out"), log=print)


@pytest.mark.slow
def test_tensorflow_failing_mid_epoch_is_a_run_error_and_nothing_is_published(tmp_path, monkeypatch):
    import graft.data.streamcheck

    monkeypatch.setattr(graft.data.streamcheck, "SAMPLE_SAMPLES", 16)  # the check reads samples 0..15 (and 38..47)
    class FailingLater:
        @graft.hookimpl
        def load_data(self, params: StreamParams, base_dir: str):
            import tensorflow as tf

            stream = TestSource().load_data(params, base_dir)

            def read(row):
                x, y = stream.read(row)
                tf.debugging.assert_none_equal(row, tf.constant(36, tf.int64), message="sample 36 is unreadable")
                return x, y

            return attrs.evolve(stream, read=read, train=tf.data.Dataset.range(48).skip(0), samples=48)

    registry = Registry.discover()
    registry.register(FailingLater(), "test_source", distribution="graft-failing", version="0.1")
    with pytest.raises(
        RunError, match="stage 'pretrain' stopped: TensorFlow failed while training on keyed: .*sample 36 is unreadable"
    ):
        run_spec(load_spec(spec_with(tmp_path, "keyed"), registry), registry, str(tmp_path / "out"), log=lambda _: None)
    assert not (tmp_path / "out" / "pretrain").exists()


def test_a_dataset_of_single_values_is_a_problem_not_a_traceback(tmp_path):
    class Scalars:
        @graft.hookimpl
        def load_data(self, params: StreamParams, base_dir: str):
            return graft.Dataset(np.float32(5.0), {"level": np.float32(1.0), "trend": np.int64(0)}, "scalars")

    registry = Registry.discover()
    registry.register(Scalars(), "test_source", distribution="graft-scalars", version="0.1")
    with pytest.raises(graft.SpecError, match=r"stages\[0\]\.data .*scalars: training inputs are a single value"):
        run_spec(load_spec(spec_with(tmp_path, "keyed"), registry), registry, str(tmp_path / "out"), log=print)
