"""CPU of a frozen-extractor stage on the feature cache against its limit written by hand: predict once, fit the head.

    python benchmarks/feature_cache_limit.py [-n 5] [--images 1500] [--size 64] [--epochs 3]

The stage: scikit-learn's digits as an npz of IMAGES images SIZExSIZEx3 (written
here, nothing downloaded), a frozen MobileNetV2 (``weights: none``, alpha 1.0) and a
dense head, one stage, 20 % held out.  ``graft run`` trains it with a fresh feature
cache every run (``GRAFT_CACHE_DIR``): the features are computed batch by batch,
stored with their digests and proven, and the head trains on them.  The limit is this
file run with ``--twin OUT``: what a Keras user writes by hand for the same work, the
same model built with the same seed, ``extractor.predict`` once over the training and
held-out images, then the head fitted on those features (the same optimizer, epochs,
batches and shuffling), the model saved.  Both sides run as fresh processes,
interleaved (``benchmarks/ab.py``), timed by CPU, medians of ``n``.

The first timed run of each side is compared (a difference stops the script, its
ratio unprinted): every extractor weight bit for bit
(the same frozen extractor, so the same features) and the head's final weights within
1e-5 (the same features, batches and updates).
Needs keras-graft with the mobilenet plugin and scikit-learn (the digits plugin's).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ab import footer, graft, interleaved, load, ratio_row, table  # noqa: E402
from feature_cache_rerun import write_digits  # noqa: E402

SEED = 11
BATCH = 64
LEARNING_RATE = 0.001
HOLDOUT = 0.2
GOAL = 1.05
TOLERANCE = 1e-5  # the head's weights: the same features and batches, summed in another order at most
SPEC = """\
    seed: {seed}
    model:
      input_shape: [{size}, {size}, 3]
      extractor:
        plugin: mobilenet
        params: {{variant: v2, alpha: 1.0, weights: none, pooling: avg}}
      heads:
        digit:
          plugin: dense
          loss: sparse_categorical_crossentropy
          metrics: [accuracy]
          params: {{units: 10, activation: softmax}}
    stages:
      - name: head
        data:
          source: npz
          params: {{path: digits.npz, targets: {{digit: digit}}, validation_split: {holdout}}}
        epochs: {epochs}
        batch_size: {batch}
        optimizer: {{name: adam, learning_rate: {learning_rate}}}
        policy: {{plugin: layers, params: {{default: freeze, train: ["digit*"]}}}}
"""
QUICK = {"images": 1500, "size": 64, "epochs": 3}
FULL = {"images": 4000, "size": 96, "epochs": 5}


def twin(out_dir: str, npz: str, size: int, epochs: int) -> None:
    """The limit by hand: the model built as keras-graft builds it, features predicted once, the head fitted on them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    with np.load(npz) as arrays:
        x, digit = arrays["x"], arrays["digit"]
    order = np.random.default_rng(0).permutation(len(x))  # 20 % held out, as the npz source's validation_split does
    cut = len(x) - max(1, int(round(len(x) * HOLDOUT)))
    train, val = order[:cut], order[cut:]

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((size, size, 3), name="graft_input")
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=1.0, include_top=False, weights=None,
                                          pooling="avg")
    inner = keras.Input((size, size, 3), name="mobilenet_input")
    extractor = keras.Model(inner, base(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inner)),
                            name="mobilenet_extractor")
    features = extractor(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="digit")(features))
    extractor.trainable = False

    train_features = extractor.predict(x[train], batch_size=BATCH, verbose=0)
    val_features = extractor.predict(x[val], batch_size=BATCH, verbose=0)
    head = keras.Model(features, model.outputs)
    head.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras.utils.set_random_seed(SEED)
    batches = tf.data.Dataset.from_tensor_slices((train_features, digit[train])).shuffle(len(train), seed=SEED)
    held_out = tf.data.Dataset.from_tensor_slices((val_features, digit[val])).batch(BATCH)
    head.fit(batches.batch(BATCH).prefetch(tf.data.AUTOTUNE), validation_data=held_out.prefetch(tf.data.AUTOTUNE),
             epochs=epochs, verbose=2)

    folder = os.path.join(out_dir, "head")
    os.makedirs(folder)
    model.save(os.path.join(folder, "model.keras"))
    weights = {f"{layer.name}:{i}": value for layer in _leaves(keras, model)
               for i, value in enumerate(layer.get_weights())}
    np.savez(os.path.join(folder, "weights.npz"), **weights)


def _leaves(keras, model):
    for layer in model.layers:
        yield from _leaves(keras, layer) if isinstance(layer, keras.Model) else [layer]


def write_data(folder: str, images: int, size: int, epochs: int) -> str:
    """The digits npz and the spec in ``folder``; the spec's path."""
    write_digits(os.path.join(folder, "digits.npz"), images, size)
    config = os.path.join(folder, "frozen_mobilenet.yaml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent(SPEC.format(seed=SEED, size=size, holdout=HOLDOUT, epochs=epochs, batch=BATCH,
                                                 learning_rate=LEARNING_RATE)))
    return config


def graft_command(config: str, out: str) -> list[str]:
    """``graft run`` into ``out`` with a feature cache of its own (``OUT.cache``): every run computes features."""
    return ["env", f"GRAFT_CACHE_DIR={out}.cache", *graft(), "run", config, "--out", out]


def twin_command(folder: str, out: str, size: int, epochs: int) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--twin", out, "--npz", os.path.join(folder, "digits.npz"),
            "--size", str(size), "--epochs", str(epochs)]


def check_same_work(graft_out: str, twin_out: str) -> float:
    """The extractor's weights bit for bit, the head's within ``TOLERANCE``; the head's largest difference.
    ``SystemExit`` naming the first difference, and if graft did not train on cached features."""
    import json

    import numpy as np

    from graft.model.weights import read_weights

    with open(os.path.join(graft_out, "head", "report.json"), encoding="utf-8") as handle:
        if not json.load(handle)["features_cached"]:
            sys.exit("graft did not train the head on cached features: this is not the stage to measure")
    mine = read_weights(os.path.join(graft_out, "head", "weights.graft.npz"))
    largest = 0.0
    with np.load(os.path.join(twin_out, "head", "weights.npz")) as theirs:
        keys = {f"{name}:{i}" for name, values in mine.items() for i in range(len(values))}
        if keys != set(theirs.files):
            sys.exit(f"graft and the twin have different weights: {sorted(keys ^ set(theirs.files))[:10]}")
        for name, values in mine.items():
            for i, value in enumerate(values):
                other = theirs[f"{name}:{i}"]
                if name == "digit":
                    largest = max(largest, float(np.max(np.abs(value - other))))
                    if largest > TOLERANCE:
                        sys.exit(f"the head's weight {i} differs by {largest:g} between graft and the twin: "
                                 "they do not do the same work, so their times cannot be compared")
                elif value.tobytes() != other.tobytes():
                    sys.exit(f"the extractor's layer {name} weight {i} differs between graft and the twin: "
                             "they do not start from the same model")
    return largest


def ratios(n: int, images: int, size: int, epochs: int) -> list[list[str]]:
    """Rows ``[work, graft CPU s, limit CPU s, ratio, wall ratio, goal]``, once proven that both do the same work."""
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="graft-feature-limit-") as folder:
        config = write_data(folder, images, size, epochs)
        counts = {"graft": iter(range(10**6)), "twin": iter(range(10**6))}
        sides = {
            "graft": lambda: graft_command(config, os.path.join(folder, f"graft-{next(counts['graft'])}")),
            "twin": lambda: twin_command(folder, os.path.join(folder, f"twin-{next(counts['twin'])}"), size, epochs),
        }
        timings = interleaved(sides, n, warmup=0, env=quiet)
        out = {side: os.path.join(folder, f"{side}-0") for side in sides}  # the first timed pair
        check_same_work(out["graft"], out["twin"])
    work = f"frozen MobileNetV2 on the feature cache, {images} images {size}x{size}, {epochs} epochs"
    return [ratio_row(work, timings, GOAL)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each side (medians; default 5)")
    parser.add_argument("--images", type=int, default=QUICK["images"])
    parser.add_argument("--size", type=int, default=QUICK["size"], help="image side, a multiple of 8")
    parser.add_argument("--epochs", type=int, default=QUICK["epochs"])
    parser.add_argument("--twin", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.twin:
        twin(args.twin, args.npz, args.size, args.epochs)
        return 0
    if args.size % 8 or args.size < 32:
        parser.error("--size must be a multiple of 8, at least 32")
    before = load()
    rows = ratios(args.n, args.images, args.size, args.epochs)
    print(table([["work", "graft CPU s", "limit CPU s", "CPU ratio", "wall ratio", "goal"], *rows]))
    print(footer(args.n, before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
