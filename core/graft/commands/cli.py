"""The ``graft`` command line. Only ``plan``, ``run``, ``evaluate``, ``predict`` and ``export`` import TensorFlow.

Start-up is kept short: the command modules' own imports wait inside their ``run``, the
plugins are listed (``graft.plugins.registry``) and only those a spec names are imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from graft.base.backend import VERBOSE_VARIABLE, check_backend, freeze_heap_after_import
from graft.base.problems import GraftError, printable
from graft.base.signals import exit_code, sigterm_as_interrupt, what
from graft.commands import cache as cache_command
from graft.commands import lrfind as lrfind_command
from graft.commands import new_plugin as new_plugin_command
from graft.commands import new_spec as new_spec_command
from graft.commands import report as report_command
from graft.commands import schema as schema_command
from graft.commands import stage as stage_commands
from graft.commands import sweep as sweep_command
from graft.commands.options import add_set

if TYPE_CHECKING:
    from graft.distribute.cluster import Cluster


def script() -> int:
    """The ``graft`` command (and ``python -m graft``): ``main`` in a process of its own, whose heap as
    TensorFlow's import leaves it is kept out of the garbage collector's way (``freeze_heap_after_import``)."""
    freeze_heap_after_import()
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verbose:
        os.environ[VERBOSE_VARIABLE] = "1"  # before anything imports TensorFlow: its own log lines are then shown
    if args.debug:
        from graft.plugins.registry import DEBUG_VARIABLE

        os.environ[DEBUG_VARIABLE] = "1"  # plugin errors keep their cause for the traceback
    if not args.version and args.command is None:
        parser.error(f"choose a command: {', '.join(COMMANDS)} (graft --help says what each does)")
    try:
        with sigterm_as_interrupt():  # SIGTERM (kill, timeout, Kubernetes, Slurm) ends a command as Ctrl-C does
            if args.command in MODEL_COMMANDS:
                check_backend()  # KERAS_BACKEND=jax is refused before the spec is read, not after a model is built
            return _version() if args.version else COMMANDS[args.command](args)
    except GraftError as exc:
        return _report(exc)
    except KeyboardInterrupt as interrupt:
        print(f"{what(interrupt)}; nothing was trained or written", file=sys.stderr)
        return exit_code(interrupt)
    except BrokenPipeError:  # `graft plan ... | head`
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graft", description="Transfer learning on Keras from a vetted YAML spec.")
    parser.add_argument(
        "--version", action="store_true",
        help="versions of keras-graft, TensorFlow, Keras and the installed plugins (without importing TensorFlow)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback behind an error (for plugin authors); or GRAFT_DEBUG=1",
    )
    parser.add_argument(
        "--verbose", action="store_true", help=f"show TensorFlow's own log lines; or {VERBOSE_VARIABLE}=1"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins = commands.add_parser(
        "plugins", help="list installed plugins: name, what they provide, distribution, status"
    )
    plugins.add_argument("--format", choices=("text", "json"), default="text", help="json: a list of rows, for scripts")

    validate = commands.add_parser("validate", help="check specs without TensorFlow")
    validate.add_argument(
        "configs", nargs="+", metavar="CONFIG", help="every spec is checked; exit 1 if any is invalid"
    )
    add_set(validate, "every CONFIG")

    plan = commands.add_parser(
        "plan", help="build the model of every stage, load and check its data, and show each layer's plan"
    )
    plan.add_argument("config")
    add_set(plan)
    plan.add_argument("--format", choices=("text", "json"), default="text", help="json: every layer, for scripts")
    plan.add_argument(
        "--all", action="store_true",
        help="a row for every layer (by default a stage of more than 30 layers shows runs of layers "
        "with the same fate as one row)",
    )

    run = commands.add_parser("run", help="train the stages of a spec, resuming after the last finished one")
    run.add_argument("config")
    add_set(run)
    run.add_argument("--out", help="run directory (default: runs/<config name>)")
    run.add_argument("--restart-from", metavar="STAGE", help="run STAGE and later again; old results are kept aside")
    run.add_argument(
        "--wait", action="store_true", help="if another graft run uses --out, wait for it instead of stopping"
    )
    run.add_argument(
        "--smoke", action="store_true",
        help="check the spec end to end in seconds: every stage 1 epoch of a few batches, into a throwaway "
        "folder removed afterwards (unless --out)",
    )
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
    workers.add_argument(
        "--worker-index", metavar="N", type=int, help="which of --workers this process is (0: the chief)"
    )

    cache_command.add_parser(commands)
    report_command.add_parser(commands)
    schema_command.add_parser(commands)
    new_plugin_command.add_parser(commands)
    new_spec_command.add_parser(commands)
    stage_commands.add_parser(commands)
    sweep_command.add_parser(commands)
    lrfind_command.add_parser(commands)
    return parser


def _report(exc: GraftError) -> int:
    """Print ``error: ...`` (and, with --debug, the traceback behind it); the exit code."""
    from graft.plugins.registry import debug_enabled

    if debug_enabled() and (exc.__cause__ or exc.__context__):
        import traceback

        traceback.print_exception(exc)
    print(f"error: {printable(str(exc), keep=chr(10) + chr(9))}", file=sys.stderr)  # newlines and tabs kept
    return getattr(exc, "exit_code", 1)


def _version() -> int:
    print("\n".join(version_lines()))
    return 0


def _plugins(args) -> int:
    """The table of installed plugins; exit 1 while a name is claimed by two distributions (no spec can use it)."""
    import json

    from graft.base.table import format_table
    from graft.plugins.registry import Registry, describe

    columns = ("name", "provides", "distribution", "status")
    infos = Registry.discover().infos
    rows = [{key: row[key] for key in columns} for row in describe(infos)]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(format_table([columns, *([row[key] for key in columns] for row in rows)]))
    conflicts = sorted({info.name for info in infos if info.status == "conflict"})
    if conflicts:
        print(f"error: {', '.join(conflicts)}: claimed by more than one distribution; uninstall all but one of each",
              file=sys.stderr)
        return 1
    return 0


def _validate(args) -> int:
    """Every spec is checked, whatever the others' problems: a line for each valid one, the errors of the others."""
    from graft.plugins.registry import Registry
    from graft.spec.layernames import check_layer_names
    from graft.spec.specfile import load_spec

    registry = Registry.discover()
    failed = []
    for config in args.configs:
        try:
            spec_file = load_spec(config, registry, args.overrides or ())
            names = check_layer_names(spec_file, registry)
        except GraftError as exc:
            _report(exc)
            failed.append(config)
            continue
        spec = spec_file.spec
        stages = ", ".join(stage.name for stage in spec.stages)
        count = len(args.overrides or ())
        print(
            f"{printable(config)}: valid{f' with {count} --set' if count else ''} — "
            f"extractor {spec.model.extractor.plugin}, heads {', '.join(spec.model.heads)}, stages {stages}"
        )
        if names.summary():
            print(f"  {names.summary()}")
    if failed and len(args.configs) > 1:
        print(f"{len(failed)} of {len(args.configs)} specs invalid: {printable(', '.join(failed))}", file=sys.stderr)
    return 1 if failed else 0


def _plan(args) -> int:
    import json

    import attrs

    from graft.planning.stagedata import load_and_check_data
    from graft.planning.stageplan import plan_spec
    from graft.planning.view import render_text
    from graft.plugins.registry import Registry
    from graft.spec.specfile import load_spec

    registry = Registry.discover()
    spec_file = load_spec(args.config, registry, args.overrides or ())
    plans = plan_spec(spec_file, registry)
    data = [loaded.summary for loaded in load_and_check_data(spec_file, registry, plans)]
    if args.format == "json":
        stages = [{**plan.to_json(), "data": attrs.asdict(summary)} for plan, summary in zip(plans, data, strict=True)]
        print(json.dumps({"stages": stages}, indent=2))
    else:
        print(render_text(plans, data, compact=not args.all), end="")
    return 0


def _run(args) -> int:
    from graft.plugins.registry import Registry
    from graft.runs.stages import default_out_dir, run_spec
    from graft.spec.specfile import load_spec

    if args.smoke:
        from graft.commands import smoke  # only then: it imports shutil and tempfile
    registry = Registry.discover()
    overrides = [*(args.overrides or ()), *(smoke.overrides() if args.smoke else ())]
    spec_file = load_spec(args.config, registry, overrides)
    if args.smoke:
        if args.local_workers or args.workers or args.worker_index is not None:
            raise GraftError(
                "--smoke runs in this one process: leave out --local-workers, --workers and --worker-index"
            )
        with smoke.smoke_folder(args.out) as out:
            run_spec(spec_file, registry, out, restart_from=args.restart_from, cache_features=False, wait=args.wait,
                     cluster=_cluster(args), max_batches=smoke.BATCHES)
        return 0
    out = args.out or default_out_dir(args.config)
    cluster = _cluster(args)
    if args.local_workers:
        from graft.distribute.launcher import run_local_workers
        from graft.distribute.strategy import check_cluster

        check_cluster(spec_file.spec.distribute, args.local_workers)
        return run_local_workers(worker_arguments(args, out), args.local_workers)
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


def worker_arguments(args, out: str) -> list[str]:
    """What ``graft run --local-workers`` passes on to each worker's ``graft run``."""
    return [args.config, "--out", out, *(["--restart-from", args.restart_from] if args.restart_from else []),
            *(["--wait"] if args.wait else []), *(["--no-feature-cache"] if args.no_feature_cache else []),
            *(f"--set={override.text}" for override in args.overrides or ())]


def _cluster(args) -> Cluster | None:
    """The cluster from --workers/--worker-index, else TF_CONFIG; None for a single process."""
    from graft.distribute.cluster import ClusterError, from_arguments, from_environment

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


TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly")
NO_PLUGINS = "none installed (only the built-ins of keras-graft; graft plugins lists them)"
INSTALL_TENSORFLOW = "pip install 'keras-graft[cpu]' (CPU-only) or 'keras-graft[gpu]' (NVIDIA GPU)"


def version_lines(paths: list[str] | None = None) -> list[str]:
    """keras-graft, TensorFlow, Keras and the plugin distributions, from their metadata: nothing heavy is imported.

    ``paths`` limits the search to those folders (as ``sys.path`` entries).
    """
    import importlib.metadata

    from graft._version import __version__
    from graft.plugins.registry import CORE_DISTRIBUTION, Registry

    where: dict[str, Any] = {"path": paths} if paths is not None else {}

    def installed(*names: str) -> str | None:
        """``name version`` of the first of ``names`` installed."""
        for name in names:
            found = next(iter(importlib.metadata.distributions(name=name, **where)), None)
            if found is not None:
                return f"{name} {found.version}"
        return None

    # enabled=set(): every third-party plugin is listed with its distribution but not loaded
    infos = Registry.discover(paths, enabled=set()).listed
    plugins = sorted({f"{info.distribution} {info.version}".strip() for info in infos
                      if info.distribution.lower().replace("_", "-") != CORE_DISTRIBUTION})
    return [
        f"keras-graft {__version__}",
        installed(*TENSORFLOW_DISTRIBUTIONS)
        or f"tensorflow not installed (graft plan and graft run need it): {INSTALL_TENSORFLOW}",
        installed("keras") or f"keras not installed (it comes with TensorFlow): {INSTALL_TENSORFLOW}",
        f"plugins: {', '.join(plugins) or NO_PLUGINS}",
    ]


MODEL_COMMANDS = ("plan", "run", "evaluate", "predict", "export", "sweep", "lr-find")  # the commands that import Keras
COMMANDS = {"plugins": _plugins, "validate": _validate, "plan": _plan, "run": _run, "cache": cache_command.run,
            "report": report_command.run, "schema": schema_command.run, "new-plugin": new_plugin_command.run,
            "new-spec": new_spec_command.run, "sweep": sweep_command.run, "lr-find": lrfind_command.run,
            **stage_commands.COMMANDS}

if __name__ == "__main__":
    sys.exit(script())
