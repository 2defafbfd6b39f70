"""What discriminative learning rates cost: ``model.fit`` with per-layer scales against plain Keras.

    python benchmarks/lr_scale_overhead.py [--repeats 3] [--epochs 3] [--optimizer Adam]

Each round builds the same model (three GRU(64) and a Dense head, the same seed)
and fits it on the same random data twice, alternating which goes first:

- ``plain``: ``keras.optimizers.<optimizer>(learning_rate)``, as a Keras user writes it;
- ``scaled``: the same optimizer with ``graft.model.lrscale.scale_learning_rates`` giving
  ``gru_1`` 0.01 and ``gru_2`` 0.1 (what ``lr_scale`` in a spec does).

The scales act while TensorFlow traces the step, so the traced step differs only by
one multiplication per scaled variable; the ratio should be about 1.  The time of
each fit includes tracing.  A timing of a wrong result is worthless, so the script
also checks that each scaled layer moved, and less far than in the plain fit (the
exact amounts are the tests' business: ``tests/model/test_lr_scale.py``).  Needs
keras-graft and TensorFlow, nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from graft.base.backend import import_keras
from graft.model.lrscale import scale_learning_rates
from graft.plugins.layers import LayerInfo

SCALES = {"gru_1": 0.01, "gru_2": 0.1}


def build(keras, seed: int):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((50, 8), name="x")
    hidden = keras.layers.GRU(64, return_sequences=True, name="gru_1")(inputs)
    hidden = keras.layers.GRU(64, return_sequences=True, name="gru_2")(hidden)
    hidden = keras.layers.GRU(64, name="gru_3")(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, name="level")(hidden))


def fit(keras, scaled: bool, args, data) -> tuple[float, dict[str, float]]:
    """Seconds of ``model.fit`` and how far each layer's weights moved (largest absolute change)."""
    model = build(keras, seed=1)
    optimizer = getattr(keras.optimizers, args.optimizer)(learning_rate=1e-3)
    if scaled:
        infos = [LayerInfo(layer.name, "extractor", type(layer).__name__, True, False, layer) for layer in model.layers]
        scale_learning_rates(optimizer, infos, SCALES)
    model.compile(optimizer=optimizer, loss="mse")
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers}
    started = time.perf_counter()
    model.fit(*data, batch_size=32, epochs=args.epochs, verbose=0, shuffle=False)
    seconds = time.perf_counter() - started
    moves = {
        layer.name: max(float(np.abs(after - old).max()) for after, old in zip(layer.get_weights(), before[layer.name],
                                                                                strict=True))
        for layer in model.layers if layer.weights
    }
    return seconds, moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--optimizer", default="Adam", choices=["Adam", "AdamW", "SGD", "RMSprop"])
    args = parser.parse_args()
    keras = import_keras()
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(512, 50, 8)).astype("float32"), rng.normal(size=(512, 1)).astype("float32"))
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for scaled in (False, True) if repeat % 2 == 0 else (True, False):
            seconds, moves = fit(keras, scaled, args, data)
            times[scaled].append(seconds)
            if scaled:
                scaled_moves = moves
            else:
                plain_moves = moves
        for name in SCALES:  # a timing of a wrong result is worthless
            if not 0 < scaled_moves[name] < plain_moves[name]:
                raise SystemExit(f"{name} moved {scaled_moves[name]:.3g} scaled, {plain_moves[name]:.3g} plain")
    plain, scaled = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.optimizer}, {args.epochs} epochs of 512 samples, {args.repeats} rounds (median fit time):")
    print(f"  plain Keras     {plain:6.2f} s")
    print(f"  scaled rates    {scaled:6.2f} s   ratio {scaled / plain:.3f}")
    print("  moves (largest weight change): " + ", ".join(
        f"{name} {scaled_moves[name]:.2g} scaled / {plain_moves[name]:.2g} plain" for name in SCALES))


if __name__ == "__main__":
    main()
