"""Class weights and sample weights reach each head's loss: checked on the loss Keras reports and on weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graft.data.pipeline import training_batches, validation_batches
from graft.data.weighting import ClassWeights, Weighting, count_classes, resolve
from graft.model.losses import HeadLoss, compile_arguments
from graft.plugins.datasets import Dataset

HEADS = ("trend", "level")


def _model(keras, seed: int = 0):
    """Two heads on one Dense: ``trend`` (3 classes, logits) and ``level`` (regression)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(5, name="body")(inputs)
    outputs = [keras.layers.Dense(3, name="trend")(hidden), keras.layers.Dense(1, name="level")(hidden)]
    model = keras.Model(inputs, outputs)
    losses = {
        "trend": HeadLoss("trend", "sparse_categorical_crossentropy", True, (), 1.0),
        "level": HeadLoss("level", "mse", False, (), 0.5),
    }
    model.compile(optimizer=keras.optimizers.SGD(0.1), **compile_arguments(keras, losses))
    return model


def _data(samples: int = 12, seed: int = 1) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(
        x=rng.normal(size=(samples, 4)).astype("float32"),
        y={"trend": rng.integers(0, 3, samples), "level": rng.normal(size=(samples, 1)).astype("float32")},
        description="test arrays",
    )


def _per_sample_losses(model, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's loss of each head, computed here: cross-entropy of softmax(logits), squared error."""
    logits, level = (np.asarray(out, np.float64) for out in model.predict(data.x, verbose=0))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    cross_entropy = -log_softmax[np.arange(len(logits)), np.asarray(data.y["trend"]).reshape(-1)]
    return cross_entropy, ((level - data.y["level"]) ** 2).mean(axis=-1)


@pytest.mark.slow
def test_the_loss_keras_reports_is_the_hand_weighted_loss_of_every_head():
    import keras

    model, data = _model(keras), _data()
    source = np.linspace(0.0, 2.0, len(data.x)).astype("float32")  # the source weighs level's samples
    data = Dataset(x=data.x, y=data.y, description=data.description, sample_weight={"level": source})
    weighting = Weighting(HEADS, {"trend": ClassWeights("id", (1.0, 5.0, 0.0))}, frozenset({"level"}))
    batch = training_batches(data, batch_size=len(data.x), seed=0, weighting=weighting)
    reported = model.evaluate(batch, return_dict=True, verbose=0)
    trend, level = _per_sample_losses(model, data)
    by_class = np.array([1.0, 5.0, 0.0])[data.y["trend"]]
    # Keras averages weighted per-sample losses over the batch (not over the weights)
    assert reported["trend_loss"] == pytest.approx(float(np.mean(by_class * trend)), rel=1e-5)
    assert reported["level_loss"] == pytest.approx(float(np.mean(source * level)), rel=1e-5)
    assert reported["loss"] == pytest.approx(float(np.mean(by_class * trend) + 0.5 * np.mean(source * level)), rel=1e-5)
    unweighted = model.evaluate(training_batches(data, len(data.x), 0), return_dict=True, verbose=0)
    assert unweighted["trend_loss"] == pytest.approx(float(np.mean(trend)), rel=1e-5)  # the test can fail


def test_class_weights_count_in_training_only_and_source_weights_in_validation_too():
    import keras

    model, data = _model(keras), _data().split(0.5)
    source = {"level": np.full(len(data.x), 3.0, "float32")}
    source_val = {"level": np.full(len(data.x_val), 2.0, "float32")}
    data = Dataset(x=data.x, y=data.y, description="split", x_val=data.x_val, y_val=data.y_val,
                   sample_weight=source, sample_weight_val=source_val)
    weighting = Weighting(HEADS, {"trend": ClassWeights("id", (4.0, 4.0, 4.0))}, frozenset({"level"}))
    val = Dataset(x=data.x_val, y=data.y_val, description="val")
    trend, level = _per_sample_losses(model, val)
    reported = model.evaluate(validation_batches(data, 64, weighting), return_dict=True, verbose=0)
    assert reported["trend_loss"] == pytest.approx(float(np.mean(trend)), rel=1e-5)  # no class weight here
    assert reported["level_loss"] == pytest.approx(float(np.mean(2.0 * level)), rel=1e-5)


@pytest.mark.slow
def test_a_class_of_weight_0_gives_its_head_no_gradient():
    import keras

    data = _data(samples=16)
    only_class_0 = Dataset(x=data.x, y={"trend": np.zeros(16, np.int64), "level": data.y["level"]}, description="0s")
    for weights, changes in (((0.0, 1.0, 1.0), False), ((1.0, 1.0, 1.0), True)):
        model = _model(keras)
        before = [np.array(value) for value in model.get_layer("trend").get_weights()]
        weighting = Weighting(HEADS, {"trend": ClassWeights("id", weights)})
        model.fit(training_batches(only_class_0, 16, seed=0, weighting=weighting), epochs=1, shuffle=False, verbose=0)
        after = model.get_layer("trend").get_weights()
        assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)) is changes


def test_a_stream_carries_sample_weights_as_a_third_item_and_weighs_like_arrays():
    import keras
    import tensorflow as tf

    from graft.plugins.datasets import Stream

    model, data = _model(keras), _data()
    weights = np.arange(len(data.x), dtype="float32") / 4
    stream = Stream(
        train=tf.data.Dataset.from_tensor_slices((data.x, dict(data.y), {"trend": weights})),
        description="a stream with weights",
    )
    arrays = Dataset(x=data.x, y=data.y, description="arrays", sample_weight={"trend": weights})
    weighting = Weighting(HEADS, {"trend": ClassWeights("id", (2.0, 1.0, 0.5))}, frozenset({"trend"}))
    from_stream = model.evaluate(training_batches(stream, 64, seed=None, weighting=weighting), return_dict=True,
                                 verbose=0)
    from_arrays = model.evaluate(training_batches(arrays, 64, seed=0, weighting=weighting), return_dict=True, verbose=0)
    trend, _ = _per_sample_losses(model, data)
    expected = float(np.mean(weights * np.array([2.0, 1.0, 0.5])[data.y["trend"]] * trend))
    assert from_stream["trend_loss"] == pytest.approx(expected, rel=1e-5)
    assert from_arrays["trend_loss"] == pytest.approx(expected, rel=1e-5)


def test_balanced_weighs_each_class_by_its_inverse_frequency():
    counts = count_classes("id", np.array([0, 0, 0, 1, 2, 2]), 4)
    assert counts == [3, 1, 2, 0]
    # scikit-learn's compute_class_weight("balanced"): samples / (classes present * samples of the class)
    assert resolve("balanced", counts, 4) == pytest.approx((6 / 9, 6 / 3, 6 / 6, 1.0))
    assert resolve({0: 1.0, 3: 5.0}, None, 4) == (1.0, 1.0, 1.0, 5.0)
    assert count_classes("one_hot", np.eye(3)[[2, 2, 0]], 3) == [1, 0, 2]
    assert count_classes("binary", np.array([[0.0], [1.0], [1.0]]), 2) == [1, 2]


# -- the spec ---------------------------------------------------------------------------------------

SPEC = """\
model:
  input_shape: [6, 2]
  extractor: {plugin: gru, params: {layers: [{name: gru_1, units: 4}]}}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
    trend:
      plugin: dense
      loss: sparse_categorical_crossentropy
      params: {units: 3}
      class_weight: CLASS_WEIGHT
stages:
  - name: only
    data: {source: npz, params: {path: data.npz, targets: {level: y_level, trend: y_trend}}}
    epochs: 1
"""


@pytest.mark.parametrize(
    ("value", "where", "says"),
    [
        ("{0: 1.0, 3: 5.0}", "model.heads.trend.class_weight[3] (line 10)", "beyond head 'trend', which has 3 classes"),
        ("{0: -1.0}", "model.heads.trend.class_weight[0] (line 10)", "0 or more"),
        ("{0: .inf}", "model.heads.trend.class_weight[0] (line 10)", "finite"),
        ("balance", "model.heads.trend.class_weight (line 10)", "did you mean 'balanced'"),
        ("{0: 0.0}", "model.heads.trend.class_weight (line 10)", "at least one class a weight above 0"),
        ("{zero: 1}", "model.heads.trend.class_weight.zero (line 10)", "must be an integer"),
    ],
)
def test_validate_refuses_class_weights_with_path_and_line(tmp_path, write_spec, registry, value, where, says):
    from graft.base.problems import SpecError
    from graft.spec.specfile import load_spec

    np.savez(tmp_path / "data.npz", x=np.zeros((4, 6, 2)), y_level=np.zeros(4), y_trend=np.zeros(4))
    path = write_spec(SPEC.replace("CLASS_WEIGHT", value))
    with pytest.raises(SpecError) as caught:
        load_spec(path, registry)
    (line,) = caught.value.lines
    assert line.startswith(where) and says in line


def test_class_weight_on_a_regression_head_is_refused(tmp_path, write_spec, registry):
    from graft.base.problems import SpecError
    from graft.spec.specfile import load_spec

    np.savez(tmp_path / "data.npz", x=np.zeros((4, 6, 2)), y_level=np.zeros(4), y_trend=np.zeros(4))
    text = SPEC.replace("CLASS_WEIGHT", "balanced").replace("params: {units: 1}}", "params: {units: 1}, "
                                                                                  "class_weight: balanced}")
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(text), registry)
    (line,) = caught.value.lines
    assert line.startswith("model.heads.level.class_weight (line 5): ") and "trained with mse" in line


def test_bad_sample_weights_from_a_source_are_problems_before_training():
    from graft.data.datacheck import HeadTarget, check_dataset

    heads = {"trend": HeadTarget((3,), "sparse_categorical_crossentropy")}
    x, y = np.zeros((4, 2), "float32"), {"trend": np.array([0, 1, 2, 0])}
    cases = {
        "negative in 1 sample(s), first in sample 2": {"trend": np.array([1.0, 1.0, -1.0, 1.0])},
        "NaN/inf": {"trend": np.array([1.0, np.nan, 1.0, 1.0])},
        "have 3 samples but the inputs have 4": {"trend": np.ones(3)},
        "one number per sample": {"trend": np.ones((4, 2))},
        "no head of that name": {"tred": np.ones(4)},
    }
    for says, weights in cases.items():
        (message,) = check_dataset(Dataset(x=x, y=y, description="d", sample_weight=weights), (2,), heads)
        assert says in message, message
    assert check_dataset(Dataset(x=x, y=y, description="d", sample_weight={"trend": np.zeros(4)}), (2,), heads) == []


# -- end to end: npz sample weights, class weights, the feature cache -------------------------------

RUN_SPEC = """\
seed: 3
model:
  input_shape: [6, 2]
  extractor: {plugin: gru, params: {layers: [{name: gru_1, units: 4}]}}
  heads:
    level: {plugin: dense, loss: mse, params: {units: 1}}
    trend: {plugin: dense, loss: sparse_categorical_crossentropy, metrics: [accuracy], params: {units: 3},
            class_weight: balanced}
stages:
  - name: heads
    policy: {plugin: layers, params: {freeze: [gru_1]}}
    data: {source: npz, params: {path: data.npz, targets: {level: y_level, trend: y_trend},
                                 sample_weights: {level: w_level}, validation_split: 0.25}}
    epochs: 2
    batch_size: 16
"""


@pytest.fixture(scope="module")
def weighted_runs(tmp_path_factory, registry):
    from graft.runs.stages import run_spec
    from graft.spec.specfile import load_spec

    folder = tmp_path_factory.mktemp("weighted")
    rng = np.random.default_rng(0)
    trend = np.where(rng.random(64) < 0.75, 0, rng.integers(1, 3, 64))  # imbalanced: mostly class 0
    np.savez(folder / "data.npz", x=rng.normal(size=(64, 6, 2)).astype("float32"),
             y_level=rng.normal(size=64).astype("float32"), y_trend=trend,
             w_level=rng.uniform(0.0, 3.0, 64).astype("float32"))
    runs = {}
    for name, text in {"weighted": RUN_SPEC, "plain": RUN_SPEC.replace("sample_weights: {level: w_level}, ", "")
                       .replace("class_weight: balanced", "class_weight: null")}.items():
        (folder / f"{name}.yaml").write_text(text)
        spec_file = load_spec(str(folder / f"{name}.yaml"), registry)
        for cache in (True, False) if name == "weighted" else (True,):
            runs[name, cache] = str(folder / f"out_{name}_{cache}")
            run_spec(spec_file, registry, runs[name, cache], log=lambda _: None, cache_features=cache)
    return runs, trend


@pytest.mark.slow
def test_weights_apply_alike_on_cached_features_and_are_recorded(weighted_runs):
    from graft.model.weights import read_weights

    runs, trend = weighted_runs
    with open(f"{runs['weighted', True]}/heads/report.json") as handle:
        report = json.load(handle)
    assert report["features_cached"] is True
    head = report["data"]["heads"]["trend"]
    counts = head["counts"]
    assert head["class_weight"] == "balanced" and sum(counts) == 48 and sum(head["validation_counts"]) == 16
    assert head["weights"] == pytest.approx([48 / (3 * count) for count in counts])
    assert report["data"]["sample_weights"] == ["level"]
    with open(f"{runs['weighted', True]}/report.md") as handle:
        assert "class_weight of 'trend' (balanced, training loss only)" in handle.read()

    def heads(name: str, cache: bool) -> dict:
        weights = read_weights(f"{runs[name, cache]}/heads/weights.graft.npz")
        return {layer: weights[layer] for layer in ("trend", "level")}

    for layer, values in heads("weighted", True).items():
        for cached, full in zip(values, heads("weighted", False)[layer], strict=True):
            np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-6, err_msg=layer)
        assert not all(np.allclose(weighted, plain) for weighted, plain in zip(values, heads("plain", True)[layer],
                                                                                  strict=True)), layer  # they count


def test_npz_sample_weights_name_a_head_with_targets(tmp_path, write_spec, registry):
    from graft.base.problems import SpecError
    from graft.spec.specfile import load_spec

    np.savez(tmp_path / "data.npz", x=np.zeros((4, 6, 2)), y_level=np.zeros(4), y_trend=np.zeros(4), w=np.ones(4))
    text = SPEC.replace("CLASS_WEIGHT", "balanced").replace("y_trend}}}", "y_trend}, sample_weights: {trnd: w}}}")
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(text), registry)
    (line,) = caught.value.lines
    assert line.startswith("stages[0].data.params.sample_weights.trnd (line 13): ") and "level, trend" in line


def test_runs_from_before_class_weights_keep_their_fingerprints_and_cached_features(tmp_path, write_spec, registry):
    """A head without class_weight and an npz source without sample_weights fingerprint as before they existed
    (so earlier runs resume and their cached features are found); giving them changes the fingerprint."""
    from graft.runs.resume import data_identity, stage_fingerprints
    from graft.spec.specfile import load_spec

    np.savez(tmp_path / "data.npz", x=np.zeros((4, 6, 2)), y_level=np.zeros(4), y_trend=np.zeros(4), w=np.ones(4))
    plain = SPEC.replace("      class_weight: CLASS_WEIGHT\n", "")
    spelled = SPEC.replace("CLASS_WEIGHT", "null").replace("y_trend}}}", "y_trend}, sample_weights: {}}}")
    weighted = SPEC.replace("CLASS_WEIGHT", "balanced").replace("y_trend}}}", "y_trend}, sample_weights: {trend: w}}}")
    found = {}
    for name, text in {"plain": plain, "spelled": spelled, "weighted": weighted}.items():
        spec_file = load_spec(write_spec(text, f"{name}.yaml"), registry)
        found[name] = (stage_fingerprints(spec_file), data_identity(spec_file, 0))
    assert found["plain"] == found["spelled"]
    assert found["weighted"][0] != found["plain"][0] and found["weighted"][1] != found["plain"][1]
    assert "sample_weights" not in found["plain"][1] and "class_weight" not in json.dumps(found["plain"])
