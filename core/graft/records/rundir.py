"""The run directory: one run at a time, nothing on disk trusted, every stage published whole.

``<out>/<stage>/`` appears only when the stage has finished: it is written as
``<stage>.partial``, every file flushed to disk, and renamed into place.  The
stage's ``report.json`` records a digest of every other file it published; a
finished stage is reused (resumed over, or loaded from by a later stage) only
while its report parses and its files match those digests.  Folders in a stage
folder are logs for people (TensorBoard's): published and flushed with it but
neither digested nor checked, since keras-graft never reads them back; pruning
or deleting them must not cost a stage its trust and force it to train again.
Nothing is deleted that keras-graft did not make: old or foreign folders are
moved aside to ``<stage>.replaced-<time>``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import attrs

from graft.base.files import fsync_path, sha256_of, write_json
from graft.base.paths import shown
from graft.base.problems import GraftError
from graft.records.report import StageReport

REPORT = "report.json"
LOCK = ".graft.lock"
PARTIAL = ".partial"
ASIDE_SUFFIX_LENGTH = len(".replaced-20260101T000000-99")


class RunError(GraftError):
    """A run that cannot start, or a run directory that cannot be trusted."""


class RunDirLocked(RunError):
    """Another ``graft run`` holds the run directory."""


class RunDir:
    """One run directory; ``locked()`` must be held while stages are published."""

    def __init__(self, path: str) -> None:
        self.path = path

    def stage_path(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- before anything is written --------------------------------------------------

    def check_writable(self, stage_names: list[str]) -> None:
        """Everything about ``--out`` that can be known without writing: it is (or can become) a folder
        whose file system takes every stage folder's name."""
        existing = self.path
        while not os.path.lexists(existing or "."):
            existing = os.path.dirname(existing)
        existing = existing or "."
        if not os.path.isdir(existing):
            what = "--out" if existing == self.path else f"{shown(existing)}, a parent of --out,"
            raise RunError(f"{what} is a file, not a folder: {shown(existing)}; choose another --out")
        try:
            limit = os.pathconf(existing, "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        for name in stage_names:
            if len(name.encode()) + ASIDE_SUFFIX_LENGTH > limit:
                raise RunError(
                    f"stage name '{name[:40]}...' is too long for the file system of {shown(existing)}: "
                    f"its folders '<name>.partial' and '<name>.replaced-<time>' need at most "
                    f"{limit - ASIDE_SUFFIX_LENGTH} bytes for the name; shorten it"
                )

    # -- one run at a time -------------------------------------------------------------

    @contextmanager
    def locked(self, wait: bool = False) -> Iterator[None]:
        """Create the folder, hold its lock, prove it takes files; release on exit.

        The lock is an ``flock`` on ``<out>/.graft.lock``: the kernel drops it when
        its process dies, so a crashed run never leaves a stale lock behind.
        """
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create the run directory {shown(self.path)}: {_reason(exc)}") from None
        handle = self._acquire(wait)
        try:
            self._probe()
            yield
        finally:
            os.unlink(os.path.join(self.path, LOCK))  # still ours: unlinked before it is released
            handle.close()

    def _acquire(self, wait: bool):
        path = os.path.join(self.path, LOCK)
        while True:
            try:
                handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for its lock
            except OSError as exc:
                raise RunError(
                    f"cannot write in the run directory {shown(self.path)}: {_reason(exc)}"
                ) from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise RunDirLocked(
                    f"{shown(self.path)} is in use by {holder}; wait for it to finish "
                    "(graft run --wait waits for it) or choose another --out"
                ) from None
            try:
                same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its holder unlinked while we waited for it
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        handle.write(f"graft run (pid {os.getpid()} on {platform.node()}, started {started})")
        handle.flush()
        return handle

    def _probe(self) -> None:
        probe = os.path.join(self.path, f".graft-probe-{os.getpid()}")
        try:
            with open(probe, "wb") as handle:
                handle.write(b"keras-graft checks that it can write here before training")
                handle.flush()
                os.fsync(handle.fileno())
            os.remove(probe)
        except OSError as exc:
            raise RunError(f"cannot write in the run directory {shown(self.path)}: {_reason(exc)}") from None

    # -- finished stages -----------------------------------------------------------------

    def is_finished(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.path, name, REPORT))

    def read_report(self, name: str) -> StageReport:
        """The finished stage's report, its files checked against their digests."""
        folder = self.stage_path(name)
        path = os.path.join(folder, REPORT)
        try:
            with open(path, encoding="utf-8") as handle:
                report = StageReport.from_json(json.load(handle))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise self._damaged(name, f"{path} cannot be read as a stage report ({exc})") from None
        if report.stage != name:
            raise self._damaged(name, f"{path} is the report of stage '{report.stage}', not of '{name}'")
        for file, expected in report.files.items():
            full = os.path.join(folder, file)
            if not os.path.isfile(full):
                raise self._damaged(name, f"{full} is missing")
            if sha256_of(full) != expected:
                raise self._damaged(name, f"{full} is not the file this stage wrote (its digest differs)")
        return report

    def _damaged(self, name: str, why: str) -> RunError:
        return RunError(
            f"the finished stage '{name}' cannot be trusted: {why}. Nothing was changed; run it again with "
            f"--restart-from {name} (its folder is kept aside), or choose another --out"
        )

    # -- writing ---------------------------------------------------------------------------

    def set_aside(self, name: str) -> None:
        """Move ``<out>/<name>`` (a folder, a file or a link) out of the way instead of deleting it."""
        path = self.stage_path(name)
        if os.path.lexists(path):
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
            target, count = f"{path}.replaced-{stamp}", 1
            while os.path.lexists(target):  # set aside twice within a second
                count += 1
                target = f"{path}.replaced-{stamp}-{count}"
            os.replace(path, target)

    def publish(self, name: str, write: Callable[[str], None], report: StageReport) -> StageReport:
        """Write a stage into ``<name>.partial`` with ``write(folder)``, record the digest of every file,
        flush everything to disk and rename the folder into place: all or nothing.  Returns the
        report as published (with ``files``)."""
        partial = self.stage_path(name + PARTIAL)
        if os.path.isdir(partial) and not os.path.islink(partial):
            import shutil  # here: re-running a finished run publishes nothing

            shutil.rmtree(partial)  # a stage that died while being written: keras-graft's own leftovers
        else:
            self.set_aside(name + PARTIAL)  # a file or a link of that name is not ours to delete
        os.makedirs(partial)
        write(partial)
        files = {}
        for file in sorted(os.listdir(partial)):
            path = os.path.join(partial, file)
            if os.path.isdir(path):  # a log folder (tensorboard/): flushed, deliberately not digested
                _fsync_tree(path)
                continue
            fsync_path(path)
            files[file] = sha256_of(path)
        report = attrs.evolve(report, files=files)
        write_json(os.path.join(partial, REPORT), report.to_json())
        fsync_path(partial)
        self.set_aside(name)  # an unfinished stage folder (no report.json) someone left: kept, not merged
        os.replace(partial, self.stage_path(name))
        fsync_path(self.path)
        return report


def _fsync_tree(folder: str) -> None:
    for root, _folders, files in os.walk(folder, topdown=False):
        for file in files:
            fsync_path(os.path.join(root, file))
        fsync_path(root)


def _reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason += " (choose a writable --out)"
    return reason

