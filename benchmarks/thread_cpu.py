"""Where a command's CPU goes, by thread: run it and add up each thread's CPU by thread name (Linux).

    python benchmarks/thread_cpu.py -- graft run configs/gru_transfer.yaml --out /tmp/run
    python benchmarks/thread_cpu.py --seed-scenario 10x-epochs     # graft run and its hand twin, one after the other

Reads ``/proc/PID/task/*/stat`` every 0.2 s while the command runs, keeping each
thread's last user + system time, so the CPU of threads that end between two reads
is partly missed (the total of ``getrusage`` is printed beside it).  TensorFlow's
thread pools are named (``tf_Compute``, ``tf_data_...``), the main thread by the
program's name: a pipeline whose threads spin shows here, where a profile of the
main thread does not see it.  Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile
import time


def thread_cpu(command: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, tuple[float, int]], float]:
    """Run ``command``; (CPU seconds and thread count by thread name, the process's CPU by ``getrusage``)."""
    tick = os.sysconf("SC_CLK_TCK")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[str, tuple[str, float]] = {}
    while process.poll() is None:
        try:
            tasks = os.listdir(f"/proc/{process.pid}/task")
        except OSError:
            tasks = []
        for task in tasks:
            try:
                with open(f"/proc/{process.pid}/task/{task}/stat", encoding="utf-8", errors="replace") as handle:
                    stat = handle.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            seen[task] = (name, (int(fields[11]) + int(fields[12])) / tick)  # utime, stime
        time.sleep(0.2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed with exit code {process.returncode}")
    by_name: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for name, cpu in seen.values():
        by_name[name][0] += cpu
        by_name[name][1] += 1
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {name: (cpu, int(count)) for name, (cpu, count) in by_name.items()}, total


def show(title: str, found: dict[str, tuple[float, int]], total: float) -> None:
    print(f"{title}: {total:.1f} CPU s (getrusage), {sum(cpu for cpu, _ in found.values()):.1f} s seen in threads")
    for name, (cpu, count) in sorted(found.items(), key=lambda item: -item[1][0])[:15]:
        print(f"  {cpu:8.1f} s  {count:5d} thread(s)  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-scenario", metavar="SCALE",
                        help="graft run of the seed scenario at SCALE, then the twin")
    parser.add_argument("command", nargs="*", help="the command to run (after --)")
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.seed_scenario:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import seed_scenario

        samples, epochs = seed_scenario.SCALES[args.seed_scenario]
        with tempfile.TemporaryDirectory() as folder:
            for side, command in (("graft run", seed_scenario.graft_command), ("twin", seed_scenario.twin_command)):
                found, total = thread_cpu(command(os.path.join(folder, side.replace(" ", "-")), samples, epochs), env)
                show(f"{side}, seed scenario {args.seed_scenario}", found, total)
        return 0
    if not args.command:
        parser.error("give a command after --, or --seed-scenario SCALE")
    show(" ".join(args.command), *thread_cpu(args.command, env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
