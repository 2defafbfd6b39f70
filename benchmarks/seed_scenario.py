"""Wall time of `graft run configs/gru_transfer.yaml` against plain Keras doing the same two stages.

    python benchmarks/seed_scenario.py [--repeat 3]

Both sides run as fresh processes, alternating, so each pays its own Python and
TensorFlow start-up.  The plain side is this file run with ``--plain``: the same
model, data, epochs, batch sizes, optimizers and freeze, written by hand, with
the same files saved (model.keras and weights).  The data comes from the same
synthetic generator so both train on identical arrays.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "gru_transfer.yaml")


def plain_keras(out_dir: str) -> None:
    """The seed scenario by hand: what a Keras user writes without keras-graft."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from graft.builtins.synthetic import SyntheticParams, generate

    def data(**params):
        x, y = generate(SyntheticParams(targets={"level": "level", "trend": "trend"}, **params))
        cut = len(x) - int(round(len(x) * 0.2))
        order = np.random.default_rng(params["seed"]).permutation(len(x))
        train, val = order[:cut], order[cut:]
        return (x[train], {k: v[train] for k, v in y.items()}), (x[val], {k: v[val] for k, v in y.items()})

    def build():
        inputs = keras.Input((50, 8), name="input")
        x = keras.layers.GRU(16, return_sequences=True, name="gru_1")(inputs)
        x = keras.layers.GRU(16, return_sequences=True, name="gru_2")(x)
        x = keras.layers.GRU(16, name="gru_3")(x)
        level = keras.layers.Dense(1, name="level")(x)
        trend = keras.layers.Dense(3, activation="softmax", name="trend")(x)
        return keras.Model(inputs, [level, trend])

    def compile_(model, learning_rate):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss={"level": "mse", "trend": "sparse_categorical_crossentropy"},
            metrics={"level": ["mae"], "trend": ["accuracy"]},
        )

    keras.utils.set_random_seed(7)
    train, val = data(samples=512, frequency=1.0, seed=1)
    model = build()
    compile_(model, 0.003)
    model.fit(*train, validation_data=val, epochs=3, batch_size=32, verbose=0)
    os.makedirs(os.path.join(out_dir, "pretrain"))
    model.save(os.path.join(out_dir, "pretrain", "model.keras"))
    model.save_weights(os.path.join(out_dir, "pretrain", "model.weights.h5"))

    train, val = data(samples=256, frequency=2.5, noise=0.2, seed=2)
    transfer = build()
    transfer.load_weights(os.path.join(out_dir, "pretrain", "model.weights.h5"))
    for name in ("gru_1", "gru_2"):
        transfer.get_layer(name).trainable = False
    compile_(transfer, 0.001)
    transfer.fit(
        *train,
        validation_data=val,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)],
    )
    os.makedirs(os.path.join(out_dir, "transfer"))
    transfer.save(os.path.join(out_dir, "transfer", "model.keras"))
    transfer.save_weights(os.path.join(out_dir, "transfer", "model.weights.h5"))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plain", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_keras(args.plain)
        return
    graft = shutil.which("graft") or sys.exit("graft is not on PATH: install keras-graft and its plugins first")
    times: dict[str, list[float]] = {"graft run": [], "plain Keras": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            times["graft run"].append(timed([graft, "run", CONFIG, "--out", out]))
        with tempfile.TemporaryDirectory() as out:
            times["plain Keras"].append(timed([sys.executable, __file__, "--plain", os.path.join(out, "run")]))
    for name, values in times.items():
        print(f"{name:12s} median {statistics.median(values):6.2f} s   runs: {', '.join(f'{v:.2f}' for v in values)}")
    ratio = statistics.median(times["graft run"]) / statistics.median(times["plain Keras"])
    print(f"ratio graft / plain: {ratio:.2f}")


if __name__ == "__main__":
    main()
