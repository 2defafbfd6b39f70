"""Fuzz ``graft validate`` and ``graft plan`` with mutated specs, in worker processes.

    python benchmarks/fuzz_specs.py --validate 10000 --set 2000 --plan 300 --seed 1 --jobs 2

Every case is a spec from ``configs/`` mutated by ``tests/fuzzing.py`` (keys deleted
or added, types swapped, edge numbers and strings, tags, aliases and alias bombs,
deep nesting, byte edits), run through ``graft.commands.cli.main`` in-process in a worker
under a time limit and an address-space cap. A case fails if an exception escapes,
the return code is not 0 or 1, it hangs or blows memory, the ``error:`` output has
a line that is not ``path (line N): message``, or a message reads like raw Python.
Failures are deduplicated by (exception type, innermost frame in graft or a
plugin) -- or the message template -- and each is shown with one minimised
reproducing spec. Exit status 1 if anything failed.

Every validate case is also checked against ``graft schema`` (with ``jsonschema``, if
installed): no spec may be accepted by one and refused by the other, except for what
a schema cannot know (``fuzzing.SCHEMA_CANNOT_KNOW``: files on disk, earlier stages'
names, ...). Disagreements are counted and shown like failures.

``set`` cases give an unchanged spec from ``configs/`` one to four ``--set PATH=VALUE``
arguments (well-typed changes, paths written every way ``--set`` reads them, wildcards,
``+`` additions, malformed paths and values, YAML bombs), run as ``graft validate SPEC
--set=...``. An override argparse cannot read may end as argparse's usage errors do
(exit 2, one ``error: argument --set: ...`` line); anything else is judged as above.

``plan`` cases run on small GRU/Conv1D specs in a worker that imports TensorFlow
once. A worker that dies (a crash, or a hang the alarm cannot interrupt, caught by
faulthandler's watchdog) is a finding too; a fresh worker goes on after that case.
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import json
import multiprocessing
import os
import pathlib
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import fuzzing  # noqa: E402  (tests/fuzzing.py: the mutation engine and oracle)

GiB = 2**30


def case_for(command: str, seed: int, worker: int, index: int, seeds, accepted, big_share: float = 0.1):
    """The case number ``index`` of ``worker``.

    A third of the cases start from a spec an earlier case of this worker got accepted
    (``accepted``, a pool of at most ``POOL`` seeds), so that mutations pile up past
    validation; the rest start from ``configs/``. Deterministic for a worker that runs
    from its first case; a worker restarted after a crash starts with an empty pool.
    """
    rng = random.Random(f"{seed}:{command}:{worker}:{index}")
    start = seeds + accepted if accepted and rng.random() < 0.33 else seeds
    if command == "plan":
        return fuzzing.make_plan_case(rng, start)
    if command == "set":
        return fuzzing.make_set_case(rng, seeds)
    return fuzzing.make_case(rng, start, big=rng.random() < big_share)


POOL = 200


def remember(accepted: list, case, rng) -> None:
    """Keep an accepted case as a seed for later mutations (a random one leaves when the pool is full)."""
    import yaml

    try:
        data = yaml.safe_load(case.text)
    except Exception:  # noqa: BLE001 - accepted by graft but not plain YAML to PyYAML's safe_load: skip it
        return
    seed = fuzzing.Seed(f"{case.seed}+", case.text, data)
    if len(accepted) < POOL:
        accepted.append(seed)
    else:
        accepted[rng.randrange(POOL)] = seed


def worker_main(command: str, seed: int, worker: int, start: int, stop: int, folder: str, log: str,
                seconds: float, memory: int) -> None:
    """Run cases ``start..stop`` and append one JSON line per case to ``log``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if command == "plan":
        import keras  # noqa: F401  (import TensorFlow once, before the address-space cap)

        seeds = fuzzing.tiny_seeds()
    else:
        seeds = fuzzing.load_seeds()
    from graft.commands import cli  # noqa: F401

    case_dir = os.path.join(folder, f"{command}-{worker}")
    os.makedirs(case_dir, exist_ok=True)
    current = os.path.join(folder, f"{command}-{worker}.current")
    watchdog = open(os.path.join(folder, f"{command}-{worker}.watchdog"), "a")  # noqa: SIM115 - faulthandler's, for life
    seen: set = set()
    agreement_seen: set = set()
    try:
        import jsonschema  # noqa: F401
        compare = command == "validate"
    except ImportError:
        compare = False
    accepted: list = []
    pool_rng = random.Random(f"{seed}:{command}:{worker}:pool")
    with open(log, "a", encoding="utf-8") as out:
        for index in range(start, stop):
            case = case_for(command, seed, worker, index, seeds, accepted)
            with open(current, "w", encoding="utf-8") as handle:
                json.dump({"index": index, "describe": case.describe(), "text": case.text}, handle)
            path = fuzzing.write_case(case_dir, case.text)
            if os.environ.get("GRAFT_FUZZ_SELFTEST_CRASH") == f"{command}:{index}":  # checks the restart logic
                os._exit(3)
            # a hang the CPU-time alarm cannot catch (blocked, or C code holding the GIL) ends the worker;
            # the parent reports it as a hang
            faulthandler.dump_traceback_later(seconds * 3 + 30, exit=True, file=watchdog)
            how = "plan-json" if command == "plan" and index % 4 == 3 else command  # every 4th plan as JSON
            if command == "set":
                outcome = fuzzing.check_set(path, case.overrides, seconds=seconds, memory=memory, clock="cpu")
            else:
                outcome = fuzzing.check_file(path, how, seconds=seconds, memory=memory, clock="cpu")
            faulthandler.cancel_dump_traceback_later()
            record = {"index": index, "status": outcome.status, "seconds": round(outcome.seconds, 3)}
            if outcome.status == "accepted" and command != "set":
                remember(accepted, case, pool_rng)
            if compare and outcome.ok:
                agreement = fuzzing.schema_agreement(path)
                record["schema"] = "n/a" if not agreement.comparable else "agree" if agreement.agrees else "disagree"
                if not agreement.agrees:
                    said = agreement.describe()
                    signature = fuzzing.normalise(said.split("\n")[1] if "\n" in said else said)
                    record["schema_signature"] = signature
                    if signature not in agreement_seen:
                        agreement_seen.add(signature)
                        record.update(schema_detail=said, text=case.text, describe=case.describe())
            if not outcome.ok:
                signature = json.dumps(outcome.signature)
                record.update(kind=outcome.kind, signature=signature)
                if signature not in seen:
                    seen.add(signature)
                    minimal = minimise(case.text, case_dir, command, outcome, seconds, memory)
                    record.update(describe=case.describe(), text=case.text, minimal=minimal,
                                  detail=outcome.detail, output=outcome.output[-2000:])
            out.write(json.dumps(record) + "\n")
            out.flush()
    os.remove(current)


def minimise(text, case_dir, command, outcome, seconds, memory) -> str:
    if command in ("plan", "set") or outcome.kind in ("timeout", "memory"):
        return text  # too slow to shrink here; the mutation description says what was done

    def still_fails(candidate: str) -> bool:
        path = fuzzing.write_case(case_dir, candidate, "shrink.yaml")
        return (
            fuzzing.check_file(path, command, seconds=seconds, memory=memory, clock="cpu").signature
            == outcome.signature
        )

    return fuzzing.minimise(text, still_fails)


def run_command(command: str, total: int, jobs: int, seed: int, folder: str, seconds: float, memory: int):
    """Split ``total`` cases over ``jobs`` workers, restart any that die; return the records."""
    context = multiprocessing.get_context("spawn")
    share = [total // jobs + (1 if w < total % jobs else 0) for w in range(jobs)]
    records, crashes = [], []
    pending = {w: 0 for w in range(jobs) if share[w]}
    while pending:
        procs = {}
        for w, start in pending.items():
            log = os.path.join(folder, f"{command}-{w}.jsonl")
            proc = context.Process(target=worker_main,
                                   args=(command, seed, w, start, share[w], folder, log, seconds, memory))
            proc.start()
            procs[w] = proc
        pending = {}
        for w, proc in procs.items():
            proc.join()
            if proc.exitcode != 0:
                current = os.path.join(folder, f"{command}-{w}.current")
                try:
                    with open(current, encoding="utf-8") as handle:
                        info = json.load(handle)
                except (OSError, ValueError):
                    info = {"index": share[w] - 1, "describe": "?", "text": ""}
                watchdog = os.path.join(folder, f"{command}-{w}.watchdog")
                tail = pathlib.Path(watchdog).read_text()[-3000:] if os.path.exists(watchdog) else ""
                kind = "hang" if "Timeout" in tail else "crash"
                crashes.append({"index": info["index"], "status": "failure", "kind": kind,
                                "signature": json.dumps([f"worker {kind}", f"exit code {proc.exitcode}"]),
                                "describe": info["describe"], "text": info["text"], "minimal": info["text"],
                                "detail": f"the worker died (exit code {proc.exitcode}) on this case\n{tail}",
                                "output": ""})
                if info["index"] + 1 < share[w]:
                    pending[w] = info["index"] + 1
    for w in range(jobs):
        log = os.path.join(folder, f"{command}-{w}.jsonl")
        if os.path.exists(log):
            with open(log, encoding="utf-8") as handle:
                records += [json.loads(line) for line in handle if line.strip()]
    return records + crashes


def visible(line: str) -> str:
    """``line`` with control, format and undecodable characters as Python escapes."""
    return "".join(ch if ch.isprintable() or ch == "\t" else repr(ch)[1:-1] for ch in line)


def summarise(command: str, records: list[dict], elapsed: float) -> int:
    counts = collections.Counter(record["status"] for record in records)
    label = "validate --set" if command == "set" else command
    print(f"\n== graft {label}: {len(records)} cases in {elapsed:.0f} s — "
          f"{counts['accepted']} accepted, {counts['rejected']} rejected with a path, {counts['failure']} failed")
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for record in records:
        if record["status"] == "failure":
            groups[record["signature"]].append(record)
    by_kind = collections.Counter(group[0]["kind"] for group in groups.values())
    if groups:
        print("   distinct failures by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())))
    for number, (signature, group) in enumerate(sorted(groups.items(), key=lambda item: -len(item[1])), start=1):
        first = next(record for record in group if "text" in record)
        print(f"\n-- {command} finding {number}: {first['kind']} {' | '.join(map(str, json.loads(signature)))}"
              f" ({len(group)} cases)")
        print(f"   mutation: {first['describe'][:400]}")
        print("   detail:   " + first["detail"].strip().replace("\n", "\n             ")[:1500])
        if first["output"].strip():
            print("   output:   " + first["output"].strip().replace("\n", "\n             ")[:600])
        minimal = first.get("minimal") or first["text"]
        shown = minimal if len(minimal) < 1500 else minimal[:1500] + f"\n... ({len(minimal)} characters)"
        print("   minimal spec (non-printable characters escaped):\n"
              + "\n".join("     | " + visible(line) for line in shown.split("\n")))
    compared = [record for record in records if record.get("schema") in ("agree", "disagree")]
    if compared:
        disagreeing = [record for record in compared if record["schema"] == "disagree"]
        print(f"\n== graft schema vs graft {command}: {len(compared)} specs compared "
              f"({sum(record.get('schema') == 'n/a' for record in records)} not YAML data), "
              f"{len(disagreeing)} disagreements")
        shown = [record for record in disagreeing if "schema_detail" in record]
        for number, record in enumerate(shown, start=1):
            count = sum(other["schema_signature"] == record["schema_signature"] for other in disagreeing)
            print(f"\n-- disagreement {number} ({count} cases): {record['schema_detail'][:1200]}")
            print(f"   mutation: {record['describe'][:400]}")
            print("   spec:\n" + "\n".join("     | " + visible(line) for line in record["text"][:1500].split("\n")))
        return counts["failure"] + len(disagreeing)
    return counts["failure"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validate", type=int, default=10000, metavar="N", help="validate cases (default 10000)")
    parser.add_argument("--set", type=int, default=2000, metavar="N", dest="overrides",
                        help="validate cases with --set overrides (default 2000)")
    parser.add_argument("--plan", type=int, default=300, metavar="N", help="plan cases (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for validate cases (plan uses one)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="CPU seconds per validate case (plan: 6x); "
                             "a case still running after 3x that wall time + 30 s is a hang")
    parser.add_argument("--memory", type=float, default=2.0, help="GiB a case may map beyond the worker's start")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (cases and logs)")
    args = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="graft-fuzz-")
    fuzzing.prepare_workdir(folder)
    failed = 0
    try:
        for command, total, jobs, seconds in (("validate", args.validate, args.jobs, args.timeout),
                                              ("set", args.overrides, args.jobs, args.timeout),
                                              ("plan", args.plan, 1, args.timeout * 6)):
            if total <= 0:
                continue
            for w in range(jobs):  # each worker's cases live in their own folder, beside a copy of the data files
                target = os.path.join(folder, f"{command}-{w}")
                os.makedirs(target, exist_ok=True)
                if not os.path.exists(os.path.join(target, "data")):
                    shutil.copytree(os.path.join(folder, "data"), os.path.join(target, "data"))
            start = time.perf_counter()
            memory = int(args.memory * GiB * (2 if command == "plan" else 1))
            records = run_command(command, total, jobs, args.seed, folder, seconds, memory)
            failed += summarise(command, records, time.perf_counter() - start)
    finally:
        if args.keep:
            print(f"\nwork folder: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{'FAILED' if failed else 'OK'}: {failed} failing cases")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
