"""``graft schema``: the JSON Schema of the spec, for editors (no TensorFlow)."""

from __future__ import annotations

import json
import sys

from graft.base.paths import shown
from graft.base.problems import GraftError


def add_parser(commands) -> None:
    """``graft schema [--output FILE]`` under ``commands``."""
    schema = commands.add_parser(
        "schema", help="print a JSON Schema of the spec, with the params of the installed plugins, for editors"
    )
    schema.add_argument("--output", metavar="FILE", help="write the schema to FILE instead of printing it")


def run(args) -> int:
    from graft.plugins.registry import Registry
    from graft.spec.schema import spec_schema

    text = json.dumps(spec_schema(Registry.discover()), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise GraftError(f"cannot write the schema to {args.output}: {exc.strerror or exc}") from None
    print(f"wrote the spec's JSON Schema to {shown(args.output)}", file=sys.stderr)
    return 0
