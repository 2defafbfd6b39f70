"""``graft schema``: the JSON Schema of the spec for editors, made from the attrs classes.

The schema must accept every spec ``graft validate`` accepts (a false alarm in an
editor is worse than a missed one) and refuse the usual mistakes.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
import sys

import attrs
import pytest
import yaml

import graft
import graft.validators  # used at import time below: not loaded by "import graft" alone

jsonschema = pytest.importorskip("jsonschema")

from graft.commands.cli import main  # noqa: E402
from graft.plugins.registry import Registry  # noqa: E402
from graft.spec.schema import spec_schema  # noqa: E402
from graft.spec.specfile import parse_spec  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
GRU_SPEC = ROOT / "configs" / "gru_transfer.yaml"


@pytest.fixture(scope="module")
def schema(registry):
    return spec_schema(registry)


@pytest.fixture(scope="module")
def validator(schema):
    return jsonschema.Draft202012Validator(schema)


def errors(validator, data) -> list[str]:
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(data)]


def plugins_named(data) -> list[tuple[str, str]]:
    """``(kind, name)`` of every plugin a spec names."""
    named = [("extractor", data["model"]["extractor"]["plugin"])]
    named += [("head", head["plugin"]) for head in data["model"]["heads"].values()]
    for stage in data["stages"]:
        named.append(("data source", stage["data"]["source"]))
        named += [("policy", stage["policy"].get("plugin", "continue"))] if "policy" in stage else []
        named += [("head", head["plugin"]) for head in (stage.get("heads") or {}).values()]
    return named


def test_schema_is_valid_draft_2020_12(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    json.dumps(schema)  # plain JSON throughout


@pytest.mark.parametrize("config", CONFIGS, ids=[config.name for config in CONFIGS])
def test_every_config_is_valid(config, validator, registry):
    data = yaml.safe_load(config.read_text())
    missing = [(kind, name) for kind, name in plugins_named(data) if name not in registry.names(kind)]
    if missing:
        pytest.skip(f"plugins not installed here: {missing}")
    assert errors(validator, data) == []


@pytest.fixture
def gru_spec():
    return yaml.safe_load(GRU_SPEC.read_text())


def mistaken(data, change):
    data = copy.deepcopy(data)
    change(data)
    return data


MISTAKES = {
    "unknown top-level key": lambda d: d.update(sead=3),
    "epochs as a string": lambda d: d["stages"][0].update(epochs="3"),
    "epochs of 0": lambda d: d["stages"][0].update(epochs=0),
    "negative batch_size": lambda d: d["stages"][0].update(batch_size=-1),
    "unknown loss": lambda d: d["model"]["heads"]["level"].update(loss="mean_squared_errror"),
    "unknown metric": lambda d: d["model"]["heads"]["level"].update(metrics=["maeee"]),
    "unknown optimizer": lambda d: d["stages"][0].update(optimizer={"name": "adamm"}),
    "option of another optimizer": lambda d: d["stages"][0].update(
        optimizer={"name": "sgd", "options": {"beta_1": 0.9}}
    ),
    "unknown extractor plugin": lambda d: d["model"]["extractor"].update(plugin="lstm"),
    "unknown data source": lambda d: d["stages"][0]["data"].update(source="csv"),
    "unknown policy": lambda d: d["stages"][0].update(policy={"plugin": "freeze_all"}),
    "unknown strategy": lambda d: d.update(distribute={"strategy": "tpu"}),
    "gru units as a string": lambda d: d["model"]["extractor"]["params"]["layers"][0].update(units="16"),
    "gru units of 0": lambda d: d["model"]["extractor"]["params"]["layers"][0].update(units=0),
    "unknown key in gru params": lambda d: d["model"]["extractor"]["params"].update(unit=16),
    "unknown key in a gru layer": lambda d: d["model"]["extractor"]["params"]["layers"][0].update(size=16),
    "gru without params": lambda d: d["model"]["extractor"].pop("params"),
    "dense params on the gru": lambda d: d["model"]["extractor"].update(params={"units": 3}),
    "unknown augmentation": lambda d: d["stages"][0]["data"].update(augment=[{"blur": 0.1}]),
    "two augmentations in one entry": lambda d: d["stages"][0]["data"].update(augment=[{"noise": 0.1, "zoom": 0.1}]),
    "a bad stage name": lambda d: d["stages"][0].update(name="pre train"),
    "an empty stage list": lambda d: d.update(stages=[]),
    "a float in input_shape": lambda d: d["model"].update(input_shape=[50, 8.5]),
    "an unknown checkpoint mode": lambda d: d["stages"][0].update(callbacks={"checkpoint": {"mode": "maximum"}}),
    "a negative histogram_freq": lambda d: d["stages"][0].update(callbacks={"tensorboard": {"histogram_freq": -1}}),
    "a tensorboard option not offered": lambda d: d["stages"][0].update(
        callbacks={"tensorboard": {"write_images": True}}
    ),
    "update_freq as a word other than epoch": lambda d: d["stages"][0].update(
        callbacks={"tensorboard": {"update_freq": "batch"}}
    ),
    "a csv separator not offered": lambda d: d["stages"][0].update(callbacks={"csv_logger": {"separator": "|"}}),
    "csv_logger as true": lambda d: d["stages"][0].update(callbacks={"csv_logger": True}),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_mistakes_are_refused_by_schema_and_graft(name, gru_spec, validator, registry, tmp_path):
    data = mistaken(gru_spec, MISTAKES[name])
    assert errors(validator, data), f"the schema accepts: {name}"
    with pytest.raises(graft.SpecError):  # the schema refuses nothing that graft accepts
        parse_spec(yaml.safe_dump(data), str(tmp_path / "spec.yaml"), registry)


VALID_VARIANTS = {
    "an integer learning rate": lambda d: d["stages"][0].update(optimizer={"name": "sgd", "learning_rate": 1}),
    "optimizer options": lambda d: d["stages"][0].update(
        optimizer={"name": "sgd", "options": {"momentum": 0.9, "nesterov": True, "clipnorm": None}}
    ),
    "options of the default optimizer (adam)": lambda d: d["stages"][0].update(optimizer={"options": {"beta_1": 0.8}}),
    "a policy without a plugin (continue)": lambda d: d["stages"][0].update(policy={}),
    "continue with null params": lambda d: d["stages"][0].update(policy={"plugin": "continue", "params": None}),
    "a policy whose params are all optional, without params": lambda d: d["stages"][0].update(
        policy={"plugin": "layers"}
    ),
    "null params for all-optional params": lambda d: d["stages"][0].update(
        policy={"plugin": "progressive", "params": None}
    ),
    "a gru layer's null dropout": lambda d: d["model"]["extractor"]["params"]["layers"][0].update(dropout=None),
    "noise augmentation": lambda d: d["stages"][0]["data"].update(augment=[{"noise": 0.05}]),
    "callbacks": lambda d: d["stages"][0].update(
        callbacks={"early_stopping": {"patience": 0}, "reduce_lr": {"factor": 0.5, "min_lr": 0}}
    ),
    "tensorboard, csv_logger and checkpoint with their defaults": lambda d: d["stages"][0].update(
        callbacks={"tensorboard": {}, "csv_logger": {}, "checkpoint": {}}
    ),
    "tensorboard, csv_logger and checkpoint with options": lambda d: d["stages"][0].update(
        callbacks={
            "tensorboard": {"histogram_freq": 2, "update_freq": 10, "write_graph": False},
            "csv_logger": {"separator": ";"},
            "checkpoint": {"monitor": "val_level_loss", "mode": "min"},
        }
    ),
    "tensorboard updated every epoch": lambda d: d["stages"][0].update(
        callbacks={"tensorboard": {"update_freq": "epoch"}}
    ),
    "null optional fields": lambda d: d.update(distribute=None) or d["stages"][0].update(init=None, heads=None),
    "mirrored": lambda d: d.update(distribute={"strategy": "mirrored"}),
}


@pytest.mark.parametrize("name", VALID_VARIANTS)
def test_valid_variants_are_accepted_by_schema_and_graft(name, gru_spec, validator, registry, tmp_path):
    data = mistaken(gru_spec, VALID_VARIANTS[name])
    parse_spec(yaml.safe_dump(data), str(tmp_path / "spec.yaml"), registry)  # graft accepts it
    assert errors(validator, data) == []


def test_gru_params_are_chosen_by_the_plugin_name(schema):
    branches = schema["$defs"]["ExtractorRef"]["allOf"]
    gru = next(branch for branch in branches if branch["if"]["properties"]["plugin"] == {"const": "gru"})
    assert gru["then"]["properties"]["params"] == {"$ref": "#/$defs/graft_gru.GRUParams"}
    layer = schema["$defs"]["graft_gru.GRULayer"]
    assert layer["properties"]["units"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert layer["additionalProperties"] is False
    assert layer["description"] == "One GRU: its layer name, size and optional own dropout."


def test_enums_come_from_the_spec(schema):
    from graft.spec import records as spec

    defs = schema["$defs"]
    assert defs["HeadSpec"]["properties"]["loss"]["enum"] == list(spec.LOSSES)
    assert defs["HeadSpec"]["properties"]["metrics"]["items"]["enum"] == list(spec.METRICS)
    assert defs["Optimizer"]["properties"]["name"]["enum"] == list(spec.OPTIMIZERS)
    assert defs["Distribute"]["properties"]["strategy"]["enum"] == list(spec.STRATEGIES)


def test_plugin_names_are_the_installed_ones(schema, registry):
    defs = schema["$defs"]
    assert defs["ExtractorRef"]["properties"]["plugin"]["enum"] == registry.names("extractor")
    assert defs["HeadSpec"]["properties"]["plugin"]["enum"] == registry.names("head")
    assert defs["PolicyRef"]["properties"]["plugin"]["enum"] == registry.names("policy")
    assert defs["DataRef"]["properties"]["source"]["enum"] == registry.names("data source")


@attrs.frozen
class ProbeParams:
    """The probe's params."""

    width: int = attrs.field(validator=graft.validators.positive)
    mode: str = attrs.field(default="a", validator=graft.validators.one_of(["a", "b"]))


class Probe:
    @graft.hookimpl
    def build_extractor(self, params: ProbeParams, input_shape):
        raise AssertionError("not called")


class BrokenProbe:
    @graft.hookimpl
    def build_extractor(self, params: NoSuchParams, input_shape):  # noqa: F821 - an annotation that does not resolve
        raise AssertionError("not called")


def test_registered_plugin_params_are_included():
    registry = Registry()
    registry.register(Probe(), "schema_probe")
    schema = spec_schema(registry)
    defs = schema["$defs"]
    (name,) = [key for key in defs if key.endswith("ProbeParams")]
    assert defs[name]["properties"] == {
        "width": {"type": "integer", "maximum": 2**63 - 1, "exclusiveMinimum": 0},  # 64 bits, as validate
        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
    }
    assert defs[name]["required"] == ["width"]
    assert defs["ExtractorRef"]["properties"]["plugin"]["enum"] == ["schema_probe"]


def test_a_plugin_whose_params_do_not_resolve_leaves_its_params_open():
    registry = Registry()
    registry.register(BrokenProbe(), "broken_probe")
    schema = spec_schema(registry)
    (branch,) = schema["$defs"]["ExtractorRef"]["allOf"]
    assert branch["then"] == {}


def test_graft_schema_prints_and_writes_the_schema(tmp_path, capsys, schema):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(printed)
    output = tmp_path / "spec.schema.json"
    assert main(["schema", "--output", str(output)]) == 0
    assert json.loads(output.read_text()) == printed
    assert main(["schema", "--output", str(tmp_path / "missing" / "x.json")]) == 1
    assert "cannot write the schema" in capsys.readouterr().err


def test_graft_schema_does_not_import_tensorflow():
    code = (
        "import sys; from graft.commands.cli import main; rc = main(['schema', '--output', sys.argv[1]]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
        "print('tensorflow' in sys.modules, heavy); sys.exit(rc)"
    )
    env = {key: value for key, value in os.environ.items() if key != "GRAFT_PLUGINS"}  # every installed plugin
    result = subprocess.run(
        [sys.executable, "-c", code, os.devnull], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False []"
