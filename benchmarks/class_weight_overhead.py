"""What class weights cost: graft's per-head weights in the input pipeline against plain Keras's ``sample_weight``.

    python benchmarks/class_weight_overhead.py [--repeats 3] [--epochs 3]

Each round builds the same two-head model (two GRU(32), a 3-class ``trend`` head on
logits and a ``level`` head; the same seed) and fits it on the same imbalanced data
three ways, in an order that alternates between rounds:

- ``keras``: ``model.fit(x, y, sample_weight=[w_trend, ones])``, the weights of
  ``class_weight: balanced`` computed by hand (what a Keras user must do for a
  model with several outputs, whose ``class_weight`` Keras refuses);
- ``graft``: ``graft.data.pipeline.training_batches`` with the same class weights
  (what ``class_weight: balanced`` in a spec does: the weights looked up per batch);
- ``unweighted``: ``training_batches`` without weights (graft's pipeline alone);
- ``keras_unweighted``: ``model.fit(x, y)`` without weights (what the weights cost Keras itself).

CPU seconds of ``fit`` (tracing included) are compared as ratios.  A timing of a
wrong result is worthless, so the script also checks that the two weighted fits end
with the same weights (up to float noise: the same batches, the same weights) and the
unweighted one with others.  Needs keras-graft and TensorFlow, nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from graft.base.backend import import_keras
from graft.data.pipeline import training_batches
from graft.data.weighting import ClassWeights, Weighting, count_classes, resolve
from graft.model.losses import HeadLoss, compile_arguments
from graft.plugins.datasets import Dataset

HEADS = ("trend", "level")


def build(keras):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((50, 8), name="x")
    hidden = keras.layers.GRU(32, return_sequences=True, name="gru_1")(inputs)
    hidden = keras.layers.GRU(32, name="gru_2")(hidden)
    outputs = [keras.layers.Dense(3, name="trend")(hidden), keras.layers.Dense(1, name="level")(hidden)]
    model = keras.Model(inputs, outputs)
    losses = {"trend": HeadLoss("trend", "sparse_categorical_crossentropy", True, (), 1.0),
              "level": HeadLoss("level", "mse", False, (), 1.0)}
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_arguments(keras, losses))
    return model


def fit(keras, way: str, data: Dataset, weights: tuple[float, ...], epochs: int) -> tuple[float, list]:
    model = build(keras)
    started = time.process_time()
    if way.startswith("keras"):  # the same batches in the same order: no shuffling, as the pipeline without a seed
        per_sample = np.asarray(weights, np.float32)[data.y["trend"]]
        targets = [data.y["trend"], data.y["level"]]  # Keras wants targets and weights in the same structure
        sample_weight = [per_sample, np.ones_like(per_sample)] if way == "keras" else None
        model.fit(data.x, targets, sample_weight=sample_weight, batch_size=32, epochs=epochs, shuffle=False,
                  verbose=0)
    else:
        weighting = Weighting(HEADS, {"trend": ClassWeights("id", weights)}) if way == "graft" else None
        batches = training_batches(data, 32, seed=None, weighting=weighting)
        model.fit(batches, epochs=epochs, shuffle=False, verbose=0)
    return time.process_time() - started, model.get_weights()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    keras = import_keras()
    rng = np.random.default_rng(0)
    trend = np.where(rng.random(2048) < 0.8, 0, rng.integers(1, 3, 2048))
    data = Dataset(x=rng.normal(size=(2048, 50, 8)).astype("float32"),
                   y={"trend": trend, "level": rng.normal(size=(2048, 1)).astype("float32")}, description="bench")
    weights = resolve("balanced", count_classes("id", trend, 3), 3)
    ways = ["keras", "graft", "unweighted", "keras_unweighted"]
    times: dict[str, list[float]] = {way: [] for way in ways}
    final: dict[str, list] = {}
    for repeat in range(args.repeats):
        for way in ways if repeat % 2 == 0 else list(reversed(ways)):
            seconds, final[way] = fit(keras, way, data, weights, args.epochs)
            times[way].append(seconds)
    same = all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(final["keras"], final["graft"], strict=True))
    differs = not all(np.allclose(a, b) for a, b in zip(final["graft"], final["unweighted"], strict=True))
    if not (same and differs):
        raise SystemExit(f"wrong result: graft equals keras {same}, differs from unweighted {differs}")
    base = statistics.median(times["keras"])
    print(f"class weights {tuple(round(w, 3) for w in weights)}, 2048 samples, {args.epochs} epochs, "
          f"{args.repeats} repeats (median CPU seconds of fit)")
    for way in ways:
        print(f"  {way:16s} {statistics.median(times[way]):6.2f} s  {statistics.median(times[way]) / base:5.2f}x keras")


if __name__ == "__main__":
    main()
