"""``graft cache``: the frozen-extractor feature cache on disk, listed or cleared (no TensorFlow)."""

from __future__ import annotations

import argparse

from graft.base.table import format_table


def add_parser(commands) -> None:
    """``graft cache [list]`` and ``graft cache clear [--older-than DAYS]`` under ``commands``."""
    cache = commands.add_parser("cache", help="the feature cache on disk: list its entries, or clear them")
    cache_commands = cache.add_subparsers(dest="cache_command")
    cache_commands.add_parser("list", help="where the cache is, and its entries (the default)")
    clear = cache_commands.add_parser("clear", help="remove entries, and what runs that died left behind")
    clear.add_argument(
        "--older-than", metavar="DAYS", type=_days, help="only entries last used more than DAYS days ago (e.g. 30, 0.5)"
    )


def run(args) -> int:
    from graft.base.memory import human_bytes
    from graft.features.store import FeatureStore, cache_root

    store = FeatureStore(cache_root())
    if args.cache_command == "clear":
        result = store.clear(args.older_than)
        leftovers = f" and {result.leftovers_removed} left by runs that died" if result.leftovers_removed else ""
        print(
            f"removed {_entries(result.entries_removed)}{leftovers} from {store.folder}: "
            f"{human_bytes(result.bytes_freed)} freed"
        )
        if result.in_use:
            print(f"kept {len(result.in_use)} in use by a running graft run: {', '.join(result.in_use)}")
        return 0
    entries, unfinished = store.entries(), store.leftovers()
    print(f"feature cache: {store.folder} (GRAFT_CACHE_DIR chooses another root)")
    if not entries and not unfinished:
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
            _state(entry),
        ))
    for leftover in unfinished:
        rows.append((leftover.name, human_bytes(leftover.size_bytes), "", "", "", _leftover_state(leftover)))
    print(format_table(rows))
    total = sum(entry.size_bytes for entry in entries) + sum(leftover.size_bytes for leftover in unfinished)
    dead = sum(not leftover.alive for leftover in unfinished)
    more = f" and {len(unfinished)} unfinished folder{'s' * (len(unfinished) != 1)}" if unfinished else ""
    print(f"total: {human_bytes(total)} in {_entries(len(entries))}{more}")
    if dead:
        print(f"{dead} left by runs that died: graft cache clear removes {'it' if dead == 1 else 'them'}")
    return 0


def _state(entry) -> str:
    if entry.damaged is None:
        return entry.description
    return f"{'STALE' if entry.stale else 'DAMAGED'}: {entry.damaged} (graft cache clear removes it)"


def _leftover_state(leftover) -> str:
    doing = "writing" if leftover.kind == "partial" else "removing"
    if leftover.alive:
        return f"process {leftover.pid} is {doing} it"
    return f"LEFT BY A RUN THAT DIED while {doing} an entry (process {leftover.pid})"


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not 0 <= days < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of days, 0 or more (e.g. 30 or 0.5), got {text!r}")
    return days


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _local(moment) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
