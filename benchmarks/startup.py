"""How fast the commands that need no TensorFlow start, against ``python -c "import tensorflow"``.

    python benchmarks/startup.py [-n 5]

Each command runs as a fresh process, interleaved with the TensorFlow import, timed by
its CPU (``benchmarks/ab.py``): ``graft --help``, ``graft validate`` and ``graft plugins``
on the seed scenario, and ``graft run`` of a run whose every stage is finished (trained
once before the timing, then confirmed from its digests).  The goal is at most 0.03x.
Measure with bytecode compiled (``python -m compileall -q core plugins`` for an editable
install): without it every start pays compilation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ab import footer, interleaved, load, median_cpu, paired_ratio, table  # noqa: E402
from ab import graft as graft_script

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "gru_transfer.yaml")
GOAL = 0.03


def ratios(n: int) -> list[list[str]]:
    """Rows ``[what, graft CPU s, import tensorflow CPU s, ratio, goal]``."""
    graft = graft_script()
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "run")
        subprocess.run([*graft, "run", CONFIG, "--out", out], check=True, env=quiet,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        commands = {
            "graft --help": [*graft, "--help"],
            "graft validate": [*graft, "validate", CONFIG],
            "graft plugins": [*graft, "plugins"],
            "graft run (every stage finished)": [*graft, "run", CONFIG, "--out", out],
        }
        sides = {**commands, "import tensorflow": [sys.executable, "-c", "import tensorflow"]}
        timings = interleaved(sides, n, env=quiet)
    tensorflow = timings["import tensorflow"]
    return [
        [what, f"{median_cpu(timings[what]):.3f}", f"{median_cpu(tensorflow):.2f}",
         f"{paired_ratio(timings[what], tensorflow):.3f}", f"<= {GOAL}"]
        for what in commands
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each side (medians; default 5)")
    args = parser.parse_args()
    before = load()
    rows = ratios(args.n)
    print(table([["command", "CPU s", "import tensorflow CPU s", "ratio", "goal"], *rows]))
    print(footer(args.n, before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
