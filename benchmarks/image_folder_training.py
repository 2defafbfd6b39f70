"""CPU of ``graft run`` on an ``image_folder`` against ``image_dataset_from_directory(...).prefetch(AUTOTUNE)``.

    python benchmarks/image_folder_training.py [-n 5] [--size 32] [--epochs 2]

Writes scikit-learn's digits as PNG files, one sub-folder per digit, 30 % of each
digit in a ``val`` folder (``graft_digits.folder``; nothing downloaded), and a spec of
one stage training a whole MobileNetV2 (alpha 0.35, ``weights: none``) with a dense
head on them.  ``graft run`` reads the folder through its ``image_folder`` source
(file names shuffled every epoch, decoded in parallel, batched, prefetched).  The
reference is this file run with ``--twin OUT``: what a Keras user writes by hand,
``keras.utils.image_dataset_from_directory(...).prefetch(tf.data.AUTOTUNE)`` for the
training and the held-out folder, the same model built with the same seed, the same
optimizer, batch size and epochs, the model saved.  Both sides run as fresh
processes, interleaved (``benchmarks/ab.py``), timed by CPU, medians of ``n``.

The first timed run of each side is compared (a difference stops the script, its
ratio unprinted): the same images trained on and held
out (graft's ``report.json`` against the files the twin found), the same epochs, and
the same layers with weights of the same shapes (the twin builds the model as
keras-graft does, from the same seed).  The batches come in another order (each side
shuffles its own way), so the final weights differ; the work does not.
Needs keras-graft with the mobilenet and digits plugins (scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ab import footer, graft, interleaved, load, ratio_row, table  # noqa: E402

SEED = 5
BATCH = 32
LEARNING_RATE = 0.002
ALPHA = 0.35
GOAL = 1.00
SPEC = """\
    seed: {seed}
    model:
      input_shape: [{size}, {size}, 3]
      extractor:
        plugin: mobilenet
        params: {{variant: v2, alpha: {alpha}, weights: none, pooling: avg}}
      heads:
        digit:
          plugin: dense
          loss: sparse_categorical_crossentropy
          metrics: [accuracy]
          params: {{units: 10, activation: softmax}}
    stages:
      - name: digits
        data:
          source: image_folder
          params:
            directory: digits/train
            validation_directory: digits/val
            head: digit
            image_size: [{size}, {size}]
            color_mode: rgb
        epochs: {epochs}
        batch_size: {batch}
        optimizer: {{name: adam, learning_rate: {learning_rate}}}
"""
QUICK = {"size": 32, "epochs": 2}
FULL = {"size": 64, "epochs": 5}


def twin(out_dir: str, folder: str, size: int, epochs: int) -> None:
    """By hand: Keras's own folder pipeline, the same model from the same seed, trained and saved."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    def images(split: str, shuffle: bool):
        return keras.utils.image_dataset_from_directory(
            os.path.join(folder, split), image_size=(size, size), batch_size=BATCH, color_mode="rgb",
            shuffle=shuffle, seed=SEED, verbose=False,
        ).prefetch(tf.data.AUTOTUNE)

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((size, size, 3), name="graft_input")
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=ALPHA, include_top=False, weights=None,
                                          pooling="avg")
    inner = keras.Input((size, size, 3), name="mobilenet_input")
    extractor = keras.Model(inner, base(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inner)),
                            name="mobilenet_extractor")
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="digit")(extractor(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras.utils.set_random_seed(SEED)
    model.fit(images("train", True), validation_data=images("val", False), epochs=epochs, verbose=2)
    stage = os.path.join(out_dir, "digits")
    os.makedirs(stage)
    model.save(os.path.join(stage, "model.keras"))
    np.savez(os.path.join(stage, "weights.npz"), **{f"{layer.name}:{i}": value for layer in _leaves(keras, model)
                                                    for i, value in enumerate(layer.get_weights())})


def _leaves(keras, model):
    for layer in model.layers:
        yield from _leaves(keras, layer) if isinstance(layer, keras.Model) else [layer]


def write_data(folder: str, size: int, epochs: int) -> str:
    """The digits as PNG files under ``folder/digits`` and the spec; the spec's path."""
    from graft_digits.folder import write_digits_folder

    write_digits_folder(os.path.join(folder, "digits"), size=size, holdout=0.3)
    config = os.path.join(folder, "image_folder.yaml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent(SPEC.format(seed=SEED, size=size, alpha=ALPHA, epochs=epochs, batch=BATCH,
                                                 learning_rate=LEARNING_RATE)))
    return config


def graft_command(config: str, out: str) -> list[str]:
    return [*graft(), "run", config, "--out", out]


def twin_command(folder: str, out: str, size: int, epochs: int) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--twin", out, "--folder", os.path.join(folder, "digits"),
            "--size", str(size), "--epochs", str(epochs)]


def check_same_work(folder: str, graft_out: str, twin_out: str, epochs: int) -> None:
    """The same images, epochs, layers and weight shapes on both sides; ``SystemExit`` naming a difference."""
    import numpy as np

    from graft.model.weights import read_weights

    with open(os.path.join(graft_out, "digits", "report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    files = {split: sum(len(names) for _, _, names in os.walk(os.path.join(folder, "digits", split)))
             for split in ("train", "val")}
    seen = (report["data"]["samples"], report["data"]["validation_samples"])
    if seen != (files["train"], files["val"]) or report["epochs_run"] != epochs:
        sys.exit(f"graft trained {report['epochs_run']} epochs on {seen[0]} images (held out {seen[1]}); the twin "
                 f"{epochs} on {files['train']} (held out {files['val']}): not the same work")
    if report["features_cached"]:
        sys.exit("graft trained on cached features: not the stage to measure")
    mine = read_weights(os.path.join(graft_out, "digits", "weights.graft.npz"))
    with np.load(os.path.join(twin_out, "digits", "weights.npz")) as last:
        keys = {f"{name}:{i}" for name, values in mine.items() for i in range(len(values))}
        if keys != set(last.files):
            sys.exit(f"graft and the twin have different layers: {sorted(keys ^ set(last.files))[:10]}")
        for name, values in mine.items():
            for i, value in enumerate(values):
                if value.shape != last[f"{name}:{i}"].shape:
                    sys.exit(f"layer {name} weight {i}: shape {value.shape} in graft, {last[f'{name}:{i}'].shape} "
                             "in the twin")


def ratios(n: int, size: int, epochs: int) -> list[list[str]]:
    """Rows ``[work, graft CPU s, hand CPU s, ratio, wall ratio, goal]``, once checked that both do the same work."""
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="graft-image-folder-") as folder:
        config = write_data(folder, size, epochs)
        counts = {"graft": iter(range(10**6)), "twin": iter(range(10**6))}
        sides = {
            "graft": lambda: graft_command(config, os.path.join(folder, f"graft-{next(counts['graft'])}")),
            "twin": lambda: twin_command(folder, os.path.join(folder, f"twin-{next(counts['twin'])}"), size, epochs),
        }
        timings = interleaved(sides, n, warmup=0, env=quiet)
        out = {side: os.path.join(folder, f"{side}-0") for side in sides}  # the first timed pair
        check_same_work(folder, out["graft"], out["twin"], epochs)
    work = f"`image_folder` training, MobileNetV2 {ALPHA} on 1,797 PNGs {size}x{size}, {epochs} epochs"
    return [ratio_row(work, timings, GOAL)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each side (medians; default 5)")
    parser.add_argument("--size", type=int, default=QUICK["size"], help="image side, a multiple of 8, at least 32")
    parser.add_argument("--epochs", type=int, default=QUICK["epochs"])
    parser.add_argument("--twin", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.twin:
        twin(args.twin, args.folder, args.size, args.epochs)
        return 0
    if args.size % 8 or args.size < 32:
        parser.error("--size must be a multiple of 8, at least 32")
    before = load()
    rows = ratios(args.n, args.size, args.epochs)
    print(table([["work", "graft CPU s", "hand CPU s", "CPU ratio", "wall ratio", "goal"], *rows]))
    print(footer(args.n, before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
