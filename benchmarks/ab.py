"""Side by side, fairly: fresh processes run interleaved (A, B, A, B, ...), each timed by the CPU it used,
and compared round by round (``paired_ratio``).

CPU time (user + system, the child's own and its children's) is what a shared or busy machine
pays for, and it varies less with the load than wall time.  The load average is read before
and after, so a table says what the machine was doing.  Standard library only.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import attrs


@attrs.frozen
class Timing:
    """One run of one command: CPU seconds (user + system) and wall seconds."""

    cpu: float
    wall: float


def graft() -> list[str]:
    """How a user runs keras-graft: the ``graft`` script beside this Python, else ``python -m graft.commands.cli``."""
    script = os.path.join(os.path.dirname(sys.executable), "graft")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "graft.commands.cli"]


def timed(command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> Timing:
    """Run ``command`` to its end (its output discarded) and time it; ``CalledProcessError`` if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(list(command), env=dict(env) if env is not None else None, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, stderr=done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(cpu, wall)


Command = Sequence[str] | Callable[[], Sequence[str]]  # a function makes a new command line for every run


def interleaved(sides: Mapping[str, Command], n: int, warmup: int = 1, **options) -> dict[str, list[Timing]]:
    """Each command of ``sides`` run ``n`` times, in turn (after ``warmup`` untimed rounds, which fill the
    page cache); the timings by side."""
    for _ in range(warmup):
        for command in sides.values():
            timed(command() if callable(command) else command, **options)
    timings: dict[str, list[Timing]] = {name: [] for name in sides}
    for _ in range(n):
        for name, command in sides.items():
            timings[name].append(timed(command() if callable(command) else command, **options))
    return timings


def median_cpu(timings: Sequence[Timing]) -> float:
    return statistics.median(timing.cpu for timing in timings)


def paired_ratio(mine: Sequence[Timing], theirs: Sequence[Timing], wall: bool = False) -> float:
    """The median of the rounds' ratios, ``mine[i] / theirs[i]`` (CPU, or wall time): the two runs of a round
    ran back to back, so a machine whose speed drifts while it measures (a neighbour's load, a clock that
    throttles) moves both alike, where the ratio of each side's median takes the drift for a difference."""
    def value(timing: Timing) -> float:
        return timing.wall if wall else timing.cpu

    return statistics.median(value(a) / value(b) for a, b in zip(mine, theirs, strict=True))


def ratio_row(work: str, timings: Mapping[str, Sequence[Timing]], goal: float) -> list[str]:
    """``[work, graft CPU s, reference CPU s, CPU ratio, wall ratio, goal]``: each side's median CPU, and the
    median of the rounds' ratios (``paired_ratio``) of the sides ``graft`` and ``twin``."""
    graft, hand = timings["graft"], timings["twin"]
    return [work, f"{median_cpu(graft):.2f}", f"{median_cpu(hand):.2f}", f"{paired_ratio(graft, hand):.3f}",
            f"{paired_ratio(graft, hand, wall=True):.3f}", f"<= {goal:.2f}"]


def footer(n: int, before: str) -> str:
    """What a table's numbers are, and the load before (``before``, from ``load()``) and now."""
    return (f"n = {n} interleaved rounds; CPU s: medians; ratios: medians of the rounds' ratios; "
            f"{before} before, {load()} after")


def load() -> str:
    """The 1-minute load average and the cores, e.g. ``load 1.9 on 2 cores``."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as a Markdown table (the first row is the header)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)
