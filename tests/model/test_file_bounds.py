"""What ``init`` reads from a user's files is bounded and checked before it is trusted: a ``.keras``
archive's members by their declared size, a config nested too deep as a damaged file, every field of a
weights file's index, and a FIFO, a device or a folder named for what it is (never opened)."""

from __future__ import annotations

import json
import os
import threading
import zipfile

import numpy as np
import pytest

from graft.model.modelfile import MAX_MEMBER_BYTES, ModelFileError, read_model_file
from graft.model.weights import FORMAT, INDEX_KEY, WeightsFileError, read_index, read_weights


def within(call, seconds: float = 30):
    """``call()``'s exception, from a thread that must end within ``seconds`` (opening a FIFO would block)."""
    caught: list[BaseException] = []

    def run():
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            caught.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked"
    return caught[0] if caught else None


# -- .keras archives ----------------------------------------------------------------------------


def keras_archive(path, config: bytes) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
        archive.writestr("config.json", config)
        archive.writestr("model.weights.h5", b"")


def test_a_config_json_larger_than_the_bound_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "spaces.keras"
    keras_archive(path, b"{}" + b" " * MAX_MEMBER_BYTES)  # 64 MiB of spaces: 65 KB on disk
    assert os.path.getsize(path) < 1_000_000
    with pytest.raises(ModelFileError) as caught:
        read_model_file(str(path))
    assert str(caught.value) == (
        f"{path} is damaged or not a Keras model: its config.json says it holds 67,108,866 bytes, more than the "
        "67,108,864 (64.0 MiB) a model's config.json can need; save the model again"
    )


def test_a_config_nested_too_deep_is_a_damaged_file(tmp_path):
    path = tmp_path / "deep.keras"
    keras_archive(path, b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(ModelFileError) as caught:
        read_model_file(str(path))
    assert str(caught.value) == (
        f"{path} has a damaged model config: it is nested deeper than Python's JSON parser goes, which no Keras "
        "model needs; save the model again"
    )


def test_a_lambda_layer_is_found_deep_in_nested_models(tmp_path):
    path = tmp_path / "lambda.keras"
    depth = 250  # 750 levels of JSON: the walk over the config must not recurse
    config = '{"class_name": "Functional", "config": {"layers": [' * depth + \
        '{"class_name": "Lambda", "config": {"name": "sneaky"}}' + "]}}" * depth
    keras_archive(path, config.encode())
    with pytest.raises(ModelFileError, match="holds a Lambda layer \\('sneaky'\\)"):
        read_model_file(str(path))


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_a_model_path_that_is_not_a_file_is_named_for_what_it_is(tmp_path, kind):
    path = tmp_path / "model.keras"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        os.mkdir(path)
    else:
        os.symlink("/dev/zero", path)
    said = {"fifo": "a named pipe (FIFO)", "folder": "a folder", "device": "a device"}[kind]
    error = within(lambda: read_model_file(str(path)))
    assert isinstance(error, ModelFileError)
    assert str(error) == f"the model file {path} is {said}, not a file; give the path of a .keras or .h5 file"
    error = within(lambda: read_index(str(path)))
    assert isinstance(error, WeightsFileError)
    assert str(error) == f"the weights file {path} is {said}, not a file; give the path of a .graft.npz file"


# -- the index of a weights file -----------------------------------------------------------------


GOOD = {"class": "Dense", "variables": ["kernel", "bias"], "shapes": [[3, 2], [2]]}


def weights_file(path, index: object, arrays: dict | None = None) -> str:
    arrays = {"d:0": np.zeros((3, 2), np.float32), "d:1": np.zeros(2, np.float32)} if arrays is None else arrays
    np.savez(path, **{INDEX_KEY: np.array(json.dumps(index))}, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "index, said",
    [
        ({"format": FORMAT}, "layers should be a mapping of layer names, found null"),
        ({"format": FORMAT, "layers": []}, "layers should be a mapping of layer names, found list"),
        ({"format": FORMAT, "layers": {"d": 3}}, "layers['d'] should be a mapping with class, variables and shapes, "
         "found int 3"),
        ({"format": FORMAT, "layers": {"d": {**GOOD, "class": None}}}, "layers['d'].class should be a layer class "
         "name, found null"),
        ({"format": FORMAT, "layers": {"d": {k: v for k, v in GOOD.items() if k != "shapes"}}},
         "layers['d'].shapes should be a list of shapes (lists of sizes, 0 or more), found null"),
        ({"format": FORMAT, "layers": {"d": {**GOOD, "shapes": [[3, -2], [2]]}}}, "layers['d'].shapes should be"),
        ({"format": FORMAT, "layers": {"d": {**GOOD, "shapes": [[3, 2.0], [2]]}}}, "layers['d'].shapes should be"),
        ({"format": FORMAT, "layers": {"d": {**GOOD, "shapes": "[3, 2]"}}}, "layers['d'].shapes should be"),
        ({"format": FORMAT, "layers": {"d": {**GOOD, "variables": ["kernel"]}}},
         "layers['d'].variables should be one name per shape (2), found list"),
        ({"format": FORMAT, "layers": {"d": {**GOOD, "variables": [1, 2]}}},
         "layers['d'].variables should be a list of variable names, found list"),
        ({"format": FORMAT, "layers": {"d": {**GOOD, "extra": 1}}},
         "layers['d'].extra should be no such field (class, variables, shapes), found int 1"),
        ([1, 2], "has format None; this keras-graft reads"),
    ],
)
def test_every_field_of_the_index_is_checked(tmp_path, index, said):
    path = weights_file(tmp_path / "w.graft.npz", index)
    for read in (read_index, read_weights):
        with pytest.raises(WeightsFileError) as caught:
            read(path)
        assert str(caught.value).startswith(f"{path} has ")
        assert said in str(caught.value)


def test_an_array_of_another_shape_than_its_index_says_is_damaged(tmp_path):
    path = weights_file(
        tmp_path / "w.graft.npz", {"format": FORMAT, "layers": {"d": GOOD}},
        {"d:0": np.zeros((2, 3), np.float32), "d:1": np.zeros(2, np.float32)},
    )
    assert read_index(path) == {"d": [(3, 2), (2,)]}  # the index alone is sound
    with pytest.raises(WeightsFileError) as caught:
        read_weights(path)
    assert str(caught.value) == (
        f"{path} is damaged: array d:0 has the shape [2, 3], its index says [3, 2]; save it again with graft run"
    )


def test_a_sound_file_reads(tmp_path):
    path = weights_file(tmp_path / "w.graft.npz", {"format": FORMAT, "layers": {"d": GOOD}})
    assert [value.shape for value in read_weights(path)["d"]] == [(3, 2), (2,)]
