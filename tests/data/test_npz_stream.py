"""The ``npz`` source leaves arrays stored uncompressed on disk (``ArrayFile``) and reads the others into memory.

Rows read from disk, and arrays read into memory, are compared bitwise with the arrays
written (whatever their dtype, shape, compression or split); loading a
64 MiB archive must not allocate it (traced Python memory, which includes
numpy's buffers).
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graft.data.npz as npz_module
from graft.base.problems import SpecProblem
from graft.builtins.npz import Npz, NpzParams
from graft.plugins.arrayfile import ArrayFile
from graft.plugins.datasets import Dataset
from graft.spec.convert import make_converter, structure
from graft.validators import loading_spec_in

TARGETS = {"level": "y_level", "trend": "y_trend"}


def load(folder, **raw) -> Dataset:
    raw.setdefault("targets", TARGETS)
    with loading_spec_in(str(folder)):
        params = structure(make_converter(), raw, NpzParams, ("params",))
    return Npz().load_data(params, str(folder))


def arrays(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Odd dtypes on purpose: big-endian float64 inputs, float16 and int8 targets."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(n, 5, 3)).astype(">f8"),
        "y_level": rng.normal(size=(n, 1)).astype(np.float16),
        "y_trend": rng.integers(0, 3, n).astype(np.int8),
    }


def rows(values) -> np.ndarray:
    assert isinstance(values, ArrayFile)
    return values.to_array()


def row_bytes(values: np.ndarray, dtype: np.dtype) -> list[bytes]:
    """The rows as sorted byte strings of ``dtype`` (``np.concatenate`` turns big-endian values native)."""
    return sorted(row.tobytes() for row in values.astype(dtype))


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.fixture
def map_everything(monkeypatch):
    """Leave arrays of any size on disk (by default only those of 1 MiB or more are)."""
    monkeypatch.setattr(npz_module, "MAP_FROM_BYTES", 0)


def test_stored_arrays_stay_on_disk_bit_for_bit(tmp_path, map_everything):
    written = arrays()
    np.savez(tmp_path / "d.npz", **written)
    data = load(tmp_path, path="d.npz")
    assert data.description == "npz d.npz"
    same_bits(rows(data.x), written["x"])
    same_bits(rows(data.y["level"]), written["y_level"])
    same_bits(rows(data.y["trend"]), written["y_trend"])
    assert data.x.path == str(tmp_path / "d.npz") and data.x.sample_shape == (5, 3)


def test_the_split_takes_the_same_rows_as_in_memory(tmp_path, map_everything):
    written = arrays(n=41)
    np.savez(tmp_path / "stored.npz", **written)
    np.savez_compressed(tmp_path / "packed.npz", **written)
    on_disk = load(tmp_path, path="stored.npz", validation_split=0.25)
    in_memory = load(tmp_path, path="packed.npz", validation_split=0.25)
    assert isinstance(in_memory.x, np.ndarray) and isinstance(in_memory.x_val, np.ndarray)
    assert len(on_disk.x) == 31 and len(on_disk.x_val) == 10
    same_bits(rows(on_disk.x), in_memory.x)
    same_bits(rows(on_disk.x_val), in_memory.x_val)
    for head in TARGETS:
        same_bits(rows(on_disk.y[head]), in_memory.y[head])
        same_bits(rows(on_disk.y_val[head]), in_memory.y_val[head])
    # every written row is on exactly one side
    together = np.concatenate([rows(on_disk.x), rows(on_disk.x_val)])
    assert row_bytes(together, written["x"].dtype) == row_bytes(written["x"], written["x"].dtype)


def test_a_validation_file_stays_on_disk_too(tmp_path, map_everything):
    train, val = arrays(seed=1), arrays(n=7, seed=2)
    np.savez(tmp_path / "train.npz", **train)
    np.savez(tmp_path / "val.npz", **val)
    data = load(tmp_path, path="train.npz", validation_path="val.npz")
    same_bits(rows(data.x), train["x"])
    same_bits(rows(data.x_val), val["x"])
    same_bits(rows(data.y_val["trend"]), val["y_trend"])
    assert data.x_val.path == str(tmp_path / "val.npz")


def test_one_array_for_two_heads_is_one_file(tmp_path, map_everything):
    written = arrays()
    np.savez(tmp_path / "d.npz", **written)
    data = load(tmp_path, path="d.npz", targets={"a": "y_trend", "b": "y_trend"}, validation_split=0.5)
    same_bits(rows(data.y_val["a"]), rows(data.y_val["b"]))


def test_compressed_arrays_are_read_into_memory_and_say_so(tmp_path, map_everything):
    written = arrays()
    np.savez_compressed(tmp_path / "c.npz", **written)
    data = load(tmp_path, path="c.npz", targets={"trend": "y_trend"})
    assert isinstance(data.x, np.ndarray) and isinstance(data.y["trend"], np.ndarray)
    same_bits(data.x, written["x"])
    assert data.description == (
        "npz c.npz (x is compressed: read into memory; save it with numpy.savez to stream it. "
        "y_trend is compressed: read into memory; save it with numpy.savez to stream it)"
    )


def test_a_compressed_validation_file_is_named_in_the_note(tmp_path, map_everything):
    np.savez(tmp_path / "train.npz", **arrays())
    np.savez_compressed(tmp_path / "val.npz", **arrays(n=5))
    data = load(tmp_path, path="train.npz", validation_path="val.npz", targets={"trend": "y_trend"})
    assert isinstance(data.x, ArrayFile) and isinstance(data.x_val, np.ndarray)
    assert data.description == (
        "npz train.npz (x in val.npz is compressed: read into memory; save it with numpy.savez to stream it. "
        "y_trend in val.npz is compressed: read into memory; save it with numpy.savez to stream it)"
    )


def test_small_arrays_are_read_into_memory_without_a_note(tmp_path):
    np.savez(tmp_path / "d.npz", **arrays())
    np.savez_compressed(tmp_path / "c.npz", **arrays())
    for name in ("d.npz", "c.npz"):
        data = load(tmp_path, path=name)
        assert isinstance(data.x, np.ndarray) and data.description == f"npz {name}"


def test_fortran_ordered_arrays_are_read_into_memory(tmp_path, map_everything):
    written = arrays()
    x = np.asfortranarray(written["x"])
    np.savez(tmp_path / "f.npz", **{**written, "x": x}, v=np.asfortranarray(written["x"][:7]))
    data = load(tmp_path, path="f.npz", validation_split=0.0)
    assert isinstance(data.x, np.ndarray) and isinstance(data.y["trend"], ArrayFile)
    np.testing.assert_array_equal(data.x, written["x"])
    assert data.description == (
        "npz f.npz (x is Fortran-ordered: read into memory; save it C-ordered (numpy.ascontiguousarray) to stream it)"
    )


def test_damaged_values_on_disk_are_reported(tmp_path, map_everything):
    written = arrays()
    np.savez(tmp_path / "d.npz", **written)
    data = bytearray((tmp_path / "d.npz").read_bytes())
    end = bytes(data).index(written["x"].tobytes()) + written["x"].nbytes
    data[end - 1] ^= 0xFF
    (tmp_path / "d.npz").write_bytes(bytes(data))
    with pytest.raises(SpecProblem) as caught:
        load(tmp_path, path="d.npz")
    [(path, message)] = caught.value.items
    assert path == ("inputs",)
    assert message == (
        f"cannot read array 'x' from {tmp_path / 'd.npz'} (Bad CRC-32 for file 'x.npy'): the file is damaged; "
        "write it with numpy.savez(path, x=inputs, y=targets)"
    )


STORED = io.BytesIO()
np.savez(STORED, **arrays(n=6))


@settings(
    derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_damaged_archives_on_disk_give_problems_or_readable_rows(tmp_path, map_everything, edits):
    data = bytearray(STORED.getvalue())
    for position, value in edits:
        data[position % len(data)] = value
    (tmp_path / "d.npz").write_bytes(bytes(data))
    try:
        loaded = load(tmp_path, path="d.npz", validation_split=0.5)
    except SpecProblem:
        return
    # what loads despite the edits is what was written (an edit the checks let through touched no value)
    (tmp_path / "pristine.npz").write_bytes(STORED.getvalue())
    pristine = load(tmp_path, path="pristine.npz", validation_split=0.5)
    for got, want in zip(_parts(loaded), _parts(pristine), strict=True):
        same_bits(got, want)


def _parts(data: Dataset) -> list[np.ndarray]:
    """Every array of a dataset, read: inputs, then each head's targets, training before validation."""
    parts = [data.x, *(data.y[head] for head in sorted(data.y)), data.x_val,
             *(data.y_val[head] for head in sorted(data.y_val or {}))]
    return [part.to_array() if isinstance(part, ArrayFile) else np.asarray(part) for part in parts if part is not None]


DTYPES = ["<f4", ">f8", "<f2", "|i1", "<i8", ">u2", "|b1"]


@settings(
    derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(2, 40),
    sample=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    x_dtype=st.sampled_from(DTYPES),
    y_dtype=st.sampled_from(DTYPES),
    compressed=st.booleans(),
    split=st.sampled_from([0.0, 0.25, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_what_loads_is_what_was_written(tmp_path, map_everything, n, sample, x_dtype, y_dtype, compressed, split,
                                        seed):
    """Whatever the dtype, shape, compression and split: every written sample loads once, bit for bit,
    with its own target."""
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=(n, *sample)) * 50).astype(x_dtype)  # abs: no negative into unsigned
    y = np.abs(rng.normal(size=(n,)) * 50).astype(y_dtype)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "d.npz", x=x, y=y)
    data = load(tmp_path, path="d.npz", targets={"out": "y"}, validation_split=split)
    x_train, y_train, *validation = _parts(data)
    x_val, y_val = validation or (x[:0], y[:0])
    assert x_train.dtype == x_val.dtype == x.dtype and y_train.dtype == y_val.dtype == y.dtype
    assert len(x_train) == len(y_train) and len(x_val) == len(y_val) and len(x_train) + len(x_val) == n

    def pairs(inputs, targets) -> list[bytes]:
        return sorted(row.tobytes() + b"|" + target.tobytes() for row, target in zip(inputs, targets, strict=True))

    # part by part: np.concatenate would turn big-endian values native
    assert sorted(pairs(x_train, y_train) + pairs(x_val, y_val)) == pairs(x, y)


def test_an_archive_after_other_bytes(tmp_path, map_everything):
    """A zip may follow other data (a self-extracting archive): offsets count from the zip's start."""
    written = arrays()
    buffer = io.BytesIO()
    np.savez(buffer, **written)
    (tmp_path / "d.npz").write_bytes(b"#!/bin/sh\nexit 0\n" * 31 + buffer.getvalue())
    same_bits(rows(load(tmp_path, path="d.npz").x), written["x"])


def zip64(members: dict[str, bytes]) -> bytes:
    """A stored zip whose central directory gives every size and offset in zip64 fields, as archives over 4 GiB do."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data in members.items():
        offset, crc, size, encoded = out.tell(), zlib.crc32(data), len(data), name.encode()
        local_extra = struct.pack("<2H2Q", 1, 16, size, size)
        out.write(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 45, 0, 0, 0, 0, 0, crc, 2**32 - 1, 2**32 - 1,
                              len(encoded), len(local_extra) + 4))
        out.write(encoded + local_extra + struct.pack("<2H", 0xCAFE, 0) + data)  # and an unknown empty field
        extra = struct.pack("<2H3Q", 1, 24, size, size, offset)
        central.write(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 45, 3, 45, 0, 0, 0, 0, 0, crc, 2**32 - 1,
                                  2**32 - 1, len(encoded), len(extra), 0, 0, 0, 0, 2**32 - 1))
        central.write(encoded + extra)
    start, directory = out.tell(), central.getvalue()
    out.write(directory)
    end64 = out.tell()
    count = len(members)
    out.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), start))
    out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1))
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 2**32 - 1, 2**32 - 1, 0))
    return out.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_a_zip64_archive(tmp_path, map_everything):
    written = arrays()
    (tmp_path / "d.npz").write_bytes(zip64({f"{key}.npy": npy(value) for key, value in written.items()}))
    with zipfile.ZipFile(tmp_path / "d.npz") as archive:  # the archive is what it claims to be
        assert archive.testzip() is None and archive.infolist()[0].file_size == len(npy(written["x"]))
    data = load(tmp_path, path="d.npz", validation_split=0.2)
    together = np.concatenate([rows(data.x), rows(data.x_val)])
    assert row_bytes(together, written["x"].dtype) == row_bytes(written["x"], written["x"].dtype)
    same_bits(rows(data.y_val["trend"]), written["y_trend"][data.y_val["trend"].rows])


def test_loading_a_large_archive_does_not_allocate_it(tmp_path, monkeypatch):
    """64 MiB of inputs (over the default MAP_FROM_BYTES) load in a few MiB of traced memory."""
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(2**16, 256))
    x[:] = np.arange(256, dtype=np.float32)
    x[::4097] = -1.0
    x.flush()
    del x
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as archive:
        archive.write(tmp_path / "x.npy", "x.npy")
        archive.writestr("y.npy", npy(np.arange(2**16, dtype=np.int64) % 3))
    (tmp_path / "x.npy").unlink()

    tracemalloc.start()
    try:
        data = load(tmp_path, path="big.npz", targets={"t": "y"}, validation_split=0.1)
        _, peak = tracemalloc.get_traced_memory()
        assert isinstance(data.x, ArrayFile) and isinstance(data.x_val, ArrayFile)
        assert peak < 8 * 2**20, f"loading traced {peak / 2**20:.1f} MiB for 64 MiB of inputs"
        batch = data.x.read(np.arange(100))  # rows arrive as written
        assert (batch[:, 1:] == np.arange(1, 256, dtype=np.float32)).all()

        monkeypatch.setattr(npz_module, "MAP_FROM_BYTES", 2**40)  # the old way: the measure sees it
        tracemalloc.reset_peak()
        assert isinstance(load(tmp_path, path="big.npz", targets={"t": "y"}).x, np.ndarray)
        assert tracemalloc.get_traced_memory()[1] >= 64 * 2**20
    finally:
        tracemalloc.stop()
