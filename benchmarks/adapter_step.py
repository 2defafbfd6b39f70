"""What a training step costs with low-rank adapters against full fine-tuning of the same layers.

    python benchmarks/adapter_step.py [--repeats 3] [--epochs 4] [--units 64] [--rank 4] [--samples 1024]

The model is three GRU(units) on (50, 8) series and a Dense head, built the same way (the same
seed) in every mode:

- ``full``: every layer trains (full fine-tuning of the GRUs);
- ``adapters``: the GRUs are frozen and a rank-``rank`` adapter trains beside each of their
  input and recurrent kernels (``graft.model.adapters``, what ``adapt`` in a spec does); the
  head trains;
- ``frozen``: the GRUs are frozen and only the head trains (for scale: the least a step can do).

Each mode runs in a fresh process (peak memory is per process), alternating the order between
repeats.  Time per epoch is the median of the epochs after the first (the first pays tracing);
peak memory is the growth of the process's peak resident set (``ru_maxrss``) from just before
``fit`` to its end: what training adds on top of the built model and the data.  A timing of a
wrong result is worthless, so each child checks that what must not move did not (the GRUs'
own weights under ``adapters`` and ``frozen``) and that what trains moved.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

MODES = ("full", "adapters", "frozen")


def child(mode: str, args) -> dict:
    import numpy as np

    from graft.base.backend import import_keras
    from graft.model import adapters
    from graft.plugins.layers import Adapter, LayerInfo

    keras = import_keras()
    keras.utils.set_random_seed(1)
    inputs = keras.Input((50, 8), name="x")
    hidden = keras.layers.GRU(args.units, return_sequences=True, name="gru_1")(inputs)
    hidden = keras.layers.GRU(args.units, return_sequences=True, name="gru_2")(hidden)
    hidden = keras.layers.GRU(args.units, name="gru_3")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(hidden))
    grus = [LayerInfo(name, "extractor", "GRU", True, False, model.get_layer(name)) for name in ("gru_1", "gru_2",
                                                                                                   "gru_3")]
    base = {info.name: [np.array(value) for value in info.layer.get_weights()] for info in grus}
    for info in grus:
        if mode == "adapters":
            adapters.attach(keras, info, Adapter(args.rank), seed=3)
        elif mode == "frozen":
            info.layer.trainable = False
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 50, 8)).astype("float32")
    y = rng.integers(0, 3, size=(args.samples,))
    epoch_times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.started)

    before_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0, shuffle=False, callbacks=[Timer()])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = {info.name: adapters.base_count(info.layer) for info in grus}
    for info in grus:
        own = info.layer.get_weights()[: count[info.name]]
        unchanged = all(np.array_equal(a, b) for a, b in zip(own, base[info.name], strict=True))
        if unchanged != (mode != "full"):
            raise SystemExit(f"{mode}: {info.name}'s own weights {'did not move' if unchanged else 'moved'}")
        if mode == "adapters" and not np.any(info.layer.get_weights()[-1]):
            raise SystemExit(f"adapters: {info.name}'s adapter did not move")
    return {"mode": mode, "epoch_s": statistics.median(epoch_times[1:]), "first_epoch_s": epoch_times[0],
            "fit_growth_mb": (peak - before_fit) / 1024, "peak_mb": peak / 1024, "trainable": trainable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    passed = [f"--{key}={value}" for key, value in vars(args).items() if key not in ("child", "repeats")]
    for repeat in range(args.repeats):
        for mode in MODES if repeat % 2 == 0 else tuple(reversed(MODES)):
            done = subprocess.run([sys.executable, __file__, *passed, f"--child={mode}"], check=True,
                                  capture_output=True, text=True)
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    full = statistics.median(result["epoch_s"] for result in results["full"])
    print(f"three GRU({args.units}) + Dense(3), {args.samples} samples of (50, 8), batch 32, rank {args.rank}, "
          f"{args.repeats} processes per mode (medians)")
    print(f"{'mode':<10}{'trainable':>10}{'s/epoch':>9}{'vs full':>9}{'1st epoch s':>13}{'fit adds MB':>13}"
          f"{'peak MB':>9}")
    for mode in MODES:
        rows = results[mode]
        epoch = statistics.median(row["epoch_s"] for row in rows)
        print(f"{mode:<10}{rows[0]['trainable']:>10,}{epoch:>9.3f}{epoch / full:>9.2f}"
              f"{statistics.median(row['first_epoch_s'] for row in rows):>13.2f}"
              f"{statistics.median(row['fit_growth_mb'] for row in rows):>13.1f}"
              f"{statistics.median(row['peak_mb'] for row in rows):>9.0f}")


if __name__ == "__main__":
    main()
