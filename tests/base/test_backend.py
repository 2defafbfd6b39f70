"""keras-graft trains on Keras's TensorFlow backend only: another backend is refused at once, naming where it
came from (issue #20), and report.json records the backend a stage trained on.  Keras 3's debugging caps on
epochs and batches are refused likewise: under them a stage would be published as finished short of its spec.

Keras picks its backend once per process, so the checks with a real Keras run in fresh interpreters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

import graft
from graft.base.backend import (
    BackendRefused,
    TrainingCapped,
    check_backend,
    check_caps,
    import_keras,
    keras_config_path,
)
from tests.conftest import TINY_GRU_SPEC


def test_another_backend_in_the_variable_is_refused_naming_it_and_what_to_do():
    with pytest.raises(BackendRefused) as refused:
        check_backend({"KERAS_BACKEND": "jax"})
    assert str(refused.value).startswith("KERAS_BACKEND=jax: keras-graft trains on Keras's TensorFlow backend only")
    assert "unset KERAS_BACKEND or set KERAS_BACKEND=tensorflow" in str(refused.value)
    check_backend({"KERAS_BACKEND": "tensorflow"})
    check_backend({"KERAS_BACKEND": ""})  # empty: as Keras reads it, not set
    check_backend({})


def test_keras_json_is_found_where_keras_looks(tmp_path):
    assert keras_config_path({"KERAS_HOME": str(tmp_path)}) == str(tmp_path / "keras.json")
    assert keras_config_path({}) in (os.path.expanduser("~/.keras/keras.json"), "/tmp/.keras/keras.json")


def python(code: str, tmp_path, **env: str | None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter in ``tmp_path`` (also its KERAS_HOME), with ``env`` changed."""
    environ = {**os.environ, "KERAS_HOME": str(tmp_path / "keras-home")}
    environ.pop("KERAS_BACKEND", None)
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environ, cwd=tmp_path, timeout=300)


@pytest.mark.slow
def test_every_command_that_builds_a_model_refuses_keras_backend_jax_before_anything(tmp_path):
    """plan, run, evaluate, predict, export: the variable is named, nothing is read or written, TensorFlow is
    not imported (the run folders named do not even exist: the backend is refused first)."""
    (tmp_path / "spec.yaml").write_text(TINY_GRU_SPEC)
    result = python(
        """
        import sys
        from graft.commands.cli import main
        for argv in (["plan", "spec.yaml"], ["run", "spec.yaml", "--out", "out"], ["evaluate", "out", "pretrain"],
                     ["predict", "out", "pretrain", "in.npz"], ["export", "out", "pretrain", "--format", "tflite"]):
            print(argv[0], main(argv))
        print("tensorflow imported:", "tensorflow" in sys.modules, "keras imported:", "keras" in sys.modules)
        """,
        tmp_path, KERAS_BACKEND="jax",
    )
    assert result.stdout.splitlines() == [
        "plan 1", "run 1", "evaluate 1", "predict 1", "export 1", "tensorflow imported: False keras imported: False"
    ], result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 5
    assert all(line.startswith("error: KERAS_BACKEND=jax: keras-graft trains on") for line in errors), errors
    assert sorted(path.name for path in tmp_path.iterdir()) == ["spec.yaml"]


def test_a_keras_imported_first_on_another_backend_is_refused_naming_keras_json(tmp_path, monkeypatch):
    """A notebook imported Keras before keras-graft and keras.json chose its backend: plan, run and load_stage
    name the file and what to do.  (Keras stands in as a module whose backend is jax: Keras 3's other backends
    need jax or torch, which the test environments do not install.)"""
    home = tmp_path / "keras-home"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": "jax"}))
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    on_jax = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "jax"))
    monkeypatch.setitem(sys.modules, "keras", on_jax)
    (tmp_path / "spec.yaml").write_text(TINY_GRU_SPEC)
    expected = (f"Keras was imported in this process on the jax backend (as \"backend\" in {home / 'keras.json'} "
                "says); keras-graft trains on Keras's TensorFlow backend only: set KERAS_BACKEND=tensorflow before "
                f"Keras is first imported (or make \"backend\" \"tensorflow\" in {home / 'keras.json'}) and start the "
                "process again")
    for call in (lambda: graft.plan(str(tmp_path / "spec.yaml")), lambda: graft.run(str(tmp_path / "spec.yaml"),
                 tmp_path / "out"), lambda: graft.load_stage(tmp_path / "out", "pretrain")):
        with pytest.raises(BackendRefused) as refused:
            call()
        assert str(refused.value) == expected
    assert not (tmp_path / "out").exists()
    (home / "keras.json").write_text(json.dumps({"backend": "tensorflow"}))  # then it came from the variable
    with pytest.raises(BackendRefused, match=r"on the jax backend \(as KERAS_BACKEND said when it was imported\)"):
        check_backend()


@pytest.mark.slow
def test_keras_json_naming_another_backend_does_not_change_what_graft_imports(tmp_path):
    """Left unset, KERAS_BACKEND is set to tensorflow before keras-graft imports Keras: a keras.json that
    names another backend is not used."""
    home = tmp_path / "keras-home"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": "numpy"}))
    result = python(
        """
        from graft.base.backend import import_keras
        print(import_keras().backend.backend())
        """,
        tmp_path,
    )
    assert result.stdout.split() == ["tensorflow"], result.stderr


def test_a_cap_that_is_not_a_whole_number_is_refused_before_keras_reads_it():
    with pytest.raises(TrainingCapped, match=r"^KERAS_MAX_EPOCHS='two' is not a whole number, .* unset KERAS_MAX_"):
        check_caps(None, {"KERAS_MAX_EPOCHS": "two"})
    check_caps(None, {"KERAS_MAX_EPOCHS": "2", "KERAS_MAX_STEPS_PER_EPOCH": "5"})  # Keras itself says if it caps
    check_caps(None, {"KERAS_MAX_EPOCHS": "+3", "KERAS_MAX_STEPS_PER_EPOCH": " 4 "})  # as Keras's int() reads them
    check_caps(None, {})


def test_a_cap_set_in_the_process_is_refused_before_a_stage_trains(tmp_path):
    """``keras.config.set_max_epochs`` (Keras 3): graft.run stops before the run folder exists, naming the call."""
    keras = import_keras()
    if not hasattr(getattr(keras, "config", None), "set_max_epochs"):
        pytest.skip("Keras 2 has no training caps")
    (tmp_path / "spec.yaml").write_text(TINY_GRU_SPEC)
    keras.config.set_max_epochs(1)
    try:
        with pytest.raises(TrainingCapped) as capped:
            graft.run(str(tmp_path / "spec.yaml"), tmp_path / "out", log=lambda _: None)
    finally:
        keras.config.set_max_epochs(None)
    assert str(capped.value).startswith("keras.config.set_max_epochs(1) was called: Keras would train every stage "
                                        "for at most 1 epoch, whatever the spec says")
    assert "call keras.config.set_max_epochs(None) first" in str(capped.value)
    assert not (tmp_path / "out").exists()
    import_keras()  # the cap lifted: nothing is refused


@pytest.mark.slow
def test_keras_max_steps_per_epoch_in_the_environment_is_refused_by_the_commands(tmp_path):
    """Keras 3 reads the variable as it is imported: ``graft run`` and ``plan`` refuse it and write nothing."""
    (tmp_path / "spec.yaml").write_text(TINY_GRU_SPEC)
    result = python(
        """
        import keras
        from graft.commands.cli import main
        print(keras.__version__.split(".")[0], main(["run", "spec.yaml", "--out", "out"]), main(["plan", "spec.yaml"]))
        """,
        tmp_path, KERAS_MAX_STEPS_PER_EPOCH="3",
    )
    major, *codes = result.stdout.splitlines()[-1].split()  # after the run's progress lines, if it trained
    if major == "2":  # Keras 2 has no caps and ignores the variable: the run trains as the spec says
        assert codes == ["0", "0"], result.stderr
        return
    assert codes == ["1", "1"], result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # the test's own import of
    assert len(errors) == 2 and errors[0] == errors[1] and errors[0].startswith(  # Keras printed TF's banners
        "error: KERAS_MAX_STEPS_PER_EPOCH=3 is set: Keras would train every stage for at most 3 batches an epoch"
    ), errors
    assert "unset KERAS_MAX_STEPS_PER_EPOCH (for a quick end-to-end check of a spec: graft run --smoke)" in errors[0]
    assert not (tmp_path / "out").exists()
