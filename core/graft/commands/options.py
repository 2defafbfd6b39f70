"""Options several commands share."""

from __future__ import annotations

import argparse


def add_set(command: argparse.ArgumentParser, target: str = "the spec") -> None:
    """``--set PATH=VALUE`` (repeatable) on ``command``; the overrides land in ``args.overrides``."""
    command.add_argument(
        "--set", action="append", dest="overrides", default=None, type=_override, metavar="PATH=VALUE",
        help=f"change {target} without editing the file: --set stages.transfer.epochs=5 (a list entry by its name or "
        "index, * for every entry: stages.*.epochs=1; VALUE is YAML); +PATH=VALUE adds a key the file does not "
        "have; repeatable, applied in order",
    )


def _override(text: str):
    """``graft.spec.overrides.argument``, imported when a ``--set`` is given."""
    from graft.spec.overrides import argument

    return argument(text)
