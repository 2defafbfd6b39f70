"""The Optuna study behind a sweep: the one module of keras-graft that imports Optuna (an optional extra).

The study lives in the storage given (``--storage``; SQLite in the sweep folder by
default), so a sweep killed and started again goes on with the same study, and workers
started with the same storage share it.  The study remembers what it sweeps (the spec's
stage, the search space); a study made for another one is refused, not mixed.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from graft.base.processes import pid_alive
from graft.tuning.space import Param, SearchSpace, SweepError

INSTALL = "pip install 'keras-graft[sweep]' (it installs Optuna)"
WHAT = "graft"  # the study's user attribute that records what it sweeps
HOST, PID = "host", "pid"


def import_optuna() -> Any:
    """Optuna, or a ``SweepError`` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise SweepError(f"graft sweep needs Optuna, which is not installed: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(storage: str, name: str, space: SearchSpace, identity: dict[str, Any]) -> Any:
    """The study ``name`` in ``storage``, made if it is not there; ``SweepError`` if it sweeps something else."""
    optuna = import_optuna()
    try:
        rdb = optuna.storages.RDBStorage(storage, engine_kwargs=_engine_options(storage))
        study = optuna.create_study(storage=rdb, study_name=name, direction=space.direction,
                                    pruner=make_pruner(optuna, space), load_if_exists=True)
    except (ValueError, ImportError, optuna.exceptions.OptunaError) as exc:
        raise SweepError(f"cannot open the study '{name}' in {_hidden(storage)}: {exc}") from None
    except Exception as exc:  # SQLAlchemy's errors: a server that refuses, a file that is not a database
        if type(exc).__module__.startswith("sqlalchemy"):
            raise SweepError(f"cannot open the study '{name}' in {_hidden(storage)}: {exc}".splitlines()[0]) from None
        raise
    recorded = study.user_attrs.get(WHAT)
    if recorded is None:
        study.set_user_attr(WHAT, identity)
    elif recorded != identity:
        differs = sorted(key for key in {*recorded, *identity} if recorded.get(key) != identity.get(key))
        raise SweepError(f"the study '{name}' in {_hidden(storage)} was made for another sweep (its "
                         f"{', '.join(differs)} differ); nothing was changed: choose another --out or --study-name")
    if study.direction.name.lower() != space.direction:
        raise SweepError(f"the study '{name}' {study.direction.name.lower()}s its metric, the space says "
                         f"{space.direction}; choose another --out or --study-name")
    return study


def _engine_options(storage: str) -> dict[str, Any]:
    """SQLite shared by several local workers: wait for the file's lock instead of failing at once."""
    return {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}


def _hidden(storage: str) -> str:
    """A storage URL without its password."""
    scheme, sep, rest = storage.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        rest = f"{credentials.partition(':')[0]}:***@{host}"
    return f"{scheme}{sep}{rest}"


def make_pruner(optuna: Any, space: SearchSpace) -> Any:
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, space.trials // 4)), n_warmup_steps=1)
    if space.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def counted(study: Any) -> int:
    """Trials that count towards the space's ``trials``: finished, pruned, running or waiting (not failed)."""
    optuna = import_optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return len(study.get_trials(deepcopy=False, states=states))


def fail_dead_local(study: Any) -> list[int]:
    """Running trials started on this machine by a process that is gone (killed): failed, so they do not count.
    The numbers of the trials failed."""
    optuna = import_optuna()
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.user_attrs.get(HOST) == host and not _alive(trial.user_attrs.get(PID)):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            failed.append(trial.number)
    return failed


def _alive(pid: Any) -> bool:
    return isinstance(pid, int) and not isinstance(pid, bool) and pid_alive(pid)


def ask(study: Any, space: SearchSpace) -> Any:
    """The next trial, its values drawn by a TPE sampler seeded by the space's seed and the trial's number (so a
    study that goes on after a kill, or a second worker, draws new values, not the first trial's again)."""
    optuna = import_optuna()
    number = len(study.get_trials(deepcopy=False))
    startup = min(10, space.trials // 2 + 1)
    study.sampler = optuna.samplers.TPESampler(seed=space.seed + number, n_startup_trials=startup)
    trial = study.ask()
    trial.set_user_attr(HOST, socket.gethostname())
    trial.set_user_attr(PID, os.getpid())
    return trial


def suggest(trial: Any, param: Param) -> Any:
    """``param``'s value for ``trial``, drawn the Optuna way for its kind."""
    if param.kind == "choice":
        return trial.suggest_categorical(param.path, list(param.choices))
    assert param.low is not None and param.high is not None  # a range, not a choice
    if param.kind in ("int", "logint"):
        return trial.suggest_int(param.path, int(param.low), int(param.high), log=param.kind == "logint")
    return trial.suggest_float(param.path, float(param.low), float(param.high), log=param.kind == "loguniform")
