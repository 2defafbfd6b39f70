"""``graft new-spec FILE --extractor NAME --data NAME``: a commented starter spec from the installed plugins'
params, checked as ``graft validate`` checks it before it is written.  No TensorFlow."""

from __future__ import annotations

import sys


def add_parser(commands) -> None:
    """``graft new-spec FILE --extractor NAME --data NAME [--head NAME]``."""
    new = commands.add_parser(
        "new-spec",
        help="write a commented starter spec FILE for an installed extractor and data source (every params field "
        "with what it takes); an existing FILE is never replaced",
    )
    new.add_argument("file", metavar="FILE", help="the spec to write (it must not exist)")
    new.add_argument("--extractor", required=True, metavar="NAME", help="an installed extractor (graft plugins)")
    new.add_argument("--data", required=True, metavar="NAME", help="an installed data source (graft plugins)")
    new.add_argument("--head", default="dense", metavar="NAME", help="an installed head plugin (default: dense)")


def run(args) -> int:
    from graft.authoring.starter import write_starter
    from graft.base.paths import shown

    written = write_starter(args.file, args.extractor, args.data, args.head)
    print(f"wrote {shown(written.path)}: extractor {args.extractor}, head {args.head}, data {args.data}")
    for line in written.missing:
        print(f"  the data is not there yet: {line.split(': ', 1)[1]}", file=sys.stderr)
    what = "put the data in place (or change its path), then " if written.missing else ""
    print(f"next: {what}graft validate {shown(written.path)}", file=sys.stderr)
    return 0
