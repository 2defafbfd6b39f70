"""``graft sweep SPEC SPACE --stage NAME --out DIR``: try values of one stage, the stages before it trained once."""

from __future__ import annotations

import os
import shlex

from graft.commands.options import add_set


def add_parser(commands) -> None:
    """``graft sweep`` under ``commands``."""
    sweep = commands.add_parser(
        "sweep", help="try values of one stage (learning rate, depth, ...) with Optuna; the stages before it are "
        "trained once and shared by every trial (needs: pip install 'keras-graft[sweep]')",
    )
    sweep.add_argument("config", metavar="SPEC")
    sweep.add_argument("space", metavar="SPACE", help="the search space: a YAML file of --set paths and their ranges")
    sweep.add_argument("--stage", help="the stage swept (else the space's 'stage:')")
    sweep.add_argument("--out", help="the sweep folder (default: sweeps/<spec name>-<stage>)")
    sweep.add_argument("--storage", metavar="URL",
                       help="the study's storage, an SQLAlchemy URL (postgresql://..., mysql://...) for workers on "
                       "several machines (default: sqlite in --out)")
    sweep.add_argument("--study-name", default=None, metavar="NAME", help="the study's name in the storage")
    sweep.add_argument("--max-trials", type=int, metavar="N",
                       help="this worker stops after N trials (the study still counts the space's trials)")
    add_set(sweep)


def run(args) -> int:
    from graft.base.problems import GraftError
    from graft.plugins.registry import Registry
    from graft.tuning.space import read_space
    from graft.tuning.study import import_optuna
    from graft.tuning.summary import write_sweep_report
    from graft.tuning.sweepdir import SweepDir
    from graft.tuning.sweeping import DEFAULT_STUDY, run_sweep
    from graft.tuning.vetting import vet_sweep

    if args.max_trials is not None and args.max_trials < 1:
        raise GraftError(f"--max-trials {args.max_trials}: give a number of trials from 1")
    import_optuna()  # a missing extra is said before anything is read or trained
    registry = Registry.discover()
    space = read_space(args.space)
    sweep = vet_sweep(args.config, registry, space, args.stage, tuple(args.overrides or ()))
    out = args.out or os.path.join("sweeps", f"{os.path.splitext(os.path.basename(args.config))[0]}-{sweep.stage}")
    print(f"sweep of stage '{sweep.stage}': {len(space.params)} values, {space.trials} trials, "
          f"{space.direction} {space.metric}, pruner {space.pruner}; folder {out}")
    try:
        result = run_sweep(sweep, registry, out, args.storage, args.study_name or DEFAULT_STUDY,
                           max_trials=args.max_trials)
    finally:  # also after Ctrl-C or an error: the trials that finished are reported
        try:
            written = write_sweep_report(SweepDir(out), sweep, args.storage, args.study_name or DEFAULT_STUDY)
        except OSError as exc:
            print(f"report.md could not be written in {out}: {exc.strerror or exc}")
        else:
            if written:
                print(f"report: {written}")
    if result.best is None:
        print(f"no trial finished; {result.total} in the study")
        return 0
    best = result.best
    sets = " ".join(f"--set {shlex.quote(text)}" for text in best.overrides)
    folder = os.path.join(out, best.folder)
    if not os.path.isdir(folder):  # run by a worker with another --out
        print(f"best: trial {best.number}, {best.metric} {best.value:.4g}, run by a worker with another --out "
              f"({best.folder} there); its values: {sets}")
        return 0
    linked = os.path.join(out, "best")
    print(f"best: trial {best.number}, {best.metric} {best.value:.4g}: {folder} (linked as {linked})\n"
          f"go on with the later stages: graft run {shlex.quote(args.config)} {sets} --out {linked}")
    return 0
