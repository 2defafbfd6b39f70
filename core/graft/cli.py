"""The ``graft`` command line. Only ``plan`` and ``run`` import TensorFlow."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from graft.cluster import Cluster
from graft.problems import GraftError
from graft.registry import DEBUG_VARIABLE, Registry, debug_enabled, describe
from graft.table import format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graft", description="Transfer learning on Keras from a vetted YAML spec.")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback behind an error (for plugin authors); or GRAFT_DEBUG=1"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("plugins", help="list installed plugins: name, what they provide, distribution, status")

    validate = commands.add_parser("validate", help="check a spec without TensorFlow")
    validate.add_argument("config")

    plan = commands.add_parser(
        "plan", help="build the model of every stage, load and check its data, and show each layer's plan"
    )
    plan.add_argument("config")
    plan.add_argument("--format", choices=("text", "json"), default="text")

    run = commands.add_parser("run", help="train the stages of a spec, resuming after the last finished one")
    run.add_argument("config")
    run.add_argument("--out", help="run directory (default: runs/<config name>)")
    run.add_argument("--restart-from", metavar="STAGE", help="run STAGE and later again; old results are kept aside")
    run.add_argument("--wait", action="store_true", help="if another graft run uses --out, wait for it instead of stopping")
    run.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="train the whole model even where the extractor is frozen (slower, same result)",
    )
    workers = run.add_argument_group("multi_worker (the spec says distribute: {strategy: multi_worker})")
    workers.add_argument("--local-workers", metavar="N", type=_worker_count,
                         help="start N worker processes on this machine (to try it, and for tests)")
    workers.add_argument("--workers", metavar="HOST:PORT,...",
                         help="every worker's address, the same list on every machine (else TF_CONFIG)")
    workers.add_argument("--worker-index", metavar="N", type=int, help="which of --workers this process is (0: the chief)")

    cache = commands.add_parser("cache", help="the feature cache on disk: list its entries, or clear them")
    cache_commands = cache.add_subparsers(dest="cache_command")
    cache_commands.add_parser("list", help="where the cache is, and its entries (the default)")
    clear = cache_commands.add_parser("clear", help="remove entries, and what runs that died left behind")
    clear.add_argument(
        "--older-than", metavar="DAYS", type=_days, help="only entries last used more than DAYS days ago (e.g. 30, 0.5)"
    )

    args = parser.parse_args(argv)
    if args.debug:
        os.environ[DEBUG_VARIABLE] = "1"  # plugin errors keep their cause for the traceback
    try:
        return COMMANDS[args.command](args)
    except GraftError as exc:
        if debug_enabled() and (exc.__cause__ or exc.__context__):
            traceback.print_exception(exc)
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("interrupted; nothing was trained or written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `graft plan ... | head`
        sys.stderr.close()
        return 0


def _plugins(_args) -> int:
    rows = describe(Registry.discover().infos)
    columns = ("name", "provides", "distribution", "status")
    print(format_table([columns, *([row[key] for key in columns] for row in rows)]))
    return 0


def _validate(args) -> int:
    from graft.specfile import load_spec

    spec = load_spec(args.config, Registry.discover()).spec
    stages = ", ".join(stage.name for stage in spec.stages)
    print(
        f"{args.config}: valid — extractor {spec.model.extractor.plugin}, "
        f"heads {', '.join(spec.model.heads)}, stages {stages}"
    )
    return 0


def _plan(args) -> int:
    import attrs

    from graft.plan import plan_spec
    from graft.planview import render_text
    from graft.specfile import load_spec
    from graft.stagedata import load_and_check_data

    registry = Registry.discover()
    spec_file = load_spec(args.config, registry)
    plans = plan_spec(spec_file, registry)
    data = [loaded.summary for loaded in load_and_check_data(spec_file, registry, plans)]
    if args.format == "json":
        stages = [{**plan.to_json(), "data": attrs.asdict(summary)} for plan, summary in zip(plans, data)]
        print(json.dumps({"stages": stages}, indent=2))
    else:
        print(render_text(plans, data), end="")
    return 0


def _run(args) -> int:
    from graft.distribute import check_cluster
    from graft.specfile import load_spec
    from graft.stages import default_out_dir, run_spec

    registry = Registry.discover()
    spec_file = load_spec(args.config, registry)
    out = args.out or default_out_dir(args.config)
    cluster = _cluster(args)
    if args.local_workers:
        from graft.launcher import run_local_workers

        check_cluster(spec_file.spec.distribute, args.local_workers)
        forwarded = [args.config, "--out", out, *(["--restart-from", args.restart_from] if args.restart_from else []),
                     *(["--wait"] if args.wait else []), *(["--no-feature-cache"] if args.no_feature_cache else [])]
        return run_local_workers(forwarded, args.local_workers)
    run_spec(
        spec_file,
        registry,
        out,
        restart_from=args.restart_from,
        cache_features=not args.no_feature_cache,
        wait=args.wait,
        cluster=cluster,
    )
    return 0


def _cluster(args) -> Cluster | None:
    """The cluster from --workers/--worker-index, else TF_CONFIG; None for a single process."""
    from graft.cluster import ClusterError, from_arguments, from_environment

    if args.local_workers and (args.workers or args.worker_index is not None):
        raise ClusterError("--local-workers starts its own workers: leave out --workers and --worker-index")
    if args.workers:
        return from_arguments(args.workers, args.worker_index)
    if args.worker_index is not None:
        raise ClusterError("--worker-index needs --workers host:port,...: every worker's address")
    return None if args.local_workers else from_environment(os.environ)


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of workers from 1 to 64, got {text!r}")
    return count


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not 0 <= days < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of days, 0 or more (e.g. 30 or 0.5), got {text!r}")
    return days


def _cache(args) -> int:
    from graft.feature_store import FeatureStore, cache_root
    from graft.memory import human_bytes

    store = FeatureStore(cache_root())
    if args.cache_command == "clear":
        result = store.clear(args.older_than)
        leftovers = f" and {result.leftovers_removed} left by runs that died" if result.leftovers_removed else ""
        print(f"removed {_entries(result.entries_removed)}{leftovers} from {store.folder}: {human_bytes(result.bytes_freed)} freed")
        if result.in_use:
            print(f"kept {len(result.in_use)} in use by a running graft run: {', '.join(result.in_use)}")
        return 0
    entries = store.entries()
    print(f"feature cache: {store.folder} (GRAFT_CACHE_DIR chooses another root)")
    if not entries:
        print("no entries")
        return 0
    rows = [("key", "size", "last used", "created", "samples", "description")]
    for entry in entries:
        samples = f"{entry.samples:,}" + (f" + {entry.validation_samples:,} val" if entry.validation_samples else "")
        rows.append((
            entry.key,
            human_bytes(entry.size_bytes),
            _local(entry.last_used),
            _local(entry.created) if entry.created else "?",
            samples,
            f"DAMAGED: {entry.damaged}" if entry.damaged else entry.description,
        ))
    print(format_table(rows))
    print(f"total: {human_bytes(sum(entry.size_bytes for entry in entries))} in {_entries(len(entries))}")
    return 0


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _local(moment) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


COMMANDS = {"plugins": _plugins, "validate": _validate, "plan": _plan, "run": _run, "cache": _cache}

if __name__ == "__main__":
    sys.exit(main())
