"""Every ratio of keras-graft against plain Keras and a TensorFlow import, in one table.

    python benchmarks/run_all.py           # quick: n = 3, the seed scenario at 1x and 4x, small images (15-25 minutes)
    python benchmarks/run_all.py --full    # n = 5, every scale, 10x the samples and epochs, bigger images (hours)

Each row comes from its own script, run side by side with its reference as fresh
processes, interleaved, timed by CPU (``benchmarks/ab.py``), medians of n:

- ``benchmarks/startup.py``: ``graft --help``, ``validate``, ``plugins`` and re-running a
  finished run, against ``python -c "import tensorflow"`` (goal <= 0.03x);
- ``benchmarks/seed_scenario.py``: ``graft run`` of the seed scenario against a hand-written
  Keras twin proven to train bitwise-equal weights (goal <= 1.00x);
- ``benchmarks/feature_cache_limit.py``: a frozen MobileNetV2 stage on a fresh feature cache
  against its limit by hand, features predicted once and the head fitted on them, proven to
  end with the same head (goal <= 1.05x);
- ``benchmarks/image_folder_training.py``: ``graft run`` on an ``image_folder`` against
  ``image_dataset_from_directory(...).prefetch(AUTOTUNE)`` training the same model (goal <= 1.00x).

The load average before and after is printed with the table: quote both with the numbers.
Needs nothing but keras-graft, its gru, mobilenet and digits plugins (scikit-learn) and
TensorFlow; the images are written by the scripts, nothing is downloaded.  Compile the bytecode first
for an editable install (``python -m compileall -q core plugins``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import feature_cache_limit  # noqa: E402
import image_folder_training  # noqa: E402
import seed_scenario  # noqa: E402
import startup  # noqa: E402
from ab import footer, load, table  # noqa: E402


def machine() -> str:
    """The processor's model name (Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="n = 5, every scale of the seed scenario, bigger images")
    parser.add_argument("-n", type=int, help="runs of each side (default 3, or 5 with --full)")
    args = parser.parse_args()
    n = args.n or (5 if args.full else 3)
    scales = list(seed_scenario.SCALES) if args.full else ["1x", "4x"]
    before = load()
    rows = [[what, mine, theirs, ratio, goal] for what, mine, theirs, ratio, goal in startup.ratios(n)]
    rows += [[f"`graft run`, {what.removeprefix('seed scenario ')} (wall {wall})", mine, theirs, ratio, goal]
             for what, mine, theirs, ratio, wall, goal in seed_scenario.ratios(n, scales)]
    images = feature_cache_limit.FULL if args.full else feature_cache_limit.QUICK
    rows += [[f"{what} (wall {wall})", mine, theirs, ratio, goal]
             for what, mine, theirs, ratio, wall, goal in feature_cache_limit.ratios(n, **images)]
    folder = image_folder_training.FULL if args.full else image_folder_training.QUICK
    rows += [[f"{what} (wall {wall})", mine, theirs, ratio, goal]
             for what, mine, theirs, ratio, wall, goal in image_folder_training.ratios(n, **folder)]
    print(table([["what", "graft CPU s", "reference CPU s", "ratio", "goal"], *rows]))
    print(f"references: `python -c \"import tensorflow\"` for the commands, the hand-written twin for `graft run`, "
          "predict once + fit the head for the feature cache, `image_dataset_from_directory` for `image_folder`; "
          f"{machine()}, {os.cpu_count()} cores; {footer(n, before)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
