"""Head-only trials on a frozen extractor: the first computes the extractor's features, the others reuse them.

    python benchmarks/sweep_head_only.py [--trials 10] [--samples 256] [--keep]

Sweeps the transfer stage of ``configs/gru_transfer.yaml`` with every GRU frozen (only
the heads train) over the learning rate, TRIALS trials without pruning, on SAMPLES
transfer series, and prints each
trial's stage time from its ``report.json``: the first trial pays the extractor's pass
over the data, the later ones train the heads on the feature cache it filled.  A
temporary folder (and feature cache), removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "configs", "gru_transfer.yaml")
FROZEN = ("stages.transfer.policy={plugin: layers, params: {freeze: [gru_1, gru_2, gru_3], train: [level, trend]}}")
SPACE = """\
stage: transfer
trials: {trials}
pruner: none
params:
  stages.transfer.optimizer.learning_rate: {{loguniform: [1.0e-4, 3.0e-2]}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--samples", type=int, default=256, help="the transfer stage's series (the config: 256)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="graft-sweep-heads-")
    os.environ["GRAFT_CACHE_DIR"] = os.path.join(folder, "cache")
    try:
        space = os.path.join(folder, "space.yaml")
        with open(space, "w", encoding="utf-8") as handle:
            handle.write(SPACE.format(trials=args.trials))
        out = os.path.join(folder, "sweep")
        samples = f"stages.transfer.data.params.samples={args.samples}"
        subprocess.run([sys.executable, "-m", "graft", "sweep", SPEC, space, "--out", out, "--set", FROZEN,
                        "--set", samples],
                       check=True, stdout=subprocess.DEVNULL)
        times, cached = [], []
        for number in range(args.trials):
            with open(os.path.join(out, "trials", f"{number:04d}", "transfer", "report.json"), encoding="utf-8") as f:
                report = json.load(f)
            times.append(float(report["wall_time_s"]))
            cached.append(bool(report["features_cached"]))
        with open(os.path.join(out, "shared", "pretrain", "report.json"), encoding="utf-8") as handle:
            pretrain = float(json.load(handle)["wall_time_s"])
        entries = len(os.listdir(os.path.join(folder, "cache", "features")))
        rest = times[1:]
        print(f"pretrain once: {pretrain:.1f} s; trial 0 (extractor pass + heads): {times[0]:.1f} s; "
              f"trials 1-{len(times) - 1} (heads on cached features): median {statistics.median(rest):.1f} s, "
              f"sum {sum(rest):.1f} s")
        print(f"every trial on cached features: {all(cached)}; feature cache entries: {entries}")
        print(f"all trials: {sum(times):.1f} s = trial 0 + {len(rest)} x {sum(rest) / len(rest):.1f} s")
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
