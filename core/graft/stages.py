"""Run the stages of a spec: vet everything, then per stage load by name, apply the policy,
compile, fit, verify at the level of weights, and publish the stage directory atomically.

Run directory: ``<out>/<stage>/`` holds ``model.keras``, ``weights.graft.npz``,
``history.json`` and ``report.json``.  A stage directory appears only when the
stage has finished (it is written as ``<stage>.partial`` and renamed), so a
finished stage is never half-written, and a re-run resumes after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs

from graft.backend import import_keras
from graft.builder import BuiltModel
from graft.data import Dataset
from graft.datacheck import HeadTarget, check_dataset
from graft.feature_cache import extractor_is_constant
from graft.feature_cache import cache_features as compute_features
from graft.plan import LOADED, StagePlan, apply_decisions, build_stage_model, decide, plan_spec, plan_stage
from graft.rounds import Plateau, Rounds
from graft.problems import GraftError, Path, SpecProblem
from graft.registry import Registry
from graft.spec import Stage
from graft.specfile import SpecFile
from graft.summary import summary_table
from graft.weights import FILENAME as WEIGHTS_FILENAME
from graft.weights import bitwise_equal, read_weights, save_weights, snapshot

REPORT, HISTORY, MODEL = "report.json", "history.json", "model.keras"
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "nadam": "Nadam", "adagrad": "Adagrad"}


class RunError(GraftError):
    """A run that cannot start or that failed a verification."""


def default_out_dir(config: str) -> str:
    return os.path.join("runs", os.path.splitext(os.path.basename(config))[0])


def run_spec(
    spec_file: SpecFile,
    registry: Registry,
    out_dir: str,
    restart_from: str | None = None,
    log: Callable[[str], None] = print,
    cache_features: bool = True,
) -> list[dict[str, Any]]:
    """Run every unfinished stage of the spec; return the report of every stage.

    ``cache_features=False`` trains the whole model even where the extractor is frozen.
    """
    plans = plan_spec(spec_file, registry)
    fingerprints = stage_fingerprints(spec_file)
    datasets = load_and_check_data(spec_file, registry, plans)
    first = first_stage_to_run(spec_file, out_dir, fingerprints, restart_from)
    for index, stage in enumerate(spec_file.spec.stages[:first]):
        log(f"stage {index + 1}/{len(plans)} '{stage.name}': finished earlier, kept ({os.path.join(out_dir, stage.name)})")
    for index in range(first, len(plans)):
        run_stage(spec_file, registry, index, plans, datasets[index], out_dir, fingerprints[index], log, cache_features)
    reports = [read_report(out_dir, stage.name) for stage in spec_file.spec.stages]
    log(f"\n{summary_table(reports)}\n\nresults: {out_dir}")
    return reports


# -- before anything trains ------------------------------------------------------


def stage_fingerprints(spec_file: SpecFile) -> list[str]:
    """One hash per stage over the model, the seed, the stage and every stage before it."""
    spec = spec_file.spec
    digest = hashlib.sha256(_canonical([spec.seed, attrs.asdict(spec.model)]).encode())
    prints = []
    for stage in spec.stages:
        digest.update(_canonical(attrs.asdict(stage)).encode())
        prints.append(digest.copy().hexdigest()[:16])
    return prints


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def load_and_check_data(spec_file: SpecFile, registry: Registry, plans: list[StagePlan]) -> list[Dataset]:
    """Load every stage's data and check it against that stage's model; all problems at once."""
    spec = spec_file.spec
    datasets, items = [], []
    for index, (stage, plan) in enumerate(zip(spec.stages, plans)):
        at: Path = ("stages", index, "data")
        try:
            dataset = registry.load_data(stage.data.source, stage.data.params, spec_file.base_dir)
        except SpecProblem as problem:
            items += problem.prefixed((*at, "params"))
            datasets.append(None)
            continue
        heads = {name: HeadTarget(plan.outputs[name], head.loss) for name, head in spec.heads_of(stage).items()}
        items += [(at, message) for message in check_dataset(dataset, tuple(spec.model.input_shape), heads)]
        items += _check_monitors_have_validation(stage, dataset, index)
        if len(plan.rounds) > 1 and not dataset.has_validation:
            items.append(
                (
                    ("stages", index, "policy"),
                    f"policy '{plan.policy}' trains in rounds and compares them on validation loss, "
                    f"but {dataset.description} has no validation data; set a validation split in the data params",
                )
            )
        try:
            make_optimizer(import_keras(), stage)
        except (TypeError, ValueError) as exc:
            items.append((("stages", index, "optimizer", "options"), f"the optimizer rejects these options: {exc}"))
        datasets.append(dataset)
    if items:
        raise spec_file.error(items)
    return datasets


def _check_monitors_have_validation(stage: Stage, dataset: Dataset, index: int) -> list[tuple[Path, str]]:
    items = []
    for key in ("early_stopping", "reduce_lr"):
        callback = getattr(stage.callbacks, key)
        if callback is not None and callback.monitor.startswith("val_") and not dataset.has_validation:
            items.append(
                (
                    ("stages", index, "callbacks", key, "monitor"),
                    f"'{callback.monitor}' needs validation data but {dataset.description} has none; "
                    "set validation_split in the data params",
                )
            )
    return items


def first_stage_to_run(spec_file: SpecFile, out_dir: str, fingerprints: list[str], restart_from: str | None) -> int:
    """Index of the first stage to run; finished stages before it are reused as they are."""
    names = [stage.name for stage in spec_file.spec.stages]
    if restart_from is not None:
        if restart_from not in names:
            raise RunError(f"--restart-from {restart_from}: no such stage; stages: {', '.join(names)}")
        first = names.index(restart_from)
        for index, name in enumerate(names[:first]):
            # the restarted stage starts from these: they must be finished, from this spec
            path = os.path.join(out_dir, name)
            if not os.path.exists(os.path.join(path, REPORT)):
                why = f"the earlier stage '{name}' has not finished in {out_dir}"
            elif read_report(out_dir, name).get("fingerprint") != fingerprints[index]:
                why = f"{path} was run from a different spec"
            else:
                continue
            raise RunError(f"--restart-from {restart_from}: {why}; nothing was moved. Use --restart-from {name}")
        for name in names[first:]:
            _set_aside(out_dir, name)
        return first
    first = len(names)
    for index, name in enumerate(names):
        if not os.path.exists(os.path.join(out_dir, name, REPORT)):
            first = min(first, index)
            continue
        finished = read_report(out_dir, name)
        if finished.get("fingerprint") != fingerprints[index]:
            raise RunError(
                f"{os.path.join(out_dir, name)} was run from a different spec (the stage or one before it changed); "
                f"nothing was overwritten. Use --restart-from {names[min(first, index)]} to run it again "
                "(the old results are kept aside) or choose another --out"
            )
        if index > first:
            raise RunError(
                f"stage '{name}' is finished in {out_dir} but the earlier stage '{names[first]}' is not; "
                f"use --restart-from {names[first]}"
            )
    return first


def _set_aside(out_dir: str, name: str) -> None:
    """Move a stage directory out of the way instead of deleting it."""
    path = os.path.join(out_dir, name)
    if os.path.exists(path):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        target, count = os.path.join(out_dir, f"{name}.replaced-{stamp}"), 1
        while os.path.exists(target):  # set aside twice within a second
            count += 1
            target = os.path.join(out_dir, f"{name}.replaced-{stamp}-{count}")
        os.replace(path, target)


def read_report(out_dir: str, stage: str) -> dict[str, Any]:
    with open(os.path.join(out_dir, stage, REPORT), encoding="utf-8") as handle:
        return json.load(handle)


# -- one stage -------------------------------------------------------------------


def make_optimizer(keras, stage: Stage):
    options = stage.optimizer
    return getattr(keras.optimizers, OPTIMIZERS[options.name])(learning_rate=options.learning_rate, **options.options)


def run_stage(
    spec_file: SpecFile,
    registry: Registry,
    index: int,
    plans: list[StagePlan],
    dataset: Dataset,
    out_dir: str,
    fingerprint: str,
    log: Callable[[str], None],
    cache: bool = True,
) -> None:
    keras = import_keras()
    spec = spec_file.spec
    stage = spec.stages[index]
    started = time.perf_counter()
    built = build_stage_model(spec_file, registry, index)
    rounds = decide(spec_file, registry, index, built)
    plan = plan_stage(spec_file, index, built, rounds, plans)
    log(
        f"== stage {index + 1}/{len(spec.stages)} '{stage.name}': policy {plan.policy}, "
        f"starts from {plan.source or 'fresh initialisation'}; "
        f"{plan.trainable_params:,} of {plan.total_params:,} parameters trainable"
    )
    load = load_weights(spec_file, out_dir, stage, built, plan)
    start = snapshot(built.layers)
    keras.utils.set_random_seed(spec.seed + index)
    trained = train_rounds(keras, built, rounds, plan, stage, spec.heads_of(stage), dataset, log, cache)
    end = snapshot(built.layers)
    kept = trained.rows[trained.kept]["history"]
    report = {
        "stage": stage.name,
        "fingerprint": fingerprint,
        "plan": plan.to_json(),
        "load": load,
        "verification": {
            name: {"trainable": name in trained.ever_trainable, "changed": not bitwise_equal(start[name], end[name])}
            for name in start
            if start[name]
        },
        "final_metrics": {key: values[-1] for key, values in kept.items()},
        "epochs_run": sum(len(next(iter(row["history"].values()), [])) for row in trained.rows),
        "features_cached": any(row["features_cached"] for row in trained.rows),
        "lineage": lineage(out_dir, spec_file, stage, plan),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "versions": {"keras": keras.__version__, "tensorflow": _tensorflow_version()},
    }
    if len(rounds.steps) > 1:
        report["rounds"] = [{key: value for key, value in row.items() if key != "history"} for row in trained.rows]
        report["kept_round"] = trained.kept
    history = {"rounds": [row["history"] for row in trained.rows]} if len(rounds.steps) > 1 else kept
    publish(out_dir, stage.name, built, history, report)
    log(f"   stage '{stage.name}' done in {report['wall_time_s']:.1f} s: {os.path.join(out_dir, stage.name)}")


@attrs.define
class Trained:
    rows: list[dict[str, Any]]
    kept: int
    ever_trainable: set[str]


def train_rounds(
    keras, built: BuiltModel, rounds: Rounds, plan: StagePlan, stage: Stage, heads, dataset, log, cache: bool = True
) -> Trained:
    """Train round after round; stop on a plateau of the validation loss; keep the best round.

    Every round recompiles after applying its decisions, and every layer frozen
    in a round must come out of it bitwise unchanged.  While the extractor is
    frozen and deterministic (and ``cache``), the heads train on its features
    computed once.
    """
    plateau = Plateau(rounds.min_delta, rounds.patience)
    rows: list[dict[str, Any]] = []
    best = None
    ever_trainable: set[str] = set()
    several = len(rounds.steps) > 1
    cached = None
    for number, (step, round_plan) in enumerate(zip(rounds.steps, plan.rounds)):
        if several:
            log(f"   round {number}: {step.label} ({round_plan.trainable_params:,} parameters trainable)")
        apply_decisions(built, step.decisions)
        model, data = built.model, dataset
        if cache and extractor_is_constant(built, step.decisions):
            if cached is None:
                log("   the extractor is frozen: its features are computed once and the heads train on them")
                cached = compute_features(keras, built, dataset, stage.batch_size)
            model, data = cached.heads, cached.data
        compile_model(keras, model, stage, heads)
        before = snapshot(built.layers)
        history = model.fit(
            data.x,
            per_head(data.y)[0],
            validation_data=(data.x_val, per_head(data.y_val)[0]) if data.has_validation else None,
            epochs=stage.epochs,
            batch_size=stage.batch_size,
            callbacks=make_callbacks(keras, stage),
            verbose=1 if sys.stdout.isatty() else 2,
        )
        verify_frozen(built, step.decisions, before, stage.name)
        ever_trainable |= {name for name, decision in step.decisions.items() if decision.trainable}
        logs = {key: [float(value) for value in values] for key, values in history.history.items()}
        val_loss = logs.get("val_loss", [float("nan")])[-1]
        rows.append(
            {
                "round": number,
                "label": step.label,
                "unfrozen": list(step.unfrozen),
                "trainable_params": round_plan.trainable_params,
                "val_loss": val_loss,
                "features_cached": model is not built.model,
                "history": logs,
            }
        )
        stop = plateau.update(val_loss)
        if plateau.best_index == number and several:
            best = snapshot(built.layers)
        if stop:
            break
    if best is not None and plateau.best_index != len(rows) - 1:
        for info in built.layers:
            info.layer.set_weights(best[info.name])
    kept = plateau.best_index if several and plateau.best_index >= 0 else len(rows) - 1
    for row in rows:
        row["kept"] = row["round"] == kept
    if several:
        log(f"   kept round {kept} ({rows[kept]['label']}), validation loss {rows[kept]['val_loss']:.4f}")
    return Trained(rows, kept, ever_trainable)


def compile_model(keras, model, stage: Stage, heads) -> None:
    """Compile for the stage's heads; called after every change of ``trainable``."""
    losses, metrics = per_head(
        {name: head.loss for name, head in heads.items()},
        {name: list(head.metrics) for name, head in heads.items()},
    )
    weights = {name: head.loss_weight for name, head in heads.items()}
    model.compile(
        optimizer=make_optimizer(keras, stage),
        loss=losses,
        metrics=metrics,
        loss_weights=weights if len(weights) > 1 else list(weights.values()),
    )


def load_weights(spec_file: SpecFile, out_dir: str, stage: Stage, built: BuiltModel, plan: StagePlan) -> dict[str, Any]:
    """Load every layer the plan loads, by name, and prove each equals its source bitwise."""
    to_load = [layer for layer in plan.layers if layer.init == LOADED]
    report = {layer.name: {"init": layer.init, "source": layer.source} for layer in plan.layers}
    if not to_load:
        return report
    if stage.init.stage is not None:
        path = os.path.join(out_dir, stage.init.stage, WEIGHTS_FILENAME)
    else:
        path = spec_file.resolve(stage.init.weights)
    source = read_weights(path)
    for layer in to_load:
        target = built.layer(layer.name)
        target.set_weights(source[layer.name])
        equal = bitwise_equal(target.get_weights(), source[layer.name])
        report[layer.name]["equal_to_source"] = equal
        if not equal:
            raise RunError(f"stage '{stage.name}': layer '{layer.name}' differs from {path} after loading")
    return report


def verify_frozen(built: BuiltModel, decisions: dict, before: dict, stage: str) -> None:
    """Every frozen layer must be bitwise unchanged (BatchNormalization statistics included)."""
    after = snapshot(built.layers)
    for name, decision in decisions.items():
        if not decision.trainable and not bitwise_equal(before[name], after[name]):
            raise RunError(
                f"stage '{stage}': frozen layer '{name}' changed during training; nothing was published for this stage"
            )


def per_head(*by_head: dict) -> tuple:
    """Per-head compile/fit arguments as Keras wants them: a dict keyed by head name for
    several heads, the bare value for a single head (Keras 2 and 3 disagree on a
    one-element list or dict, and both accept the bare value)."""
    return tuple(mapping if len(mapping) > 1 else next(iter(mapping.values())) for mapping in by_head)


def make_callbacks(keras, stage: Stage) -> list:
    callbacks = []
    if stage.callbacks.early_stopping is not None:
        options = stage.callbacks.early_stopping
        callbacks.append(keras.callbacks.EarlyStopping(**attrs.asdict(options)))
    if stage.callbacks.reduce_lr is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(**attrs.asdict(stage.callbacks.reduce_lr)))
    return callbacks


def lineage(out_dir: str, spec_file: SpecFile, stage: Stage, plan: StagePlan) -> dict[str, list[str]]:
    """Per layer, the stages (or file) its weights passed through, oldest first."""
    prior = read_report(out_dir, stage.init.stage)["lineage"] if stage.init and stage.init.stage else {}
    result = {}
    for layer in plan.layers:
        if layer.init != LOADED:
            result[layer.name] = [stage.name]
        elif stage.init.stage is not None:
            result[layer.name] = [*prior.get(layer.name, [stage.init.stage]), stage.name]
        else:
            result[layer.name] = [f"file {spec_file.resolve(stage.init.weights)}", stage.name]
    return result


def publish(out_dir: str, name: str, built: BuiltModel, logs: dict, report: dict) -> None:
    """Write the stage into ``<name>.partial`` and rename it into place: all or nothing."""
    final = os.path.join(out_dir, name)
    partial = final + ".partial"
    if os.path.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    built.model.save(os.path.join(partial, MODEL))
    save_weights(built.layers, os.path.join(partial, WEIGHTS_FILENAME))
    _write_json(os.path.join(partial, HISTORY), logs)
    _write_json(os.path.join(partial, REPORT), report)
    _set_aside(out_dir, name)  # an unfinished stage folder (no report.json) someone left: kept, not merged
    os.replace(partial, final)


def _write_json(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.write("\n")


def _tensorflow_version() -> str:
    import tensorflow

    return tensorflow.__version__
