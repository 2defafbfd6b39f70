"""SIGTERM handled like Ctrl-C.

SIGTERM (what ``kill``, ``timeout``, Kubernetes and Slurm send to stop or preempt a
job) ends Python silently by default.  ``sigterm_as_interrupt`` turns it into
``Terminated``, a ``KeyboardInterrupt``, so every place that handles Ctrl-C handles it
too; its exit code is 143 (128 + 15), what a shell shows for a process SIGTERM ended.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TERMINATED_EXIT = 128 + signal.SIGTERM  # 143: what a shell reports for a process SIGTERM ended
INTERRUPTED_EXIT = 128 + signal.SIGINT  # 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C raises ``KeyboardInterrupt``."""


def exit_code(interrupt: BaseException) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return TERMINATED_EXIT if isinstance(interrupt, Terminated) else INTERRUPTED_EXIT


def what(interrupt: BaseException) -> str:
    """``terminated (SIGTERM)`` or ``interrupted``, to begin a message with."""
    return "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"


def raise_terminated(signum, frame):
    """The SIGTERM handler ``sigterm_as_interrupt`` installs."""
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``) in the main thread.

    Does nothing outside the main thread, or where SIGTERM has a handler other than
    the default (a caller's own, or ignored).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
