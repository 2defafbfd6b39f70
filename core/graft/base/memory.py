"""Estimate what a model or a data set will allocate, and refuse it before allocating it.

Plugins call ``check_allocation`` with a count they can compute from their params
(weights of a layer, values of a generated array), so that a spec asking for more
than the machine has is reported at its YAML path instead of dying in the allocator.
"""

from __future__ import annotations

import os

from graft.base.problems import Path, SpecProblem

SHARE = 0.5  # one allocation may take at most this share of the memory available now


def available_bytes() -> int:
    """Memory available to this process now: ``MemAvailable`` where Linux tells it, else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux or macOS
        return 2**63 - 1


def human_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def check_allocation(values: int, what: str, path: Path = (), itemsize: int = 4) -> None:
    """Raise ``SpecProblem`` at ``path`` if ``values`` numbers of ``itemsize`` bytes would not fit.

    ``what`` names the thing in the message: ``"layer 'gru_1' (units 1000000)"``.
    """
    needed = int(values) * itemsize
    available = available_bytes()
    if needed > available * SHARE:
        raise SpecProblem(
            path,
            f"{what} would allocate {human_bytes(needed)} ({int(values):,} values) but only "
            f"{human_bytes(available)} of memory is available; make it smaller",
        )
