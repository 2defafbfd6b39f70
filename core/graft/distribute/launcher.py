"""``graft run --local-workers N``: N worker processes on this machine, one cluster over loopback ports.

Each worker is ``python -m graft run ... --workers 127.0.0.1:p0,... --worker-index i``
in a session of its own.  Ctrl-C or SIGTERM to this process is passed on to every
worker as the same signal, and each stops as a single run does (exit 130 or 143); a
worker blocked on a peer may not get to it, so after ``grace`` seconds its process
group gets SIGKILL.  The chief's output is passed through;
other workers' lines are prefixed with ``[worker i]``.  When a worker fails, the
others get ``grace`` seconds to notice and stop by themselves, then are killed:
nothing waits forever.  No TensorFlow in this process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from graft.base.signals import Terminated, exit_code
from graft.distribute.cluster import free_loopback_ports

GRACE_S = 60.0  # a worker whose peer died mid-stage stops by itself within ~10 s (TensorFlow's heartbeats)


def run_local_workers(
    run_arguments: list[str], count: int, log: Callable[[str], None] = print, grace: float = GRACE_S
) -> int:
    """Run ``graft run <run_arguments>`` as ``count`` local workers; their exit code (the first failure's)."""
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_loopback_ports(count))
    log(f"starting {count} local workers on {addresses} (worker 0 is the chief)")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("TF_CONFIG", None)
    workers = []
    for index in range(count):
        command = [sys.executable, "-m", "graft", "run", *run_arguments,
                   "--workers", addresses, "--worker-index", str(index)]
        workers.append(subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment,
            start_new_session=True, text=True, errors="replace",
        ))
    readers = [
        threading.Thread(target=_relay, args=(worker, index), daemon=True) for index, worker in enumerate(workers)
    ]
    for reader in readers:
        reader.start()
    try:
        code = _supervise(workers, grace, log)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (graft.base.signals.Terminated)
        number = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
        for worker in workers:  # the same signal: each worker reports what it kept, as a single run does
            _signal(worker, number)
        _stop_within(workers, grace)
        code = exit_code(interrupt)
    for reader in readers:
        reader.join(timeout=5)
    return code


def _relay(worker: subprocess.Popen, index: int) -> None:
    prefix = "" if index == 0 else f"[worker {index}] "
    assert worker.stdout is not None  # started with stdout=PIPE
    for line in worker.stdout:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def _supervise(workers: list[subprocess.Popen], grace: float, log: Callable[[str], None]) -> int:
    """Wait for every worker; after the first failure, give the rest ``grace`` seconds, then kill them."""
    while True:
        codes = [worker.poll() for worker in workers]
        failed = [(index, code) for index, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            index, code = failed[0]
            running = [worker for worker in workers if worker.poll() is None]
            if running:
                log(f"worker {index} {_ended(code)}; the other workers stop within {grace:.0f} s")
                killed = _stop_within(running, grace)
                if killed:
                    log(f"stopped {killed} worker{'s' if killed > 1 else ''} that did not stop by itself")
            return code if code > 0 else 1
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.2)


def _stop_within(workers: list[subprocess.Popen], grace: float) -> int:
    """Wait up to ``grace`` seconds for ``workers`` to end, then SIGKILL their process groups; how many were killed."""
    deadline = time.monotonic() + grace
    killed = 0
    for worker in workers:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(worker, signal.SIGKILL)
            worker.wait()
            killed += 1
    return killed


def _signal(worker: subprocess.Popen, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(worker.pid, number)


def _ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed ({signal.Signals(-code).name})"
        except ValueError:
            return f"was killed (signal {-code})"
    return f"exited with code {code}"
