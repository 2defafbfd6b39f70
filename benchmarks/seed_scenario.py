"""CPU of `graft run configs/gru_transfer.yaml` against a hand-written Keras twin that trains bitwise-equal weights.

    python benchmarks/seed_scenario.py [-n 5] [--scale 1x 4x 16x 10x-epochs]

Both sides run as fresh processes, interleaved (``benchmarks/ab.py``), timed by CPU
(user + system), medians of ``n``; each pays its own Python and TensorFlow start-up.
The twin is this file run with ``--twin OUT``: what a Keras user writes by hand for the
same two stages (the same synthetic arrays and validation split, the same model, seeds,
optimizers, freeze and early stopping, a ``tf.data`` pipeline shuffled with the same
seed, the same files saved per stage).  Before timing, each scale is run once both ways
and every layer's final weights of both stages are compared bit for bit: a ratio of two
programs that do different work is worthless, so a difference stops the script.

Scales: ``1x`` the spec as it is; ``4x`` and ``16x`` the samples of both stages;
``10x-epochs`` ten times the samples and the epochs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ab import footer, graft, interleaved, load, ratio_row, table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "gru_transfer.yaml")
SAMPLES = {"pretrain": 512, "transfer": 256}  # as configs/gru_transfer.yaml says
EPOCHS = 3
SCALES = {"1x": (1, 1), "4x": (4, 1), "16x": (16, 1), "10x-epochs": (10, 10)}  # samples, epochs
GOAL = 1.00


def twin(out_dir: str, samples_scale: int, epochs_scale: int) -> None:
    """The seed scenario by hand: what a Keras user writes without keras-graft, doing the same work."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from graft.builtins.synthetic import SyntheticParams, generate

    targets = {"level": "level", "trend": "trend"}

    def data(seed: int, **params):
        x, y = generate(SyntheticParams(targets=targets, seed=seed, **params))
        order = np.random.default_rng(seed).permutation(len(x))  # 20 % held out, as the spec's source does
        cut = len(x) - max(1, int(round(len(x) * 0.2)))
        train, val = order[:cut], order[cut:]
        return (x[train], {k: v[train] for k, v in y.items()}), (x[val], {k: v[val] for k, v in y.items()})

    def build(seed: int):
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((50, 8), name="gru_input")
        inner = keras.Input((50, 8), name="gru_input")
        x = keras.layers.GRU(16, return_sequences=True, name="gru_1")(inner)
        x = keras.layers.GRU(16, return_sequences=True, name="gru_2")(x)
        x = keras.layers.GRU(16, name="gru_3")(x)
        features = keras.Model(inner, x, name="gru_extractor")(inputs)
        level = keras.layers.Dense(1, name="level")(features)
        trend = keras.layers.Dense(3, activation="softmax", name="trend")(features)
        return keras.Model(inputs, [level, trend], name="graft_model")

    def fit(model, seed, learning_rate, train, val, epochs, callbacks=()):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss={"level": "mse", "trend": "sparse_categorical_crossentropy"},
            metrics={"level": ["mae"], "trend": ["accuracy"]},
            loss_weights={"level": 1.0, "trend": 1.0},
        )
        keras.utils.set_random_seed(seed)
        batches = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed).batch(32)
        held_out = tf.data.Dataset.from_tensor_slices(val).batch(32)
        model.fit(batches.prefetch(tf.data.AUTOTUNE), validation_data=held_out.prefetch(tf.data.AUTOTUNE),
                  epochs=epochs, verbose=2, callbacks=list(callbacks))

    def save(model, stage: str) -> None:
        folder = os.path.join(out_dir, stage)
        os.makedirs(folder)
        model.save(os.path.join(folder, "model.keras"))
        weights = {f"{layer.name}:{i}": value for layer in leaves(model) for i, value in enumerate(layer.get_weights())}
        np.savez(os.path.join(folder, "weights.npz"), **weights)

    def leaves(model):
        for layer in model.layers:
            yield from leaves(layer) if isinstance(layer, keras.Model) else [layer]

    epochs = EPOCHS * epochs_scale
    train, val = data(1, samples=SAMPLES["pretrain"] * samples_scale, frequency=1.0)
    pretrain = build(7)
    fit(pretrain, 7, 0.003, train, val, epochs)
    save(pretrain, "pretrain")

    train, val = data(2, samples=SAMPLES["transfer"] * samples_scale, frequency=2.5, noise=0.2)
    transfer = build(8)
    trained = {layer.name: layer for layer in leaves(pretrain)}
    for layer in leaves(transfer):
        if layer.weights:
            layer.set_weights(trained[layer.name].get_weights())
    for name in ("gru_1", "gru_2"):
        transfer.get_layer("gru_extractor").get_layer(name).trainable = False
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    fit(transfer, 8, 0.001, train, val, epochs, [stop])
    save(transfer, "transfer")


def graft_command(out: str, samples_scale: int, epochs_scale: int) -> list[str]:
    command = graft()
    settings = [f"--set=stages.{stage}.data.params.samples={count * samples_scale}" for stage, count in SAMPLES.items()]
    if epochs_scale > 1:
        settings += [f"--set=stages.{stage}.epochs={EPOCHS * epochs_scale}" for stage in SAMPLES]
    return [*command, "run", CONFIG, "--out", out, *settings]


def twin_command(out: str, samples_scale: int, epochs_scale: int) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--twin", out, "--samples-scale", str(samples_scale),
            "--epochs-scale", str(epochs_scale)]


def check_equal(graft_out: str, twin_out: str) -> None:
    """Every layer's final weights of both stages, bit for bit; ``SystemExit`` naming the first difference."""
    import numpy as np

    from graft.model.weights import read_weights

    for stage in SAMPLES:
        mine = read_weights(os.path.join(graft_out, stage, "weights.graft.npz"))
        with np.load(os.path.join(twin_out, stage, "weights.npz")) as theirs:
            keys = {f"{name}:{i}" for name, values in mine.items() for i in range(len(values))}
            if keys != set(theirs.files):
                differ = sorted(keys ^ set(theirs.files))
                sys.exit(f"stage {stage}: graft and the twin have different weights: {differ}")
            for name, values in mine.items():
                for i, value in enumerate(values):
                    if value.tobytes() != theirs[f"{name}:{i}"].tobytes():
                        sys.exit(f"stage {stage}: layer {name} weight {i} differs between graft and the twin; "
                                 "they do not do the same work, so their times cannot be compared")


def ratios(n: int, scales: list[str]) -> list[list[str]]:
    """Rows ``[work, graft CPU s, twin CPU s, ratio, wall ratio, goal]``, after proving both sides train the same."""
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for scale in scales:
            samples_scale, epochs_scale = SCALES[scale]
            out = {side: os.path.join(folder, f"{scale}-{side}") for side in ("graft", "twin")}
            for side, command in (("graft", graft_command), ("twin", twin_command)):
                subprocess.run(command(out[side], samples_scale, epochs_scale), check=True, env=quiet,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            check_equal(out["graft"], out["twin"])
            sides = {side: _fresh(command, os.path.join(folder, f"{scale}-{side}"), samples_scale, epochs_scale)
                     for side, command in (("graft", graft_command), ("twin", twin_command))}
            timings = interleaved(sides, n, warmup=0, env=quiet)
            rows.append(ratio_row(f"seed scenario {scale}", timings, GOAL))
    return rows


def _fresh(command, prefix: str, samples_scale: int, epochs_scale: int):
    """A function giving ``command`` with a new output folder each time it is called."""
    runs = iter(range(10**6))
    return lambda: command(f"{prefix}-{next(runs)}", samples_scale, epochs_scale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each side per scale (medians; default 5)")
    parser.add_argument("--scale", nargs="+", choices=tuple(SCALES), default=list(SCALES))
    parser.add_argument("--twin", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--samples-scale", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--epochs-scale", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.twin:
        twin(args.twin, args.samples_scale, args.epochs_scale)
        return 0
    before = load()
    rows = ratios(args.n, args.scale)
    print(table([["work", "graft CPU s", "twin CPU s", "CPU ratio", "wall ratio", "goal"], *rows]))
    print(footer(args.n, before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
