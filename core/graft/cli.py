"""The ``graft`` command line. Only ``plan`` and ``run`` import TensorFlow."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

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

    plan = commands.add_parser("plan", help="build the model of every stage and show each layer's plan")
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
    from graft.plan import plan_spec, render_text
    from graft.specfile import load_spec

    registry = Registry.discover()
    plans = plan_spec(load_spec(args.config, registry), registry)
    if args.format == "json":
        print(json.dumps({"stages": [plan.to_json() for plan in plans]}, indent=2))
    else:
        print(render_text(plans), end="")
    return 0


def _run(args) -> int:
    from graft.specfile import load_spec
    from graft.stages import default_out_dir, run_spec

    registry = Registry.discover()
    spec_file = load_spec(args.config, registry)
    run_spec(
        spec_file,
        registry,
        args.out or default_out_dir(args.config),
        restart_from=args.restart_from,
        cache_features=not args.no_feature_cache,
        wait=args.wait,
    )
    return 0


COMMANDS = {"plugins": _plugins, "validate": _validate, "plan": _plan, "run": _run}

if __name__ == "__main__":
    sys.exit(main())
