"""TensorFlow's import-time banner lines, held back from file descriptor 2 (``graft.base.backend.import_keras``).

C++ code writes them straight to fd 2, so Python's ``sys.stderr`` cannot catch
them: fd 2 itself is pointed at a pipe for the duration of the import.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence

# What TensorFlow's C++ code writes straight to file descriptor 2 when it is imported,
# on some builds whatever TF_CPP_MIN_LOG_LEVEL says: notes about the build, not about
# the run.  Each is a regular expression searched in one line, which may start with a
# log prefix ("2024-01-02 03:04:05.678: I tensorflow/...] " or "I0000 00:00:... x.cc:12] ").
# import_keras hides these lines and shows every other one; GRAFT_VERBOSE=1 shows all.
TENSORFLOW_BANNERS = (
    # absl's note before its first log line (TF 2.16+)
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    # cpu_feature_guard: the CPU instructions this build leaves unused, in two lines
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags",
    # oneDNN is on; it stays on (TF_ENABLE_ONEDNN_OPTS=0 would change the numbers), unsaid
    r"oneDNN custom operations are on\.",
    # GPU builds register their CUDA plugins twice
    r"Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin",
    r"computation placer already registered\. Please check linkage",
    # GPU builds where TensorRT is not installed
    r"TF-TRT Warning: Could not find TensorRT",
    # TF 2.21 tunes malloc
    r"Memory patch applied: M_TRIM_THRESHOLD=",
)

# The program of the process that holds what is written to fd 2 inside
# fd2_lines_hidden.  Being another process, it outlives an import that kills ours
# (a LOG(FATAL) such as "compiled to use AVX instructions ... aren't available",
# then abort()): what was written is shown then, all of it.  Its input ends with
# argv[1] then F (hide the lines matching argv[2:]) or A (show all); without that
# mark (the importing process died) it shows all.
_HOLDER = """
import os, re, sys
mark, patterns = sys.argv[1].encode(), [re.compile(p.encode()) for p in sys.argv[2:]]
data = b""
while mark + b"F" not in data and mark + b"A" not in data:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    data += chunk
held, found, rest = data.partition(mark)
lines = held.splitlines(keepends=True)
if rest[:1] == b"F":
    lines = [line for line in lines if not any(pattern.search(line) for pattern in patterns)]
try:
    sys.stdout.buffer.write(b"".join(lines) + rest[1:])
    sys.stdout.buffer.flush()
except BrokenPipeError:
    pass
"""


@contextlib.contextmanager
def fd2_lines_hidden(patterns: Sequence[str]) -> Iterator[None]:
    """Hide the lines written to file descriptor 2 in the block that match a pattern; show the others after it.

    C++ code writes to fd 2 directly, so fd 2 itself is pointed at a pipe that another
    process reads.  When the block ends, fd 2 is restored and the held lines that match
    none of ``patterns`` (regular expressions, searched) are written to it, before the
    block's caller goes on.  If the block raises, or the process dies in it, every held
    line is shown.  Without a usable fd 2, or where no such process can be started
    (not POSIX, a frozen executable), nothing is hidden.
    """
    import subprocess  # here: the commands that import no TensorFlow do not pay for it

    holder = _start_holder(patterns)
    if holder is None:
        yield
        return
    process, write_end, saved, mark = holder
    how = b"A"
    try:
        _flush_stderr()
        os.dup2(write_end, 2)
        try:
            yield
            how = b"F"
        finally:
            _flush_stderr()  # Python's own writes in the block join the held lines
            os.dup2(saved, 2)
    finally:
        os.close(saved)
        with contextlib.suppress(OSError):  # the holder is gone: nothing to show
            os.write(write_end, mark + how)  # shorter than PIPE_BUF: all at once
        os.close(write_end)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_holder(patterns: Sequence[str]):
    """The holder process, the pipe's write end, a copy of fd 2 and the end mark; None when fd 2 stays as is."""
    if os.name != "posix" or not sys.executable or getattr(sys, "frozen", False):
        return None
    try:
        os.fstat(2)
    except OSError:
        return None  # fd 2 is closed: nothing is shown anyway, and a new pipe could take its number
    import subprocess

    mark = f"<graft: end of held lines {os.urandom(8).hex()}>"
    read_end, write_end = os.pipe()
    saved = None
    try:
        saved = os.dup(2)
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _HOLDER, mark, *patterns],
            stdin=read_end,
            stdout=saved,
            stderr=saved,
            start_new_session=True,  # Ctrl-C in a terminal interrupts the import, not the holder
        )
    except (OSError, subprocess.SubprocessError):
        for fd in (write_end, saved):
            if fd is not None:
                os.close(fd)
        return None
    finally:
        os.close(read_end)
    return process, write_end, saved, mark.encode()


def _flush_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()
