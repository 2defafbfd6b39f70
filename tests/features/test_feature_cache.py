"""A frozen, deterministic extractor's features are computed once; training gives the same weights."""

from __future__ import annotations

import os

import numpy as np
import pytest

from graft.model.weights import read_weights
from graft.planning.stageplan import build_stage_model
from graft.plugins.layers import LayerDecision
from graft.runs.observer import RunObserver
from graft.runs.stages import run_spec

SPEC = """\
seed: 4
model:
  input_shape: [12, 3]
  extractor:
    plugin: conv1d
    params:
      layers: [{name: conv_1, filters: 4, kernel_size: 3}, {name: conv_2, filters: 4, kernel_size: 3}]
      batch_norm: true
  heads:
    trend:
      plugin: dense
      loss: sparse_categorical_crossentropy
      metrics: [accuracy]
      params: {units: 3, activation: softmax, hidden: [4], dropout: 0.2}
stages:
  - name: pretrain
    data: {source: synthetic, params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {trend: trend}}}
    epochs: 1
    batch_size: 16
  - name: head
    init: {stage: pretrain}
    data: {source: synthetic, params: {samples: 48, timesteps: 12, channels: 3, seed: 2, targets: {trend: trend}}}
    epochs: 2
    batch_size: 16
    policy: {plugin: replace_head}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, registry):
    from graft.spec.specfile import load_spec

    folder = tmp_path_factory.mktemp("cache")
    (folder / "spec.yaml").write_text(SPEC)
    spec_file = load_spec(str(folder / "spec.yaml"), registry)
    out = {}
    for cache in (True, False):
        out[cache] = str(folder / f"out_{cache}")
        run_spec(spec_file, registry, out[cache], log=lambda _: None, cache_features=cache)
    return spec_file, out


@pytest.mark.slow
def test_the_report_says_whether_features_were_cached(runs):
    import json

    _, out = runs
    for cache in (True, False):
        with open(f"{out[cache]}/head/report.json") as handle:
            assert json.load(handle)["features_cached"] is cache
        with open(f"{out[cache]}/pretrain/report.json") as handle:
            assert json.load(handle)["features_cached"] is False  # everything trains in pretrain


@pytest.mark.slow
def test_cached_and_full_training_give_the_same_weights(runs):
    _, out = runs
    cached, full = (
        read_weights(f"{out[True]}/head/weights.graft.npz"),
        read_weights(f"{out[False]}/head/weights.graft.npz"),
    )
    assert cached.keys() == full.keys()
    for name in cached:
        for a, b in zip(cached[name], full[name], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    pretrain = read_weights(f"{out[True]}/pretrain/weights.graft.npz")
    assert not all(
        np.array_equal(a, b) for a, b in zip(cached["trend"], pretrain["trend"], strict=True) if a.shape == b.shape
    )


@pytest.mark.slow
def test_the_confusion_matrix_on_cached_features_is_the_published_models(runs, registry):
    """Counted in the validation pass of the heads on cached features: that of the saved model on the data."""
    import json

    import graft

    spec_file, out = runs
    stage = spec_file.spec.stages[1]
    data = registry.load_data(stage.data.source, stage.data.params, spec_file.base_dir)
    truth = np.asarray(data.y_val["trend"]).reshape(-1)
    for cache in (True, False):
        with open(f"{out[cache]}/head/report.json") as handle:
            report = json.load(handle)
        predicted = graft.load_stage(out[cache], "head").model.predict(data.x_val, verbose=0).argmax(axis=1)
        matrix = np.zeros((3, 3), int)
        np.add.at(matrix, (truth, predicted), 1)
        assert report["confusion"] == {"trend": matrix.tolist()}, cache


@pytest.mark.slow
def test_only_a_frozen_deterministic_extractor_counts_as_constant(runs, registry):
    from graft.features.cache import extractor_is_constant

    spec_file, _ = runs
    built = build_stage_model(spec_file, registry, 1)
    frozen = {info.name: LayerDecision(trainable=not info.in_extractor) for info in built.layers}
    assert extractor_is_constant(built, frozen)
    assert not extractor_is_constant(built, {**frozen, "conv_2": LayerDecision(trainable=True)})


def test_an_extractor_with_dropout_is_not_constant(write_spec, registry):
    from graft.features.cache import extractor_is_constant
    from graft.spec.specfile import load_spec

    text = SPEC.replace(
        "plugin: conv1d\n    params:\n      layers: [{name: conv_1, filters: 4, kernel_size: 3}, "
        "{name: conv_2, filters: 4, kernel_size: 3}]\n      batch_norm: true",
        "plugin: gru\n    params: {layers: [{name: gru_1, units: 4}], dropout: 0.2}",
    )
    assert "plugin: gru" in text
    spec_file = load_spec(write_spec(text), registry)
    built = build_stage_model(spec_file, registry, 1)
    frozen = {info.name: LayerDecision(trainable=not info.in_extractor) for info in built.layers}
    assert not extractor_is_constant(built, frozen)


# -- a damaged entry, at rest and while the heads train on it ---------------------------------


def _entry_folder() -> str:
    from graft.features.store import FeatureStore, cache_root

    (entry,) = FeatureStore(cache_root()).entries()
    return entry.path


def _zero(path: str) -> None:
    """The whole file overwritten with zeros of the same size (the features here are one chunk)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.write(bytes(size))


def _flip(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.seek(5)
        value = handle.read(1)[0]
        handle.seek(5)
        handle.write(bytes([value ^ 0x40]))


def _head_weights(out: str) -> dict:
    return read_weights(f"{out}/head/weights.graft.npz")


def _assert_bitwise(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert all(a.tobytes() == b.tobytes() for a, b in zip(left[name], right[name], strict=True)), name


@pytest.mark.slow
def test_a_damaged_entry_is_computed_again_and_the_run_trains_bitwise_like_a_clean_one(tmp_path, registry):
    from graft.spec.specfile import load_spec

    (tmp_path / "spec.yaml").write_text(SPEC)
    spec_file = load_spec(str(tmp_path / "spec.yaml"), registry)
    run_spec(spec_file, registry, str(tmp_path / "clean"), log=lambda _: None)
    clean = _head_weights(str(tmp_path / "clean"))
    folder = _entry_folder()

    for file, damage in (("train.features.bin", _zero), ("train.features.bin", _flip), ("train.target1.bin", _flip)):
        damage(os.path.join(folder, file))
        lines: list[str] = []
        out = str(tmp_path / f"{file}-{damage.__name__}")
        run_spec(spec_file, registry, out, log=lines.append)
        said = [line for line in lines if "cached features" in line]
        assert said == [
            f"the cached features {folder} are damaged ({file}: chunk 1 of 1 (bytes 0 to "
            f"{os.path.getsize(os.path.join(folder, file)):,}) does not match its sha256 recorded when it was "
            "written): removed, they are computed again"
        ], (file, damage.__name__, lines)
        assert any("its features are computed once" in line for line in lines)  # computed, not reused
        _assert_bitwise(_head_weights(out), clean)
        assert _entry_folder() == folder  # stored again under the same key


class DamageAfterFirstEpoch(RunObserver):
    """Overwrites the stage's cached features with zeros when its first epoch ends."""

    def __init__(self, stage: str) -> None:
        self.stage, self.damaged = stage, False
        self.current = ""

    def before_fit(self, stage, round, built) -> None:
        self.current = stage.name

    def keras_callbacks(self) -> list:
        from graft.base.backend import import_keras

        observer = self

        class Damage(import_keras().callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if observer.current == observer.stage and epoch == 0:
                    _zero(os.path.join(_entry_folder(), "train.features.bin"))
                    observer.damaged = True

        return [Damage()]


@pytest.mark.slow
def test_damage_found_mid_epoch_stops_the_stage_with_nothing_written_and_the_next_run_recomputes(tmp_path, registry):
    from graft.features.digests import FeatureCacheDamaged
    from graft.spec.specfile import load_spec

    (tmp_path / "spec.yaml").write_text(SPEC)
    spec_file = load_spec(str(tmp_path / "spec.yaml"), registry)
    run_spec(spec_file, registry, str(tmp_path / "clean"), log=lambda _: None)
    clean = _head_weights(str(tmp_path / "clean"))
    folder = _entry_folder()

    size = os.path.getsize(os.path.join(folder, "train.features.bin"))
    out = tmp_path / "damaged"
    observer = DamageAfterFirstEpoch("head")
    with pytest.raises(FeatureCacheDamaged) as caught:
        run_spec(spec_file, registry, str(out), log=lambda _: None, observer=observer)
    assert observer.damaged
    assert str(caught.value) == (
        f"stage 'head' stopped: the cached features {folder} changed on disk while the heads trained on them "
        f"(train.features.bin: chunk 1 of 1 (bytes 0 to {size:,}) does not match its sha256 recorded when it was "
        "written); the entry is removed and nothing of this stage was written (finished stages are kept): run "
        "again and the features are computed again"
    )
    assert not os.path.exists(folder)
    assert (out / "pretrain" / "report.json").is_file()
    assert not [name for name in os.listdir(out) if name.startswith("head")]  # no head, head.partial, head.training

    lines: list[str] = []
    run_spec(spec_file, registry, str(out), log=lines.append)  # resumes after pretrain, computes the features
    assert any("its features are computed once" in line for line in lines)
    _assert_bitwise(_head_weights(str(out)), clean)


def test_features_are_those_of_predict_on_batch_from_one_trace_for_every_batch_size():
    from graft.base.backend import import_keras
    from graft.features.cache import _extract_function

    keras = import_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 4), name="probe_input")
    x = keras.layers.Conv1D(6, 3, name="probe_conv")(inputs)
    extractor = keras.Model(inputs, keras.layers.GlobalAveragePooling1D(name="probe_pool")(x), name="probe")
    extract = _extract_function(tf, extractor)
    samples = np.random.default_rng(0).normal(size=(11, 5, 4)).astype(np.float32)
    for batch in (samples[:4], samples[4:8], samples[8:]):  # the last one partial, as in a stage
        expected = np.asarray(extractor.predict_on_batch(batch))
        assert np.asarray(extract(batch)).tobytes() == expected.tobytes()
    [function] = extract.functions.values()
    assert function.experimental_get_tracing_count() == 1
