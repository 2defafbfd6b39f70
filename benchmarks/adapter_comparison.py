"""Low-rank adapters against the other ways to transfer, on the same held-out data, at several seeds.

    python benchmarks/adapter_comparison.py [--seeds 3] [--work /tmp/adapter-comparison]

Starts from ``configs/gru_adapters.yaml``: three GRU(16) pretrained on a 3-class trend task
(synthetic series of one frequency, made offline), then a new task (another frequency, noise,
205 training and 51 held-out series).  Per seed (the spec's ``seed``: initialisation, the
adapters' ``A`` and the batches; the data and its held-out part stay the same), ``pretrain``
runs once, then each way of transferring runs as its own stage from it, in its own process
(``graft run`` of the spec with ``pretrain`` and that stage: ``pretrain`` is reused):

- ``head_only``: the GRUs frozen, the head trains (on cached features);
- ``adapters_r2`` and ``adapters_r4``: a rank-2 / rank-4 adapter (alpha = 2 · rank) beside every
  GRU kernel, the head trains;
- ``full_fine_tune``: the same GRUs and the head all train;
- ``scratch``: the same model from a fresh initialisation, on the new task only.

Every stage trains 10 epochs with Adam at 0.003, batch 32.  The table gives, per way, the
held-out accuracy (mean and standard deviation over the seeds), the parameters that train, the
stage's wall time per epoch (its whole stage: build, load, training, verification, publishing,
divided by its epochs) and the process's peak resident memory (``ru_maxrss`` of that
``graft run``, TensorFlow included).  Needs keras-graft with its gru plugin and TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ab import graft  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "gru_adapters.yaml")
POLICIES = {
    "head_only": {"plugin": "layers", "params": {"default": "freeze", "train": ["trend"]}},
    "adapters_r2": {"plugin": "layers", "params": {"adapt": {"gru_*": {"rank": 2, "alpha": 4}}, "train": ["trend"]}},
    "adapters_r4": {"plugin": "layers", "params": {"adapt": {"gru_*": {"rank": 4, "alpha": 8}}, "train": ["trend"]}},
    "full_fine_tune": {"plugin": "continue"},
    "scratch": None,
}


def spec_for(seed: int, way: str) -> dict:
    with open(CONFIG, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    spec["seed"] = seed
    pretrain, adapters = spec["stages"]
    stage = dict(adapters, name=way)
    if POLICIES[way] is None:
        del stage["init"], stage["policy"]
    else:
        stage["policy"] = POLICIES[way]
    spec["stages"] = [pretrain, stage]
    return spec


def run(spec: dict, folder: str, out: str) -> int:
    """``graft run`` of ``spec`` in a fresh process; its peak resident memory in MB."""
    path = os.path.join(folder, f"{spec['stages'][-1]['name']}.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle, sort_keys=False)
    process = subprocess.Popen([*graft(), "run", path, "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"graft run {path} failed: {process.stderr.read().decode() if process.stderr else ''}")
    return round(usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work", default="/tmp/adapter-comparison")
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {way: [] for way in POLICIES}
    for seed in range(1, args.seeds + 1):
        folder = os.path.join(args.work, f"seed_{seed}")
        os.makedirs(folder, exist_ok=True)
        out = os.path.join(folder, "out")
        for way in POLICIES:
            peak = run(spec_for(seed, way), folder, out)
            with open(os.path.join(out, way, "report.json"), encoding="utf-8") as handle:
                report = json.load(handle)
            rows[way].append({
                "accuracy": next(value for key, value in report["final_metrics"].items()
                                 if key.startswith("val_") and key.endswith("accuracy")),
                "trainable": report["plan"]["trainable_params"],
                "epoch_s": report["wall_time_s"] / report["epochs_run"],
                "peak_mb": peak,
            })
            print(f"seed {seed} {way}: {rows[way][-1]}", file=sys.stderr, flush=True)
    print(f"| way | held-out accuracy (mean ± sd, {args.seeds} seeds) | trainable parameters | "
          "stage wall time per epoch | peak memory |")
    print("|---|---|---|---|---|")
    for way, results in rows.items():
        accuracy = [result["accuracy"] for result in results]
        spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
        print(f"| `{way}` | {statistics.mean(accuracy):.3f} ± {spread:.3f} | {results[0]['trainable']:,} | "
              f"{statistics.median(result['epoch_s'] for result in results):.2f} s | "
              f"{statistics.median(result['peak_mb'] for result in results):,} MB |")


if __name__ == "__main__":
    main()
