"""A frozen extractor's features kept on disk, so a re-run with another head skips the extractor.

**Where.** ``<root>/features/<key>/``; the root is ``$GRAFT_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/keras-graft``, else ``~/.cache/keras-graft`` (``cache_root``).  The key
(``features_key``) digests the extractor's weights, the data's identity and the Keras and
TensorFlow versions: a change to any of them is a new entry, never a stale hit.

**What.** An entry is raw C-ordered ``.bin`` files (the features, and one file per head's
targets, for training and validation) and ``meta.json`` with their shapes, dtypes and the
sha256 of every chunk (``graft.features.digests``).  It is written a batch at a time (memory
does not grow with the data) into ``<key>.partial-<pid>-<rand>``, flushed to disk and renamed
into place: all or nothing.  If another process published the same key meanwhile, its entry is
kept and ours discarded.  ``get`` proves an entry whole before it is used; an entry that does
not check out (unreadable meta, a file of the wrong size, a chunk that does not match its
digest, or a meta of an earlier format, without digests) is removed, with one line through
``warn``, and the features are computed again.  Reading takes a batch at a time too, and every
read proves the chunks it touches (``StoredFeatures.dataset``).

**Cleaning.** Nothing is removed behind the user's back except damaged entries.  ``graft cache
clear [--older-than DAYS]`` (``FeatureStore.clear``) removes entries by last use and the
leftovers of processes that died while writing (``leftovers`` lists them); an entry a run is
using (it holds a shared lock on its ``meta.json``) is skipped.  Deleting the root by hand is safe while no run goes on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

import attrs
import numpy as np

from graft.base.files import fsync_path, write_json
from graft.base.processes import pid_alive
from graft.features.digests import CHUNK_BYTES
from graft.features.files import META, Batch, EntryProblem, FeaturesMeta, StoredFeatures, read_meta, write_split
from graft.features.folders import (
    FeatureStoreError,
    installed_versions,
    listing,
    make_folder,
    store_error,
    tree_size,
    writing,
)

__all__ = [
    "CacheEntry", "ClearResult", "FeatureStore", "FeatureStoreError", "Leftover", "StoredFeatures", "cache_root",
    "features_key",
]

KEY_LENGTH = 32
_KEY = re.compile(r"[0-9A-Za-z_-]{1,128}\Z")
_LEFTOVER = re.compile(r"[0-9A-Za-z_-]{1,128}\.(?P<kind>partial|removing)-(?P<pid>\d{1,10})-[0-9a-f]+\Z")


def cache_root() -> str:
    """``$GRAFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/keras-graft``, else ``~/.cache/keras-graft``."""
    chosen = os.environ.get("GRAFT_CACHE_DIR")
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras-graft")


def features_key(extractor_weights: list[np.ndarray], data_identity: str, versions: Mapping[str, str]) -> str:
    """Hex sha256 of the extractor's weights (dtype, shape, bytes), the data identity and the versions."""
    digest = hashlib.sha256(b"keras-graft features\0")

    def field(value: bytes | memoryview) -> None:
        digest.update(len(value).to_bytes(8, "little"))
        digest.update(value)

    field(str(len(extractor_weights)).encode())
    for weight in extractor_weights:
        array = np.asarray(weight)
        field(f"{array.dtype.str} {array.shape}".encode())
        as_bytes = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        field(memoryview(as_bytes))  # type: ignore[arg-type]  # numpy's stubs: a Buffer on Python 3.12+ only
    field(data_identity.encode())
    for name, version in sorted(versions.items()):
        field(f"{name}={version}".encode())
    return digest.hexdigest()[:KEY_LENGTH]


@attrs.frozen
class CacheEntry:
    """One entry as ``graft cache`` lists it; ``damaged`` says why ``get`` would compute it again (``stale``:
    written in an earlier format, which cannot be proven).  Only the meta and the sizes of the files are
    checked here; their contents are proven when a run uses them."""

    key: str
    path: str
    size_bytes: int
    last_used: datetime
    created: datetime | None
    description: str
    samples: int
    validation_samples: int
    damaged: str | None = None
    stale: bool = False


@attrs.frozen
class Leftover:
    """A folder a writer leaves while it writes (``partial``) or removes (``removing``) an entry;
    ``alive`` is whether its process still runs (``clear`` removes it only once that process died)."""

    name: str
    path: str
    kind: str
    pid: int
    alive: bool
    size_bytes: int


@attrs.frozen
class ClearResult:
    """What ``clear`` removed; ``in_use`` are the keys it kept because a run holds them."""

    entries_removed: int
    bytes_freed: int
    leftovers_removed: int
    in_use: tuple[str, ...] = ()


# -- the store -------------------------------------------------------------------------------


class FeatureStore:
    """Entries under ``<root>/features/``; ``warn`` hears why a damaged entry was removed.  New entries are
    digested in chunks of ``chunk_bytes``."""

    def __init__(
        self, root: str, warn: Callable[[str], None] | None = None, chunk_bytes: int = CHUNK_BYTES
    ) -> None:
        self.root = root
        self.folder = os.path.join(root, "features")
        self.warn = warn or (lambda _message: None)
        self.chunk_bytes = chunk_bytes

    def get(self, key: str) -> StoredFeatures | None:
        """The checked entry of ``key`` (its last use touched), or ``None``; a damaged one is removed."""
        folder = self._entry(key)
        if not os.path.lexists(folder):
            return None
        meta_path = os.path.join(folder, META)
        try:
            handle = open(meta_path, "rb")  # noqa: SIM115 - held (its lock) by the StoredFeatures returned
        except PermissionError as exc:
            raise store_error("read", self.folder, exc) from None
        except OSError:
            if os.path.lexists(folder):
                self._discard(folder, EntryProblem(f"{META} is missing"))
            return None
        fcntl.flock(handle, fcntl.LOCK_SH)  # waits only for a clear that is removing it
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(meta_path))
        except OSError:
            same = False
        meta, problem = read_meta(handle, folder, key) if same else (None, None)
        if meta is None:
            handle.close()
            if problem is not None:
                self._discard(folder, problem)
            return None
        stored = StoredFeatures(folder, meta, handle)
        damage = stored.prove()
        if damage is not None:
            stored.close()
            self._discard(folder, EntryProblem(damage))
            return None
        with contextlib.suppress(OSError):
            os.utime(folder)  # last use; a cache shared read-only just keeps its times
        return stored

    def put(
        self,
        key: str,
        train: Iterable[Batch],
        validation: Iterable[Batch] | None,
        description: str,
        versions: Mapping[str, str] | None = None,
    ) -> StoredFeatures:
        """Write the batches (``(features, {head: targets})``) streaming, publish them whole, return the entry.

        A ``validation`` that yields no batch is stored as no validation.
        """
        final = self._entry(key)
        make_folder(self.folder)
        partial = f"{final}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            with writing(partial):
                os.mkdir(partial)
            train_split = write_split(partial, "train", train, self.chunk_bytes)
            if train_split is None:
                raise ValueError(f"no training batches to store for '{description}'")
            val_split = None if validation is None else write_split(partial, "validation", validation, self.chunk_bytes)
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            meta = FeaturesMeta(
                key, description, created, dict(versions or installed_versions()), train_split, val_split,
                self.chunk_bytes,
            )
            with writing(partial):
                write_json(os.path.join(partial, META), meta.to_json())
                fsync_path(partial)
                lock = open(os.path.join(partial, META), "rb")  # noqa: SIM115 - held for its lock
            fcntl.flock(lock, fcntl.LOCK_SH)  # the lock follows the file through the rename
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return self._publish(final, partial, meta, lock)

    def _publish(self, final: str, partial: str, meta: FeaturesMeta, lock) -> StoredFeatures:
        try:
            for _attempt in range(3):
                try:
                    os.rename(partial, final)
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                        raise store_error("write", self.folder, exc) from None
                    theirs = self.get(meta.key)  # another process published it first: keep theirs
                    if theirs is not None:
                        return theirs
                    continue  # theirs was damaged and is removed now: try again
                fsync_path(self.folder)
                published, lock = StoredFeatures(final, meta, lock), None
                return published
            raise FeatureStoreError(f"cannot publish the cached features {final}: it keeps changing; try again")
        finally:
            if lock is not None:  # not published: ours is discarded
                lock.close()
                shutil.rmtree(partial, ignore_errors=True)

    def entries(self) -> list[CacheEntry]:
        """Every entry, its meta and file sizes checked as ``get`` checks them (its contents are not read, nothing
        is removed), oldest use first."""
        found = []
        for name in listing(self.folder):
            folder = os.path.join(self.folder, name)
            if not _KEY.match(name) or not os.path.isdir(folder) or os.path.islink(folder):
                continue
            try:
                with open(os.path.join(folder, META), "rb") as handle:
                    meta, problem = read_meta(handle, folder, name)
                last_used = os.stat(folder).st_mtime
            except OSError as exc:
                meta, last_used = None, time.time()
                problem = EntryProblem(f"{META} cannot be read ({exc.strerror})")
            found.append(
                CacheEntry(
                    key=name,
                    path=folder,
                    size_bytes=tree_size(folder),
                    last_used=datetime.fromtimestamp(last_used, timezone.utc),
                    created=None if meta is None else _when(meta.created),
                    description="" if meta is None else meta.description,
                    samples=0 if meta is None else meta.train.samples,
                    validation_samples=0 if meta is None or meta.validation is None else meta.validation.samples,
                    damaged=None if problem is None else problem.what,
                    stale=problem is not None and problem.stale,
                )
            )
        return sorted(found, key=lambda entry: entry.last_used)

    def clear(self, older_than_days: float | None = None) -> ClearResult:
        """Remove entries last used more than ``older_than_days`` ago (all if ``None``), damaged ones,
        and the partial folders of processes that died; entries in use by a run are kept."""
        if older_than_days is not None and not older_than_days >= 0:
            raise ValueError(f"older_than_days must be 0 or more, got {older_than_days}")
        cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
        removed = freed = leftovers = 0
        in_use = []
        for entry in self.entries():
            if cutoff is not None and entry.last_used.timestamp() >= cutoff and entry.damaged is None:
                continue
            if self._remove(entry.path, exclusive=True):
                removed, freed = removed + 1, freed + entry.size_bytes
            elif os.path.lexists(entry.path):
                in_use.append(entry.key)
        for leftover in self.leftovers():
            if not leftover.alive:
                shutil.rmtree(leftover.path, ignore_errors=True)
                if not os.path.lexists(leftover.path):
                    leftovers, freed = leftovers + 1, freed + leftover.size_bytes
        return ClearResult(removed, freed, leftovers, tuple(in_use))

    def leftovers(self) -> list[Leftover]:
        """The folders of writers (``<key>.partial-<pid>-...``) and removers (``.removing-``), by name."""
        found = []
        for name in listing(self.folder):
            match = _LEFTOVER.match(name)
            folder = os.path.join(self.folder, name)
            if match and os.path.isdir(folder) and not os.path.islink(folder):
                pid = int(match["pid"])
                found.append(Leftover(name, folder, match["kind"], pid, pid_alive(pid), tree_size(folder)))
        return found

    def discard_damaged(self, stored: StoredFeatures) -> None:
        """Remove an entry whose damage a read found while a run used it (``stored.damage``); it is closed."""
        stored.close()
        self._remove(stored.path, exclusive=False)

    # -- removing ----------------------------------------------------------------------------

    def _discard(self, folder: str, problem: EntryProblem) -> None:
        self.warn(problem.warning(folder))
        self._remove(folder, exclusive=False)

    def _remove(self, folder: str, exclusive: bool) -> bool:
        """Move the entry aside (unless ``exclusive`` and a run holds it) and delete it; True if gone."""
        try:
            handle = open(os.path.join(folder, META), "rb")  # noqa: SIM115 - held for its lock
        except OSError:
            handle = None
        try:
            if handle is not None and exclusive:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
            aside = f"{folder}.removing-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                os.rename(folder, aside)
            except FileNotFoundError:
                return False  # someone else removed it
            except OSError as exc:
                raise store_error("clean", self.folder, exc) from None
            if os.path.isdir(aside) and not os.path.islink(aside):
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.remove(aside)
            return True
        finally:
            if handle is not None:
                handle.close()

    def _entry(self, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"not a feature cache key: {key!r} (letters, digits, '-' and '_' only)")
        return os.path.join(self.folder, key)


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
