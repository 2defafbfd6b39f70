"""The sweep folder: the stages trained once, one run folder per trial, the study, the best trial marked.

    <out>/study.db          the Optuna study (SQLite), unless --storage names another
    <out>/shared/           a run folder: the stages before the swept one, trained once
    <out>/trials/0007/      a run folder per trial: the shared stages (hard links) and the swept stage
    <out>/best -> trials/0007, <out>/best.json   the best finished trial so far
    <out>/report.md         the table of trials and the plots of the metric against each parameter

Every trial folder is a run folder like any other: ``graft evaluate <out>/best --stage NAME``,
``graft run SPEC --set ... --out <out>/best`` goes on with the later stages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator

import attrs

from graft.base.files import fsync_path, write_json
from graft.records.rundir import PARTIAL, RunDir
from graft.tuning.space import SweepError

STUDY_FILE = "study.db"
SHARED = "shared"
TRIALS = "trials"
BEST = "best"
BEST_FILE = "best.json"
CLAIM_LOCK = ".sweep.lock"


@attrs.frozen
class BestTrial:
    """The best finished trial: its number, folder (relative to the sweep folder), value, and the ``--set`` lines
    that make the spec its spec (the sweep's own, then the trial's values)."""

    number: int
    folder: str
    value: float
    metric: str
    overrides: list[str]


@attrs.frozen
class SweepDir:
    """One sweep's folder."""

    path: str

    @property
    def shared(self) -> RunDir:
        return RunDir(os.path.join(self.path, SHARED))

    def trial_folder(self, number: int) -> str:
        """``trials/0007``, relative to the sweep folder."""
        return os.path.join(TRIALS, f"{number:04d}")

    def trial(self, number: int) -> RunDir:
        return RunDir(os.path.join(self.path, self.trial_folder(number)))

    def default_storage(self) -> str:
        return f"sqlite:///{os.path.abspath(os.path.join(self.path, STUDY_FILE))}"

    def create(self) -> None:
        try:
            os.makedirs(os.path.join(self.path, TRIALS), exist_ok=True)
        except OSError as exc:
            raise SweepError(f"cannot create the sweep folder {os.path.abspath(self.path)}: "
                             f"{exc.strerror or exc}; choose another --out") from None

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """Held while a worker counts the trials and asks for the next one, so workers on this machine never
        start more trials than the space asks for."""
        with open(os.path.join(self.path, CLAIM_LOCK), "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def link_shared(self, trial: RunDir, names: list[str]) -> None:
        """Put the finished shared stages into a trial's folder as hard links (copies where links are refused),
        each whole by rename; the trial's run proves them by their digests before it trains on them."""
        os.makedirs(trial.path, exist_ok=True)
        for name in names:
            if trial.is_finished(name):
                continue
            partial = trial.stage_path(name + PARTIAL)
            if os.path.isdir(partial):
                shutil.rmtree(partial)
            shutil.copytree(self.shared.stage_path(name), partial, copy_function=_link_or_copy)
            trial.set_aside(name)
            os.replace(partial, trial.stage_path(name))
        fsync_path(trial.path)

    def mark_best(self, best: BestTrial) -> None:
        """``best.json`` and the link ``best`` to the best trial's folder (if it ran here), both replaced whole."""
        partial = os.path.join(self.path, f"{BEST_FILE}{PARTIAL}-{os.getpid()}")
        write_json(partial, attrs.asdict(best))
        os.replace(partial, os.path.join(self.path, BEST_FILE))
        if not os.path.isdir(os.path.join(self.path, best.folder)):
            return  # run by a worker with another --out (another machine): best.json names it, no link here
        link = os.path.join(self.path, BEST)
        if os.path.lexists(link) and not os.path.islink(link):
            raise SweepError(f"{link} is not the link keras-graft makes; move it away so the best trial can be marked")
        temporary = f"{link}{PARTIAL}-{os.getpid()}"
        if os.path.lexists(temporary):
            os.remove(temporary)
        os.symlink(best.folder, temporary)
        os.replace(temporary, link)
        fsync_path(self.path)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
