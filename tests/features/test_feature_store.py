"""The feature cache on disk (``graft.features.store``) and ``graft cache``: pure numpy, no TensorFlow."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from graft.commands.cli import main
from graft.features.digests import FeatureCacheDamaged
from graft.features.store import FeatureStore, FeatureStoreError, cache_root, features_key
from graft.plugins.arrayfile import ArrayFile

KEY = "0123456789abcdef0123456789abcdef"


def batches(sizes, seed=0, width=6):
    """``(features, {head: targets})`` batches of the given sizes, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    for size in sizes:
        yield (
            rng.standard_normal((size, width)).astype(np.float32),
            {"label": rng.integers(0, 5, size), "level": rng.standard_normal((size, 1)).astype(np.float64)},
        )


def joined(sizes, seed=0):
    parts = list(batches(sizes, seed))
    return np.concatenate([x for x, _ in parts]), {
        head: np.concatenate([y[head] for _, y in parts]) for head in ("label", "level")
    }


def assert_bitwise(stored: ArrayFile, expected: np.ndarray) -> None:
    assert isinstance(stored, ArrayFile)
    values = stored.to_array()
    assert values.dtype == expected.dtype and values.shape == expected.shape
    assert values.tobytes() == expected.tobytes()


@pytest.fixture
def store():
    return FeatureStore(cache_root())


def listing(store):
    return sorted(os.listdir(store.folder))


def test_put_then_get_is_bitwise_equal_through_arrayfile(store):
    sizes, val_sizes = [16, 16, 16, 5], [7, 3]
    with store.put(KEY, batches(sizes), batches(val_sizes, seed=1), "digits, 8x8") as written:
        first = written.dataset("written")
    with store.get(KEY) as read:
        again = read.dataset("cached digits")

    x, y = joined(sizes)
    x_val, y_val = joined(val_sizes, seed=1)
    for data in (first, again):
        assert_bitwise(data.x, x)
        assert_bitwise(data.x_val, x_val)
        for head in ("label", "level"):
            assert_bitwise(data.y[head], y[head])
            assert_bitwise(data.y_val[head], y_val[head])
    assert again.description == "cached digits"
    assert read.meta.description == "digits, 8x8"
    assert read.meta.train.samples == 53 and read.meta.validation.samples == 10
    assert listing(store) == [KEY]  # no partial folder left behind


def test_uneven_batches_and_an_empty_one(store):
    sizes = [1, 13, 0, 7, 2]
    with store.put(KEY, batches(sizes), None, "uneven") as entry:
        data = entry.dataset("uneven")
    x, y = joined(sizes)
    assert_bitwise(data.x, x)
    assert_bitwise(data.y["label"], y["label"])
    assert len(data.x) == 23


@pytest.mark.parametrize("validation", [None, iter(())], ids=["none", "no-batches"])
def test_without_validation(store, validation):
    with store.put(KEY, batches([4]), validation, "train only") as entry:
        assert entry.meta.validation is None
        data = entry.dataset("train only")
    assert not data.has_validation and data.y_val is None
    with store.get(KEY) as again:
        assert not again.dataset("x").has_validation


def test_get_of_an_unknown_key_is_none(store):
    assert store.get(KEY) is None
    with pytest.raises(ValueError, match="not a feature cache key"):
        store.get("../etc")


def _truncate(folder):
    with open(os.path.join(folder, "train.features.bin"), "r+b") as handle:
        handle.truncate(8)


def _edit_meta_shape(folder):
    path = pathlib.Path(folder, "meta.json")
    meta = json.loads(path.read_text())
    meta["train"]["features"]["shape"] = [9, 6]
    path.write_text(json.dumps(meta))


def _edit_meta_junk(folder):
    pathlib.Path(folder, "meta.json").write_text('{"key": ')


def _edit_meta_unknown_key(folder):
    path = pathlib.Path(folder, "meta.json")
    meta = json.loads(path.read_text())
    meta["extra"] = 1
    path.write_text(json.dumps(meta))


def _remove_target(folder):
    os.remove(os.path.join(folder, "train.target1.bin"))


def _remove_meta(folder):
    os.remove(os.path.join(folder, "meta.json"))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate, "train.features.bin has 8 bytes, expected 192"),
        (_edit_meta_shape, "shape [9, 6]"),
        (_edit_meta_junk, "not JSON"),
        (_edit_meta_unknown_key, "unknown key 'extra'"),
        (_remove_target, "train.target1.bin is missing"),
        (_remove_meta, "meta.json is missing"),
    ],
)
def test_a_damaged_entry_is_removed_and_computed_again(damage, reason):
    warnings = []
    store = FeatureStore(cache_root(), warn=warnings.append)
    store.put(KEY, batches([8]), None, "to damage").close()
    damage(os.path.join(store.folder, KEY))

    listed = store.entries()
    assert [entry.damaged is not None for entry in listed] == [True]  # listed as damaged, not removed
    assert store.get(KEY) is None
    assert listing(store) == []
    assert len(warnings) == 1 and reason in warnings[0] and "computed again" in warnings[0]

    with store.put(KEY, batches([8], seed=4), None, "again") as entry:  # the runner recomputes
        assert_bitwise(entry.dataset("x").x, joined([8], seed=4)[0])


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftover_partial_folders_are_ignored_and_cleared_only_when_their_process_died(store):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.makedirs(store.folder)
        names = {
            "dead": f"{KEY}.partial-{dead_pid()}-0a1b",
            "live": f"{KEY}.partial-{live.pid}-0a1b",
            "ours": f"{KEY}.partial-{os.getpid()}-0a1b",
        }
        for name in names.values():
            os.makedirs(os.path.join(store.folder, name))
            with open(os.path.join(store.folder, name, "train.features.bin"), "wb") as handle:
                handle.write(b"x" * 100)

        assert store.get(KEY) is None
        assert store.entries() == []
        result = store.clear()
    finally:
        live.kill()
        live.wait()

    assert (result.entries_removed, result.leftovers_removed, result.bytes_freed) == (0, 1, 100)
    assert listing(store) == sorted([names["live"], names["ours"]])


def test_two_puts_of_one_key_keep_the_first_published(store):
    theirs = joined([5], seed=7)[0]

    def ours_while_another_publishes():
        yield from batches([3], seed=8)
        store.put(KEY, batches([5], seed=7), None, "theirs").close()  # published while ours is written
        yield from batches([3], seed=9)

    with store.put(KEY, ours_while_another_publishes(), None, "ours") as entry:
        assert entry.meta.description == "theirs"
        assert_bitwise(entry.dataset("x").x, theirs)
    assert listing(store) == [KEY]
    with store.put(KEY, batches([2]), None, "later") as entry:  # already there: kept as well
        assert entry.meta.description == "theirs"
    assert listing(store) == [KEY]


def test_a_failing_batch_source_leaves_nothing(store):
    def failing():
        yield from batches([4])
        raise RuntimeError("the extractor failed")

    with pytest.raises(RuntimeError, match="the extractor failed"):
        store.put(KEY, failing(), None, "x")
    with pytest.raises(ValueError, match="batch 1 of the train features is float32 \\(7,\\) per sample"):
        store.put(KEY, [(np.zeros((2, 6), np.float32), {}), (np.zeros((2, 7), np.float32), {})], None, "x")
    with pytest.raises(ValueError, match="not one per sample"):
        store.put(KEY, [(np.zeros((2, 6), np.float32), {"a": np.zeros(3)})], None, "x")
    assert listing(store) == []


def test_memory_does_not_grow_with_the_number_of_batches(store):
    count, rows, width = 200, 64, 1024  # 200 batches of 256 KiB: 50 MiB written
    batch_bytes = rows * width * 4

    def many():
        for number in range(count):
            yield np.full((rows, width), number, np.float32), {"label": np.full(rows, number, np.int32)}

    tracemalloc.start()
    try:
        store.put(KEY, many(), None, "many").close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    total = count * (batch_bytes + rows * 4)
    assert os.path.getsize(os.path.join(store.folder, KEY, "train.features.bin")) == count * batch_bytes
    assert peak < 4 * batch_bytes, f"peak {peak:,} bytes while writing {total:,}"
    with store.get(KEY) as entry:
        x = entry.dataset("x").x
        assert x.read([0, count * rows - 1])[:, 0].tolist() == [0, count - 1]


def test_the_key_follows_every_weight_bit_the_data_and_the_versions():
    weights = [np.arange(12, dtype=np.float32).reshape(3, 4), np.zeros(4, np.float32)]
    versions = {"keras": "3.15.1", "tensorflow": "2.21.0"}
    key = features_key(weights, "npz data/a.npz sha256:1", versions)

    flipped = [weights[0].copy(), weights[1]]
    flipped[0].view(np.uint32)[1, 2] ^= 1  # one bit of one weight
    reshaped = [weights[0].reshape(4, 3), weights[1]]  # same bytes, another shape

    assert key == features_key([w.copy() for w in weights], "npz data/a.npz sha256:1", dict(versions))
    assert len(key) == 32 and int(key, 16) >= 0
    others = {
        features_key(flipped, "npz data/a.npz sha256:1", versions),
        features_key(reshaped, "npz data/a.npz sha256:1", versions),
        features_key(weights, "npz data/a.npz sha256:2", versions),
        features_key(weights, "npz data/a.npz sha256:1", {**versions, "keras": "3.15.2"}),
        features_key(weights[:1], "npz data/a.npz sha256:1", versions),
    }
    assert key not in others and len(others) == 5


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == str(tmp_path / "mine")
    monkeypatch.delenv("GRAFT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == str(tmp_path / "xdg" / "keras-graft")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == str(tmp_path / "home" / ".cache" / "keras-graft")


def test_an_unwritable_cache_root_is_a_clear_error(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(blocker))

    with pytest.raises(
        FeatureStoreError, match=f"cannot create the feature cache in {blocker}/features: .*GRAFT_CACHE_DIR"
    ):
        FeatureStore(cache_root()).put(KEY, batches([2]), None, "x")
    assert main(["cache"]) == 1
    error = capsys.readouterr().err
    assert (
        error.startswith(f"error: cannot read the feature cache in {blocker}/features") and "GRAFT_CACHE_DIR" in error
    )


def test_graft_cache_lists_and_clears(store, capsys):
    old, new = "a" * 32, "b" * 32
    store.put(old, batches([40]), batches([10]), "npz data/old.npz").close()
    store.put(new, batches([8]), None, "sklearn_digits").close()
    past = time.time() - 3 * 86400
    os.utime(os.path.join(store.folder, old), (past, past))

    for argv in (["cache"], ["cache", "list"]):
        assert main(argv) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"feature cache: {store.folder} (GRAFT_CACHE_DIR chooses another root)"
        assert lines[1].split() == ["key", "size", "last", "used", "created", "samples", "description"]
        assert lines[2].startswith(old) and "40 + 10 val" in lines[2] and lines[2].endswith("npz data/old.npz")
        size = sum(entry.stat().st_size for entry in os.scandir(os.path.join(store.folder, new)))
        assert 1000 < size < 2048  # eight samples, three files, and meta.json with a digest per file
        assert lines[3].startswith(new) and f"{size / 1024:.1f} KiB" in lines[3] and lines[3].endswith("sklearn_digits")
        assert lines[4].startswith("total: ") and lines[4].endswith(" in 2 entries")

    assert main(["cache", "clear", "--older-than", "2"]) == 0
    assert capsys.readouterr().out.startswith(f"removed 1 entry from {store.folder}: ")
    assert listing(store) == [new]

    with store.get(new):  # a run is using it
        assert main(["cache", "clear"]) == 0
        assert capsys.readouterr().out.splitlines()[1] == f"kept 1 in use by a running graft run: {new}"
    assert listing(store) == [new]
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith(f"removed 1 entry from {store.folder}: ")
    assert main(["cache"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "no entries"


def test_graft_cache_clear_refuses_a_negative_age(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "clear", "--older-than", "-1"])
    assert exit_.value.code == 2
    assert "expected a number of days, 0 or more" in capsys.readouterr().err


def test_the_store_does_not_import_tensorflow():
    code = (
        "import sys, graft.features.store, graft.commands.cli; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
        "assert not heavy, heavy; "
        "sys.exit(graft.commands.cli.main(['cache']))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


PUT_IN_A_PROCESS = """
import sys, time, numpy as np
from graft.features.store import FeatureStore, cache_root
def slow():
    for number in range(int(sys.argv[2])):
        yield np.full((4, 3), number, np.float32), {{"label": np.arange(4)}}
        time.sleep(float(sys.argv[3]))
with FeatureStore(cache_root()).put({key!r}, slow(), None, sys.argv[1]) as entry:
    print(entry.meta.description)
"""


def put_in_a_process(name: str, batches_: int, pause: float) -> subprocess.Popen:
    code = PUT_IN_A_PROCESS.format(key=KEY)
    return subprocess.Popen(
        [sys.executable, "-c", code, name, str(batches_), str(pause)], stdout=subprocess.PIPE, text=True
    )


def test_concurrent_puts_of_one_key_publish_one_entry(store):
    writers = [put_in_a_process(f"writer {number}", 5, 0.01) for number in range(3)]
    kept = {writer.communicate(timeout=120)[0].strip() for writer in writers}
    assert [writer.returncode for writer in writers] == [0, 0, 0]
    assert listing(store) == [KEY]
    with store.get(KEY) as entry:
        assert kept == {entry.meta.description}  # every writer got the one that was published


def test_a_process_killed_while_writing_leaves_a_partial_that_clear_removes(store):
    writer = put_in_a_process("killed", 1000, 0.05)
    deadline = time.time() + 60
    while not (os.path.isdir(store.folder) and listing(store)) and time.time() < deadline:
        time.sleep(0.05)
    writer.kill()
    writer.communicate()
    (partial,) = listing(store)
    assert partial.startswith(f"{KEY}.partial-{writer.pid}-")

    assert store.get(KEY) is None and store.entries() == []
    assert store.clear().leftovers_removed == 1
    assert listing(store) == []


# -- chunk digests: recorded when written, proven when read ------------------------------------


CHUNK = 64  # bytes: the 53 x 6 float32 features (1,272 bytes) are 20 chunks


def chunk_digests(path: str, chunk_bytes: int) -> list[str]:
    """The sha256 of every ``chunk_bytes`` of the file, computed here independently of the store."""
    with open(path, "rb") as handle:
        data = handle.read()
    return [hashlib.sha256(data[start : start + chunk_bytes]).hexdigest() for start in range(0, len(data), chunk_bytes)]


def small_chunk_store(warnings: list[str]) -> FeatureStore:
    return FeatureStore(cache_root(), warn=warnings.append, chunk_bytes=CHUNK)


def test_every_chunk_of_every_file_has_its_digest_in_meta_json():
    store = small_chunk_store([])
    store.put(KEY, batches([16, 16, 16, 5]), batches([7, 3], seed=1), "digested").close()
    folder = os.path.join(store.folder, KEY)
    meta = json.loads(pathlib.Path(folder, "meta.json").read_text())
    assert meta["format"] == 2 and meta["chunk_bytes"] == CHUNK
    files = [meta[split][kind] for split in ("train", "validation") for kind in ("features",)]
    files += [target for split in ("train", "validation") for target in meta[split]["targets"].values()]
    assert len(files) == 6
    for stored in files:
        assert stored["digests"] == chunk_digests(os.path.join(folder, stored["file"]), CHUNK), stored["file"]
    assert len(meta["train"]["features"]["digests"]) == 20  # 1,272 bytes in chunks of 64: the last one shorter


def _zero_a_chunk(path: str, index: int = 3) -> None:
    """Chunk ``index`` (0-based) overwritten with zeros: the file keeps its size."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.seek(CHUNK * index)
        handle.write(bytes(min(CHUNK, size - CHUNK * index)))


def _flip_a_byte(path: str, index: int = 5) -> None:
    """One bit of byte 7 of chunk ``index`` flipped."""
    with open(path, "r+b") as handle:
        handle.seek(CHUNK * index + 7)
        value = handle.read(1)[0]
        handle.seek(CHUNK * index + 7)
        handle.write(bytes([value ^ 0x01]))


@pytest.mark.parametrize(
    "file, damage, index, chunk",
    [
        ("train.features.bin", _zero_a_chunk, 3, "chunk 4 of 20 (bytes 192 to 256)"),
        ("train.features.bin", _flip_a_byte, 5, "chunk 6 of 20 (bytes 320 to 384)"),
        ("train.target1.bin", _flip_a_byte, 6, "chunk 7 of 7 (bytes 384 to 424)"),  # the int64 labels: 53 x 8 bytes
        ("validation.features.bin", _zero_a_chunk, 3, "chunk 4 of 4 (bytes 192 to 240)"),  # 10 x 6 float32
    ],
)
def test_a_chunk_changed_on_disk_is_found_before_use_and_the_entry_computed_again(file, damage, index, chunk):
    warnings: list[str] = []
    store = small_chunk_store(warnings)
    store.put(KEY, batches([16, 16, 16, 5]), batches([7, 3], seed=1), "to damage").close()
    folder = os.path.join(store.folder, KEY)
    size = os.path.getsize(os.path.join(folder, file))
    damage(os.path.join(folder, file), index)
    assert os.path.getsize(os.path.join(folder, file)) == size  # the sizes alone cannot tell

    assert store.get(KEY) is None
    assert listing(store) == []
    assert warnings == [
        f"the cached features {folder} are damaged ({file}: {chunk} does not match its sha256 recorded when it "
        "was written): removed, they are computed again"
    ]
    with store.put(KEY, batches([16, 16, 16, 5]), batches([7, 3], seed=1), "again") as entry:  # the runner
        assert_bitwise(entry.dataset("x").x, joined([16, 16, 16, 5])[0])
    with store.get(KEY) as proven:
        assert proven is not None and proven.damage is None


def test_a_chunk_changed_while_the_entry_is_read_stops_the_read_and_is_remembered():
    store = small_chunk_store([])
    with store.put(KEY, batches([16, 16, 16, 5]), None, "fresh") as fresh:  # nothing proven yet: read, then proven
        data = fresh.dataset("x")
        x = joined([16, 16, 16, 5])[0]
        assert data.x.read([0, 1]).tobytes() == x[[0, 1]].tobytes()  # chunks 1 of 20 proven as they are read
        _zero_a_chunk(os.path.join(fresh.path, "train.features.bin"))  # bytes 192..255: rows 8 to 10
        assert data.x.read([52]).tobytes() == x[[52]].tobytes()  # other chunks are fine
        with pytest.raises(FeatureCacheDamaged, match=r"train\.features\.bin: chunk 4 of 20 \(bytes 192 to 256\)"):
            data.x.read([9, 40])
        assert fresh.damage is not None and "chunk 4 of 20" in fresh.damage


def test_a_proven_file_changed_later_is_proven_again_as_it_is_read():
    store = small_chunk_store([])
    store.put(KEY, batches([16, 16, 16, 5]), None, "to reuse").close()
    path = os.path.join(store.folder, KEY, "train.features.bin")
    os.utime(path, (1e9, 1e9))  # its times now differ from any later write's, however coarse the clock
    with store.get(KEY) as entry:  # proven whole
        proven_before = entry.proof.proven_bytes
        data = entry.dataset("x")
        data.x.read(np.arange(53))
        assert entry.proof.proven_bytes == proven_before  # unchanged: nothing read twice
        _flip_a_byte(path)  # byte 327: row 13
        assert data.x.read([30, 31]).tobytes() == joined([16, 16, 16, 5])[0][[30, 31]].tobytes()  # chunk 12: fine
        assert entry.proof.proven_bytes == proven_before + CHUNK  # the file changed: what is read is proven again
        with pytest.raises(FeatureCacheDamaged, match=r"chunk 6 of 20 \(bytes 320 to 384\)"):
            data.x.read([13])
        assert entry.damage is not None and "chunk 6 of 20" in entry.damage


def _write_first_format(folder: str) -> None:
    """The meta of keras-graft 0.2: format 1, no chunk digests."""
    path = pathlib.Path(folder, "meta.json")
    meta = json.loads(path.read_text())
    meta["format"] = 1
    del meta["chunk_bytes"]
    for split in ("train", "validation"):
        if meta.get(split):
            del meta[split]["features"]["digests"]
            for target in meta[split]["targets"].values():
                del target["digests"]
    path.write_text(json.dumps(meta))


def test_an_entry_of_the_first_format_is_stale_listed_so_and_computed_again(capsys):
    warnings: list[str] = []
    store = FeatureStore(cache_root(), warn=warnings.append)
    store.put(KEY, batches([8]), batches([2]), "old").close()
    folder = os.path.join(store.folder, KEY)
    _write_first_format(folder)

    (entry,) = store.entries()
    assert entry.stale and "earlier keras-graft, without chunk digests" in entry.damaged
    assert main(["cache"]) == 0
    assert "STALE: written by an earlier keras-graft" in capsys.readouterr().out
    assert store.get(KEY) is None
    assert warnings == [
        f"the cached features {folder} are stale (written by an earlier keras-graft, without chunk digests "
        "(format 1, this keras-graft uses 2)): removed, they are computed again"
    ]
    assert listing(store) == []


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda meta: meta["train"]["features"]["digests"].pop(), "1 chunk digests, expected 2"),
        (lambda meta: meta["train"]["features"]["digests"].__setitem__(0, "x" * 64), "not 64 hex digits"),
        (lambda meta: meta.__setitem__("chunk_bytes", 0), "chunk_bytes 0"),
        (lambda meta: meta["train"]["features"].pop("digests"), "digests: required"),
    ],
)
def test_a_meta_with_wrong_digests_is_damaged(edit, said):
    warnings: list[str] = []
    store = FeatureStore(cache_root(), warn=warnings.append, chunk_bytes=100)
    store.put(KEY, batches([8]), None, "x").close()  # 8 x 6 float32: 192 bytes, 2 chunks
    path = pathlib.Path(store.folder, KEY, "meta.json")
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    assert store.get(KEY) is None
    assert len(warnings) == 1 and said in warnings[0] and "are damaged" in warnings[0]


def test_graft_cache_lists_the_folders_of_runs_that_died_and_clear_removes_them(store, capsys):
    store.put(KEY, batches([8]), None, "kept").close()
    dead = dead_pid()
    partial = os.path.join(store.folder, f"{KEY}.partial-{dead}-0a1b")
    os.makedirs(partial)
    pathlib.Path(partial, "train.features.bin").write_bytes(b"x" * 100)

    assert main(["cache"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith(f"{KEY}.partial-"))
    assert "100 bytes" in row and f"LEFT BY A RUN THAT DIED while writing an entry (process {dead})" in row
    assert lines[-2].endswith("in 1 entry and 1 unfinished folder")
    assert lines[-1] == "1 left by runs that died: graft cache clear removes it"

    assert main(["cache", "clear", "--older-than", "1"]) == 0  # the entry is recent: kept; the partial goes
    assert "and 1 left by runs that died" in capsys.readouterr().out
    assert listing(store) == [KEY]
    assert main(["cache"]) == 0
    assert "partial" not in capsys.readouterr().out
