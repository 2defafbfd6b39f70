"""A sweep of fine-tuning depth and learning rate, its best trial against the hand-written config, and its cost
against the same trials run without sharing.

    python benchmarks/sweep_sharing.py [--trials 20] [--keep]

The spec is ``configs/gru_transfer.yaml`` (three GRU(16) pretrained on one synthetic
time-series task, then transferred to another).  The sweep tries the transfer stage
with ``fine_tune_top`` over ``layers`` 1-3 (how deep to fine-tune) and the learning rate
(log-uniform 1e-4 to 3e-2), TRIALS trials, median pruning.  Then:

* quality: the best trial and the hand-written config (gru_3 and the heads trained at
  1e-3) evaluated on held-out data neither saw (the same task, another seed);
* cost: the sweep's stage times (pretrain once, plus every trial's transfer) against
  the same trials run as ``graft.run`` would run each alone (pretrain again every time,
  each trial for the epochs it ran), summed from every stage's ``report.json``.

Everything lives in a temporary folder (the feature cache too), removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "configs", "gru_transfer.yaml")
DEPTH = "stages.transfer.policy={plugin: fine_tune_top, params: {layers: 1}}"
SPACE = """\
stage: transfer
trials: {trials}
metric: val_loss
direction: minimize
pruner: median
params:
  stages.transfer.policy.params.layers: {{int: [1, 3]}}
  stages.transfer.optimizer.learning_rate: {{loguniform: [1.0e-4, 3.0e-2]}}
"""
# the transfer task (its seed draws the task's channel mixing) with more samples: with another count every sample
# is drawn anew, so none is one the transfer stage trained or validated on
HELD_OUT = {"samples": 2048, "frequency": 2.5, "noise": 0.2, "seed": 2, "validation_split": 0.0,
            "targets": {"level": "level", "trend": "trend"}}
ALONE = """\
import json, sys
import graft
spec, trials, folder = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
for number, sets in trials:
    graft.run(graft.load_spec(spec, overrides=sets), f"{folder}/{number}", log=lambda line: None)
"""


def stage_time(folder: str, stage: str) -> float:
    with open(os.path.join(folder, stage, "report.json"), encoding="utf-8") as handle:
        return float(json.load(handle)["wall_time_s"])


def child_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def held_out() -> dict:
    """The transfer task's data, samples neither the sweep nor the hand-written run saw."""
    from graft.builtins.synthetic import SyntheticParams, generate

    x, y = generate(SyntheticParams(**HELD_OUT))
    return {"input": x, **y}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="graft-sweep-bench-")
    os.environ["GRAFT_CACHE_DIR"] = os.path.join(folder, "cache")
    try:
        space = os.path.join(folder, "space.yaml")
        with open(space, "w", encoding="utf-8") as handle:
            handle.write(SPACE.format(trials=args.trials))
        out = os.path.join(folder, "sweep")
        started, cpu = time.perf_counter(), child_cpu()
        subprocess.run([sys.executable, "-m", "graft", "sweep", SPEC, space, "--out", out, "--set", DEPTH],
                       check=True, stdout=subprocess.DEVNULL)
        sweep_wall, sweep_cpu = time.perf_counter() - started, child_cpu() - cpu

        import optuna

        import graft

        study = optuna.load_study(study_name="graft-sweep", storage=f"sqlite:///{out}/study.db")
        trials = [trial for trial in study.trials if trial.state.name in ("COMPLETE", "PRUNED")]
        shared = stage_time(os.path.join(out, "shared"), "pretrain")
        swept = [stage_time(os.path.join(out, trial.user_attrs["folder"]), "transfer") for trial in trials]
        sweep_cost = shared + sum(swept)

        quiet = {"log": lambda line: None}
        runs = [(trial.number, [DEPTH, *(f"{path}={value}" for path, value in trial.params.items()),
                                f"stages.transfer.epochs={trial.user_attrs['epochs']}"]) for trial in trials]
        started, cpu = time.perf_counter(), child_cpu()
        # the same trials, each run alone as a hand-made sweep would (pretrain every time), in one process
        subprocess.run([sys.executable, "-c", ALONE, SPEC, json.dumps(runs), os.path.join(folder, "alone")],
                       check=True, stdout=subprocess.DEVNULL)
        alone_wall, alone_cpu = time.perf_counter() - started, child_cpu() - cpu
        alone = [stage_time(os.path.join(folder, "alone", str(number)), "pretrain")
                 + stage_time(os.path.join(folder, "alone", str(number)), "transfer") for number, _ in runs]

        hand = os.path.join(folder, "hand")
        graft.run(SPEC, hand, **quiet)
        data = held_out()
        best = graft.load_stage(os.path.join(out, "best"), "transfer").evaluate(data)
        written = graft.load_stage(hand, "transfer").evaluate(data)
        best_trial = study.best_trial
        pruned = sum(trial.state.name == "PRUNED" for trial in trials)
        print(f"trials: {len(trials)} ({pruned} pruned); best: trial {best_trial.number} {best_trial.params}")
        print(f"held-out loss ({HELD_OUT['samples']} samples, seed {HELD_OUT['seed']}): best trial {best.loss:.4f}, "
              f"hand-written config {written.loss:.4f} (ratio {best.loss / written.loss:.2f})")
        for head in best.heads:
            print(f"  {head}: best {best.heads[head].metrics}  hand-written {written.heads[head].metrics}")
        print(f"stage time, sweep: pretrain once {shared:.1f} s + {len(swept)} transfers {sum(swept):.1f} s "
              f"= {sweep_cost:.1f} s")
        print(f"stage time, the same trials alone: {sum(alone):.1f} s "
              f"(ratio sweep/alone {sweep_cost / sum(alone):.2f})")
        print(f"process CPU (user + system): sweep {sweep_cpu:.1f} s, the same trials alone {alone_cpu:.1f} s "
              f"(ratio {sweep_cpu / alone_cpu:.2f}); wall {sweep_wall:.1f} s and {alone_wall:.1f} s")
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
