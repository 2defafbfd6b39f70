"""The ``npz`` source on files that are empty, not .npz, damaged, pickled or larger than memory.

Each case ends as a ``SpecProblem`` at the param that names the file or the
array, never as a traceback; no message suggests ``allow_pickle``.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from graft.base.problems import SpecProblem
from graft.builtins.npz import Npz, NpzParams
from graft.spec.convert import make_converter, structure
from graft.validators import loading_spec_in

SAVEZ = "write it with numpy.savez(path, x=inputs, y=targets)"


def load(tmp_path, **raw):
    raw.setdefault("targets", {"t": "y"})
    with loading_spec_in(str(tmp_path)):
        params = structure(make_converter(), raw, NpzParams, ("params",))
    return Npz().load_data(params, str(tmp_path))


def problem(tmp_path, **raw) -> tuple[tuple, str]:
    with pytest.raises(SpecProblem) as caught:
        load(tmp_path, **raw)
    [(path, message)] = caught.value.items
    assert "allow_pickle" not in message
    return path, message


def npy_bytes(header: dict, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def write_zip(file, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def good(n: int = 6) -> dict[str, np.ndarray]:
    return {"x": np.arange(n * 4, dtype=np.float32).reshape(n, 4), "y": np.arange(n) % 2}


def test_empty_file(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"")
    assert problem(tmp_path, path="d.npz") == (
        ("path",),
        f"{tmp_path / 'd.npz'} is empty (0 bytes), not an .npz archive; {SAVEZ}",
    )


@pytest.mark.parametrize(
    "content, kind",
    [
        (b"x,y\n1,2\n", "a text file (it begins 'x,y\\n1,2\\n')"),
        (pickle.dumps({"x": [1, 2]}), "a Python pickle"),
        (b"\x89HDF\r\n\x1a\n" + bytes(40), "an HDF5 file"),
        (b"\x1f\x8b\x08" + bytes(20), "a gzip file"),
        (bytes(range(256)), "not a zip archive"),
    ],
)
def test_files_that_are_not_npz_say_what_they_are(tmp_path, content, kind):
    (tmp_path / "d.npz").write_bytes(content)
    assert problem(tmp_path, path="d.npz") == (
        ("path",),
        f"{tmp_path / 'd.npz'} is {kind}, not an .npz archive; {SAVEZ}",
    )


def test_a_plain_npy_file(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    assert problem(tmp_path, path="one.npy") == (
        ("path",),
        f"{tmp_path / 'one.npy'} is a single .npy array, not an .npz archive; {SAVEZ}",
    )


def test_a_truncated_archive(tmp_path):
    np.savez(tmp_path / "d.npz", **good())
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(data[: len(data) // 2])
    assert problem(tmp_path, path="d.npz") == (
        ("path",),
        f"{tmp_path / 'd.npz'} is a damaged or truncated zip archive, not an .npz archive; {SAVEZ}",
    )


def test_a_folder_or_a_pipe_swapped_in_after_validation(tmp_path):
    np.savez(tmp_path / "d.npz", **good())
    with loading_spec_in(str(tmp_path)):
        params = structure(make_converter(), {"path": "d.npz", "targets": {"t": "y"}}, NpzParams, ("params",))
    (tmp_path / "d.npz").unlink()
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(SpecProblem) as caught:
        Npz().load_data(params, str(tmp_path))
    assert caught.value.items == [(("path",), f"{tmp_path / 'd.npz'} is a folder; give the path of an .npz file")]
    (tmp_path / "d.npz").rmdir()
    os.mkfifo(tmp_path / "d.npz")  # opening it would wait for a writer forever
    with pytest.raises(SpecProblem) as caught:
        Npz().load_data(params, str(tmp_path))
    assert caught.value.items == [
        (("path",), f"{tmp_path / 'd.npz'} is a named pipe (FIFO), not a file; give the path of an .npz file")
    ]


def test_validation_file_problems_are_at_validation_path(tmp_path):
    np.savez(tmp_path / "d.npz", **good())
    (tmp_path / "v.npz").write_bytes(b"")
    assert problem(tmp_path, path="d.npz", validation_path="v.npz")[0] == ("validation_path",)


def test_object_arrays_are_not_supported(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    path, message = problem(tmp_path, path="d.npz")
    assert path == ("inputs",)
    assert message == (
        f"array 'x' in {tmp_path / 'd.npz'} is an object array (object); object arrays need pickle, which is not "
        "safe to load, so they are not supported: save plain numeric arrays"
    )


def test_only_the_arrays_used_are_read(tmp_path):
    members = {f"{key}.npy": _npy(value) for key, value in good().items()}
    members["notes.npy"] = b"not an array at all"
    members["huge.npy"] = npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    members["objects.npy"] = _npy(np.array([None, {}], dtype=object))
    write_zip(tmp_path / "d.npz", members)
    data = load(tmp_path, path="d.npz")
    np.testing.assert_array_equal(data.x, good()["x"])


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_a_header_that_declares_more_than_the_file_holds(tmp_path):
    """A 2 KB archive whose header declares 960 GiB: damaged, said before anything is allocated."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (240 * 2**30, 1)}
    write_zip(tmp_path / "d.npz", {"x.npy": npy_bytes(header, bytes(1000)), "y.npy": _npy(np.zeros(3))})
    assert (tmp_path / "d.npz").stat().st_size < 2048
    assert problem(tmp_path, path="d.npz") == (
        ("inputs",),
        f"array 'x' in {tmp_path / 'd.npz'} declares shape (257698037760, 1) of float32 (960.0 GiB) but the file "
        f"holds only 1000 bytes of it: the file is damaged or truncated; {SAVEZ}",
    )


def test_a_negative_shape_is_damage(tmp_path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (-3, 2)}
    write_zip(tmp_path / "d.npz", {"x.npy": npy_bytes(header, bytes(24)), "y.npy": _npy(np.zeros(3))})
    assert problem(tmp_path, path="d.npz") == (
        ("inputs",),
        f"array 'x' in {tmp_path / 'd.npz'} declares the impossible shape (-3, 2): the file is damaged; {SAVEZ}",
    )


def test_arrays_larger_than_memory_are_refused_before_reading(tmp_path, monkeypatch):
    np.savez(tmp_path / "d.npz", x=np.zeros((600, 4), np.float32), y=np.zeros(600, np.int8))
    monkeypatch.setattr("graft.base.memory.available_bytes", lambda: 4000)
    assert problem(tmp_path, path="d.npz") == (
        ("inputs",),
        f"array 'x' in {tmp_path / 'd.npz'} (shape (600, 4), float32) would allocate 9.4 KiB (2,400 values) but "
        "only 3.9 KiB of memory is available; make it smaller",
    )


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "is not a readable .npy array"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'", "is not a readable .npy array"),
        (b"\x93NUMPY\x09\x00" + bytes(20), "is not a readable .npy array"),
        (npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (6, 4)})[:-1] + b"(", "is not a readable .npy"),
    ],
)
def test_members_that_are_not_npy(tmp_path, content, says):
    write_zip(tmp_path / "d.npz", {"x.npy": content, "y.npy": _npy(np.zeros(6))})
    path, message = problem(tmp_path, path="d.npz")
    assert path == ("inputs",)
    assert message.startswith(f"array 'x' in {tmp_path / 'd.npz'} {says}") and message.endswith(SAVEZ)


@pytest.mark.parametrize("n", [6, 50_000])
def test_damaged_array_data_is_reported(tmp_path, n):
    """Small members fail their CRC check while the header is read, large ones while the data is."""
    arrays = good(n)
    np.savez(tmp_path / "d.npz", **arrays)
    data = bytearray((tmp_path / "d.npz").read_bytes())
    end = bytes(data).index(arrays["x"].tobytes()) + arrays["x"].nbytes
    data[end - 3] ^= 0xFF  # the zip's CRC no longer matches
    (tmp_path / "d.npz").write_bytes(bytes(data))
    path, message = problem(tmp_path, path="d.npz")
    assert path == ("inputs",)
    assert "Bad CRC-32 for file 'x.npy'" in message and message.endswith(SAVEZ)


def test_compressed_and_keyed_without_npy_suffix(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", **good())
    np.testing.assert_array_equal(load(tmp_path, path="c.npz").y["t"], good()["y"])
    write_zip(tmp_path / "plain.npz", {"x": _npy(good()["x"]), "y": _npy(good()["y"])})
    np.testing.assert_array_equal(load(tmp_path, path="plain.npz").x, good()["x"])


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    np.savez(tmp_path / "d.npz", **good())
    assert load("/elsewhere", path="~/d.npz").x.shape == (6, 4)
