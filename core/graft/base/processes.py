"""Whether a process is alive, from its pid (for locks and leftovers of dead runs)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists (ours, or another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True
