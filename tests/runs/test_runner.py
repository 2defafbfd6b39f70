"""``graft.runs.stages.run_spec`` end to end on the seed scenario (``TINY_GRU_SPEC``).

What a run leaves on disk, resuming, crashes inside and between stages, changed
specs, ``restart_from``, the data checks that run before any training, and that the
same seed gives bitwise identical weights.  A ``FitSpy`` observer counts training
(and can inject a crash); all training is real.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil

import numpy as np
import pytest

import graft.runs.stagerun
from graft.base.backend import import_keras
from graft.base.problems import SpecError
from graft.model.builder import leaf_layers
from graft.model.weights import FILENAME, read_weights
from graft.planning.stageplan import build_stage_model
from graft.records.rundir import RunDir, RunError
from graft.runs.resume import first_stage_to_run, stage_fingerprints
from graft.runs.stages import run_spec
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC
from tests.observers import Crash, FitSpy, bitwise, read_report

STAGES = ["pretrain", "transfer"]
RESOLVED = "spec.resolved.yaml"  # graft.runs.provenance: the spec each run trained, at the run directory's root
FILES = {"model.keras", "weights.graft.npz", "history.json", "report.json"}  # curves.png: graft report draws it
PRETRAIN_ONLY = TINY_GRU_SPEC[: TINY_GRU_SPEC.index("  - name: transfer")]
TRANSFER_DATA = """\
    data:
      source: synthetic
      params: {samples: 48, timesteps: 12, channels: 3, seed: 2, frequency: 2.0, targets: {level: level, trend: trend}}
"""
assert TINY_GRU_SPEC.count(TRANSFER_DATA) == 1


class Run:
    def __init__(self, spec_file, out: str, log: list[str]) -> None:
        self.spec_file, self.out, self.log = spec_file, out, log


def run(spec_file, out, registry, **kwargs) -> list[str]:
    """Run and return the log lines."""
    lines: list[str] = []
    run_spec(spec_file, registry, str(out), log=lines.append, **kwargs)
    return lines



def tree(path) -> dict[str, tuple[str, int]]:
    """Every file under ``path``: relative path -> (sha256, mtime in ns)."""
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(full, path)] = (digest, os.stat(full).st_mtime_ns)
    return found


def same_weights(out_a, out_b, stage: str) -> list[str]:
    """Names of the layers whose saved weights differ between two runs."""
    a, b = (read_weights(os.path.join(out, stage, FILENAME)) for out in (out_a, out_b))
    assert list(a) == list(b)
    return [name for name in a if not bitwise(a[name], b[name])]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    return [n for n, line in enumerate(text.splitlines(), start=1) if needle in line][occurrence - 1]


def _run_once(tmp_path_factory, registry, text: str) -> Run:
    folder = tmp_path_factory.mktemp("run")
    (folder / "spec.yaml").write_text(text)
    spec_file = load_spec(str(folder / "spec.yaml"), registry)
    spy = FitSpy()
    log = run(spec_file, folder / "out", registry, observer=spy)
    assert len(spy.calls) == text.count("  - name: ")
    return Run(spec_file, str(folder / "out"), log)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory, registry) -> Run:
    return _run_once(tmp_path_factory, registry, TINY_GRU_SPEC)


@pytest.fixture(scope="module")
def pretrain_only_run(tmp_path_factory, registry) -> Run:
    """A second, separate run of the first stage alone."""
    return _run_once(tmp_path_factory, registry, PRETRAIN_ONLY)


@pytest.fixture
def spy() -> FitSpy:
    return FitSpy()


@pytest.fixture
def copy_of(tmp_path):
    """Copy a finished run's out dir (times kept) to a fresh place; return the new path."""

    def copy(source_run: Run) -> str:
        out = str(tmp_path / "out")
        shutil.copytree(source_run.out, out)
        return out

    return copy


# -- what a finished run leaves ----------------------------------------------------


@pytest.mark.slow
def test_each_stage_directory_holds_model_weights_history_and_report(seed_run):
    assert sorted(os.listdir(seed_run.out)) == sorted([*STAGES, "report.md", RESOLVED])
    for stage in STAGES:
        assert set(os.listdir(os.path.join(seed_run.out, stage))) == FILES
    assert [line for line in seed_run.log if line.startswith("== stage")] == [
        "== stage 1/2 'pretrain': policy continue, starts from fresh initialisation; 368 of 368 parameters trainable",
        "== stage 2/2 'transfer': policy layers, starts from stage pretrain; 140 of 368 parameters trainable",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_report_and_history(seed_run, stage):
    report = read_report(seed_run.out, stage)
    assert {"plan", "load", "verification", "final_metrics", "lineage", "wall_time_s", "fingerprint"} <= set(report)
    assert report["stage"] == stage
    assert report["plan"]["name"] == stage
    assert [layer["name"] for layer in report["plan"]["layers"]] == ["gru_1", "gru_2", "gru_3", "level", "trend"]
    assert set(report["load"]) == set(report["verification"]) == set(report["lineage"]) == {
        "gru_1", "gru_2", "gru_3", "level", "trend"
    }
    assert report["wall_time_s"] > 0
    assert report["epochs_run"] == 1
    assert report["versions"]["keras"] == import_keras().__version__
    assert report["versions"]["backend"] == "tensorflow"  # the one backend keras-graft trains on, recorded
    with open(os.path.join(seed_run.out, stage, "history.json"), encoding="utf-8") as handle:
        history = json.load(handle)
    assert {"loss", "val_loss", "level_loss", "trend_loss", "trend_accuracy", "val_trend_accuracy"} <= set(history)
    assert all(len(values) == 1 and math.isfinite(values[0]) for values in history.values())
    assert report["final_metrics"] == {key: values[-1] for key, values in history.items()}


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_model_keras_loads_with_plain_keras_and_holds_the_saved_weights(seed_run, stage):
    keras = import_keras()
    model = keras.models.load_model(os.path.join(seed_run.out, stage, "model.keras"))
    saved = read_weights(os.path.join(seed_run.out, stage, FILENAME))
    layers = {layer.name: layer for layer in leaf_layers(keras, model)}
    assert set(layers) == set(saved)
    for name, weights in saved.items():
        assert bitwise(layers[name].get_weights(), weights), f"model.keras and {FILENAME} differ in {name}"
    assert list(model.output_names) == ["level", "trend"]


@pytest.mark.slow
def test_model_keras_predicts_like_the_graft_model_with_the_saved_weights(seed_run, registry):
    keras = import_keras()
    spec = seed_run.spec_file.spec
    x = registry.load_data("synthetic", spec.stages[1].data.params, seed_run.spec_file.base_dir).x[:8]
    built = build_stage_model(seed_run.spec_file, registry, 1)
    saved = read_weights(os.path.join(seed_run.out, "transfer", FILENAME))
    for info in built.layers:
        info.layer.set_weights(saved[info.name])
    expected = built.model.predict(x, verbose=0)
    loaded = keras.models.load_model(os.path.join(seed_run.out, "transfer", "model.keras"))
    found = loaded.predict(x, verbose=0)
    assert len(found) == len(expected) == 2
    for head_found, head_expected in zip(found, expected, strict=True):
        np.testing.assert_allclose(head_found, head_expected, rtol=0, atol=1e-6)


# -- resuming ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_rerun_resumes_without_training_or_touching_anything(seed_run, registry, spy):
    before = tree(seed_run.out)
    log = run(seed_run.spec_file, seed_run.out, registry, observer=spy)
    assert spy.calls == []
    assert tree(seed_run.out) == before
    assert log[:2] == [
        f"stage 1/2 'pretrain': finished earlier, kept ({os.path.join(seed_run.out, 'pretrain')})",
        f"stage 2/2 'transfer': finished earlier, kept ({os.path.join(seed_run.out, 'transfer')})",
    ]
    assert len(log) == 3 and log[2].endswith(f"results: {seed_run.out}")  # the summary table of both stages
    assert [line.split()[0] for line in log[2].strip().splitlines()[1:3]] == ["pretrain", "transfer"]


@pytest.mark.slow
def test_later_stages_do_not_change_the_fingerprints_of_earlier_ones(seed_run, load):
    full = stage_fingerprints(seed_run.spec_file)
    assert full == [read_report(seed_run.out, stage)["fingerprint"] for stage in STAGES]
    assert stage_fingerprints(load(PRETRAIN_ONLY)) == full[:1]
    longer = TINY_GRU_SPEC + TINY_GRU_SPEC[TINY_GRU_SPEC.index("  - name: transfer"):].replace("transfer", "again")
    assert stage_fingerprints(load(longer))[:2] == full
    # a change in a stage changes its fingerprint and every later one, never an earlier one
    changed = stage_fingerprints(load(TINY_GRU_SPEC.replace("seed: 2, frequency: 2.0", "seed: 9, frequency: 2.0")))
    assert changed[0] == full[0] and changed[1] != full[1]
    reseeded = stage_fingerprints(load(TINY_GRU_SPEC.replace("seed: 3\n", "seed: 4\n", 1)))
    assert reseeded[0] != full[0] and reseeded[1] != full[1]


@pytest.mark.slow
def test_same_seed_gives_bitwise_identical_pretrain_weights(seed_run, pretrain_only_run):
    assert same_weights(seed_run.out, pretrain_only_run.out, "pretrain") == []
    first, second = (read_report(run.out, "pretrain")["final_metrics"] for run in (seed_run, pretrain_only_run))
    assert first == second


@pytest.mark.slow
def test_crash_between_stages_leaves_a_run_the_full_spec_resumes_at_stage_2(seed_run, pretrain_only_run):
    """A run that ended after stage 1 (here: a spec with stage 1 alone) is picked up at stage 2;
    ``test_crash_inside_stage_2...`` runs exactly that resume (its out dir starts as a copy of it)."""
    fingerprints = stage_fingerprints(seed_run.spec_file)
    assert read_report(pretrain_only_run.out, "pretrain")["fingerprint"] == fingerprints[0]
    names = [stage.name for stage in seed_run.spec_file.spec.stages]
    assert first_stage_to_run(RunDir(pretrain_only_run.out), names, fingerprints, None) == 1
    assert sorted(os.listdir(pretrain_only_run.out)) == ["pretrain", "report.md", RESOLVED]


def _crash(*_args, **_kwargs):
    raise Crash("simulated crash while writing the weights")


@pytest.mark.slow
def test_crash_inside_stage_2_keeps_stage_1_and_the_next_run_finishes(
    seed_run, pretrain_only_run, copy_of, registry, spy, monkeypatch
):
    """Starts from a run that stopped after stage 1 (a crash between stages)."""
    out = copy_of(pretrain_only_run)
    pretrain = tree(os.path.join(out, "pretrain"))

    spy.crash = True  # crash after the first batch of stage 2
    with pytest.raises(Crash):
        run(seed_run.spec_file, out, registry, observer=spy)
    assert len(spy.calls) == 1
    # report.md: of the run that finished pretrain; the spec it resolved is kept aside for this run's
    (resolved_aside,) = [name for name in os.listdir(out) if name.startswith(f"{RESOLVED}.replaced-")]
    assert sorted(os.listdir(out)) == sorted(["pretrain", "report.md", RESOLVED, resolved_aside])
    assert tree(os.path.join(out, "pretrain")) == pretrain

    spy.crash = False  # crash while publishing, after model.keras is written
    with monkeypatch.context() as patch:
        patch.setattr(graft.runs.stagerun, "save_weights", _crash)
        with pytest.raises(Crash):
            run(seed_run.spec_file, out, registry, observer=spy)
    assert sorted(os.listdir(out)) == sorted(["pretrain", "report.md", "transfer.partial", RESOLVED, resolved_aside])
    assert os.listdir(os.path.join(out, "transfer.partial")) == ["model.keras"]
    assert tree(os.path.join(out, "pretrain")) == pretrain

    log = run(seed_run.spec_file, out, registry, observer=spy)
    assert len(spy.calls) == 3
    assert log[0] == f"stage 1/2 'pretrain': finished earlier, kept ({os.path.join(out, 'pretrain')})"
    assert sorted(os.listdir(out)) == sorted([*STAGES, "report.md", RESOLVED, resolved_aside])
    assert set(os.listdir(os.path.join(out, "transfer"))) == FILES
    assert tree(os.path.join(out, "pretrain")) == pretrain
    report = read_report(out, "transfer")
    assert all(entry["equal_to_source"] for entry in report["load"].values())
    assert report["lineage"]["gru_1"] == STAGES
    # the same transfer as the uninterrupted run, bit for bit
    assert same_weights(seed_run.out, out, "transfer") == []


# -- changed specs and restart_from ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("    batch_size: 16\n  - name: transfer", "    batch_size: 8\n  - name: transfer", "pretrain"),
        ("seed: 3\n", "seed: 4\n", "pretrain"),
        ("train: [gru_3, level, trend]", "train: [gru_3, level]", "transfer"),
    ],
    ids=["stage-1-batch-size", "seed", "stage-2-policy"],
)
def test_a_changed_spec_with_results_is_a_run_error_and_overwrites_nothing(
    seed_run, old, new, changed, copy_of, write_spec, registry, spy
):
    out = copy_of(seed_run)
    before = tree(out)
    text = TINY_GRU_SPEC.replace(old, new, 1)
    assert text != TINY_GRU_SPEC
    spec_file = load_spec(write_spec(text), registry)
    with pytest.raises(RunError) as caught:
        run(spec_file, out, registry, observer=spy)
    message = str(caught.value)
    assert f"{os.path.join(out, changed)} was run from a different spec" in message
    assert f"nothing was overwritten. Use --restart-from {changed} " in message
    assert tree(out) == before and spy.calls == []


@pytest.mark.slow
def test_restart_from_moves_the_old_results_aside_and_runs_again(seed_run, copy_of, write_spec, registry, spy):
    out = copy_of(seed_run)
    before = tree(out)
    text = TINY_GRU_SPEC.replace("train: [gru_3, level, trend]", "train: [gru_3, level]")
    spec_file = load_spec(write_spec(text), registry)
    log = run(spec_file, out, registry, restart_from="transfer", observer=spy)
    assert len(spy.calls) == 1
    assert log[0].startswith("stage 1/2 'pretrain': finished earlier, kept")
    (aside,) = [name for name in os.listdir(out) if name.startswith("transfer.replaced-")]
    (resolved_aside,) = [name for name in os.listdir(out) if name.startswith(f"{RESOLVED}.replaced-")]
    assert sorted(os.listdir(out)) == sorted([*STAGES, aside, "report.md", RESOLVED, resolved_aside])
    # the old results are all there, unchanged; pretrain was not touched
    assert tree(os.path.join(out, aside)) == {
        path.split(os.sep, 1)[1]: value for path, value in before.items() if path.startswith("transfer" + os.sep)
    }
    assert tree(os.path.join(out, "pretrain")) == tree(os.path.join(seed_run.out, "pretrain"))
    report = read_report(out, "transfer")
    assert report["fingerprint"] == stage_fingerprints(spec_file)[1]
    assert report["fingerprint"] != read_report(seed_run.out, "transfer")["fingerprint"]
    assert report["verification"]["trend"] == {"trainable": True, "changed": True}  # default: train
    assert run(spec_file, out, registry, observer=spy)[1].startswith("stage 2/2 'transfer': finished earlier")


@pytest.mark.slow
def test_restart_from_an_unknown_stage(seed_run, copy_of, registry, spy):
    out = copy_of(seed_run)
    before = tree(out)
    with pytest.raises(RunError, match="--restart-from pretrian: no such stage; stages: pretrain, transfer"):
        run(seed_run.spec_file, out, registry, restart_from="pretrian", observer=spy)
    assert tree(out) == before and spy.calls == []


@pytest.mark.slow
@pytest.mark.parametrize("earlier", ["missing", "changed"])
def test_restart_from_a_stage_whose_earlier_stage_is_not_usable(earlier, seed_run, copy_of, write_spec, registry, spy):
    out = copy_of(seed_run)
    text = TINY_GRU_SPEC
    if earlier == "missing":
        shutil.rmtree(os.path.join(out, "pretrain"))
    else:
        text = TINY_GRU_SPEC.replace("seed: 3\n", "seed: 4\n", 1)
    before = tree(out)
    with pytest.raises(RunError, match="--restart-from pretrain"):
        run(load_spec(write_spec(text), registry), out, registry, restart_from="transfer", observer=spy)
    assert tree(out) == before and spy.calls == []


def test_setting_aside_twice_in_one_second_keeps_both(tmp_path):
    for content in ("first", "second"):
        (tmp_path / "transfer").mkdir()
        (tmp_path / "transfer" / "report.json").write_text(content)
        RunDir(str(tmp_path)).set_aside("transfer")
    kept = sorted(os.listdir(tmp_path))
    assert len(kept) == 2 and all(name.startswith("transfer.replaced-") for name in kept)
    assert sorted((tmp_path / name / "report.json").read_text() for name in kept) == ["first", "second"]


# -- checks before any training ---------------------------------------------------------


def _npz(path, n=16, steps=12, x=None, trend=None, **drop) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.normal(size=(n, steps, 3)).astype(np.float32) if x is None else x,
        "y_level": rng.normal(size=(n, 1)).astype(np.float32),
        "y_trend": (np.arange(n) % 3) if trend is None else trend,
    }
    np.savez(path, **arrays)


def _nan_inputs():
    x = np.zeros((16, 12, 3), np.float32)
    x[3, 2, 1] = np.nan
    return x


TARGETS = "{level: y_level, trend: y_trend}"


def _npz_data(path: str, targets: str = TARGETS) -> str:
    return f"    data: {{source: npz, params: {{path: {path}, targets: {targets}}}}}\n"
DATA_CASES = {
    "input-shape": (
        lambda p: _npz(p, steps=10),
        TARGETS,
        "training inputs are shaped (10, 3) per sample but the model expects (12, 3); "
        "make model.input_shape match the data or reshape the data",
    ),
    "class-ids": (
        lambda p: _npz(p, trend=np.arange(16) % 5),
        TARGETS,
        "training targets for head 'trend': class ids go up to 4 but head 'trend' has 3 units; "
        "give the head 5 units or fix the ids",
    ),
    "nan": (
        lambda p: _npz(p, x=_nan_inputs()),
        TARGETS,
        "training inputs contain 1 NaN/inf value(s) in 1 sample(s), first in sample 3; remove or impute them",
    ),
    "empty": (lambda p: _npz(p, n=0), TARGETS, "training data has no samples"),
    "missing-target": (
        lambda p: _npz(p),
        "{level: y_level}",
        "training data has no targets for head 'trend' (targets given: level); map a target array to every head",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_a_spec_error_before_any_training(case, write_spec, tmp_path, registry, spy):
    write, targets, message = DATA_CASES[case]
    write(str(tmp_path / "data.npz"))
    text = TINY_GRU_SPEC.replace(TRANSFER_DATA, _npz_data("data.npz", targets))
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        run(load_spec(write_spec(text), registry), out, registry, observer=spy)
    line = line_of(text, "data:", occurrence=2)
    assert caught.value.lines == [f"stages[1].data (line {line}): npz data.npz: {message}"]
    assert not out.exists() and spy.calls == []


@pytest.mark.slow
def test_bad_data_in_every_stage_is_reported_at_once(write_spec, tmp_path, registry, spy):
    _npz(str(tmp_path / "nan.npz"), x=_nan_inputs())
    _npz(str(tmp_path / "short.npz"), steps=10)
    text = TINY_GRU_SPEC.replace(TRANSFER_DATA, _npz_data("short.npz"))
    text = text.replace(
        "    data:\n      source: synthetic\n      params: {samples: 48, timesteps: 12, channels: 3, seed: 1,"
        " targets: {level: level, trend: trend}}\n",
        _npz_data("nan.npz"),
    )
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        run(load_spec(write_spec(text), registry), out, registry, observer=spy)
    assert [line.split(" (line")[0] for line in caught.value.lines] == ["stages[0].data", "stages[1].data"]
    assert "nan.npz: training inputs contain 1 NaN/inf" in caught.value.lines[0]
    assert "short.npz: training inputs are shaped (10, 3)" in caught.value.lines[1]
    assert not out.exists() and spy.calls == []


@pytest.mark.slow
def test_monitoring_val_loss_without_validation_data_is_a_spec_error(write_spec, tmp_path, registry, spy):
    text = TINY_GRU_SPEC.replace("seed: 2, frequency: 2.0,", "seed: 2, frequency: 2.0, validation_split: 0.0,")
    text += "    callbacks: {early_stopping: {monitor: val_loss}}\n"
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        run(load_spec(write_spec(text), registry), out, registry, observer=spy)
    assert caught.value.lines == [
        f"stages[1].callbacks.early_stopping.monitor (line {line_of(text, 'callbacks:')}): 'val_loss' needs "
        "validation data but synthetic (seed 2) has none; set validation_split in the data params"
    ]
    assert not out.exists() and spy.calls == []


@pytest.mark.slow
def test_a_stage_folder_without_a_report_is_set_aside_not_merged(tmp_path, load, registry):
    spec_file = load(PRETRAIN_ONLY)
    out = tmp_path / "out"
    (out / "pretrain").mkdir(parents=True)
    (out / "pretrain" / "notes.txt").write_text("mine")
    run(spec_file, out, registry)
    assert os.path.exists(out / "pretrain" / "report.json")
    assert not os.path.exists(out / "pretrain" / "notes.txt")
    (aside,) = [name for name in os.listdir(out) if name.startswith("pretrain.replaced-")]
    assert (out / aside / "notes.txt").read_text() == "mine"
