"""Wall and CPU time of a multi_worker spec on 1 and 2 local workers against one plain process, same stages and batch.

    python benchmarks/multiworker_overhead.py [--config configs/gru_multiworker.yaml] [--repeats 3] [--keep]

Three whole-process runs of the same stages at the same global batch, alternating
for ``--repeats`` rounds (1 process, 1 worker, 2 workers, 1 process, ...), each a
fresh process into a fresh ``--out`` folder, so each pays its own Python and
TensorFlow start-up:

- ``1 process``: ``graft run`` of a copy of the spec without its ``distribute:``
  line (a plain fit, no tf.distribute);
- ``1 worker``: ``graft run --local-workers 1``, MultiWorkerMirroredStrategy
  with one worker: the cost of the strategy and the launcher alone;
- ``2 workers``: ``graft run --local-workers 2``, two processes on loopback ports.

``batch_size`` is the global batch under ``distribute``, so all three train on
the same batches.  Every run gets ``--no-feature-cache``: multi_worker never uses
the feature cache, so the plain process must not either (``GRAFT_CACHE_DIR`` is in
the temporary folder all the same).  The CPU time is that of the child and
everything it waited for (``resource.getrusage(RUSAGE_CHILDREN)`` before and
after; the launcher waits for its workers), user plus system.  On a machine with
few cores no speed-up is expected: this shows what the distribution costs.

A timing of a wrong result is worthless, so every run's published weights
(``<out>/<stage>/weights.graft.npz`` of every stage, read with numpy) are compared
with those of the first plain run, and the run fails beyond ``TOLERANCE``.  The
spec's copy lives in the temporary folder: data paths relative to the spec's
folder would not resolve from there (the default spec's data is synthetic).
Needs only Python, numpy and keras-graft with the spec's plugins (``gru``); this
process does not import TensorFlow.  Children run with ``TF_CPP_MIN_LOG_LEVEL=2``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "gru_multiworker.yaml")
WEIGHTS = "weights.graft.npz"
INDEX_KEY = "__graft_index__"  # the JSON index inside a weights file, not a weight
TOLERANCE = 1e-5  # largest weight difference from the plain process still counted as the same result
SETUPS = ("1 process", "1 worker", "2 workers")
Weights = dict[str, dict[str, np.ndarray]]  # stage -> "{layer}:{index}" -> array


def without_distribute(text: str) -> str:
    """The spec's YAML without its top-level ``distribute:`` entry (one line, or a block and its indented lines)."""
    kept, skipping, found = [], False, 0
    for line in text.splitlines(keepends=True):
        if skipping and (line[:1] in (" ", "\t") or not line.strip()):
            continue
        skipping = False
        if re.match(r"distribute\s*:", line):
            found += 1
            skipping = True
            continue
        kept.append(line)
    if found != 1:
        raise ValueError(f"expected one top-level 'distribute:' entry in the spec, found {found}")
    return "".join(kept)


def run(command: list[str], env: dict[str, str], log: str) -> tuple[float, float, int]:
    """Run ``command`` with its output in ``log``: wall seconds, CPU seconds of it and its waited-for children,
    exit status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "wb") as output:
        status = subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, status


def read_weights(out: str) -> Weights:
    """Every stage's published weights under run folder ``out``: the folders holding a weights file."""
    stages: Weights = {}
    for stage in sorted(os.listdir(out)):
        path = os.path.join(out, stage, WEIGHTS)
        if os.path.isfile(path):
            with np.load(path) as data:
                stages[stage] = {key: data[key] for key in data.files if key != INDEX_KEY}
    return stages


def max_difference(reference: Weights, other: Weights) -> float:
    """Largest absolute difference over every weight of every stage; ``inf`` if stages, names or shapes differ."""
    if reference.keys() != other.keys() or not reference:
        return float("inf")
    largest = 0.0
    for stage, arrays in reference.items():
        if arrays.keys() != other[stage].keys():
            return float("inf")
        for key, value in arrays.items():
            if value.shape != other[stage][key].shape:
                return float("inf")
            if value.size:
                difference = np.abs(value.astype(np.float64) - other[stage][key].astype(np.float64)).max()
                largest = max(largest, float(difference))
    return largest


def tail_of(log: str, lines: int = 25) -> str:
    with open(log, encoding="utf-8", errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=CONFIG, help="a spec with distribute: {strategy: multi_worker} "
                        "(default configs/gru_multiworker.yaml)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three runs (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (spec copy, runs, logs)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be 1 or more")

    config = os.path.abspath(args.config)
    with open(config, encoding="utf-8") as handle:
        try:
            plain_text = without_distribute(handle.read())
        except ValueError as exc:
            parser.error(f"{args.config}: {exc}")
    work = tempfile.mkdtemp(prefix="graft-multiworker-")
    plain = os.path.join(work, "plain.yaml")
    with open(plain, "w", encoding="utf-8") as handle:
        handle.write(plain_text)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GRAFT_CACHE_DIR": os.path.join(work, "cache")}
    graft = [sys.executable, "-m", "graft", "run"]
    commands = {
        "1 process": [*graft, plain],
        "1 worker": [*graft, config, "--local-workers", "1"],
        "2 workers": [*graft, config, "--local-workers", "2"],
    }
    print(f"{os.path.relpath(config)}, {args.repeats} alternating rounds on {os.cpu_count()} CPU cores; work in {work}")

    walls: dict[str, list[float]] = {name: [] for name in SETUPS}
    cpus: dict[str, list[float]] = {name: [] for name in SETUPS}
    differences: dict[str, list[float]] = {name: [] for name in SETUPS}
    reference: Weights | None = None
    try:
        for round_ in range(1, args.repeats + 1):
            for name in SETUPS:
                out = os.path.join(work, f"{name.replace(' ', '-')}-{round_}")
                log = out + ".log"
                wall, cpu, status = run([*commands[name], "--out", out, "--no-feature-cache"], env, log)
                if status != 0:
                    args.keep = True  # for the log
                    print(
                        f"{name} (round {round_}) exited {status}; the end of {log}:\n{tail_of(log)}", file=sys.stderr
                    )
                    return 1
                weights = read_weights(out)
                if reference is None:
                    reference = weights
                    print(f"stages: {', '.join(reference) or 'none found'}")
                difference = max_difference(reference, weights)
                if not difference <= TOLERANCE:
                    print(f"{name} (round {round_}): its weights differ from the first plain run's by {difference:.3g} "
                          f"(> {TOLERANCE:g}), or its stages or layers do: see {out}", file=sys.stderr)
                    args.keep = True
                    return 1
                walls[name].append(wall)
                cpus[name].append(cpu)
                differences[name].append(difference)
                print(f"  round {round_}  {name:<9}  wall {wall:6.1f} s  CPU {cpu:6.1f} s  "
                      f"max |w - 1 process| {difference:.1e}", flush=True)
                if not args.keep:
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    base = "1 process"
    print()
    print(f"{'':<9}  {'wall median':>11}  {'vs 1 process':>12}  {'CPU median':>10}  {'vs 1 process':>12}  "
          f"{'max |w - 1 process|':>19}  wall runs")
    for name in SETUPS:
        runs = ", ".join(f"{value:.1f}" for value in walls[name])
        print(f"{name:<9}  {wall[name]:>9.1f} s  {wall[name] / wall[base]:>11.2f}x  {cpu[name]:>8.1f} s  "
              f"{cpu[name] / cpu[base]:>11.2f}x  {max(differences[name]):>19.1e}  {runs}")
    print(f"2 workers / 1 process: wall {wall['2 workers'] / wall[base]:.2f}x, "
          f"CPU {cpu['2 workers'] / cpu[base]:.2f}x; "
          f"1 worker / 1 process: wall {wall['1 worker'] / wall[base]:.2f}x, CPU {cpu['1 worker'] / cpu[base]:.2f}x; "
          f"weights of 2 workers within {max(differences['2 workers']):.1e} of 1 process (tolerance {TOLERANCE:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
