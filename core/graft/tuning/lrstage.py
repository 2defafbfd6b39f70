"""``graft lr-find``: the range test on a stage's own model, policy and data, leaving the run folder as it was.

The stage is planned as ``graft run`` plans it; the layers it loads from an earlier stage
are read (and proven bitwise) from that stage's finished folder in ``--out``, which is
only read.  Its first round's decisions freeze what the policy freezes, the optimizer
is the stage's own (with its per-layer rate scales), the batches are its training
batches (augmented as the stage augments them).
"""

from __future__ import annotations

import os

import attrs

from graft.base.backend import import_keras
from graft.base.problems import GraftError, SpecProblem
from graft.model.initsource import source_path, source_weights
from graft.model.losses import compile_arguments, head_losses
from graft.model.lrscale import layer_scales, scale_learning_rates
from graft.model.optimizers import make_optimizer
from graft.planning.stagedata import load_and_check_data
from graft.planning.stageplan import LOADED, plan_stages
from graft.plugins.registry import Registry
from graft.records.rundir import RunDir
from graft.runs.verify import load_by_name
from graft.spec.specfile import SpecFile
from graft.tuning.lrfind import RangeTest, range_test
from graft.tuning.trials import first_stages


@attrs.frozen
class StageRangeTest:
    """The range test of one stage: the stage, its batch size and trainable parameters, and the test."""

    stage: str
    batch_size: int
    trainable_params: int
    test: RangeTest


def stage_range_test(spec_file: SpecFile, registry: Registry, index: int, out: str, steps: int, start: float,
                     end: float) -> StageRangeTest:
    """The range test of stage ``index``, its earlier stages read from the run folder ``out``."""
    keras = import_keras()
    spec_file = first_stages(spec_file, index + 1)
    stage = spec_file.spec.stages[index]
    folder = _source_folder(spec_file, index, out)
    planned = plan_stages(spec_file, registry)
    data = load_and_check_data(spec_file, registry, [each.plan for each in planned])[index]
    built, rounds, plan = planned[index].built, planned[index].rounds, planned[index].plan
    path = source_path(spec_file, index, folder)
    loaded = [layer.name for layer in plan.layers if layer.init == LOADED]
    try:
        weights = source_weights(spec_file, index, path, loaded) if path is not None and loaded else None
    except (SpecProblem, GraftError) as exc:
        raise GraftError(f"stage '{stage.name}': cannot read {path}: {exc}") from None
    load_by_name(built, plan, weights, stage.name)
    seed = spec_file.spec.seed_of(index)
    keras.utils.set_random_seed(seed)
    optimizer = make_optimizer(keras, stage.optimizer)
    scale_learning_rates(optimizer, built.layers, layer_scales(rounds.first))
    built.model.compile(optimizer=optimizer,
                        **compile_arguments(keras, head_losses(built.model, spec_file.spec.heads_of(stage))))
    from graft.data.pipeline import training_batches

    augment = None
    if stage.data.augment:
        from graft.data.augment import make_augmenter

        augment = make_augmenter(keras, stage.data.augment, seed)
    batches = training_batches(data.data, stage.batch_size, seed, augment)
    test = range_test(keras, built.model, batches, steps, start, end)
    return StageRangeTest(stage.name, stage.batch_size, plan.trainable_params, test)


def _source_folder(spec_file: SpecFile, index: int, out: str) -> str | None:
    """The finished folder of the stage this one starts from, proven by its digests (read, never written)."""
    init = spec_file.spec.stages[index].init
    if init is None or init.stage is None:
        return None
    run_dir = RunDir(out)
    if not run_dir.is_finished(init.stage):
        name = spec_file.spec.stages[index].name
        raise GraftError(f"stage '{name}' starts from stage '{init.stage}', which has not finished in {out}: train it "
                         f"first (graft run {spec_file.path} --out {out}) or give --out the run folder that holds it")
    run_dir.read_report(init.stage)  # its files checked against their digests
    return os.path.abspath(run_dir.stage_path(init.stage))
