"""Edge cases of loading a spec: each was a traceback or wrongly accepted, and is now a problem in words."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys
import zipfile
from typing import Any

import attrs
import pytest
import yaml

from graft import hookimpl, validators
from graft.base.problems import SpecError, SpecProblem, did_you_mean, listing
from graft.model.optimizers import make_optimizer
from graft.plugins.registry import Registry
from graft.spec.convert import load_yaml, make_converter, structure
from graft.spec.optimizers import OPTIMIZERS, option_problems
from graft.spec.records import Spec
from graft.spec.specfile import MAX_BYTES, SpecFile, check_spec, load_spec, parse_spec, spec_converter
from graft.spec.yamlfile import MAX_DEPTH, YamlDocument
from graft.testing import params_problems
from tests.conftest import TINY_GRU_SPEC

REPO = pathlib.Path(__file__).resolve().parents[2]


TINY = TINY_GRU_SPEC
RAW_PYTHON = ("object is not", "NoneType'", "<class", "Traceback", "positional argument", "unhashable",
              "has no attribute", "not subscriptable", "not iterable", "__init__", "invalid literal")


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.fixture
def problems(registry, tmp_path):
    """Problem lines for a spec text: ``TINY`` with ``old`` replaced by ``new``."""

    def run(old: str, new: str, text: str = TINY) -> list[str]:
        assert old in text
        with pytest.raises(SpecError) as caught:
            parse_spec(text.replace(old, new, 1), str(tmp_path / "spec.yaml"), registry)
        return caught.value.lines

    return run


# -- 1. reading the file ------------------------------------------------------------------


def test_a_latin_1_comment_is_not_utf8(registry, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"# caf\xe9\n" + TINY.encode())
    with pytest.raises(SpecError) as caught:
        load_spec(str(path), registry)
    assert caught.value.lines == [
        "the spec is not UTF-8 text: byte 0xe9 at byte offset 5 cannot be decoded; save the file as UTF-8"
    ]


def test_a_keras_model_file_looks_binary(registry, tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(SpecError) as caught:
        load_spec(str(path), registry)
    [line] = caught.value.lines
    assert line.startswith("the file looks binary (a zip archive, such as a .keras model?): a NUL byte at byte offset ")


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda tmp: str(tmp), "a folder"),
        (lambda tmp: "/dev/zero", "a device"),
        (lambda tmp: (os.mkfifo(tmp / "pipe"), str(tmp / "pipe"))[1], "a named pipe (FIFO)"),
    ],
)
def test_only_regular_files_are_read(registry, tmp_path, make, kind):
    path = make(tmp_path)  # a FIFO without a writer: reading it would block forever
    with pytest.raises(SpecError) as caught:
        load_spec(path, registry)
    assert caught.value.lines == [f"cannot read the spec: it is {kind}, not a file; give the path of a YAML file"]


def test_a_file_over_the_limit_is_refused(registry, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_BYTES // 10 + 1))
    with pytest.raises(SpecError) as caught:
        load_spec(str(path), registry)
    assert caught.value.lines == ["the spec is larger than 1 MiB, the limit for a spec file; is it the right file?"]


def test_cli_validate_of_a_model_file_exits_1_without_a_traceback(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    done = subprocess.run([sys.executable, "-m", "graft", "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "looks binary" in done.stderr


# -- 2. YAML loading ---------------------------------------------------------------------------


def test_deep_nesting_is_reported_with_its_line(problems):
    lines = problems("seed: 3", "seed: 3\nx: " + "[" * 3000 + "]" * 3000)
    assert lines == [
        f"line 2, column {MAX_DEPTH + 3}: nested more than {MAX_DEPTH} levels deep; a spec needs far fewer"
    ]


def test_nesting_through_aliases_is_capped():
    text = "a0: &a0 [" + "[" * 40 + "]" * 40 + "]\n"
    text += "".join(f"a{i}: &a{i} [" + "[" * 40 + f"*a{i - 1}" + "]" * 40 + "]\n" for i in range(1, 5))
    with pytest.raises(SpecProblem) as caught:
        load_yaml(text)
    assert caught.value.items[0][1] == f"aliases nest the spec more than {MAX_DEPTH} levels deep"


@pytest.mark.parametrize(
    ("literal", "shown"),
    [
        ("0b_", "0b_"), ("0x_", "0x_"), ("9" * 5000, "99999999999999999999... (5,000 characters)"),
        ("2001-13-45", "2001-13-45"),
    ],
)
def test_numbers_python_cannot_read_are_reported_at_their_path(problems, literal, shown):
    what = "a date" if "-" in literal else "an integer"
    assert problems("seed: 3", f"seed: {literal}") == [
        f"seed (line 1): cannot read '{shown}' as {what}: write a plain value, or quote it to make it a string"
    ]


@pytest.mark.parametrize("literal", ["0b", "0x", "1:2:x"])
def test_odd_literals_are_strings_where_an_integer_is_expected(problems, literal):
    assert problems("seed: 3", f"seed: {literal}") == [f"seed (line 1): expected an integer, got str '{literal}'"]


@pytest.mark.parametrize(
    ("yaml_text", "kind"),
    [
        ("? [a]\n: 1\n", "a list"), ("{[1]: x}: 2\n", "a mapping"), ("{{a: 1}: 2}: 3\n", "a mapping"),
        ("2001-01-01: x\n", "date"),
    ],
)
def test_mapping_keys_must_be_names_or_numbers(problems, yaml_text, kind):
    lines = problems("seed: 3\n", "seed: 3\n" + yaml_text)
    assert lines[0] == f"(top level) (line 1): mapping keys must be names or numbers; the key on line 2 is {kind}"


def test_non_string_keys_are_reported_in_words(problems):
    lines = problems("seed: 3\n", "seed: 3\n1: x\n")
    assert lines == ["[1] (line 2): unknown key '1'; expected one of: model, stages, seed, distribute"]


BOMB = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"] + [
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 7)
]
TAGGED_BOMBS = {
    "!!omap": "!!omap [" + ", ".join("{" + item + "}" for item in BOMB) + "]",
    "!!pairs": "!!pairs [" + ", ".join("{" + item + "}" for item in BOMB) + "]",
    "!!set": "!!set {" + ", ".join(BOMB) + "}",
}


@pytest.mark.parametrize("tag", sorted(TAGGED_BOMBS))
def test_alias_bombs_are_capped_inside_every_node_kind(problems, tag):
    # the whole bomb lives inside the tagged node, where PyYAML would build it as shared lists
    lines = problems("    batch_size: 16\n", f"    batch_size: 16\n    optimizer: {{options: {TAGGED_BOMBS[tag]}}}\n")
    where = "options.l4" if tag == "!!set" else "options[4].l4"
    assert lines == [
        f"stages[0].optimizer.{where} (line 25): the spec holds more than 100,000 values "
        "(an alias counts each time it is used); a spec needs far fewer"
    ]


def test_learning_rate_in_e_notation_is_a_number(load):
    text = TINY.replace("    batch_size: 16\n", "    batch_size: 16\n    optimizer: {learning_rate: 3e-3}\n", 1)
    spec_file = load(text)
    assert spec_file.spec.stages[0].optimizer.learning_rate == 0.003
    assert spec_file.document.line_of(("stages", 0, "optimizer", "learning_rate")) == line_of(text, "3e-3")


def test_yaml_1_2_special_floats():
    data = load_yaml("a: .inf\nb: -.Inf\nc: .NaN\nd: +1E5\n").data
    assert data["a"] == math.inf and data["b"] == -math.inf and math.isnan(data["c"]) and data["d"] == 1e5


def test_integers_must_fit_in_64_bits_where_no_bound_says_more(problems):
    big = 2**70
    lines = problems(
        "    batch_size: 16\n", f"    batch_size: 16\n    callbacks: {{early_stopping: {{patience: {big}}}}}\n"
    )
    assert lines == [
        f"stages[0].callbacks.early_stopping.patience (line 25): expected an integer that fits in 64 bits "
        f"(at most {2**63 - 1:,} in size), got int {big}"
    ]


# -- 3. did_you_mean -----------------------------------------------------------------------


def test_did_you_mean_and_listing_take_anything():
    assert did_you_mean(3, ["3", "x"]) == " — did you mean '3'?"
    assert did_you_mean(None, [1, 2]) == ""
    assert listing([1, None]) == "1, None"


def test_a_number_as_a_layer_name(problems):
    assert problems("freeze: [gru_1, gru_2]", "freeze: [3, gru_2]") == [
        f"stages[1].policy.params.freeze[0] (line {line_of(TINY, 'freeze: [')}): expected a string, got int 3"
    ]


# -- 4. wrong types anywhere in the example configs ---------------------------------------------


def _paths(data, path=()):
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*path, index))


def _replaced(data, path, value):
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _replaced(data[path[0]], path[1:], value)
    return copy


WRONG_VALUES = [3, "x", [1], {"a": 1}, None, True, 1.5, math.nan, -(2**70)]


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_wrong_values_anywhere_in_a_config_give_problems_in_words(registry, config):
    # structured directly (the YAML text round trip would only make this slower): words, not Python
    data = yaml.safe_load(config.read_text())
    converter = spec_converter(registry)
    checked = 0
    for path in _paths(data):
        for value in WRONG_VALUES:
            try:
                with validators.loading_spec_in(str(config.parent)):
                    spec = structure(converter, _replaced(data, path, value), Spec)
                items = check_spec(SpecFile(str(config), spec, YamlDocument(None, {})))
            except SpecProblem as problem:
                items = problem.items
            raw = [item for item in items if any(word in item[1] for word in RAW_PYTHON)]
            assert not raw, (path, value, raw)
            checked += 1
    assert checked > 100


# -- 5. bounds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("seed: 3", "seed: -1", "seed (line 1): must be from 0 to 2,147,483,647, got -1"),
        ("seed: 3", f"seed: {2**31}", "seed (line 1): must be from 0 to 2,147,483,647, got 2,147,483,648"),
        ("epochs: 1", "epochs: 100001", "stages[0].epochs (line 23): must be from 1 to 100,000, got 100,001"),
        ("batch_size: 16", f"batch_size: {2**31}",
         "stages[0].batch_size (line 24): must be from 1 to 2,147,483,647, got 2,147,483,648"),
        ("batch_size: 16", "batch_size: 16\n    optimizer: {learning_rate: .nan}",
         "stages[0].optimizer.learning_rate (line 25): must be a finite number, got nan"),
        ("batch_size: 16", "batch_size: 16\n    optimizer: {learning_rate: .inf}",
         "stages[0].optimizer.learning_rate (line 25): must be a finite number, got inf"),
        ("loss: mse,", "loss: mse, loss_weight: .nan,",
         "model.heads.level.loss_weight (line 12): must be a finite number, got nan"),
        ("batch_size: 16", "batch_size: 16\n    callbacks: {early_stopping: {min_delta: .inf}}",
         "stages[0].callbacks.early_stopping.min_delta (line 25): must be a finite number, got inf"),
        ("batch_size: 16", "batch_size: 16\n    callbacks: {reduce_lr: {factor: 1.0}}",
         "stages[0].callbacks.reduce_lr.factor (line 25): must be greater than 0 and below 1 "
         "(it multiplies the learning rate), got 1.0"),
        ("- name: pretrain", '- name: "pretrain\\n"',
         "stages[0].name (line 19): 'pretrain\\n' is not a valid stage name: "
         "use letters, digits and _ (it names a folder)"),
        ("- name: pretrain", "- name: " + "p" * 101,
         "stages[0].name (line 19): a stage name has at most 100 characters (it names a folder), got 101"),
        ("- name: pretrain", "- name: CON",
         "stages[0].name (line 19): 'CON' cannot name a folder on Windows; choose another stage name"),
        ("- name: transfer", "- name: Pretrain",
         "stages[1].name (line 25): stage name 'Pretrain' differs from stages[0] 'pretrain' only in case; "
         "their folders would clash on macOS and Windows"),
        ("  heads:\n", "  heads:\n    input: {plugin: dense, loss: mse, params: {units: 1}}\n",
         "model.heads.input (line 12): head name 'input' is reserved: the model's input layer is named input; "
         "choose another"),
    ],
)
def test_bounds(problems, old, new, expected):
    assert problems(old, new) == [expected]


@pytest.mark.parametrize(
    "check", [validators.positive, validators.non_negative, validators.fraction, validators.finite]
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_number_validators_reject_nan_and_infinity(check, value):
    with pytest.raises(SpecProblem) as caught:
        check(None, None, value)
    assert caught.value.items == [((), f"must be a finite number, got {value}")]


def test_a_stage_name_of_100_characters_fits_its_folder_names():
    name = "p" * 100
    assert len(f"{name}.replaced-20250101T000000-99".encode()) <= 255


# -- 6. optimizer options ---------------------------------------------------------------------------


def test_optimizer_options_are_checked_at_load(problems):
    lines = problems(
        "batch_size: 16",
        "batch_size: 16\n    optimizer: {name: adam, options: {clipnorm: one, clipnrom: 1, amsgrad: 1, beta_1: 1.0}}",
    )
    at = "stages[0].optimizer.options"
    assert lines[0] == f"{at}.clipnorm (line 25): expected a number or null, got str 'one'"
    assert lines[1].startswith(f"{at}.clipnrom (line 25): adam has no option 'clipnrom'; its options: clipnorm, ")
    assert lines[1].endswith(" — did you mean 'clipnorm'?")
    assert lines[2:] == [
        f"{at}.amsgrad (line 25): expected true or false, got int 1",
        f"{at}.beta_1 (line 25): must be at least 0 and below 1, got 1.0",
    ]


def test_only_one_clipping_option():
    assert option_problems("sgd", {"clipnorm": 1.0, "global_clipnorm": 2.0}) == [
        (("global_clipnorm",), "set only one of clipnorm, clipvalue, global_clipnorm; clipnorm is set too")
    ]


def test_an_option_of_another_optimizer_is_unknown():
    [(path, message)] = option_problems("adam", {"momentum": 0.9})
    assert path == ("momentum",) and message.startswith("adam has no option 'momentum'")


def test_every_listed_option_is_accepted_by_keras():
    keras = pytest.importorskip("keras")
    samples = {"number": 0.5, "integer": 3, "flag": True}
    for name, kind in OPTIMIZERS.items():
        for option, spec in kind.options.items():
            if option in ("clipvalue", "global_clipnorm"):
                continue  # one clipping option at a time; clipnorm stands for the three
            optimizer = _optimizer(name, {option: samples[spec.kind]})
            assert option_problems(name, optimizer.options) == []
            built = make_optimizer(keras, optimizer)
            assert type(built).__name__ == kind.keras_class


def _optimizer(name: str, options: dict):
    from graft.spec.records import Optimizer

    return Optimizer(name=name, learning_rate=0.01, options=options)


# -- 7. validators: all of them, at their field, in words -------------------------------------------


def _legacy(_instance, attribute, value):
    if value < 0:
        raise SpecProblem((attribute.name,), "legacy path names the field")


def _relative(_instance, _attribute, value):
    if value < 0:
        raise SpecProblem((), "relative path")


def _second_item(_instance, _attribute, value):
    if len(value) > 1:
        raise SpecProblem((1,), "the second item is not welcome")


@attrs.frozen
class Inner:
    units: int = attrs.field(validator=validators.positive)


@attrs.frozen
class Outer:
    inner: list[Inner]
    dropout: float = attrs.field(default=0.0, validator=validators.fraction)
    a: int = attrs.field(default=0, validator=[_legacy, _relative])
    items: list[int] = attrs.field(factory=list, validator=[_second_item, validators.each(validators.positive)])
    mode: str = attrs.field(default="x", validator=attrs.validators.in_(["x", "y"]))
    low: int = attrs.field(default=5, validator=[attrs.validators.ge(1), attrs.validators.le(10)])
    word: str = attrs.field(
        default="ab", validator=[attrs.validators.matches_re(r"[a-z]+"), attrs.validators.max_len(3)]
    )
    any_: Any = attrs.field(default=1, validator=attrs.validators.instance_of(int))

    def __attrs_post_init__(self):
        if self.dropout == 0.5:
            raise SpecProblem(("dropout",), "half is not allowed here")


def test_every_failing_validator_of_every_field_is_reported():
    found = params_problems(
        {
            "inner": [{"units": -1}], "dropout": 2.0, "a": -1, "items": [1, -2], "mode": "z", "low": 0, "word": "ABCD",
            "any_": "s",
        },
        Outer,
    )
    assert found == [
        (("params", "inner", 0, "units"), "must be greater than 0, got -1"),
        (("params", "dropout"), "must be at least 0 and below 1, got 2.0"),
        (("params", "a"), "legacy path names the field"),
        (("params", "a"), "relative path"),
        (("params", "items", 1), "the second item is not welcome"),
        (("params", "items", 1), "must be greater than 0, got -2"),
        (("params", "mode"), "'z' is not one of: x, y"),
        (("params", "low"), "must be at least 1, got 0"),
        (("params", "word"), "'ABCD' does not match the pattern [a-z]+"),
        (("params", "word"), "must have at most 3 characters, got 4"),
        (("params", "any_"), "expected an integer, got str 's'"),
    ]


def test_params_problems_of_valid_params_is_an_empty_list():  # as documented; it used to raise AssertionError
    assert params_problems({"inner": [{"units": 2}], "dropout": 0.1}, Outer) == []


def test_post_init_problems_are_collected_with_the_validators():
    assert params_problems({"inner": [], "dropout": 0.5, "a": -1}, Outer) == [
        (("params", "a"), "legacy path names the field"),
        (("params", "a"), "relative path"),
        (("params", "dropout"), "half is not allowed here"),
    ]


def test_validators_of_the_other_fields_run_when_one_field_fails_to_structure():
    assert params_problems({"inner": "x", "dropout": 2.0, "surplus": 1}, Outer) == [
        (("params", "inner"), "expected a list of inners, got str 'x'"),
        (
            ("params", "surplus"),
            "unknown key 'surplus'; expected one of: inner, dropout, a, items, mode, low, word, any_",
        ),
        (("params", "dropout"), "must be at least 0 and below 1, got 2.0"),
    ]


def test_nan_alpha_of_mobilenet_is_rejected(registry):
    params_class = registry.params_class("extractor", "mobilenet")
    assert params_problems({"alpha": math.nan}, params_class) == [
        (("params", "alpha"), "must be a finite number, got nan")
    ]


# -- 8. files next to the spec ---------------------------------------------------------------------------


@attrs.frozen
class FileParams:
    path: str = attrs.field(validator=validators.existing_file)


def test_existing_file_resolves_against_the_spec_folder(tmp_path):
    (tmp_path / "data.npz").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    converter = make_converter()
    with validators.loading_spec_in(str(tmp_path)):
        assert validators.spec_folder() == str(tmp_path)
        assert structure(converter, {"path": "data.npz"}, FileParams).path == "data.npz"
        with pytest.raises(SpecProblem) as missing:
            structure(converter, {"path": "absent.npz"}, FileParams)
        with pytest.raises(SpecProblem) as folder:
            structure(converter, {"path": "folder"}, FileParams)
    assert missing.value.items == [(("path",), f"file not found: {tmp_path / 'absent.npz'}")]
    assert folder.value.items == [(("path",), f"{tmp_path / 'folder'} is a folder; give the path of a file")]
    assert validators.spec_folder() == os.getcwd()


def test_existing_file_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x.npz").write_bytes(b"")
    validators.existing_file(None, None, "~/x.npz")


class FileSource:
    """A data source whose params name a file: checked when the spec is loaded."""

    @hookimpl
    def load_data(self, params: FileParams, base_dir):
        raise AssertionError("not called by validate")


def test_a_plugin_checks_its_file_next_to_the_spec_at_load(tmp_path, monkeypatch):
    registry = Registry.discover(enabled={"gru"})
    registry.register(FileSource(), "files")
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "data.npz").write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    text = TINY.replace(
        "source: synthetic\n      params: {samples: 48,", "source: files\n      params: {path: data.npz}\n      x: {", 1
    )
    text = text.replace("\n      x: {", "\n    #", 1)
    first_data = text.replace("source: synthetic", "source: files", 1).replace(
        "params: {samples: 48, timesteps: 12, channels: 3, seed: 2, frequency: 2.0, "
        "targets: {level: level, trend: trend}}",
        "params: {path: absent.npz}", 1)
    with pytest.raises(SpecError) as caught:
        parse_spec(first_data, str(tmp_path / "spec" / "s.yaml"), registry)
    assert caught.value.lines == [
        f"stages[1].data.params.path (line {line_of(first_data, 'absent.npz')}): "
        f"file not found: {os.path.join('spec', 'absent.npz')}"  # next to the spec, shown from the working folder
    ]


# -- fuzzer findings -------------------------------------------------------------------------------------


def test_null_is_called_null(problems):
    assert problems("seed: 3", "seed: ~") == ["seed (line 1): expected an integer, got null"]


def test_a_name_holding_a_newline_stays_on_one_line(problems):
    lines = problems("init: {stage: pretrain}", 'init: {stage: "pretrain\\n"}')
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(
        "stages[1].init.stage (line 26): no earlier stage 'pretrain\\n'; earlier stages: pretrain"
    )


def test_a_control_character_is_reported_with_line_and_column(problems):
    assert problems("seed: 3", "seed: 3\x1b") == [
        "line 1, column 8: not valid YAML: the character '\\x1b' (#x001b) is not allowed in YAML text; remove it"
    ]


def test_a_byte_order_mark_is_fine(registry, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes("\ufeff".encode() + TINY.encode())
    assert load_spec(str(path), registry).spec.seed == 3


def test_a_stage_with_no_heads_is_refused_by_validate(load):
    with pytest.raises(SpecError) as caught:
        load(
            TINY_GRU_SPEC.replace(
                "    batch_size: 16\n  - name: transfer", "    batch_size: 16\n    heads: {}\n  - name: transfer"
            )
        )
    assert [line.split(" (line")[0] for line in caught.value.lines] == ["stages[0].heads"]
    assert caught.value.lines[0].endswith("must not be empty")


@pytest.mark.slow
def test_a_spec_with_too_many_plain_values_stops_while_being_read(tmp_path, registry):
    path = tmp_path / "big.yaml"
    path.write_text("model: {input_shape: [" + ", ".join(["1"] * 150_000) + "]}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(str(path), registry)
    assert caught.value.lines == ["line 1, column 300008: holds more than 100,000 values; a spec needs far fewer"]


def test_a_merge_override_used_through_an_alias_is_not_a_duplicate_key():
    from graft.spec.yamlfile import load_yaml

    text = "base: &b {x: 1, y: 2}\nagain: &c {<<: *b, x: 5}\nthree: *c\nfour: *c\ndup: {a: 1, a: 2}\n"
    document = load_yaml(text)
    assert document.data["three"] == document.data["four"] == {"x": 5, "y": 2}
    assert document.duplicates == [(("dup", "a"), "key 'a' appears twice (lines 5 and 5)")]
