"""``--set PATH=VALUE`` (``graft.spec.overrides``) and the self-describing run folder (``graft.runs.provenance``).

Everything but the last two tests is TensorFlow-free: overrides change the YAML
document before it is vetted.  ``test_run_with_set`` trains the tiny seed scenario
for real and checks the resolved spec, the versions and the epochs at file level.
"""

from __future__ import annotations

import importlib.metadata
import json
import os

import pytest
import yaml

import graft
from graft.base.problems import SpecError
from graft.commands.cli import _parser, main, worker_arguments
from graft.records.report import StageReport, Versions
from graft.records.rundir import RunDir, RunError
from graft.runs.provenance import RESOLVED, resolved_text, source_commit, write_resolved_spec
from graft.runs.resume import first_stage_to_run, stage_fingerprints
from graft.spec.overrides import OverrideError, parse_override
from graft.spec.specfile import load_spec
from tests.conftest import TINY_GRU_SPEC


@pytest.fixture
def spec_path(write_spec) -> str:
    return write_spec(TINY_GRU_SPEC)


def loaded(path: str, registry, *overrides: str):
    return load_spec(path, registry, [parse_override(text) for text in overrides])


def problems(path: str, registry, *overrides: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        loaded(path, registry, *overrides)
    assert caught.value.source == path
    return caught.value.lines


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


# -- addressing and values ---------------------------------------------------------------


def test_a_stage_is_addressed_by_its_name_or_its_index(spec_path, registry):
    spec = loaded(spec_path, registry, "stages.transfer.epochs=5", "stages.0.batch_size=8", "stages[1].batch_size=4",
                  "seed=11").spec
    assert [(stage.epochs, stage.batch_size) for stage in spec.stages] == [(1, 8), (5, 4)]
    assert spec.seed == 11


def test_values_are_yaml_read_as_the_file_is(spec_path, registry):
    spec = loaded(
        spec_path, registry,
        "model.heads.level.params.units=32",
        "stages.transfer.policy.params.freeze=[gru_1, gru_2, gru_3]",
        "stages.transfer.policy.params.train=[level, trend]",
        "+stages.transfer.optimizer={name: sgd, learning_rate: 3e-3, options: {momentum: 0.9}}",  # YAML 1.2 float
    ).spec
    assert spec.model.heads["level"].params.units == 32
    assert spec.stages[1].policy.params.freeze == ["gru_1", "gru_2", "gru_3"]
    optimizer = spec.stages[1].optimizer
    assert (optimizer.name, optimizer.learning_rate, optimizer.options) == ("sgd", 0.003, {"momentum": 0.9})


def test_a_star_sets_every_entry_of_a_list_or_mapping(spec_path, registry):
    spec = loaded(spec_path, registry, "stages.*.epochs=7", "model.heads.*.params.units=2",
                  "stages.*.batch_size=4").spec
    assert [(stage.epochs, stage.batch_size) for stage in spec.stages] == [(7, 4), (7, 4)]
    assert {name: head.params.units for name, head in spec.model.heads.items()} == {"level": 2, "trend": 2}


def test_a_star_s_problems_name_the_override_at_every_entry(spec_path, registry):
    assert problems(spec_path, registry, "stages.*.epochs=0") == [
        "stages[0].epochs (--set stages.*.epochs=0): must be from 1 to 100,000, got 0",
        "stages[1].epochs (--set stages.*.epochs=0): must be from 1 to 100,000, got 0",
    ]
    assert problems(spec_path, registry, "seed.*=1") == [
        "--set seed.*=1: seed is int 3: '*' stands for every entry of a list or every key of a mapping"
    ]
    (line,) = problems(spec_path, registry, "stages.*.optimizer.name=sgd")
    assert line.startswith("--set stages.*.optimizer.name=sgd: stages[0] has no key 'optimizer'; its keys: ")


def test_overrides_apply_in_order(spec_path, registry):
    spec = loaded(spec_path, registry, "stages.transfer.epochs=5", "stages[1].epochs=7",
                  "+stages.pretrain.optimizer={}", "+stages.pretrain.optimizer.learning_rate=0.01").spec
    assert spec.stages[1].epochs == 7
    assert spec.stages[0].optimizer.learning_rate == 0.01


def test_plus_adds_a_key_the_file_lacks_and_only_such_a_key(spec_path, registry):
    # an empty `params:` is null in YAML: '+' gives it its first key
    path = spec_path.replace("spec.yaml", "null.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(TINY_GRU_SPEC.replace("params: {units: 1}", "params:"))
    assert loaded(path, registry, "+model.heads.level.params.units=2").spec.model.heads["level"].params.units == 2
    assert problems(spec_path, registry, "+stages.transfer.epochs=2") == [
        "--set +stages.transfer.epochs=2: stages[1].epochs is in the spec already; change it without '+': "
        "--set stages.transfer.epochs=2"
    ]
    (line,) = problems(spec_path, registry, "stages.transfer.optimizer={name: sgd}")
    assert line.startswith("--set stages.transfer.optimizer={name: sgd}: stages[1] has no key 'optimizer'; its keys: ")
    assert line.endswith("(to add a key the spec does not have: --set +stages.transfer.optimizer={name: sgd})")


# -- problems name the override ----------------------------------------------------------------


def test_a_problem_in_an_overridden_value_names_the_override_not_a_line(spec_path, registry):
    assert problems(spec_path, registry, "stages.transfer.epochs=-1", "+stages.transfer.optimizer={name: sgdd}") == [
        "stages[1].optimizer.name (--set +stages.transfer.optimizer={name: sgdd}): 'sgdd' is not one of: "
        "adam, adamw, sgd, rmsprop, nadam, adagrad — did you mean 'sgd'?",
        "stages[1].epochs (--set stages.transfer.epochs=-1): must be from 1 to 100,000, got -1",
    ]


def test_the_files_own_problems_keep_their_lines(write_spec, registry):
    text = TINY_GRU_SPEC.replace("epochs: 1\n    batch_size: 16\n  - name: transfer",
                                 "epochs: 0\n    batch_size: 16\n  - name: transfer")
    path = write_spec(text)
    assert problems(path, registry, "stages.transfer.epochs=x") == [
        f"stages[0].epochs (line {line_of(text, 'epochs: 0')}): must be from 1 to 100,000, got 0",
        "stages[1].epochs (--set stages.transfer.epochs=x): expected an integer, got str 'x'",
    ]


def test_a_later_check_names_the_override_too(spec_path, registry):
    # a stage reference is checked across stages, after the structure
    assert problems(spec_path, registry, "stages.transfer.init.stage=pretrian") == [
        "stages[1].init.stage (--set stages.transfer.init.stage=pretrian): no earlier stage 'pretrian'; "
        "earlier stages: pretrain — did you mean 'pretrain'?"
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("stages.transfr.epochs=2", "stages has no entry named 'transfr'; its entries: pretrain, transfer "
                                    "(or an index, 0 to 1) — did you mean 'transfer'?"),
        ("stages.transfer.epoch=2", "stages[1] has no key 'epoch'; its keys: name, init, data, epochs, batch_size, "
                                    "policy — did you mean 'epochs'? (to add a key the spec does not have: "
                                    "--set +stages.transfer.epoch=2)"),
        ("sed=3", "the spec has no key 'sed'; its keys: seed, model, stages — did you mean 'seed'? "
                  "(to add a key the spec does not have: --set +sed=3)"),
        ("stages.2.epochs=2", "stages has 2 entries (indexes 0 to 1)"),
        ("model.input_shape.first=3", "model.input_shape is a list without named entries: give an index (0 to 1)"),
        ("seed.value=3", "seed is int 3: there is no 'value' under it to set"),
        ("+model.input_shape.x=3", "'+' adds a key to a mapping, but model.input_shape is a list; "
                                   "set the whole value with --set model.input_shape.x=..."),
    ],
)
def test_a_path_the_spec_does_not_have_is_named_with_what_is_there(spec_path, registry, override, expected):
    assert problems(spec_path, registry, override) == [f"--set {override}: {expected}"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("seed", "expected PATH=VALUE, such as stages.transfer.epochs=5"),
        ("=3", "the path before '=' is empty"),
        ("stages..epochs=3", "'stages..epochs' is not a path"),
        ("stages[x].epochs=3", "'stages[x].epochs' is not a path"),
        ("seed=[1", "the value is not valid YAML: expected ',' or ']'"),
        ("seed={a: 1, a: 2}", "the value at a: key 'a' appears twice"),
    ],
)
def test_a_malformed_set_is_an_error_saying_what_is_wrong(text, why):
    with pytest.raises(OverrideError) as caught:
        parse_override(text)
    assert str(caught.value).startswith(f"--set {text}: {why}")


def test_a_malformed_set_is_a_usage_error_on_the_command_line(spec_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["validate", spec_path, "--set", "stages.transfer.epochs"])
    assert caught.value.code == 2
    assert "argument --set: stages.transfer.epochs: expected PATH=VALUE" in capsys.readouterr().err


def test_validate_applies_the_overrides_to_every_file(write_spec, capsys):
    one = write_spec(TINY_GRU_SPEC, "one.yaml")
    other = write_spec(TINY_GRU_SPEC.replace("name: transfer", "name: finetune"), "other.yaml")
    assert main(["validate", one, other, "--set", "stages.transfer.epochs=2", "--set", "seed=4"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{one}: valid with 2 --set — extractor gru")
    missing = "--set stages.transfer.epochs=2: stages has no entry named 'transfer'"
    assert f"error: {other}: 1 problem\n  {missing}" in captured.err
    assert main(["validate", one, "--set", "stages.transfer.epochs=0"]) == 1
    assert "stages[1].epochs (--set stages.transfer.epochs=0): must be from 1" in capsys.readouterr().err


# -- what an override changes -------------------------------------------------------------------


def test_an_override_changes_the_fingerprints_like_an_edit(spec_path, write_spec, registry):
    plain = stage_fingerprints(loaded(spec_path, registry))
    epochs = stage_fingerprints(loaded(spec_path, registry, "stages.transfer.epochs=2"))
    text = TINY_GRU_SPEC.replace("epochs: 1\n    batch_size: 16\n    policy",
                                 "epochs: 2\n    batch_size: 16\n    policy")
    edited = stage_fingerprints(load_spec(write_spec(text, "edited.yaml"), registry))
    assert epochs[0] == plain[0] and epochs[1] != plain[1]
    assert epochs == edited
    seed = stage_fingerprints(loaded(spec_path, registry, "seed=4"))
    assert seed[0] != plain[0] and seed[1] != plain[1]


def test_the_python_api_takes_overrides(spec_path, tmp_path):
    assert graft.load_spec(spec_path, overrides=["stages.transfer.epochs=3"]).spec.stages[1].epochs == 3
    from_dict = graft.load_spec(yaml.safe_load(TINY_GRU_SPEC), overrides=["seed=9"], base_dir=tmp_path)
    assert from_dict.spec.seed == 9
    with pytest.raises(SpecError) as caught:
        graft.load_spec(yaml.safe_load(TINY_GRU_SPEC), overrides=["stages.transfer.epochs=-1"])
    assert caught.value.source == "spec (a dict)"
    assert caught.value.lines == [
        "stages[1].epochs (--set stages.transfer.epochs=-1): must be from 1 to 100,000, got -1"
    ]
    with pytest.raises(OverrideError):
        graft.load_spec(spec_path, overrides=["seed"])
    with pytest.raises(TypeError, match="list of strings"):
        graft.load_spec(spec_path, overrides="seed=3")
    with pytest.raises(TypeError, match="loaded spec"):
        graft.load_spec(graft.load_spec(spec_path), overrides=["seed=3"])


def test_local_workers_pass_the_overrides_on(spec_path):
    args = _parser().parse_args(["run", spec_path, "--local-workers", "2", "--set", "seed=4",
                                 "--set", "stages.transfer.policy.params.freeze=[gru_1, gru_2]"])
    forwarded = worker_arguments(args, "out")
    again = _parser().parse_args(["run", *forwarded])
    assert again.overrides == args.overrides and again.out == "out" and again.config == spec_path


# -- the run folder describes itself ------------------------------------------------------------


def test_the_resolved_spec_loads_as_the_same_spec(spec_path, registry, tmp_path):
    spec_file = loaded(spec_path, registry, "stages.transfer.epochs=4", "stages.transfer.policy.params.freeze=[gru_1]",
                       "stages.transfer.policy.params.train=[gru_2, gru_3, level, trend]")
    text = resolved_text(spec_file)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header[1] == f"# from: {os.path.abspath(spec_path)}"
    assert header[2] == ("# overrides: --set stages.transfer.epochs=4 "
                         "--set 'stages.transfer.policy.params.freeze=[gru_1]' "
                         "--set 'stages.transfer.policy.params.train=[gru_2, gru_3, level, trend]'")
    assert header[3] == f"# relative paths in it are relative to {tmp_path}"
    copy = tmp_path / "copy.yaml"
    copy.write_text(text)
    assert load_spec(str(copy), registry).spec == spec_file.spec


def test_the_resolved_spec_is_replaced_only_by_another_and_the_old_one_kept(spec_path, registry, tmp_path):
    run_dir = RunDir(str(tmp_path / "out"))
    os.makedirs(run_dir.path)
    path = write_resolved_spec(run_dir, loaded(spec_path, registry))
    before = os.stat(path)
    assert write_resolved_spec(run_dir, loaded(spec_path, registry)) == path
    assert os.stat(path).st_ino == before.st_ino  # the same text: left as it is
    with open(path + ".partial", "w") as handle:  # not ours to delete
        handle.write("someone's file")
    write_resolved_spec(run_dir, loaded(spec_path, registry, "seed=4"))
    names = sorted(os.listdir(run_dir.path))
    assert names[0] == RESOLVED and len(names) == 3
    assert names[1].startswith(f"{RESOLVED}.partial.replaced-") and names[2].startswith(f"{RESOLVED}.replaced-")
    assert "seed: 4" in (tmp_path / "out" / RESOLVED).read_text()
    assert "seed: 3" in (tmp_path / "out" / names[2]).read_text()


def test_reports_of_earlier_versions_still_load(tmp_path):
    from tests.records.test_rundir import report

    data = report("pretrain", "a" * 16).to_json()
    data["versions"] = {"keras": "3.10.0", "tensorflow": "2.19.0"}  # what report.json held before
    assert StageReport.from_json(data).versions == Versions(tensorflow="2.19.0", keras="3.10.0")
    data["versions"] = {"keras": "3.10.0", "tensorflow": "2.19.0", "keras_graft": "0.1.0",
                        "plugins": {"graft-gru": "0.1.0"}}
    assert StageReport.from_json(data).versions.plugins == {"graft-gru": "0.1.0"}
    data["versions"]["plugins"] = ["graft-gru"]
    with pytest.raises(ValueError, match="versions.plugins"):
        StageReport.from_json(data)


# -- with TensorFlow ------------------------------------------------------------------------------


@pytest.mark.slow
def test_plan_takes_the_overrides(spec_path, capsys):
    assert main(["plan", spec_path, "--format", "json", "--set", "stages.transfer.policy.params.freeze=[gru_1]",
                 "--set", "stages.transfer.policy.params.train=[gru_2, gru_3, level, trend]"]) == 0
    transfer = json.loads(capsys.readouterr().out)["stages"][1]
    frozen = [layer["name"] for layer in transfer["layers"] if not layer["trainable"] and layer["params"]]
    assert frozen == ["gru_1"]


@pytest.mark.slow
def test_run_with_set(spec_path, tmp_path, capsys):
    """--set epochs and seed: the resolved spec, the versions and the epochs in the run folder; resume tells
    the overrides apart."""
    import keras
    import tensorflow as tf

    out = tmp_path / "out"
    overrides = ["--set", "stages.transfer.epochs=2", "--set", "seed=5"]
    assert main(["run", spec_path, "--out", str(out), *overrides]) == 0
    resolved = (out / RESOLVED).read_text()
    assert "# overrides: --set stages.transfer.epochs=2 --set seed=5\n" in resolved
    assert graft.load_spec(str(out / RESOLVED)).spec == graft.load_spec(spec_path, overrides=overrides[1::2]).spec
    transfer = json.loads((out / "transfer" / "report.json").read_text())
    assert transfer["epochs_run"] == 2
    assert len(json.loads((out / "transfer" / "history.json").read_text())["loss"]) == 2
    assert json.loads((out / "pretrain" / "report.json").read_text())["epochs_run"] == 1
    commit = source_commit()  # run from a git checkout (an editable install): its commit; installed: none
    assert transfer["versions"] == {
        "tensorflow": tf.__version__, "keras": keras.__version__, "backend": "tensorflow",
        "keras_graft": graft.__version__,
        **({"commit": commit} if commit is not None else {}),
        "plugins": {"graft-gru": importlib.metadata.version("graft-gru")},  # dense, layers, synthetic: built in
    }
    assert transfer["seed"] == 5 + 1 and transfer["spec_file"] == spec_path  # seed=5 plus the stage index
    capsys.readouterr()

    # resume: another epoch count makes the finished stage one of a different spec; the same overrides keep both
    names = ["pretrain", "transfer"]
    other = stage_fingerprints(graft.load_spec(spec_path, overrides=["stages.transfer.epochs=1", "seed=5"]))
    with pytest.raises(RunError, match=r"out/transfer was run from a different spec"):
        first_stage_to_run(RunDir(str(out)), names, other, None)
    assert main(["run", spec_path, "--out", str(out), *overrides]) == 0
    assert capsys.readouterr().out.count("finished earlier, kept") == 2
    assert (out / RESOLVED).read_text() == resolved
    assert not [name for name in os.listdir(out) if ".replaced-" in name]  # nothing was moved aside
