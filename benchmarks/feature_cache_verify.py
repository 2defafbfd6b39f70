"""What proving the feature cache costs: the frozen MobileNet transfer stage of configs/mobilenet_digits.yaml,
with the chunk digests written and proven, against the same stage with them switched off.

    python benchmarks/feature_cache_verify.py [--repeat 5] [--per-class 20]

The spec's ``pretrain`` stage is trained once; then its ``transfer`` stage (a frozen
MobileNetV2, alpha 0.35, 32x32: a new head trains on the extractor's cached features) is
run again and again into fresh run folders that hold the finished ``pretrain``, in one
process, measuring the process's CPU time (``time.process_time``: every thread, TensorFlow's
too) of each whole ``run_spec``.  Two cases, each with verification on and off, interleaved
(on, off, off, on, ...) so that drift in the machine's load hits both alike:

- ``first run``: the cache is empty, so the features are computed and stored (with
  verification, every chunk is digested as it is written and proven as the heads read it);
- ``re-run``: the features are on disk (with verification, the entry is proven whole before
  the heads train, and every read checks that its file is the one proven).

"Off" is keras-graft without the proofs: ``StoredFeatures.prove`` and the reads' check do
nothing and the digests are not computed (a stand-in hash), as before the digests existed.
The entry's size and the CPU time of proving it alone (``StoredFeatures.prove``) are printed
too, with the load average before and after.  ``--per-class`` sets how many images of each
digit the transfer stage has (the spec says 20; at most about 170).  Needs keras-graft with
the mobilenet and digits plugins.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "mobilenet_digits.yaml")


class _NoHash:
    """A stand-in for ``hashlib.sha256`` that hashes nothing: the digests of ``off``."""

    def update(self, _data) -> None:
        return None

    def hexdigest(self) -> str:
        return "0" * 64


class Spent:
    """CPU seconds spent in the proofs and the digests, summed over the threads that ran them
    (``time.thread_time`` of each call: the input pipeline's threads prove what they read)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.lock = threading.Lock()

    def timed(self, function):
        def wrapper(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with self.lock:
                    self.seconds += time.thread_time() - started

        return wrapper


@contextlib.contextmanager
def verification(on: bool, spent: Spent):
    """Within the block, the feature cache's proofs are as shipped (``on``, their CPU time added to ``spent``)
    or switched off."""
    import hashlib

    from graft.features import digests, files
    from graft.plugins.arrayfile import ArrayFile

    if on:
        saved_on = (digests.ChunkProof.prove, digests.ChunkDigests.update)
        digests.ChunkProof.prove = spent.timed(digests.ChunkProof.prove)  # type: ignore[method-assign]
        digests.ChunkDigests.update = spent.timed(digests.ChunkDigests.update)  # type: ignore[method-assign]
        try:
            yield
        finally:
            digests.ChunkProof.prove, digests.ChunkDigests.update = saved_on
        return
    saved = (files.StoredFeatures.prove, digests.CheckedArrayFile._check_open, digests.hashlib)
    files.StoredFeatures.prove = lambda self: None  # type: ignore[method-assign]
    digests.CheckedArrayFile._check_open = ArrayFile._check_open  # type: ignore[method-assign]
    digests.hashlib = argparse.Namespace(sha256=_NoHash)  # type: ignore[assignment]
    try:
        yield
    finally:
        files.StoredFeatures.prove, digests.CheckedArrayFile._check_open, digests.hashlib = saved
        assert digests.hashlib is hashlib


def two_stage_spec(folder: str, per_class: int) -> str:
    """configs/mobilenet_digits.yaml cut after its ``transfer`` stage, ``per_class`` images per digit there."""
    with open(CONFIG, encoding="utf-8") as handle:
        text = handle.read()
    text = text[: text.index("  - name: fine_tune")]
    marker = "params: {classes: [5, 6, 7, 8, 9], per_class: 20, size: 32}"
    if marker not in text:
        sys.exit(f"{CONFIG} changed: cannot find {marker!r}")
    text = text.replace(marker, marker.replace("per_class: 20", f"per_class: {per_class}"))
    path = os.path.join(folder, "mobilenet_digits_transfer.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per case and setting (default 5)")
    parser.add_argument("--per-class", type=int, default=20, help="images per digit in the transfer stage")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    folder = tempfile.mkdtemp(prefix="graft-verify-bench-")
    os.environ["GRAFT_CACHE_DIR"] = os.path.join(folder, "cache-unused")
    try:
        return measure(folder, args.repeat, args.per_class)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(folder: str, repeat: int, per_class: int) -> int:
    from graft.features.files import StoredFeatures
    from graft.features.store import FeatureStore
    from graft.plugins.registry import Registry
    from graft.runs.stages import run_spec
    from graft.spec.specfile import load_spec

    registry = Registry.discover()
    spec_file = load_spec(two_stage_spec(folder, per_class), registry)
    base = os.path.join(folder, "base")
    load_before = os.getloadavg()
    print("training pretrain once ...", flush=True)
    run_spec(spec_file, registry, base, log=lambda _line: None)

    proofs: dict[str, list[float]] = {}

    def run(case: str, on: bool, number: int) -> float:
        cache = os.path.join(folder, f"cache-{case}-{'on' if on else 'off'}")
        if case == "first":
            shutil.rmtree(cache, ignore_errors=True)
        os.environ["GRAFT_CACHE_DIR"] = cache
        out = os.path.join(folder, f"{case}-{'on' if on else 'off'}-{number}")
        shutil.copytree(base, out, ignore=lambda where, names: ["transfer"] if where == base else [])
        lines: list[str] = []
        proving = Spent()
        with verification(on, proving):
            started = time.process_time()
            run_spec(spec_file, registry, out, log=lines.append)
            spent = time.process_time() - started
        if on and number >= 0:
            proofs.setdefault(case, []).append(proving.seconds)
        reused = any("features of this data are stored" in line for line in lines)
        if number >= 0 and reused != (case == "re-run"):  # a warm-up (-1) stores the re-run's entry
            sys.exit(f"{case} run {number}: the features were {'' if reused else 'not '}reused:\n" + "\n".join(lines))
        shutil.rmtree(out)
        return spent

    times: dict[tuple[str, bool], list[float]] = {}
    for case in ("first", "re-run"):
        for on in (True, False):  # warm-up: TensorFlow's first traces, and the re-run's entries
            run(case, on, -1)
        for number in range(repeat):
            order = (True, False) if number % 2 == 0 else (False, True)
            for on in order:
                times.setdefault((case, on), []).append(run(case, on, number))

    store = FeatureStore(os.path.join(folder, "cache-re-run-on"))
    (entry,) = store.entries()
    prove_times = []
    for _ in range(max(repeat, 5)):
        with store.get(entry.key) as stored:
            fresh = StoredFeatures(stored.path, stored.meta)  # nothing proven yet in this one
            started = time.process_time()
            problem = fresh.prove()
            prove_times.append(time.process_time() - started)
            if problem is not None:
                sys.exit(f"the entry does not prove: {problem}")
    load_after = os.getloadavg()

    print(f"transfer stage of {os.path.basename(CONFIG)} ({per_class} images per digit), CPU seconds of run_spec, "
          f"{repeat} runs each, interleaved")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f}, after {load_after[0]:.2f} "
          f"{load_after[1]:.2f} (1 and 5 min; {os.cpu_count()} CPUs)")
    for case, label in (("first", "first run (features computed and stored)"), ("re-run", "re-run (features reused)")):
        on, off = times[(case, True)], times[(case, False)]
        ratio = statistics.median(on) / statistics.median(off)
        print(f"  {label:42} verified {statistics.median(on):6.2f} s (min {min(on):.2f})   "
              f"unverified {statistics.median(off):6.2f} s (min {min(off):.2f})   ratio {ratio:.3f}")
        print(f"      verified   {' '.join(f'{value:.2f}' for value in on)}")
        print(f"      unverified {' '.join(f'{value:.2f}' for value in off)}")
        proving = statistics.median(proofs[case])
        print(f"      CPU in the digests and proofs of the verified runs: median {proving * 1000:.1f} ms "
              f"({proving / statistics.median(on) * 100:.3f} % of the run)")
    print(f"  the entry: {entry.size_bytes:,} bytes, {entry.samples} samples; proving it whole: median "
          f"{statistics.median(prove_times) * 1000:.2f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
