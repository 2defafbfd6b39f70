"""``graft lr-find SPEC --stage NAME``: the learning-rate range test on a stage, and a suggested rate."""

from __future__ import annotations

import argparse

from graft.commands.options import add_set


def add_parser(commands) -> None:
    """``graft lr-find`` under ``commands``."""
    finder = commands.add_parser(
        "lr-find", help="the learning-rate range test on a stage's model, policy and data: loss against a rate "
        "growing each batch, drawn, and a rate suggested (the run folder is only read)",
    )
    finder.add_argument("config", metavar="SPEC")
    finder.add_argument("--stage", required=True, help="the stage whose rate is sought")
    finder.add_argument("--out", help="the run folder holding the earlier stages it starts from "
                        "(default: runs/<spec name>, as graft run)")
    finder.add_argument("--steps", type=_positive(int), default=200, metavar="N",
                        help="batches at most, the rate growing each batch (default 200)")
    finder.add_argument("--start", type=_positive(float), default=1e-7, metavar="RATE", help="first rate (1e-7)")
    finder.add_argument("--end", type=_positive(float), default=10.0, metavar="RATE", help="last rate (10)")
    finder.add_argument("--plot", metavar="PNG",
                        help="where to draw loss against rate (default: lr-find-<stage>.png here; never in --out)")
    finder.add_argument("--force", action="store_true", help="replace an existing --plot")
    add_set(finder)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def run(args) -> int:
    from graft.base.problems import GraftError, did_you_mean
    from graft.plugins.registry import Registry
    from graft.runs.stages import default_out_dir
    from graft.spec.specfile import load_spec

    registry = Registry.discover()
    spec_file = load_spec(args.config, registry, args.overrides or ())
    names = [stage.name for stage in spec_file.spec.stages]
    if args.stage not in names:
        raise GraftError(f"--stage {args.stage}: the spec has no such stage{did_you_mean(args.stage, names)}; "
                         f"its stages: {', '.join(names)}")
    if not args.start < args.end:
        raise GraftError(f"--start {args.start:g} must be below --end {args.end:g}")
    plot = args.plot or f"lr-find-{args.stage}.png"
    from graft.finished.outfile import check_free, write_file

    check_free(plot, args.force, "--plot")  # before anything trains
    from graft.tuning.lrfind import draw
    from graft.tuning.lrstage import stage_range_test

    index = names.index(args.stage)
    found = stage_range_test(spec_file, registry, index, args.out or default_out_dir(args.config), args.steps,
                             args.start, args.end)
    test = found.test
    figure = draw(test, f"stage '{found.stage}': {found.trainable_params:,} parameters trainable, "
                        f"batch {found.batch_size}")
    write_file(plot, lambda path: figure.savefig(path, format="png", metadata={"Software": None}), args.force,
               "--plot")
    ended = "the loss exploded" if test.exploded else "every step ran"
    print(f"stage '{found.stage}': {len(test.rates)} batches from {test.rates[0]:.2g} to {test.rates[-1]:.2g} "
          f"({ended}); lowest smoothed loss {min(test.smoothed):.4g} at {test.lowest:.2g}\n"
          f"suggested learning rate: {test.suggested:.2g} (a tenth of that)\n"
          f"plot: {plot}\n"
          f"use it: --set stages.{found.stage}.optimizer.learning_rate={test.suggested:.2g}")
    return 0

