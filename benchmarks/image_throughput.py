"""Images per second from a folder of PNG files into ``fit``: keras-graft's pipeline against Keras's own.

    python benchmarks/image_throughput.py [--images 2000] [--size 96] [--batch 32] [--epochs 2] [--repeat 3]

Writes a folder of ``--images`` PNG files (scikit-learn's digits, upsampled to
``--size`` pixels, grey, one sub-folder per digit; no network, no Pillow), then
trains the same tiny model on it for ``--epochs`` epochs both ways, each run in
a fresh process, alternating A, B, A, B, ...:

- A: what a Keras user writes by hand,
  ``keras.utils.image_dataset_from_directory(dir, image_size, batch_size).prefetch(AUTOTUNE)``;
- B: keras-graft's ``image_folder`` source through ``graft.data.pipeline.training_batches``
  (keys shuffled every epoch, decoded in parallel, batched, prefetched), as ``graft run`` feeds ``fit``.

Both decode and resize every image every epoch (no cache).  The figure is
images per second over the epochs after the first (the first also traces the
graph), and over all epochs; the issue asks for B/A >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)


def write_images(folder: str, count: int, size: int) -> None:
    """``count`` PNG files of digits (cycling through the 1,797), ``size`` x ``size``, in ``folder/<digit>/``."""
    from graft_digits import digit_images
    from graft_digits.folder import grey_images, write_png

    images, digits = digit_images()
    for index in range(count):
        source = index % len(images)
        path = os.path.join(folder, str(digits[source]), f"{index:05d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_png(path, grey_images(images[source : source + 1], size)[0])


def one_side(side: str, folder: str, size: int, batch: int, epochs: int) -> dict:
    """Train the tiny model on ``folder`` through pipeline ``side`` (A or B); its per-epoch times."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    if side == "A":
        batches = keras.utils.image_dataset_from_directory(
            folder, image_size=(size, size), batch_size=batch, color_mode="rgb", seed=0, verbose=False
        ).prefetch(tf.data.AUTOTUNE)
        count = sum(len(files) for _, _, files in os.walk(folder))
    else:
        from graft.builtins.image_folder import ImageFolder, ImageFolderParams
        from graft.data.pipeline import training_batches

        params = ImageFolderParams(directory=folder, head="digit", image_size=(size, size), color_mode="rgb")
        stream = ImageFolder().load_data(params, os.path.dirname(folder))
        batches = training_batches(stream, batch, seed=0)
        count = stream.samples

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="digit")(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(batches, epochs=epochs, verbose=0, callbacks=[Clock()])
    return {"side": side, "images": count, "epoch_seconds": times}


def rates(result: dict) -> tuple[float, float]:
    """(images/s after the first epoch, images/s over all epochs)."""
    times = result["epoch_seconds"]
    later = times[1:] or times
    return result["images"] * len(later) / sum(later), result["images"] * len(times) / sum(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=96, help="image side, a multiple of 8 (default 96)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--side", choices=("A", "B"), help=argparse.SUPPRESS)  # one run, in a child process
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(one_side(args.side, args.folder, args.size, args.batch, args.epochs)))
        return 0

    with tempfile.TemporaryDirectory(prefix="graft-image-throughput-") as tmp:
        folder = os.path.join(tmp, "images")
        started = time.perf_counter()
        write_images(folder, args.images, args.size)
        print(f"wrote {args.images} PNG images {args.size}x{args.size} in {time.perf_counter() - started:.1f} s; "
              f"{args.epochs} epochs, batch {args.batch}, {args.repeat} runs each, alternating")
        results: dict[str, list[dict]] = {"A": [], "B": []}
        for run in range(args.repeat):
            for side in "AB":
                command = [sys.executable, HERE, "--side", side, "--folder", folder, "--size", str(args.size),
                           "--batch", str(args.batch), "--epochs", str(args.epochs)]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"side {side} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                    return 1
                results[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
                steady, overall = rates(results[side][-1])
                print(f"  run {run + 1} {side}: {steady:8.0f} images/s after epoch 1, {overall:8.0f} over all epochs")

    names = {"A": "A  image_dataset_from_directory + prefetch", "B": "B  graft image_folder + graft.data.pipeline"}
    medians = {side: [statistics.median(rates(r)[i] for r in results[side]) for i in (0, 1)] for side in "AB"}
    print()
    print(f"{'pipeline':44}  {'images/s (after epoch 1)':>24}  {'images/s (all epochs)':>21}")
    for side in "AB":
        print(f"{names[side]:44}  {medians[side][0]:24.0f}  {medians[side][1]:21.0f}")
    ratio = [medians["B"][i] / medians["A"][i] for i in (0, 1)]
    print(f"{'ratio B/A (medians; the issue asks >= 0.9)':44}  {ratio[0]:24.2f}  {ratio[1]:21.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
