"""Zarr v3 run store: one long table and a commit record, ``format_version`` 2.

Layout
------
``run.zarr/`` is a Zarr v3 group holding four 1-D arrays of equal length, one
row per logged point: ``key`` (int32, index into the record's key list),
``step`` (int64), ``value`` (float64), ``time`` (float64). A long table, not an
array per metric, so the number of files does not grow with the number of
keys, and keys are data, never file names. Rows are in chunks of
:data:`CHUNK_ROWS` inside shards of :data:`SHARD_ROWS`: a run below 256 Ki
points is one shard file per column.

The root group's attributes are the commit record: ``format_version``,
``created``, ``sections``, ``keys``, ``count`` (committed rows) and ``stats``.
Rows past ``count`` do not exist for readers.

Writing
-------
``write()`` holds the run lock ``run.zarr.lock`` for the update only. It
grows the arrays if needed (in whole shards), writes the new rows at
``count``, and only then replaces the root ``zarr.json`` with the new record:
one atomic file replace is the commit. Every file zarr writes goes through
``hpctrack.locking.atomic_write`` (temporary file, fsync, ``os.replace``)
instead of zarr's ``LocalStore`` writer, which also replaces files by rename
but without fsync. A SIGKILL anywhere therefore leaves either the old record,
which only covers complete rows, or the new one; rows a killed update wrote
past ``count`` are overwritten by the next append. Zarr's ``Array.append`` is
not used: it writes the new shape before the data, so a kill between the two
reads back a zero-filled tail.

The update counts as committed (``Store.commits``) exactly when the new
``zarr.json`` is in place. A writer remembers every file it wrote (inode,
size, mtime) and refuses a store where one changed (``StoreReplacedError``);
a new writer first reads back the last committed row. ENOSPC/EDQUOT are
``DiskFullError``. Every replace is fenced by the run lock's guard.

Reading
-------
Readers take no lock. They read the record once, then rows ``[0, count)``,
through a store that reads each file whole, once per read: zarr reads a
shard's index and its chunks with separate opens, and the writer may replace
the shard in between. Committed rows never change, so any version of a shard
at least as new as the record holds them. See ``docs/store-format.md``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import FormatVersionError, RunNotFoundError, StoreError
from ..locking import atomic_write, fsync_dir
from ..safefs import check_inside
from .base import (
    SECTIONS,
    MetricHistory,
    MetricStats,
    RunRecord,
    Store,
    Update,
    check_key,
    history_of,
    one_line,
    resolved_stats,
)

if TYPE_CHECKING:
    import numpy as np
    import zarr

__all__ = ["ZarrStore", "CHUNK_ROWS", "SHARD_ROWS", "COLUMNS"]

#: Rows per compressed chunk inside a shard (128 KiB of float64): the unit a
#: flush re-encodes and a reader decodes. Zarr's per-chunk overhead dominates
#: reads below this (4096 rows made ``read_history`` 3 times slower), and
#: re-encoding one such chunk per column per flush costs well under 1 ms.
CHUNK_ROWS = 16 * 1024
#: Rows per shard file, i.e. one file per column per 256 Ki points. A flush
#: rewrites the whole current shard (files are only ever replaced whole), so
#: this trades files per run against bytes per flush: at most 7 MiB
#: uncompressed for four full columns, typically 2-3 MiB; 1 Mi rows would be
#: 4 times that on every flush of a long run.
SHARD_ROWS = 256 * 1024
#: Column name, dtype, fill value. Padding rows read as key -1: no metric.
COLUMNS: Tuple[Tuple[str, str, Any], ...] = (
    ("key", "int32", -1),
    ("step", "int64", 0),
    ("value", "float64", 0.0),
    ("time", "float64", 0.0),
)
#: Readers retry a read that raised this often (a network filesystem's stale handle).
READ_ATTEMPTS = 3


@functools.lru_cache(maxsize=None)
def _store_class() -> type:
    """A zarr ``LocalStore`` that reads every file once and writes files durably."""
    import asyncio

    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype
    from zarr.storage import LocalStore

    class SnapshotStore(LocalStore):
        def __init__(self, root: Path, *, read_only: bool = False, guard: Any = None) -> None:
            super().__init__(root, read_only=read_only)
            self.files: Dict[str, Optional[bytes]] = {}
            self.guard = guard  # the run lock's guard: every replace is fenced
            self.written: Dict[str, Tuple[int, int, int]] = {}  # key -> (inode, size, mtime) as written
            self._io = threading.Lock()
            self._closed = False

        def close_writes(self) -> None:
            """No file is written through this store once this returns (one in progress ends first).

            After a failed update zarr may still have writes of it running in threads;
            they must not land after the update has given up."""
            with self._io:
                self._closed = True

        def _load(self, key: str) -> Optional[bytes]:
            # Inline, not in a thread: two concurrent first reads of one key
            # could otherwise see two versions of the file.
            if key not in self.files:
                try:
                    self.files[key] = (self.root / key).read_bytes()
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    self.files[key] = None
            return self.files[key]

        def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
            data = self._load(key)
            if data is None:
                return None
            if isinstance(byte_range, RangeByteRequest):
                data = data[byte_range.start : byte_range.end]
            elif isinstance(byte_range, OffsetByteRequest):
                data = data[byte_range.offset :]
            elif isinstance(byte_range, SuffixByteRequest):
                data = data[max(0, len(data) - byte_range.suffix) :]
            return (prototype or default_buffer_prototype()).buffer.from_bytes(data)

        async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
            return self.get_sync(key, prototype=prototype, byte_range=byte_range)

        async def get_partial_values(self, prototype: Any, key_ranges: Any) -> List[Any]:
            return [self.get_sync(k, prototype=prototype, byte_range=r) for k, r in key_ranges]

        def set_sync(self, key: str, value: Any) -> None:
            self._check_writable()
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            check_inside(path.parent, self.root)  # a column folder planted as a link leads out: never written
            data = value.to_bytes()
            with self._io:
                if self._closed:
                    raise OSError(errno.ECANCELED, f"not writing {key}: its update has ended")
                atomic_write(path, data, guard=self.guard)  # temporary file, fsync, os.replace
                self.files[key] = data
                self.written[key] = _sig(path)

        async def set(self, key: str, value: Any) -> None:
            # In a thread: the columns' shard files are written and fsynced side by side.
            await asyncio.to_thread(self.set_sync, key, value)

        async def delete(self, key: str) -> None:
            self.files.pop(key, None)
            await super().delete(key)

        async def delete_dir(self, prefix: str) -> None:
            self.files.clear()
            await super().delete_dir(prefix)

    return SnapshotStore


def _sig(path: Path) -> Tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _record_stats(stats: Dict[str, Any]) -> MetricStats:
    return MetricStats.from_json(stats)


def _v1_to_v2(record: Dict[str, Any]) -> None:
    """Format 1 -> 2: restarts, and each metric's ``rows`` and ``segments`` (format 1 had one attempt)."""
    record["stats"] = {key: _record_stats(stats).to_json() for key, stats in record["stats"].items()}
    record.setdefault("restarts", {})
    record["format_version"] = 2


#: Upgrades of the commit record by the version they start from (:data:`hpctrack.store.base.Migrations`).
MIGRATIONS = {1: _v1_to_v2}


def _write_rows(arrays: List["zarr.Array"], start: int, end: int, columns: List["np.ndarray"]) -> None:
    """Write rows ``start:end`` of every column at once.

    The columns are written concurrently on zarr's own event loop, so their
    shards are encoded in parallel (one after the other took 1.5x as long).
    """
    import asyncio

    from zarr.core.sync import sync  # what zarr's synchronous API itself runs on

    async def write_all() -> None:
        async def one(arr: "zarr.Array", data: "np.ndarray") -> None:
            if arr.shape[0] < end:  # grow in whole shards: the shape changes rarely
                await arr._async_array.resize((math.ceil(end / SHARD_ROWS) * SHARD_ROWS,))
            await arr._async_array.setitem(slice(start, end), data)

        # Every column's write ends before this returns, failed or not: none may land later.
        results = await asyncio.gather(*(one(arr, data) for arr, data in zip(arrays, columns)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    sync(write_all())


class ZarrStore(Store):
    """Run store in a Zarr v3 directory, safe for one writer and lock-free readers.

    Parameters
    ----------
    path:
        The ``run.zarr`` directory. Its parent must exist; the first
        :meth:`write` creates it. The lock is ``run.zarr.lock`` beside it.
    """

    name = "zarr"
    suffix = ".zarr"
    requires = ("zarr",)
    install_hint = "pip install 'hpctrack[zarr]' (zarr 3 needs Python >= 3.11)"
    format_version = 2
    migrations = MIGRATIONS

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._tidy = False  # leftovers of killed writers removed, once per writer
        # The column arrays and the row count this writer committed last: reused
        # while the store still holds exactly that count (nobody else wrote).
        self._arrays: Optional[Tuple[int, List["zarr.Array"]]] = None
        # Every file this writer wrote (relative key -> inode, size, mtime) as it left them: anything
        # else there means the store was changed under it. Empty until its first commit.
        self._files: Dict[str, Tuple[int, int, int]] = {}
        self._snapshot: Any = None  # the SnapshotStore of the update in progress

    # -- writing -----------------------------------------------------------

    #: Zarr raises TypeError for some damaged metadata: it means the store could not be written too.
    write_errors = Store.write_errors + (TypeError,)

    def _has_committed(self) -> bool:
        return "zarr.json" in self._files

    def _check_paths(self) -> None:
        self._check_links()

    def _abandon(self) -> None:
        self._tidy = False
        self._arrays = None

    def _commit_update(self, update: Update, guard: Any) -> Optional[Callable[[], None]]:
        done = False
        try:
            self._check_unchanged()
            self._write_locked(update, guard)
            done = True
        finally:
            if self._snapshot is not None:  # what this update wrote, committed or not, is ours
                if not done:  # failed: the snapshot is not reused; stop its late writes
                    self._snapshot.close_writes()
                self._files.update(self._snapshot.written)
                self._snapshot.written.clear()
                self._snapshot = None
        return self._after_commit

    def _after_commit(self) -> None:
        try:
            fsync_dir(self.path)  # the new record's name durable
        except OSError as err:
            self._warn_once(f"could not fsync {self.path} after committing its record: {one_line(err)}")

    def _check_links(self) -> None:
        """The store and its column folders are in the run directory, not symlinks leading out of it.

        The clean-up of a killed first write deletes every file of the store:
        through a planted link it would delete someone else's files.
        """
        check_inside(self.path, self.path.parent, "write the run store")
        for name, _, _ in COLUMNS:
            column = self.path / name
            if os.path.islink(column):
                check_inside(column, self.path, "write the run store column")

    def _check_unchanged(self) -> None:
        """Every file this writer wrote is as it left it; else refuse the store (see HDF5Store)."""
        for key, sig in self._files.items():
            try:
                now = _sig(self.path / key)
            except FileNotFoundError:
                what = "its record zarr.json" if key == "zarr.json" else key
                raise self._replaced(f"{what} was removed") from None
            if now != sig:
                what = "truncated" if now[1] < sig[1] else "replaced" if now[0] != sig[0] else "modified"
                raise self._replaced(f"{key} was {what} ({sig[1]} bytes written, {now[1]} now)")

    def _write_locked(self, update: Update, guard: Any) -> None:
        import numpy as np

        updates, points, attempt, restart = update.sections, update.points, update.attempt, update.restart

        store = self._snapshot = _store_class()(self.path, guard=guard)
        record = self._record(store)
        if record is None:
            # Nothing was ever committed: whatever is there is from a killed first write.
            self._tidy_up(everything=True)
            record = {"format_version": self.format_version, "created": time.time(), "sections": {},
                      "keys": [], "count": 0, "stats": {}}  # fmt: skip
            # an empty store, before the arrays zarr would give a parent group
            self._commit(record, guard, count=False)
        else:
            self._upgrade(record, int(record["format_version"]))  # committed with this update
            if not self._tidy:
                self._tidy_up(everything=False)
        self._tidy = True
        start = int(record["count"])
        if self._arrays is not None and self._arrays[0] == start:
            arrays = self._arrays[1]
            self._snapshot = arrays[0].store
            self._snapshot.guard = guard
        else:
            arrays = [self._column(store, *col) for col in COLUMNS]
            if "zarr.json" not in self._files:
                self._validate(record, arrays)  # a new writer: never build on rows it cannot read back
        self._arrays = None
        restarts = record.setdefault("restarts", {})
        if restart is not None and restarts.get(str(restart[0])) != restart[1]:
            restarts[str(restart[0])] = restart[1]
            self._restat(record, arrays, start)

        keys: List[str] = record["keys"]
        index = {k: i for i, k in enumerate(keys)}
        parts: List[Tuple["np.ndarray", ...]] = []
        for key, (steps, values, times) in points:
            if key not in index:
                index[key] = len(keys)
                keys.append(key)
            step, value = np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)
            parts.append((np.full(len(step), index[key], dtype=np.int32), step, value, np.asarray(times, np.float64)))
            old = record["stats"].get(key)
            new = (MetricStats.empty() if old is None else _record_stats(old)).merged(step, value, attempt)
            record["stats"][key] = new.to_json()
        if parts:
            end = start + sum(len(p[0]) for p in parts)
            # Rows past `count` from a killed update are overwritten.
            _write_rows(arrays, start, end, [np.concatenate([p[i] for p in parts]) for i in range(len(COLUMNS))])
            record["count"] = end
        for name, values in updates.items():
            record["sections"].setdefault(name, {}).update(values)
        self._commit(record, guard)  # last: rows first, then the record that covers them
        arrays[0].store.files.clear()  # type: ignore[attr-defined]  # the snapshot served this update
        self._arrays = (int(record["count"]), arrays)

    def _validate(self, record: Dict[str, Any], arrays: List["zarr.Array"]) -> None:
        """The last committed row reads back as the record says (its shards are whole); else refuse."""
        import numpy as np

        count = int(record["count"])
        if not count:
            return
        try:
            key, step, value = (np.asarray(arrays[i][count - 1 : count]) for i in range(3))
            name = record["keys"][int(key[0])] if 0 <= int(key[0]) < len(record["keys"]) else None
            stats = _record_stats(record["stats"][name]) if name is not None else None
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
            raise StoreError(
                f"cannot write run store {self.path}: its last committed row does not read back "
                f"({one_line(err)}); not writing to a store it cannot validate"
            ) from err
        if stats is None or int(step[0]) != stats.last_step or repr(float(value[0])) != repr(stats.last):
            raise StoreError(
                f"cannot write run store {self.path}: its last committed row does not match its "
                "record (a damaged shard); not writing to a store it cannot validate"
            )

    def _restat(self, record: Dict[str, Any], arrays: List["zarr.Array"], count: int) -> None:
        """Recompute every key's stats from all its rows: a restart changed what is superseded."""
        import numpy as np

        if not count:
            return
        key_col, step_col, value_col = (np.asarray(arrays[i][:count]) for i in range(3))
        restarts = {int(a): int(k) for a, k in record["restarts"].items()}
        for i, key in enumerate(record["keys"]):
            old = _record_stats(record["stats"][key])
            mask = key_col == i
            record["stats"][key] = resolved_stats(step_col[mask], value_col[mask], old.segments, restarts).to_json()

    def _commit(self, record: Dict[str, Any], guard: Any, count: bool = True) -> None:
        """Replace the root group's ``zarr.json``: one atomic, fsynced file replace, the commit.

        Written here rather than through ``zarr.Group.update_attributes``: the
        same file, but compact JSON (half the size of zarr's indented form,
        which matters with thousands of keys) and no second parse of the old one.
        ``commits`` grows iff ``zarr.json`` is the new file afterwards, whatever
        interrupts the replace (``count=False``: the empty record of a first write).
        """
        self.path.mkdir(exist_ok=True)
        meta = {"zarr_format": 3, "node_type": "group", "attributes": record}
        # allow_nan: NaN and +-Infinity literals, as zarr writes them and Python's json reads them.
        data = json.dumps(meta, allow_nan=True, separators=(",", ":")).encode()
        target = self.path / "zarr.json"
        tmp = target.with_name(f".zarr.json.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            written = os.stat(tmp).st_ino
            guard.check()
            try:
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(OSError):
                    now = _sig(target)
                    if now[0] == written:
                        self._files["zarr.json"] = now
                        self.commits += int(count)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _column(self, store: Any, name: str, dtype: str, fill: Any) -> "zarr.Array":
        import zarr
        from zarr.codecs import ZstdCodec

        try:
            return zarr.open_array(store=store, path=name, mode="r+", zarr_format=3)
        except FileNotFoundError:  # first write, or the one that created the store was killed
            return zarr.create_array(
                store, name=name, shape=(0,), dtype=dtype, fill_value=fill, chunks=(CHUNK_ROWS,), shards=(SHARD_ROWS,),
                compressors=ZstdCodec(level=1, checksum=True), dimension_names=("row",),
                chunk_key_encoding={"name": "default", "separator": "."}, overwrite=True,
                config={"write_empty_chunks": False},  # type: ignore[arg-type]  # an ArrayConfigParams
            )  # fmt: skip

    def _tidy_up(self, everything: bool) -> None:
        """Remove temporary files of killed writers (or, before the first commit, everything)."""
        if not self.path.is_dir():
            return
        names = {c[0] for c in COLUMNS}
        self._check_links()
        for root, _dirs, files in os.walk(self.path):  # never into a linked folder: os.walk lists, not follows
            check_inside(root, self.path, "clean up")
            rel = Path(root).relative_to(self.path)
            for fname in files:
                keep = fname == "zarr.json" or (rel.name in names and fname.startswith("c.") and fname[2:].isdigit())
                if everything or not keep:
                    os.unlink(os.path.join(root, fname))

    # -- reading -----------------------------------------------------------

    def fingerprint(self) -> Optional[str]:
        return self.fingerprint_of(os.fspath(self.path))

    @classmethod
    def fingerprint_of(cls, path: str) -> Optional[str]:
        """Size and mtime of the commit record and of every column's shard files."""
        parts = []
        try:
            st = os.stat(os.path.join(path, "zarr.json"))
        except OSError:
            return None
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        for name, _, _ in COLUMNS:
            try:
                with os.scandir(os.path.join(path, name)) as entries:
                    shards = sorted((e.name, e.stat()) for e in entries if e.name.startswith("c."))
            except OSError:
                shards = []
            parts.append(name + "=" + ",".join(f"{n}:{s.st_size}:{s.st_mtime_ns}" for n, s in shards))
        return "|".join(parts)

    def read(self) -> RunRecord:
        record = self._read_record()
        secs = {name: dict(record["sections"].get(name, {})) for name in SECTIONS}
        stats = {key: _record_stats(s) for key, s in record["stats"].items()}
        restarts = {int(a): int(k) for a, k in record.get("restarts", {}).items()}
        return RunRecord(path=self.path, format_version=int(record["format_version"]), metrics=stats,
                         restarts=restarts, **secs)  # fmt: skip

    def read_history(self, key: str, *, raw: bool = False) -> MetricHistory:
        import numpy as np
        import zarr

        check_key(key)
        for attempt in range(READ_ATTEMPTS):
            store = _store_class()(self.path, read_only=True)
            record = self._read_record(store)
            if key not in record["stats"]:
                raise KeyError(f"metric {key!r} was never logged in {self.path}")
            count, index = int(record["count"]), record["keys"].index(key)
            missing = self._missing_shards(count, record)
            if missing:
                raise StoreError(f"run store {self.path} is missing {missing[0]} (deleted?): its points cannot be "
                                 "read back; see hpctrack verify")  # fmt: skip
            try:
                cols = [np.asarray(zarr.open_array(store=store, path=c[0], mode="r", zarr_format=3)[:count])
                        for c in COLUMNS]  # fmt: skip
            except (OSError, RuntimeError, ValueError, KeyError) as err:
                if attempt + 1 < READ_ATTEMPTS:
                    time.sleep(0.01)
                    continue
                raise StoreError(f"cannot read run store {self.path}: {one_line(err)}") from err
            mask = cols[0] == index
            stats = _record_stats(record["stats"][key])
            # Cross-check against the record: a missing or zero-filled shard shows up here.
            if int(mask.sum()) != stats.stored_rows:
                raise StoreError(f"run store {self.path} is inconsistent: {key!r} has "
                                 f"{int(mask.sum())} rows, its record says {stats.stored_rows}")  # fmt: skip
            restarts = {int(a): int(k) for a, k in record.get("restarts", {}).items()}
            data = {c[0]: a[mask] for c, a in zip(COLUMNS[1:], cols[1:])}
            return history_of(key, data, stats, restarts, raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _missing_shards(self, count: int, record: Mapping[str, Any]) -> List[str]:
        """Shard files the first ``count`` rows need that are not on disk (``value/c.0``), in column order.

        A missing shard reads back as its fill value, silently. Shards made only of
        fill values are never written, so a missing ``value`` or ``step`` shard is
        a loss unless every point could be the fill (all values 0.0, all steps 0);
        ``key`` (-1 fill) and ``time`` shards always exist.
        """
        needed = -(-count // SHARD_ROWS)
        if not needed:
            return []
        stats = list(record.get("stats", {}).values())
        could_be_fill = {
            "value": all(s.get("min") == 0.0 and s.get("max") == 0.0 for s in stats),
            "step": all(s.get("last_step") == 0 for s in stats),
        }
        out = []
        for name, _, _ in COLUMNS:
            try:
                present = {e.name for e in os.scandir(self.path / name)}
            except OSError:
                present = set()
            out += [f"{name}/c.{i}" for i in range(needed) if f"c.{i}" not in present and not could_be_fill.get(name)]
        return out

    def _read_record(self, store: Any = None) -> Dict[str, Any]:
        if not (self.path / "zarr.json").is_file():
            raise RunNotFoundError(f"no run store at {self.path}: the run has not started")
        record = self._record(store or _store_class()(self.path, read_only=True))
        if record is None:  # removed between the check and the read
            raise RunNotFoundError(f"no run store at {self.path}: the run has not started")
        return record

    def _record(self, store: Any) -> Optional[Dict[str, Any]]:
        """The commit record from the root ``zarr.json``, read once; None if there is none."""
        raw = store.get_sync("zarr.json")
        if raw is None:
            return None
        try:
            meta = json.loads(raw.to_bytes())
            record = meta["attributes"]
            version = record.get("format_version")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise StoreError(f"cannot read run store {self.path}: zarr.json: {one_line(err)}") from err
        if version is None or meta.get("zarr_format") != 3:
            raise StoreError(f"{self.path} is not an hpctrack run store (no format_version attribute)")
        if int(version) > self.format_version:
            raise FormatVersionError(
                f"{self.path} has format_version {int(version)} but this hpctrack reads up to "
                f"{self.format_version}; upgrade hpctrack: pip install -U hpctrack"
            )
        return record
