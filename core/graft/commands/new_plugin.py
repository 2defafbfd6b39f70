"""``graft new-plugin NAME --kind KIND``: write a plugin distribution that installs and passes its tests.

No TensorFlow.
"""

from __future__ import annotations

import os
import sys

# graft.authoring.scaffold.KINDS and LICENSES, without importing the scaffold at every start of graft
KINDS = ("extractor", "head", "policy", "data")
LICENSES = ("none", "MIT")


def add_parser(commands) -> None:
    """``graft new-plugin NAME --kind extractor|head|policy|data [--output DIR] [--license none|MIT]``."""
    new = commands.add_parser(
        "new-plugin",
        help="write a new plugin distribution graft-NAME/ (pyproject, module, tests with the conformance check)",
    )
    new.add_argument("name", metavar="NAME", help="the name specs use (plugin: NAME): lowercase letters, digits and _")
    new.add_argument("--kind", required=True, choices=tuple(KINDS), help="which hook the plugin implements")
    new.add_argument("--output", metavar="DIR", default=".", help="folder to write graft-NAME/ into (default: here)")
    new.add_argument("--license", choices=LICENSES, default="none", help="MIT writes a LICENSE (default: none yet)")
    new.add_argument("--author", help="the copyright holder in the MIT LICENSE (default: the graft-NAME authors)")


def run(args) -> int:
    from graft.authoring.scaffold import write_plugin

    written = write_plugin(args.name, args.kind, args.output, args.license, args.author)
    folder = os.path.relpath(written.folder)
    folder = written.folder if folder.startswith("..") else folder
    print(f"wrote {folder}/ ({len(written.files)} files): {args.kind} plugin '{written.name}'")
    for relative in written.files:
        print(f"  {relative}")
    print(f"next: pip install -e '{folder}[test]' && pytest {folder}", file=sys.stderr)
    return 0
