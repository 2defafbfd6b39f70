"""Every keras_app backbone built on its smallest input, checked and timed, in this environment's Keras.

    python benchmarks/applications_all.py [--out names.json] [--diff other.json] [BACKBONE ...]

For each backbone (weights none, through keras-graft's own builder, which refuses a layer
Keras named unasked): the build time, the parameters and feature size against
``graft_applications.BACKBONES``, the features of raw pixels against Keras's own
``preprocess_input`` before the bare model, and ``model.keras`` saved and loaded back with
``safe_mode`` on.  ``--out`` writes every backbone's layer names; ``--diff`` compares them
with such a file written under the other Keras (2.15 against 3), which is how the README's
table of names that differ was made::

    .tox/tf215/bin/python benchmarks/applications_all.py --out keras2.json
    /work/venv/bin/python benchmarks/applications_all.py --out keras3.json --diff keras2.json

The test suite builds two of them (``tests/scenarios/test_applications.py``; all with ``GRAFT_ALL_BACKBONES=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings


def check(name: str, folder: str) -> dict:
    import keras
    import numpy as np
    from keras import applications

    from graft.model.builder import ModelBuilder, leaf_layers
    from graft.plugins.registry import Registry
    from graft.spec.records import ExtractorRef, HeadSpec
    from graft.testing import structure_params
    from graft_applications import BACKBONES, KerasAppParams, base_of

    backbone = BACKBONES[name]
    shape = (backbone.min_size, backbone.min_size, 3)
    registry = Registry.discover(enabled={"keras_app"})
    head = HeadSpec("dense", "mse", structure_params({"units": 2}, registry.params_class("head", "dense")))
    builder = ModelBuilder(registry, shape, ExtractorRef("keras_app", KerasAppParams(name)), {"label": head})
    start = time.perf_counter()
    built = builder.build(seed=0)
    seconds = time.perf_counter() - start
    extractor, base = built.extractor, base_of(built.extractor)
    problems = []
    if base.count_params() != backbone.params:
        problems.append(f"{base.count_params():,} params, the table says {backbone.params:,}")
    if extractor.output_shape[-1] != backbone.features:
        problems.append(f"{extractor.output_shape[-1]} features, the table says {backbone.features}")
    pixels = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype("float32")
    features = np.asarray(extractor(pixels, training=False))
    expected = np.asarray(base(getattr(applications, backbone.module).preprocess_input(pixels.copy()), training=False))
    if not np.allclose(features, expected, rtol=1e-4, atol=1e-4):
        problems.append(f"features differ from preprocess_input + model by {np.abs(features - expected).max():.3g}")
    path = os.path.join(folder, f"{name}.keras")
    try:
        built.model.save(path)
        again = keras.saving.load_model(path, compile=False)  # safe_mode on
        if not np.allclose(np.asarray(again(pixels)), np.asarray(built.model(pixels)), rtol=1e-4, atol=1e-4):
            problems.append("model.keras loaded back computes something else")
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the other backbones still run
        problems.append(f"model.keras does not round-trip: {type(exc).__name__}: {str(exc)[:200]}")
    return {
        "seconds": round(seconds, 2),
        "names": [layer.name for layer in leaf_layers(keras, extractor)],
        "notes": list(built.notes),
        "problems": problems,
    }


def diff(mine: dict, other: dict, other_name: str) -> None:
    for name in mine:
        if name not in other:
            continue
        here, there = mine[name]["names"], other[name]["names"]
        only_here = [layer for layer in here if layer not in set(there)]
        only_there = [layer for layer in there if layer not in set(here)]
        if only_here or only_there:
            print(f"{name}: only here {only_here[:8]}{' ...' if len(only_here) > 8 else ''} ({len(only_here)}); "
                  f"only in {other_name} {only_there[:8]}{' ...' if len(only_there) > 8 else ''} ({len(only_there)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backbones", nargs="*", help="default: all")
    parser.add_argument("--out", help="write each backbone's layer names, time and problems to this JSON file")
    parser.add_argument("--diff", help="a JSON file --out wrote under another Keras: print the names that differ")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.simplefilter("ignore")
    import keras

    from graft_applications import BACKBONES

    names = args.backbones or list(BACKBONES)
    results, total = {}, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="graft-applications-") as folder:
        for name in names:
            results[name] = check(name, folder)
            result = results[name]
            status = "ok" if not result["problems"] else "; ".join(result["problems"])
            print(f"{name:18} {result['seconds']:6.1f} s  {len(result['names']):4} layers  {status}", flush=True)
    print(f"Keras {keras.__version__}: {len(names)} backbones in {time.perf_counter() - total:.0f} s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"keras": keras.__version__, "backbones": results}, handle, indent=1)
    if args.diff:
        with open(args.diff, encoding="utf-8") as handle:
            other = json.load(handle)
        print(f"layer names that differ from Keras {other['keras']}:")
        diff(results, other["backbones"], f"Keras {other['keras']}")
    return 1 if any(result["problems"] for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
