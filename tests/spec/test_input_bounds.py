"""Bounds on what a spec names, checked by ``graft validate`` without opening anything that could block:
a FIFO, a device or a folder given as a file is named for what it is; a NUL byte in a path and an index
of thousands of digits are ``GraftError``s; control characters a user typed are escaped in messages."""

from __future__ import annotations

import os

import numpy as np
import pytest

import graft
from graft.base.problems import GraftError, SpecError, printable
from graft.commands.cli import main
from graft.spec.overrides import OverrideError
from tests.conftest import TINY_GRU_SPEC

KINDS = {"fifo": "a named pipe (FIFO)", "device": "a device", "folder": "a folder"}


def make(path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.symlink("/dev/null", path)  # a device link
    else:
        os.mkdir(path)


def with_init(init: str) -> str:
    """The tiny spec whose second stage starts from ``init`` instead of the first stage."""
    assert TINY_GRU_SPEC.count("init: {stage: pretrain}") == 1
    return TINY_GRU_SPEC.replace("init: {stage: pretrain}", f"init: {init}")


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_init_model_and_weights_that_are_not_files_are_named_for_what_they_are(tmp_path, load, kind):
    make(tmp_path / "m.keras", kind)
    make(tmp_path / "w.graft.npz", kind)
    said = KINDS[kind]
    for init, field, what in (("{model: m.keras}", "model", "model file"),
                              ("{weights: w.graft.npz}", "weights", "weights file")):
        text = with_init(init)
        with pytest.raises(SpecError) as caught:
            load(text)
        name = "m.keras" if field == "model" else "w.graft.npz"
        expected = (
            f"{tmp_path / name} is a folder; give the path of a {what}" if kind == "folder"
            else f"{tmp_path / name} is {said}, not a {what}; give the path of a regular {what}"
        )
        assert caught.value.lines == [f"stages[1].init.{field} (line {line_of(text, 'init: ')}): {expected}"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_npz_path_that_is_not_a_file_is_named_for_what_it_is(tmp_path, load, kind):
    make(tmp_path / "data.npz", kind)
    text = TINY_GRU_SPEC.replace(
        "source: synthetic\n      params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {level: level, "
        "trend: trend}}",
        "source: npz\n      params: {path: data.npz, targets: {level: level, trend: trend}}",
    )
    assert "source: npz" in text
    with pytest.raises(SpecError) as caught:
        load(text)
    expected = (
        f"{tmp_path / 'data.npz'} is a folder; give the path of a file" if kind == "folder"
        else f"{tmp_path / 'data.npz'} is {KINDS[kind]}, not a file; give the path of a regular file"
    )
    assert caught.value.lines == [f"stages[0].data.params.path (line {line_of(text, 'path: data.npz')}): {expected}"]


def test_a_missing_file_is_still_not_found(tmp_path, load):
    text = with_init("{weights: nowhere.graft.npz}")
    with pytest.raises(SpecError) as caught:
        load(text)
    assert caught.value.lines[0].endswith(f": weights file not found: {tmp_path / 'nowhere.graft.npz'}")


# -- the Python API --------------------------------------------------------------------------


def test_a_nul_byte_in_the_spec_path_is_a_graft_error(tmp_path):
    with pytest.raises(SpecError) as caught:
        graft.load_spec("a\0b.yaml")
    assert str(caught.value) == (
        "a\\x00b.yaml: 1 problem\n  cannot read the spec: its path holds a NUL byte; give the path of a YAML file"
    )


def test_a_nul_byte_in_a_path_the_spec_names_is_a_problem_at_its_field(tmp_path, load):
    text = with_init('{weights: "w\\0.npz"}')
    with pytest.raises(SpecError) as caught:
        load(text)
    [line] = caught.value.lines
    assert line.endswith(f"{tmp_path}/w\\x00.npz holds a NUL byte, which no file name can; give the path of a "
                         "weights file")
    assert "\0" not in str(caught.value)


def test_an_index_of_thousands_of_digits_is_a_graft_error(write_spec):
    path = write_spec(TINY_GRU_SPEC)
    for override in (f"stages.{'1' * 5000}.epochs=2", f"stages[{'1' * 5000}].epochs=2"):
        with pytest.raises(OverrideError) as caught:
            graft.load_spec(path, overrides=[override])
        assert isinstance(caught.value, GraftError)
        assert "the index 11111111... (5,000 digits) is larger than any list in a spec" in str(caught.value)
        assert len(str(caught.value)) < 600
    assert graft.load_spec(path, overrides=[f"stages.{'0' * 18}1.epochs=2"]).spec.stages[1].epochs == 2


# -- control characters are escaped ------------------------------------------------------------


def test_printable_escapes_control_characters_and_keeps_what_it_is_told():
    assert printable("a\0b\rc\x1b[2Kd\u202ee") == "a\\x00b\\rc\\x1b[2Kd\\u202ee"
    assert printable("one\ntwo\tthree\r", keep="\n\t") == "one\ntwo\tthree\\r"
    assert printable("naïve — ok") == "naïve — ok"


@pytest.mark.parametrize("path", ["stages.pre\rtrain.epochs", "stages.pre\0train.epochs", "se\x1bed"])
def test_a_set_path_with_control_characters_is_echoed_escaped(write_spec, capsys, path):
    spec = write_spec(TINY_GRU_SPEC)
    assert main(["validate", spec, "--set", f"{path}=3"]) == 1
    err = capsys.readouterr().err
    assert printable(path) in err
    assert not any(character in err for character in "\r\0\x1b")


def test_a_spec_path_with_control_characters_is_echoed_escaped(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "a\rb.yaml")]) == 1
    err = capsys.readouterr().err
    assert "a\\rb.yaml" in err and "\r" not in err


def test_npz_data_still_loads(tmp_path, load):  # the regular-file checks let a regular file through
    np.savez(tmp_path / "d.npz", x=np.zeros((8, 12, 3), np.float32), level=np.zeros(8, np.float32),
             trend=np.zeros(8, np.int64))
    text = TINY_GRU_SPEC.replace(
        "source: synthetic\n      params: {samples: 48, timesteps: 12, channels: 3, seed: 1, targets: {level: level, "
        "trend: trend}}",
        "source: npz\n      params: {path: d.npz, targets: {level: level, trend: trend}}",
    )
    assert load(text).spec.stages[0].data.params.path == "d.npz"
