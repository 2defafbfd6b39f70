"""The YAML spec layer: ``load_spec``/``parse_spec`` with the real installed plugins.

Assertions are on the rendered lines of ``SpecError`` (``path (line N): message``),
with line numbers computed from the YAML text each test writes.
"""

from __future__ import annotations

import textwrap

import pytest
import yaml

from graft.base.problems import SpecError, SpecProblem
from graft.builtins.policies import LayersParams
from graft.spec.convert import load_yaml
from graft.spec.specfile import load_spec, parse_spec
from tests.conftest import TINY_GRU_SPEC

LOSSES = (
    "mse, mae, mean_squared_error, mean_absolute_error, huber, binary_crossentropy, "
    "categorical_crossentropy, sparse_categorical_crossentropy"
)
STAGE_KEYS = "name, data, epochs, batch_size, init, policy, optimizer, heads, callbacks, seed"


def edit(text: str, old: str, new: str, occurrence: int = 1) -> str:
    """``text`` with the ``occurrence``-th ``old`` replaced by ``new`` (which must exist)."""
    start = -1
    for _ in range(occurrence):
        start = text.find(old, start + 1)
        assert start >= 0, f"{old!r} occurs fewer than {occurrence} times"
    return text[:start] + new + text[start + len(old):]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based number of the line holding the ``occurrence``-th ``needle``."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} is on fewer than {occurrence} lines"
    return hits[occurrence - 1]


@pytest.fixture
def problems(write_spec, registry):
    """Load YAML text that must fail; return the rendered problem lines."""

    def run(text: str) -> list[str]:
        path = write_spec(text)
        with pytest.raises(SpecError) as caught:
            load_spec(path, registry)
        assert caught.value.source == path
        return caught.value.lines

    return run


# -- the baseline ------------------------------------------------------------


def test_tiny_spec_loads_with_plugin_params_structured(load):
    spec_file = load(TINY_GRU_SPEC)
    spec = spec_file.spec

    assert [layer.name for layer in spec.model.extractor.params.layers] == ["gru_1", "gru_2", "gru_3"]
    assert type(spec.model.extractor.params).__name__ == "GRUParams"
    assert spec.model.heads["trend"].params.activation == "softmax"
    assert isinstance(spec.stages[1].policy.params, LayersParams)
    assert spec.stages[1].policy.params.freeze == ["gru_1", "gru_2"]
    assert spec.stages[0].policy.plugin == "continue" and spec.stages[0].policy.params is None
    assert spec_file.document.line_of(("stages", 1, "policy", "params", "freeze", 0)) == line_of(
        TINY_GRU_SPEC, "freeze: [gru_1, gru_2]"
    )


def test_explicit_policy_without_params_argument_loads(load):
    # Continue.transfer_policy takes no params argument at all
    text = edit(TINY_GRU_SPEC, "    epochs: 1\n", "    epochs: 1\n    policy: {plugin: continue}\n")
    assert load(text).spec.stages[0].policy.plugin == "continue"


# -- structural problems -------------------------------------------------------


def test_wrong_type(problems):
    text = edit(TINY_GRU_SPEC, "epochs: 1", 'epochs: "3"')
    assert problems(text) == [f"stages[0].epochs (line {line_of(text, 'epochs: ')}): expected an integer, got str '3'"]


@pytest.mark.parametrize(
    ("value", "got"),
    [("true", "bool True"), ("1.5", "float 1.5"), ("[1]", "list"), ("", "null")],
)
def test_no_coercion_to_integer(problems, value, got):
    text = edit(TINY_GRU_SPEC, "epochs: 1", f"epochs: {value}".rstrip(), occurrence=2)
    assert problems(text) == [
        f"stages[1].epochs (line {line_of(text, 'epochs:', 2)}): expected an integer, got {got}"
    ]


def test_a_string_is_not_a_list(problems):
    text = edit(TINY_GRU_SPEC, "freeze: [gru_1, gru_2]", "freeze: gru_1")
    assert problems(text) == [
        f"stages[1].policy.params.freeze (line {line_of(text, 'freeze:')}): expected a list, got str 'gru_1'"
    ]


def test_a_list_is_not_a_mapping(problems):
    text = edit(TINY_GRU_SPEC, "targets: {level: level, trend: trend}", "targets: [level, trend]")
    assert problems(text) == [
        f"stages[0].data.params.targets (line {line_of(text, 'targets: [')}): expected a mapping, got list"
    ]


def test_unknown_key_with_did_you_mean(problems):
    text = edit(TINY_GRU_SPEC, "    batch_size: 16\n", "    batch_size: 16\n    epoch: 2\n")
    assert problems(text) == [
        f"stages[0].epoch (line {line_of(text, 'epoch: 2')}): unknown key 'epoch'; "
        f"expected one of: {STAGE_KEYS} — did you mean 'epochs'?"
    ]


def test_misspelt_required_key_reports_both_the_missing_and_the_unknown_key(problems):
    text = edit(TINY_GRU_SPEC, "epochs: 1", "epoch: 1")
    assert problems(text) == [
        f"stages[0].epochs (line {line_of(text, '- name: pretrain')}): required key missing",
        f"stages[0].epoch (line {line_of(text, 'epoch: 1')}): unknown key 'epoch'; "
        f"expected one of: {STAGE_KEYS} — did you mean 'epochs'?",
    ]


def test_missing_required_key(problems):
    text = edit(TINY_GRU_SPEC, "{plugin: dense, loss: mse, params: {units: 1}}", "{plugin: dense, params: {units: 1}}")
    assert problems(text) == [f"model.heads.level.loss (line {line_of(text, 'level: {plugin')}): required key missing"]


def test_unknown_plugin_name_with_did_you_mean(problems, registry):
    text = edit(TINY_GRU_SPEC, "plugin: gru", "plugin: gur")
    extractors = ", ".join(registry.names("extractor"))
    assert "gru" in extractors
    assert problems(text) == [
        f"model.extractor.plugin (line {line_of(text, 'plugin: gur')}): unknown extractor 'gur'; "
        f"installed extractor plugins: {extractors} — did you mean 'gru'?"
    ]


def test_plugin_of_the_wrong_kind(problems, registry):
    text = edit(TINY_GRU_SPEC, "source: synthetic", "source: dense")
    sources = ", ".join(registry.names("data source"))
    assert "npz, " in sources and "synthetic" in sources
    assert problems(text) == [
        f"stages[0].data.source (line {line_of(text, 'source: dense')}): 'dense' is a head plugin, "
        f"not a data source; installed data source plugins: {sources}"
    ]


def test_bad_plugin_params(problems):
    text = edit(TINY_GRU_SPEC, "{name: gru_1, units: 4}", "{name: gru_1, units: -1}")
    assert problems(text) == [
        f"model.extractor.params.layers[0].units (line {line_of(text, 'units: -1')}): "
        "must be from 1 to 2,147,483,647, got -1"
    ]


def test_unknown_plugin_param(problems):
    text = edit(TINY_GRU_SPEC, "params: {units: 1}", "params: {units: 1, activaton: relu}")
    assert problems(text) == [
        f"model.heads.level.params.activaton (line {line_of(text, 'activaton')}): unknown key 'activaton'; "
        "expected one of: units, activation, hidden, hidden_activation, dropout — did you mean 'activation'?"
    ]


def test_params_for_a_plugin_that_takes_none(problems):
    text = edit(TINY_GRU_SPEC, "    epochs: 1\n", "    epochs: 1\n    policy: {plugin: continue, params: {x: 1}}\n")
    assert problems(text) == [
        f"stages[0].policy.params (line {line_of(text, 'plugin: continue')}): policy plugin 'continue' takes no params"
    ]


def test_invalid_loss_name(problems):
    text = edit(TINY_GRU_SPEC, "loss: mse", "loss: mes")
    assert problems(text) == [
        f"model.heads.level.loss (line {line_of(text, 'loss: mes')}): "
        f"'mes' is not one of: {LOSSES} — did you mean 'mse'?"
    ]


def test_invalid_metric_is_reported_at_its_index(problems):
    text = edit(TINY_GRU_SPEC, "metrics: [accuracy]", "metrics: [accuracy, acuracy]")
    lines = problems(text)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"model.heads.trend.metrics[1] (line {line_of(text, 'acuracy')}): 'acuracy' is not one of: "
    )
    assert lines[0].endswith(" — did you mean 'accuracy'?")


def test_not_a_mapping_at_the_top(problems):
    assert problems("- model\n- stages\n") == [
        "(top level) (line 1): expected a mapping with keys model, stages, seed, distribute, got list"
    ]


def test_unreadable_file(registry, tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(str(tmp_path / "absent.yaml"), registry)
    assert caught.value.lines == ["cannot read the spec: No such file or directory"]


# -- YAML-level problems ---------------------------------------------------------


def test_duplicate_yaml_keys(problems):
    text = edit(TINY_GRU_SPEC, "    batch_size: 16\n", "    batch_size: 16\n    batch_size: 8\n")
    first, second = line_of(text, "batch_size: 16"), line_of(text, "batch_size: 8")
    assert second == first + 1
    assert problems(text) == [
        f"stages[0].batch_size (line {second}): key 'batch_size' appears twice (lines {first} and {second})"
    ]


def test_duplicate_yaml_keys_are_all_reported(problems):
    text = "seed: 1\nseed: 2\nmodel: {}\nmodel: {}\n"
    assert problems(text) == [
        "seed (line 2): key 'seed' appears twice (lines 1 and 2)",
        "model (line 4): key 'model' appears twice (lines 3 and 4)",
    ]


def test_invalid_yaml_syntax_gives_line_and_column(problems):
    text = edit(TINY_GRU_SPEC, "input_shape: [12, 3]", "input_shape: [12, 3")
    line = line_of(text, "extractor:")  # the scanner notices on the next line
    column = text.splitlines()[line - 1].index("extractor:") + len("extractor") + 1
    assert problems(text) == [f"line {line}, column {column}: not valid YAML: expected ',' or ']', but got ':'"]


def test_tab_indentation_is_a_yaml_problem(problems):
    lines = problems("seed: 1\nmodel:\n\tinput_shape: [1]\n")
    assert len(lines) == 1
    assert lines[0].startswith("line 3, column 1: not valid YAML: ")


# -- cross-field checks ------------------------------------------------------------


def test_init_stage_referencing_itself(problems):
    text = edit(TINY_GRU_SPEC, "init: {stage: pretrain}", "init: {stage: transfer}")
    assert problems(text) == [
        f"stages[1].init.stage (line {line_of(text, 'init: {stage')}): stage 'transfer' cannot start from itself"
    ]


def test_init_stage_referencing_a_later_stage(problems):
    text = edit(TINY_GRU_SPEC, "    epochs: 1\n", "    epochs: 1\n    init: {stage: transfer}\n")
    assert problems(text) == [
        f"stages[0].init.stage (line {line_of(text, 'init: {stage: transfer}')}): no earlier stage 'transfer'; "
        "earlier stages: (none)"
    ]


def test_init_stage_unknown_with_did_you_mean(problems):
    text = edit(TINY_GRU_SPEC, "init: {stage: pretrain}", "init: {stage: pretrian}")
    assert problems(text) == [
        f"stages[1].init.stage (line {line_of(text, 'pretrian')}): no earlier stage 'pretrian'; "
        "earlier stages: pretrain — did you mean 'pretrain'?"
    ]


def test_init_needs_exactly_one_source(problems):
    text = edit(TINY_GRU_SPEC, "init: {stage: pretrain}", "init: {}")
    assert problems(text) == [
        f"stages[1].init (line {line_of(text, 'init: {}')}): give exactly one of 'stage' (an earlier stage "
        "of this spec), 'weights' (a weights.graft.npz file) or 'model' (a Keras .keras or .h5 file)"
    ]


def test_duplicate_stage_names(problems):
    text = edit(TINY_GRU_SPEC, "- name: transfer", "- name: pretrain")
    assert problems(text) == [
        f"stages[1].name (line {line_of(text, '- name: pretrain', 2)}): stage name 'pretrain' is used by stages[0] too"
    ]


def test_callbacks_monitor_not_logged_suggests_a_logged_name(problems):
    text = edit(
        TINY_GRU_SPEC, "    policy:\n", "    callbacks:\n      early_stopping: {monitor: val_los}\n    policy:\n"
    )
    lines = problems(text)
    assert len(lines) == 1
    prefix = f"stages[1].callbacks.early_stopping.monitor (line {line_of(text, 'monitor: val_los')}): "
    assert lines[0].startswith(prefix + "'val_los' is not logged by this stage; choose one of: loss, ")
    assert "val_trend_accuracy" in lines[0]
    assert lines[0].endswith(" — did you mean 'val_loss'?")


def test_callbacks_monitor_that_is_logged_passes(load):
    text = edit(
        TINY_GRU_SPEC,
        "    policy:\n",
        "    callbacks:\n      early_stopping: {monitor: val_trend_accuracy}\n      reduce_lr: {monitor: loss}\n"
        "    policy:\n",
    )
    callbacks = load(text).spec.stages[1].callbacks
    assert (callbacks.early_stopping.monitor, callbacks.reduce_lr.monitor) == ("val_trend_accuracy", "loss")


def test_init_weights_file_missing(problems, tmp_path):
    text = edit(TINY_GRU_SPEC, "init: {stage: pretrain}", "init: {weights: models/pre.graft.npz}")
    assert problems(text) == [
        f"stages[1].init.weights (line {line_of(text, 'init: {weights')}): weights file not found: "
        f"{tmp_path / 'models' / 'pre.graft.npz'}"
    ]


def test_init_weights_file_present_is_resolved_next_to_the_spec(load, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "pre.graft.npz").write_bytes(b"")
    text = edit(TINY_GRU_SPEC, "init: {stage: pretrain}", "init: {weights: models/pre.graft.npz}")
    spec_file = load(text)
    assert spec_file.resolve(spec_file.spec.stages[1].init.weights) == str(tmp_path / "models" / "pre.graft.npz")


# -- several problems at once --------------------------------------------------------


def test_structural_problems_are_reported_together(write_spec, registry):
    text = TINY_GRU_SPEC
    text = edit(text, "{name: gru_2, units: 4}", "{name: gru_2, units: 0}")
    text = edit(text, "loss: mse", "loss: mes")
    text = edit(text, "epochs: 1", 'epochs: "3"')
    text = edit(text, "batch_size: 16", "batch_size: 16\n    optimiser: {name: adam}")
    path = write_spec(text)

    with pytest.raises(SpecError) as caught:
        load_spec(path, registry)

    lines = caught.value.lines
    assert len(lines) == 4, lines
    assert lines == [
        f"model.extractor.params.layers[1].units (line {line_of(text, 'units: 0')}): "
        "must be from 1 to 2,147,483,647, got 0",
        f"model.heads.level.loss (line {line_of(text, 'loss: mes')}): "
        f"'mes' is not one of: {LOSSES} — did you mean 'mse'?",
        f"stages[0].epochs (line {line_of(text, 'epochs: ')}): expected an integer, got str '3'",
        f"stages[0].optimiser (line {line_of(text, 'optimiser')}): unknown key 'optimiser'; "
        f"expected one of: {STAGE_KEYS} — did you mean 'optimizer'?",
    ]
    assert str(caught.value).splitlines()[0] == f"{path}: 4 problems"
    assert str(caught.value).splitlines()[1] == "  " + lines[0]


def test_cross_field_problems_are_reported_together(problems, tmp_path):
    text = edit(TINY_GRU_SPEC, "- name: transfer", "- name: pretrain")
    text = edit(text, "init: {stage: pretrain}", "init: {weights: nowhere.npz}")
    text = edit(text, "    policy:\n", "    callbacks:\n      reduce_lr: {monitor: accuracy}\n    policy:\n")
    lines = problems(text)
    assert len(lines) == 3, lines
    assert lines[0] == (
        f"stages[1].name (line {line_of(text, '- name: pretrain', 2)}): stage name 'pretrain' is used by stages[0] too"
    )
    assert lines[1] == (
        f"stages[1].init.weights (line {line_of(text, 'nowhere.npz')}): "
        f"weights file not found: {tmp_path / 'nowhere.npz'}"
    )
    assert lines[2].startswith(
        f"stages[1].callbacks.reduce_lr.monitor (line {line_of(text, 'monitor: accuracy')}): 'accuracy' is not logged"
    )


# -- stage heads override ---------------------------------------------------------------

STAGE_HEADS = """\
    heads:
      level: {plugin: dense, loss: mae, params: {units: 1, hidden: [8]}}
"""


def test_stage_heads_override_the_model_heads(load):
    text = edit(TINY_GRU_SPEC, "    policy:\n", STAGE_HEADS + "    policy:\n")
    spec = load(text).spec

    assert list(spec.heads_of(spec.stages[0])) == ["level", "trend"]
    transfer_heads = spec.heads_of(spec.stages[1])
    assert list(transfer_heads) == ["level"]
    assert transfer_heads["level"].loss == "mae"
    assert transfer_heads["level"].params.hidden == [8]


def test_stage_heads_are_checked_with_their_path(problems):
    text = edit(TINY_GRU_SPEC, "    policy:\n", STAGE_HEADS.replace("units: 1,", "units: x,") + "    policy:\n")
    assert problems(text) == [
        f"stages[1].heads.level.params.units (line {line_of(text, 'units: x')}): expected an integer, got str 'x'"
    ]


def test_stage_heads_decide_what_a_monitor_may_name(problems):
    # trend is a model head but not one of this stage's heads
    text = edit(
        TINY_GRU_SPEC,
        "    policy:\n",
        STAGE_HEADS + "    callbacks:\n      early_stopping: {monitor: val_trend_loss}\n    policy:\n",
    )
    lines = problems(text)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"stages[1].callbacks.early_stopping.monitor (line {line_of(text, 'val_trend_loss')}): "
        "'val_trend_loss' is not logged by this stage"
    )


def test_stage_head_names_must_be_layer_names(problems):
    text = edit(TINY_GRU_SPEC, "    policy:\n", STAGE_HEADS.replace("level:", "level-2:") + "    policy:\n")
    assert problems(text) == [
        f"stages[1].heads.level-2 (line {line_of(text, 'level-2:')}): head name 'level-2' is not valid: "
        "use letters, digits and _ (it names a Keras layer)"
    ]


# -- load_yaml: safe_load semantics, anchors and merge keys ----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object:os.system {}\n",
        "a: !!python/object/apply:os.getcwd []\n",
        "a: !!python/name:os.system ''\n",
        "a: !custom {b: 1}\n",
    ],
)
def test_load_yaml_rejects_tags_that_safe_load_rejects(text):
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(text)
    with pytest.raises(yaml.constructor.ConstructorError) as caught:
        load_yaml(text)
    assert "could not determine a constructor for the tag" in str(caught.value)


def test_python_tag_in_a_spec_is_a_rendered_yaml_problem(problems):
    text = edit(TINY_GRU_SPEC, "seed: 3", "seed: !!python/object/apply:os.getcwd []")
    assert problems(text) == [
        "line 1, column 7: not valid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.getcwd'"
    ]


@pytest.mark.parametrize(
    "text",
    [
        TINY_GRU_SPEC,
        "a: &x {b: 1, c: [1, 2]}\nd: *x\ne: {<<: *x, c: 3}\n",
        "base: &b {p: 1, q: 2}\nother: &o {q: 5, r: 6}\nboth: {<<: [*b, *o], s: 7}\n",
        "s: !!set {a, b}\no: !!omap [{x: 1}, {y: 2}]\nt: 2001-12-14\nn: ~\nf: 1.5e+3\ni: 0x10\nb: !!binary aGk=\n",
        "k: !!str 12\nl: [yes, no, on, off]\n",
    ],
)
def test_load_yaml_gives_what_safe_load_gives(text):
    assert load_yaml(text).data == yaml.safe_load(text)


@pytest.mark.parametrize(("text", "number"), [("1e3", 1000.0), ("3e-3", 0.003), ("-2E+2", -200.0), (".5e1", 5.0)])
def test_load_yaml_reads_yaml_1_2_floats_without_a_dot(text, number):
    # YAML 1.1 (safe_load) reads these as strings; a learning rate of 3e-3 must be a number
    assert yaml.safe_load(f"x: {text}") == {"x": text}
    assert load_yaml(f"x: {text}").data == {"x": number}


def test_load_yaml_anchor_and_merge_key_lines():
    text = textwrap.dedent(
        """\
        base: &b
          epochs: 1
          batch_size: 16
        stage:
          <<: *b
          epochs: 5
        """
    )
    document = load_yaml(text)
    assert document.data["stage"] == {"epochs": 5, "batch_size": 16}
    assert document.line_of(("stage", "epochs")) == 6  # the override, not the anchor
    assert document.line_of(("stage", "batch_size")) == 3  # where the merged value is written
    assert document.line_of(("stage", "epochs", "deeper", 0)) == 6  # nearest ancestor


def test_load_yaml_lists_every_duplicate_key():
    assert load_yaml("a: 1\nb: {c: 1, c: 2}\na: 3\n").duplicates == [
        (("a",), "key 'a' appears twice (lines 1 and 3)"),
        (("b", "c"), "key 'c' appears twice (lines 2 and 2)"),
    ]


def test_load_yaml_rejects_an_alias_that_contains_itself():
    with pytest.raises(SpecProblem) as caught:
        load_yaml("a: &x [1, *x]\n")
    assert caught.value.items == [(("a", 1), "the alias on line 1 contains itself")]


def test_load_yaml_caps_alias_expansion():
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(SpecProblem) as caught:
        load_yaml("\n".join(levels) + "\n")
    assert "holds more than 100,000 values (an alias counts each time it is used)" in caught.value.items[0][1]


def test_load_yaml_merge_keys_are_not_duplicates():
    document = load_yaml("a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: *a\n  <<: *b\n")
    assert document.data["c"] == {"x": 1, "y": 2}


# the tiny spec's transfer stage written as "pretrain, merged (<<), with overrides"
ANCHORED_SPEC = TINY_GRU_SPEC[: TINY_GRU_SPEC.index("  - name: transfer")].replace(
    "  - name: pretrain\n    data:\n", "  - &first\n    name: pretrain\n    data: &data\n"
) + (
    "  - <<: *first\n"
    "    name: transfer\n"
    "    epochs: EPOCHS\n"
    "    init: {stage: pretrain}\n"
    "    policy: {plugin: layers, params: {freeze: [gru_1]}}\n"
    "    callbacks: {early_stopping: {monitor: val_loss}}\n"
    "    optimizer: {name: sgd}\n"
)


def test_spec_with_anchors_and_merge_keys(load):
    assert ANCHORED_SPEC != TINY_GRU_SPEC and "EPOCHS" in ANCHORED_SPEC
    spec = load(ANCHORED_SPEC.replace("EPOCHS", "2")).spec

    pretrain, transfer = spec.stages
    assert (pretrain.name, pretrain.epochs, pretrain.optimizer.name) == ("pretrain", 1, "adam")
    assert (transfer.name, transfer.epochs, transfer.batch_size) == ("transfer", 2, 16)
    assert transfer.data == pretrain.data and transfer.data.params.seed == 1  # merged from the anchor
    assert transfer.policy.params.freeze == ["gru_1"]
    assert transfer.optimizer.name == "sgd"


def test_merged_stage_problem_is_reported_at_the_override_line(problems):
    text = ANCHORED_SPEC.replace("EPOCHS", '"2"')
    line = line_of(text, 'epochs: "2"')
    assert problems(text) == [f"stages[1].epochs (line {line}): expected an integer, got str '2'"]


def test_parse_spec_names_its_source(registry):
    with pytest.raises(SpecError) as caught:
        parse_spec("seed: 1\n", "inline.yaml", registry)
    assert caught.value.source == "inline.yaml"
    assert caught.value.lines == [
        "model (line 1): required key missing",
        "stages (line 1): required key missing",
    ]
