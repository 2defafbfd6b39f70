"""Mutation check of the guards: break each check by hand and see that a test notices.

    python benchmarks/mutants.py [--only NAME ...] [--list] [--keep]

Each mutant is one small edit (a deleted check, an inverted condition, an off-by-one
bound) to a guard module: the bitwise checks of loaded and frozen layers
(``graft/runs/verify.py``), the digests of a finished stage (``graft/records/rundir.py``),
the fingerprint of the files a spec reads (``graft/runs/inputs.py``) and the stop when
workers diverge (``graft/distribute/strategy.py``).  The repository is copied to a
temporary folder once; for each mutant the edit is made there, the tests that guard
that code run against the copy (``PYTHONPATH`` puts the copy's ``core/`` first, slow
tests included), and the file is restored.  A mutant *survives* if those tests pass.
The tests are first run on the unmutated copy: they must pass.  Exit status 1 if any
mutant survives.  Needs the development environment (pytest; TensorFlow for the
run-level tests).  It takes a few minutes: the divergence mutants start two workers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VERIFY = "core/graft/runs/verify.py"
RUNDIR = "core/graft/records/rundir.py"
INPUTS = "core/graft/runs/inputs.py"
STRATEGY = "core/graft/distribute/strategy.py"

FROZEN_TEST = "tests/runs/test_guards.py::test_a_frozen_layer_changed_during_fit_stops_the_stage_and_publishes_nothing"
LOADED_TEST = (
    "tests/runs/test_guards.py::"
    "test_a_loaded_layer_that_differs_from_its_source_stops_the_stage_and_publishes_nothing"
)
DIGEST_TESTS = "tests/records/test_rundir.py"
LARGE_FILE_TESTS = "tests/runs/test_guards.py::test_a_large_file_is_digested_by_size_and_sampled_blocks_not_whole"
SAMPLED_TESTS = (
    "tests/runs/test_guards.py::test_a_byte_changed_inside_a_sampled_block_of_a_large_file_changes_its_digest",
    "tests/runs/test_guards.py::test_a_large_file_that_grows_or_shrinks_changes_its_digest",
    "tests/runs/test_guards.py::test_a_byte_between_sampled_blocks_of_a_large_file_is_not_seen_as_documented",
    LARGE_FILE_TESTS,
)
EDITED_DATA_TEST = "tests/runs/test_guards.py::test_a_data_file_edited_after_its_stage_finished_stops_graft_run"
DIVERGED_TEST = (
    "tests/distribute/test_distribute.py::test_workers_that_end_a_stage_with_different_weights_publish_nothing"
)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    # -- verify.py: loaded layers equal their source, frozen layers unchanged
    Mutant("verify: loaded layers not compared", VERIFY,
           "        if not bitwise_equal(target.get_weights(), list(weights[layer.name])):\n",
           "        if False:\n", (LOADED_TEST,)),
    Mutant("verify: loaded-layer check inverted", VERIFY,
           "        if not bitwise_equal(target.get_weights(), list(weights[layer.name])):\n",
           "        if bitwise_equal(target.get_weights(), list(weights[layer.name])):\n", (LOADED_TEST,)),
    Mutant("verify: frozen layers not compared", VERIFY,
           "        if not decision.trainable and not bitwise_equal(before[name], after[name]):\n",
           "        if False:\n", (FROZEN_TEST,)),
    Mutant("verify: frozen check looks at trainable layers", VERIFY,
           "        if not decision.trainable and not bitwise_equal(before[name], after[name]):\n",
           "        if decision.trainable and not bitwise_equal(before[name], after[name]):\n", (FROZEN_TEST,)),
    Mutant("verify: frozen check compares the snapshot with itself", VERIFY,
           "    after = snapshot(built.layers)\n", "    after = before\n", (FROZEN_TEST,)),
    # -- rundir.py: a finished stage is trusted only while its files match their digests
    Mutant("rundir: digests not compared", RUNDIR,
           "            if sha256_of(full) != expected:\n", "            if False:\n", (DIGEST_TESTS,)),
    Mutant("rundir: digest check inverted", RUNDIR,
           "            if sha256_of(full) != expected:\n", "            if sha256_of(full) == expected:\n",
           (DIGEST_TESTS,)),
    Mutant("rundir: a missing file is not noticed", RUNDIR,
           "            if not os.path.isfile(full):\n                raise",
           "            if False:\n                raise", (DIGEST_TESTS,)),
    Mutant("rundir: another stage's report is accepted", RUNDIR,
           "        if report.stage != name:\n", "        if False:\n", (DIGEST_TESTS,)),
    Mutant("rundir: no file digested at publish", RUNDIR,
           "            files[file] = sha256_of(path)\n", "            pass\n", (DIGEST_TESTS,)),
    # -- inputs.py: files a spec reads are fingerprinted (whole, or by size and sampled blocks)
    Mutant("inputs: large files hashed whole", INPUTS,
           "    if size <= FULL_HASH_LIMIT:\n", "    if True:\n", (LARGE_FILE_TESTS,)),
    Mutant("inputs: size left out of a large file's digest", INPUTS,
           "    digest = hashlib.sha256(str(size).encode())\n", "    digest = hashlib.sha256()\n", SAMPLED_TESTS),
    Mutant("inputs: every block read from the start", INPUTS,
           "            handle.seek(index * step)\n", "            handle.seek(0)\n", SAMPLED_TESTS),
    Mutant("inputs: blocks not hashed", INPUTS,
           "            digest.update(handle.read(BLOCK))\n", "            handle.read(BLOCK)\n", SAMPLED_TESTS),
    Mutant("inputs: one block fewer", INPUTS,
           "        for index in range(SAMPLED_BLOCKS):\n", "        for index in range(SAMPLED_BLOCKS - 1):\n",
           SAMPLED_TESTS),
    Mutant("inputs: files named by the spec ignored", INPUTS,
           "            elif path and os.path.isfile(path):\n", "            elif False:\n",
           (LARGE_FILE_TESTS, EDITED_DATA_TEST)),
    # -- strategy.py: workers that end a stage with different weights stop the run
    Mutant("strategy: divergence not checked", STRATEGY,
           "    if len(set(digests)) > 1:\n", "    if False:\n", (DIVERGED_TEST,)),
    Mutant("strategy: divergence needs three different digests", STRATEGY,
           "    if len(set(digests)) > 1:\n", "    if len(set(digests)) > 2:\n", (DIVERGED_TEST,)),
    Mutant("strategy: each worker compares only itself", STRATEGY,
           "    rows = gather(distribution, words)\n", "    rows = gather(distribution, words)[:1]\n",
           (DIVERGED_TEST,)),
]


def copy_repository(target: str) -> None:
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".tox", "site", "*.egg-info", ".mypy_cache",
                                    ".ruff_cache")
    for name in ("core", "tests", "configs", "plugins"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(target, name), ignore=ignore)
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), target)


def run_tests(copy: str, tests: tuple[str, ...], timeout: float) -> tuple[bool, str, float]:
    """(passed, the tail of pytest's output, seconds) for ``tests`` against the copy's core."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.join(copy, "core"),
                                                                     os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", *tests], cwd=copy,
                                env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"(no answer within {timeout:.0f} s: counted as killed)", time.perf_counter() - started
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-3:])
    return result.returncode == 0, tail, time.perf_counter() - started


def mutate(copy: str, mutant: Mutant) -> str:
    path = os.path.join(copy, mutant.path)
    with open(path, encoding="utf-8") as handle:
        original = handle.read()
    count = original.count(mutant.old)
    if count != 1:
        raise SystemExit(f"mutant '{mutant.name}': its text occurs {count} times in {mutant.path}, not once; "
                         "the module changed: update the mutant")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(original.replace(mutant.old, mutant.new))
    return original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="mutants whose name contains any of these words")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per test run (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the copy of the repository")
    args = parser.parse_args(argv)
    chosen = [mutant for mutant in MUTANTS if not args.only or any(word in mutant.name for word in args.only)]
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name}\n    {mutant.path}: {mutant.old.strip()!r} -> {mutant.new.strip()!r}\n    "
                  + "\n    ".join(mutant.tests))
        return 0
    copy = tempfile.mkdtemp(prefix="graft-mutants-")
    try:
        copy_repository(copy)
        for mutant in chosen:  # every mutant's text is there before anything runs
            mutate(copy, mutant)
            shutil.copy(os.path.join(ROOT, mutant.path), os.path.join(copy, mutant.path))
        baseline = sorted({test for mutant in chosen for test in mutant.tests})
        passed, tail, seconds = run_tests(copy, tuple(baseline), args.timeout)
        print(f"unmutated: {'pass' if passed else 'FAIL'} ({seconds:.0f} s, {len(baseline)} test targets)")
        if not passed:
            print(tail)
            print("the tests must pass on the unmutated code before mutants mean anything")
            return 2
        survivors = []
        for mutant in chosen:
            original = mutate(copy, mutant)
            try:
                passed, tail, seconds = run_tests(copy, mutant.tests, args.timeout)
            finally:
                with open(os.path.join(copy, mutant.path), "w", encoding="utf-8") as handle:
                    handle.write(original)
            print(f"{'SURVIVED' if passed else 'killed  '}  {mutant.name} ({seconds:.0f} s)")
            if passed:
                survivors.append(mutant)
        print(f"\n{len(chosen)} mutants: {len(chosen) - len(survivors)} killed, {len(survivors)} survived")
        for mutant in survivors:
            print(f"  survived: {mutant.name} ({mutant.path}: {mutant.old.strip()!r} -> {mutant.new.strip()!r})")
        return 1 if survivors else 0
    finally:
        if args.keep:
            print(f"copy kept: {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
