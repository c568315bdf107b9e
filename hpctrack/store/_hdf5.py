"""HDF5 run store: two complete copies behind a symlink, layout ``format_version`` 3.

``run.h5`` is a symlink naming the current copy ``run.<gen>.h5``; a second
complete copy, the spare, sits beside it. The writer never modifies the file
``run.h5`` names, so a reader always finds a complete, closed file there, and
plain h5py users simply open ``run.h5``.

``write()`` holds the run lock ``run.h5.lock`` for the update only: it applies
the update to the spare (open, append, close), renames it to generation
``gen + 1`` and fsyncs it, commits by pointing ``run.h5`` at it (temporary
symlink, ``os.replace``), then applies the same update to the old copy, now
the spare. A SIGKILL anywhere tears at most the spare, which nothing reads; a
writer resynchronises it from the current copy (copy to a temporary name,
``os.replace``) before its first update and after any update that did not
finish. The fsync keeps a node failure from committing a copy whose last pages
never reached the servers.

The update counts as committed (``Store.commits``) exactly when ``run.h5``
names the new copy; what follows the commit never raises. A writer that
committed before first checks that ``run.h5`` still names the copy it left,
unchanged (inode, size, mtime): a store truncated, replaced or removed under
it is refused (``StoreReplacedError``), never copied over the spare. Before
HDF5 writes a copy, its disk is allocated (``posix_fallocate``): a full disk
fails there, as ``DiskFullError``, never inside HDF5.

Readers take no lock: they resolve the symlink, read that copy, and check the
symlink still names it, else retry. Generations only grow, so an unchanged
name proves no commit happened during the read, hence nobody modified the
copy. (Fixed names a/b would not: two commits during one read flip the link
away and back while the copy is rewritten in place.)

HDF5's own file locking is off (``locking=False``): it fails on Lustre/GPFS
mounts without lock support. Copies are written with ``libver=("v110",
"v110")``: checksummed metadata, and HDF5 refuses to open a file a killed
process left open for writing instead of reading garbage. See
``docs/store-format.md``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ..errors import FormatVersionError, RunNotFoundError, StoreError
from ..locking import DEFAULT_LOCK_TIMEOUT_S, lock
from ..safefs import check_inside, is_inside
from .base import (
    SECTIONS,
    MetricBatch,
    MetricHistory,
    MetricStats,
    RunRecord,
    Store,
    Update,
    check_key,
    disk_full,
    history_of,
    one_line,
    resolved_stats,
)

if TYPE_CHECKING:
    import h5py
    import numpy as np

__all__ = ["HDF5Store", "CHUNK_ROWS", "READ_ATTEMPTS"]

#: Rows per chunk of a metric dataset: 24 KiB, small enough for short runs,
#: large enough that long histories are not millions of chunks.
CHUNK_ROWS = 1024
#: A reader retries this often when a commit lands during its read (each read
#: takes milliseconds and a run commits every few seconds, so 2 tries is usual).
READ_ATTEMPTS = 50
#: Low and high HDF5 format bounds: readable by HDF5 >= 1.10, checksummed metadata.
LIBVER = ("v110", "v110")
#: Disk reserved per update beyond twice what it adds: HDF5's own metadata (chunk indexes, heaps).
RESERVE_MARGIN = 1 << 20

T = TypeVar("T")
_Sig = Tuple[int, int, int]


def _metric_dtype() -> "np.dtype":
    import numpy as np

    return np.dtype([("step", "<i8"), ("value", "<f8"), ("time", "<f8")])


def _dataset_name(key: str) -> str:
    """HDF5 link name of metric ``key``: "train/loss" is one dataset, not a group."""
    name = check_key(key).replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    # HDF5 refuses "." as a link name (it means "this group").
    return "%2E" if name == "." else name


def _key_of(name: str) -> str:
    """Inverse of :func:`_dataset_name`: every literal "%" was escaped, so one pass is exact."""
    return re.sub(r"%(25|2F|00|2E)", lambda m: chr(int(m.group(1), 16)), name)


def _stats_from_attrs(attrs: "h5py.AttributeManager") -> MetricStats:
    """Formats 1 and 2 kept each metric's stats in its dataset's attributes."""
    return MetricStats(count=int(attrs["count"]), last=float(attrs["last"]), last_step=int(attrs["last_step"]),
                       min=float(attrs["min"]), max=float(attrs["max"]))  # fmt: skip


def _read_stats(f: "h5py.File") -> Tuple[Dict[str, MetricStats], Dict[int, int]]:
    """Every metric's stats and the run's restarts: ``/stats`` (format 3), else the older attributes."""
    ds = f.get("stats")
    if ds is not None:
        data = json.loads(ds.asstr()[()])
        stats = {key: MetricStats.from_json(v) for key, v in data["metrics"].items()}
        return stats, {int(a): int(k) for a, k in data.get("restarts", {}).items()}
    return {_key_of(name): _stats_from_attrs(d.attrs) for name, d in f.get("metrics", {}).items()}, {}


def _read_stats_of(f: "h5py.File", key: str) -> Tuple[MetricStats, Dict[int, int]]:
    """One metric's stats and the restarts (what read_history needs: it skips the other metrics)."""
    ds = f.get("stats")
    if ds is None:
        stats, restarts = _read_stats(f)
        return stats.get(key, MetricStats.empty()), restarts
    data = json.loads(ds.asstr()[()])
    entry = data["metrics"].get(key)
    restarts = {int(a): int(k) for a, k in data.get("restarts", {}).items()}
    return (MetricStats.from_json(entry) if entry is not None else MetricStats.empty()), restarts


def _write_stats(f: "h5py.File", stats: Mapping[str, MetricStats], restarts: Mapping[int, int]) -> int:
    import h5py

    # One small JSON string instead of five attributes per metric: a flush of
    # four metrics wrote 40 attributes (2 ms), and read() opened every dataset.
    text = json.dumps({"metrics": {k: v.to_json() for k, v in stats.items()},
                       "restarts": {str(a): k for a, k in sorted(restarts.items())}}, allow_nan=True)  # fmt: skip
    ds = f.get("stats")
    if ds is None:
        f.create_dataset("stats", data=text, dtype=h5py.string_dtype("utf-8"))
    else:
        ds[()] = text
    return len(text)


def _v1_to_v2(f: "h5py.File") -> None:
    """Format 1 -> 2: one plain ``run.h5`` updated in place becomes copy 0 behind the ``run.h5`` symlink.

    The layout inside is the same; ``HDF5Store._create`` moves the file (a copy,
    then ``os.replace``) and calls this on the copy, before the link names it.
    """
    f.attrs["format_version"] = 2


def _v2_to_v3(f: "h5py.File") -> None:
    """Format 2 -> 3: each metric's stats move from its dataset's attributes into ``/stats``."""
    stats, restarts = _read_stats(f)
    _write_stats(f, stats, restarts)
    f.attrs["format_version"] = 3


#: Upgrades of one copy by the version they start from (:data:`hpctrack.store.base.Migrations`).
MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3}


_FAPL: List[Any] = []


def _read_fapl() -> Any:
    """The file access properties of a fast read (as ``locking=False``), made once per process.

    A sweep-wide history opens 10,000 files: a property list per open was a measurable part of each.
    """
    if not _FAPL:
        from h5py import h5p

        fapl = h5p.create(h5p.FILE_ACCESS)
        fapl.set_file_locking(False, True)
        _FAPL.append(fapl)
    return _FAPL[0]


def _read_rows(fid: Any, name: str, rows: int) -> "np.ndarray":
    """The first ``rows`` rows of dataset ``metrics/<name>`` of an open file (h5py's low-level API)."""
    import numpy as np
    from h5py import h5d, h5s

    did = h5d.open(fid, f"metrics/{name}".encode())
    if did.shape[0] < rows:
        raise ValueError(f"{name}: {did.shape[0]} rows stored, {rows} committed")
    data = np.empty(rows, dtype=did.dtype)
    if rows and did.shape[0] == rows:  # the usual case: the whole dataset, no selection to build
        did.read(h5s.ALL, h5s.ALL, data)
    elif rows:
        space = did.get_space()
        space.select_hyperslab((0,), (rows,))  # never past the commit mark
        did.read(h5s.create_simple((rows,)), space, data)
    return data


def _sig(path: Path) -> _Sig:
    """Identity and last change of a copy: whoever else touched it changes one of them."""
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:  # some filesystems cannot fsync a directory: renames are synchronous there
        if not (path.is_dir() and err.errno in (errno.EINVAL, errno.ENOTSUP)):
            raise
    finally:
        os.close(fd)


class HDF5Store(Store):
    """Run store in HDF5 files, safe for one writer and lock-free readers.

    Sections are JSON objects in scalar string datasets ``/sections/<name>``;
    each metric is a resizable compound dataset ``/metrics/<escaped key>``
    whose attributes hold its running :class:`MetricStats`, so :meth:`read`
    never touches histories.

    Parameters
    ----------
    path:
        ``run.h5``, the symlink naming the current copy. Its directory must
        exist; the first :meth:`write` creates the files. The lock is
        ``<path>.lock`` beside it.
    """

    name = "hdf5"
    suffix = ".h5"
    format_version = 3
    migrations = MIGRATIONS
    keeps_spare_copy = True

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        # What this writer left after its last complete update: (current
        # generation, signature of the current copy, spare path, its
        # signature). None forces a resync before the next update.
        self._synced: Optional[Tuple[int, _Sig, Path, _Sig]] = None
        # The copy this writer committed last and its signature: anything else there means
        # the store was changed under it (None until its first commit).
        self._last: Optional[Tuple[str, _Sig]] = None
        self._sizes: Dict[str, int] = {}  # bytes of /stats and of each section, for the reservation
        self._copy_re = re.compile(rf"^{re.escape(self.path.stem)}\.(\d+){re.escape(self.path.suffix)}$")

    def _copy(self, gen: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{gen}{self.path.suffix}")

    def _tmp(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")

    # -- writing -----------------------------------------------------------

    def _encode_points(self, metrics: Optional[MetricBatch]) -> Dict[str, Tuple[str, "np.ndarray"]]:
        """Each key's points as one structured array, under its dataset name."""
        import numpy as np

        rows: Dict[str, Tuple[str, "np.ndarray"]] = {}
        for key, (steps, values, times) in (metrics.points if metrics else {}).items():
            if len(steps):
                arr = np.empty(len(steps), dtype=_metric_dtype())
                arr["step"], arr["value"], arr["time"] = steps, values, times
                rows[key] = (_dataset_name(key), arr)
        return rows

    def _has_committed(self) -> bool:
        return self._last is not None

    def _commit_update(self, update: Update, guard: Any) -> Optional[Callable[[], None]]:
        self._check_unchanged()
        gen = self._current_gen()
        if gen is None:
            self._writing = self._copy(0)
            gen = self._create(guard)
        elif self._synced is None and self._last is None:
            self._validate(gen)  # a new writer: refuse a newer or unreadable store before touching it
        self._writing = self._copy(gen + 1)
        spare = self._spare(gen, guard)
        self._synced = None  # the copies differ until both got the update
        self._apply(spare, update)
        new = self._copy(gen + 1)
        guard.check()
        os.replace(spare, new)
        _fsync(new)
        self._commit(new, guard)

        def follow() -> None:
            # The update is committed: the next one resynchronises the spare if this fails.
            try:
                _fsync(self.path.parent)  # the link durable before the old copy changes
            except OSError as err:
                self._warn_once(f"could not fsync {self.path.parent} after committing {new.name}: {one_line(err)}")
            old = self._copy(gen)
            try:
                self._apply(old, update)
                self._synced = (gen + 1, _sig(new), old, _sig(old))
            except (OSError, RuntimeError, ValueError, KeyError) as err:
                self._warn_once(f"the update of {self.path} is stored, but its spare copy {old.name} could not "
                                f"follow ({one_line(err)}); it is copied again at the next write")  # fmt: skip

        return follow

    def _commit(self, new: Path, guard: Any, count: bool = True) -> None:
        """Point ``run.h5`` at ``new``: the commit. ``commits`` grows iff the link names ``new`` after it
        (``count=False``: the empty store a first write creates, which is not an update)."""
        tmp = self._tmp()
        os.symlink(new.name, tmp)  # relative: the run directory can be moved
        guard.check()
        try:
            os.replace(tmp, self.path)
        finally:  # counted whatever interrupts it, exactly when the link names the new copy
            with contextlib.suppress(OSError):
                if os.readlink(self.path) == new.name and (self._last is None or self._last[0] != new.name):
                    self._last = (new.name, _sig(new))
                    self.commits += int(count)

    def _check_unchanged(self) -> None:
        """The current copy is still the one this writer committed last, untouched; else refuse the store.

        Someone truncated, replaced or removed it: building on it (or copying it over the
        good spare) would spread the damage, so the writer stops here.
        """
        if self._last is None:
            return
        name, sig = self._last
        try:
            target = os.readlink(self.path)
        except FileNotFoundError:
            raise self._replaced(f"{self.path.name} was removed (it named {name})") from None
        except OSError:
            raise self._replaced(f"{self.path.name} is no longer the link to its current copy") from None
        if target != name:
            raise self._replaced(f"{self.path.name} names {target}, not {name} that this run committed last")
        try:
            now = _sig(self.path.parent / name)
        except FileNotFoundError:
            raise self._replaced(f"its current copy {name} was removed") from None
        if now != sig:
            what = "truncated" if now[1] < sig[1] else "replaced" if now[0] != sig[0] else "modified"
            raise self._replaced(f"its current copy {name} was {what} ({sig[1]} bytes committed, {now[1]} now)")

    def _validate(self, gen: int) -> None:
        """A new writer's look at the current copy: readable, not newer; and the sizes to reserve for."""
        import h5py

        with h5py.File(self._copy(gen), "r", locking=False) as f:
            self._check_version(f)
            ds = f.get("stats")
            self._sizes["stats"] = 0 if ds is None else len(ds.asstr()[()])
            for name in SECTIONS:
                ds = f.get(f"sections/{name}")
                self._sizes[name] = 0 if ds is None else len(ds.asstr()[()])

    def _apply(self, path: Path, update: Update) -> None:
        """Open-append-close one copy; closing writes out all of HDF5's cached metadata."""
        import h5py

        updates, rows, attempt, restart = update.sections, update.points, update.attempt, update.restart

        check_inside(path, self.path.parent, "update the store copy")  # a planted link to another HDF5 file
        self._reserve(path, updates, rows)
        with h5py.File(path, "a", locking=False, libver=LIBVER) as f:
            self._check_version(f)
            version = int(f.attrs["format_version"])
            self._upgrade(f, version)  # the first update of an older store (each copy in turn)
            group = f.require_group("metrics")
            stats, restarts = _read_stats(f)
            if restart is not None and restarts.get(restart[0]) != restart[1]:
                restarts[restart[0]] = restart[1]
                for key, old in stats.items():  # what is superseded changed: recompute from every row
                    data = group[_dataset_name(key)][: old.stored_rows]
                    stats[key] = resolved_stats(data["step"], data["value"], old.segments, restarts)
            for key, (dname, arr) in rows.items():
                ds = group.get(dname)
                if ds is None:
                    ds = group.create_dataset(
                        dname, shape=(0,), maxshape=(None,), chunks=(CHUNK_ROWS,), dtype=arr.dtype
                    )
                    if "\0" not in key:  # for plain readers; HDF5 strings cannot hold NUL
                        ds.attrs["key"] = key
                old = stats.get(key, MetricStats.empty())
                # Append at `rows`: rows past it (an update that raised) are overwritten.
                ds.resize((old.stored_rows + len(arr),))
                ds[old.stored_rows :] = arr
                stats[key] = old.merged(arr["step"], arr["value"], attempt)
            if rows or restart is not None or "stats" not in f or version < self.format_version:
                self._sizes["stats"] = _write_stats(f, stats, restarts)
            secs = f.require_group("sections")
            for name, values in updates.items():
                ds = secs.get(name)
                if ds is None:
                    text = json.dumps(values)
                    secs.create_dataset(name, data=text, dtype=h5py.string_dtype("utf-8"))
                else:
                    merged = json.loads(ds.asstr()[()])
                    merged.update(values)
                    text = json.dumps(merged)
                    ds[()] = text  # in place: HDF5 reuses the heap space
                self._sizes[name] = len(text)

    def _reserve(
        self, path: Path, updates: Dict[str, Dict[str, Any]], rows: Dict[str, Tuple[str, "np.ndarray"]]
    ) -> None:
        """Allocate, before HDF5 writes, more disk than the update can take (ENOSPC/EDQUOT raise here).

        HDF5 must never meet a full disk itself: h5py then reports the error through
        ``sys.excepthook`` while the write goes on, and releasing the file afterwards can
        crash the process. Space allocated beyond the copy's end is given back when HDF5
        closes the file (it truncates the file to its end of allocation).
        """
        grow = sum(arr.nbytes + 512 for _, arr in rows.values()) + self._sizes.get("stats", 0)
        grow += sum(max(self._sizes.get(name, 0), 0) + len(json.dumps(update)) for name, update in updates.items())
        size = os.stat(path).st_size
        need = 2 * grow + RESERVE_MARGIN
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, size, need)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
                raise
            # A filesystem that cannot allocate ahead: at least never start with less free space.
            if shutil.disk_usage(path.parent).free < need:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        finally:
            os.close(fd)

    def _current_gen(self) -> Optional[int]:
        """Generation ``run.h5`` names; None before the first write; migrates format 1 (:func:`_v1_to_v2`)."""
        try:
            target = os.readlink(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
            return self._create(v1=True)
        match = self._copy_re.match(target)
        if match is None:
            raise StoreError(f"{self.path} names {target!r}, not a copy {self._copy(0).name}-like")
        return int(match.group(1))

    def _create(self, guard: Any = None, v1: bool = False) -> int:
        """Copy 0 and ``run.h5`` naming it: a new, empty store, or one migrated from format 1.

        Format 1 kept one plain ``run.h5`` with the same layout inside: it
        becomes copy 0, and the symlink replaces it atomically. Copies that
        hold data (generation 1 and later) without a link naming them are a
        store whose link was removed: never deleted here.
        """
        import h5py

        orphans = sorted(e.name for e in os.scandir(self.path.parent)
                         if (m := self._copy_re.match(e.name)) is not None and int(m.group(1)) > 0)  # fmt: skip
        if orphans and not v1:
            raise StoreError(
                f"{self.path} is missing but its copies {', '.join(orphans)} are there: the store's "
                "link was removed; restore it (`hpctrack verify --repair`) before writing to this run"
            )
        free = shutil.disk_usage(self.path.parent).free
        if free < RESERVE_MARGIN:
            raise disk_full(OSError(errno.ENOSPC, "no space"), self.path.parent, self._copy(0))  # type: ignore[misc]
        self._remove_leftovers(keep=None)  # of a creation or migration that was killed
        tmp = self._tmp()
        try:
            if v1:
                shutil.copyfile(self.path, tmp)
            with h5py.File(tmp, "a" if v1 else "w", locking=False, libver=None if v1 else LIBVER) as f:
                if v1:
                    self._check_version(f)
                    self.migrations[1](f)  # copies behind a symlink; _apply upgrades each copy further
                else:
                    f.attrs["created"] = time.time()
                    f.attrs["format_version"] = self.format_version
            first = self._copy(0)
            if guard is not None:
                guard.check()
            os.replace(tmp, first)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync(first)
        if guard is not None:
            self._commit(first, guard, count=False)
            _fsync(self.path.parent)
        else:  # format 1 migration (under the lock of the write that asked for it)
            link = self._tmp()
            os.symlink(first.name, link)
            os.replace(link, self.path)
            _fsync(self.path.parent)
        return 0

    def _spare(self, gen: int, guard: Any) -> Path:
        """The non-current copy, as complete as the current one; resynchronised when in doubt."""
        current = self._copy(gen)
        if self._synced is not None:
            synced_gen, cur_sig, spare, spare_sig = self._synced
            with contextlib.suppress(OSError):
                if synced_gen == gen and _sig(current) == cur_sig and _sig(spare) == spare_sig:
                    return spare
        # First update of this writer, or the last one did not finish, or the spare was
        # touched: start again from the current copy (validated above: ours, or readable).
        self._remove_leftovers(keep=current)
        spare = self._copy(gen + 1)
        tmp = self._tmp()
        try:
            shutil.copyfile(current, tmp)
            guard.check()
            os.replace(tmp, spare)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a full disk gets its space back
            raise
        return spare

    def _remove_leftovers(self, keep: Optional[Path]) -> None:
        """Copies other than ``keep`` and temporary files killed writers left behind."""
        tmp_prefix = f".{self.path.name}."
        for entry in os.scandir(self.path.parent):
            if (self._copy_re.match(entry.name) or entry.name.startswith(tmp_prefix)) and (
                keep is None or entry.name != keep.name
            ):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    # -- reading -----------------------------------------------------------

    def fingerprint(self) -> Optional[str]:
        return self.fingerprint_of(os.fspath(self.path))

    @classmethod
    def fingerprint_of(cls, path: str) -> Optional[str]:
        """``<copy name>:<size>:<mtime ns>`` of the copy ``run.h5`` names."""
        try:
            target = os.readlink(path)
            st = os.stat(os.path.join(os.path.dirname(path), target))
        except OSError:
            try:
                st = os.stat(path)  # format 1: a plain file
                target = os.path.basename(path)
            except OSError:
                return None
        return f"{target}:{st.st_size}:{st.st_mtime_ns}"

    @classmethod
    def fingerprints_of(cls, base: str, paths: Sequence[str]) -> List[Optional[str]]:
        """:meth:`fingerprint_of` of each path, the paths resolved from one open ``base`` (``dir_fd``)."""
        try:
            fd = os.open(base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return [cls.fingerprint_of(os.path.join(base, path)) for path in paths]
        out: List[Optional[str]] = []
        sep = os.sep
        try:
            for path in paths:
                try:
                    target = os.readlink(path, dir_fd=fd)
                    # the copy beside the link (string operations: os.path costs more than the stat, warm)
                    copy = target if target.startswith(sep) else path[: path.rfind(sep) + 1] + target
                    st = os.stat(copy, dir_fd=fd)
                except OSError:
                    try:
                        st = os.stat(path, dir_fd=fd)  # format 1: a plain file
                        target = os.path.basename(path)
                    except OSError:
                        out.append(None)
                        continue
                out.append(f"{target}:{st.st_size}:{st.st_mtime_ns}")
        finally:
            os.close(fd)
        return out

    def read(self) -> RunRecord:
        def read_file(f: "h5py.File") -> Tuple[int, Dict[str, Any], Tuple[Dict[str, MetricStats], Dict[int, int]]]:
            secs: Dict[str, Any] = {}
            for name in SECTIONS:
                ds = f.get(f"sections/{name}")
                secs[name] = {} if ds is None else json.loads(ds.asstr()[()])
            return int(f.attrs["format_version"]), secs, _read_stats(f)

        version, secs, (stats, restarts) = self._read(read_file)
        return RunRecord(path=self.path, format_version=version, metrics=stats, restarts=restarts, **secs)

    def read_history(self, key: str, *, raw: bool = False) -> MetricHistory:
        name = _dataset_name(key)
        fast = self._read_history_fast(key, name, raw)
        if fast is not None:
            return fast

        def read_file(f: "h5py.File") -> Optional[MetricHistory]:
            ds = f.get(f"metrics/{name}")
            if ds is None:
                return None
            st, restarts = _read_stats_of(f, key)
            data = ds[: st.stored_rows]  # never past the commit mark
            return history_of(key, {c: data[c] for c in ("step", "value", "time")}, st, restarts, raw)

        history = self._read(read_file)
        if history is None:
            raise KeyError(f"metric {key!r} was never logged in {self.path}")
        return history

    def _read_history_fast(self, key: str, name: str, raw: bool) -> Optional[MetricHistory]:
        """``read_history`` through h5py's low-level API: a third less time per run, which a
        sweep-wide history of 10,000 runs feels. None whenever anything is unusual (an older
        format, a commit during the read, an error): the high-level path then decides."""
        import h5py
        import numpy as np
        from h5py import h5a, h5d, h5f, h5s

        try:
            path = os.fspath(self.path)
            target = os.readlink(path)
            fid = h5f.open(os.fsencode(os.path.join(os.path.dirname(path), target)), h5f.ACC_RDONLY,
                           fapl=_read_fapl())  # fmt: skip
            try:
                aid = h5a.open(fid, b"format_version")
                version = np.empty((), dtype=aid.dtype)
                aid.read(version)
                if int(version) != self.format_version:
                    return None
                sid = h5d.open(fid, b"stats")
                text = np.empty((), dtype=h5py.string_dtype())
                sid.read(h5s.ALL, h5s.ALL, text)
                meta = json.loads(text.item())
                entry = meta["metrics"].get(key)
                if entry is None:
                    return None  # never logged: the high-level path raises KeyError
                stats = MetricStats.from_json(entry)
                data = _read_rows(fid, name, stats.stored_rows)
            finally:
                fid.close()
            if os.readlink(path) != target:
                return None  # a commit landed during the read
        except (OSError, RuntimeError, ValueError, KeyError, TypeError):
            return None
        restarts = {int(a): int(k) for a, k in meta.get("restarts", {}).items()}
        return history_of(key, {c: data[c] for c in ("step", "value", "time")}, stats, restarts, raw)

    def read_history_indexed(
        self, key: str, fingerprint: str, rows: int, segments: Any, restarts: Mapping[str, Any], format_version: int
    ) -> Optional[MetricHistory]:
        """The metric's rows alone, from the copy the index line's fingerprint names (no ``stats`` read)."""
        from h5py import h5f

        try:
            if int(format_version) != self.format_version:
                return None
            # Only what a history takes from the stats: where the rows end and which attempt wrote them.
            known = MetricStats(count=int(rows), last=math.nan, last_step=-1, min=math.nan, max=math.nan,
                                rows=int(rows), segments=tuple((int(a), int(r)) for a, r in segments))  # fmt: skip
            steps_of = {int(a): int(k) for a, k in restarts.items()}
            path = os.fspath(self.path)
            target = os.readlink(path)
            copy = os.path.join(os.path.dirname(path), target)
            st = os.stat(copy)
            if f"{target}:{st.st_size}:{st.st_mtime_ns}" != fingerprint:
                return None  # written since the line (or replaced): the line does not describe it
            fid = h5f.open(os.fsencode(copy), h5f.ACC_RDONLY, fapl=_read_fapl())
            try:
                data = _read_rows(fid, _dataset_name(key), known.stored_rows)
            finally:
                fid.close()
            if os.readlink(path) != target:
                return None  # a commit landed during the read
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return history_of(key, {c: data[c] for c in ("step", "value", "time")}, known, steps_of, False)

    def _read(self, read_file: Callable[["h5py.File"], T]) -> T:
        """``read_file`` applied to the current copy, retried until no commit overlapped it."""
        import h5py

        err: Optional[BaseException] = None
        failures = 0
        for _ in range(READ_ATTEMPTS):
            try:
                target = os.readlink(self.path)
            except FileNotFoundError:
                raise RunNotFoundError(f"no run store at {self.path}: the run has not started") from None
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # a plain file: format version 1
                    return self._read_v1(read_file)
                raise StoreError(f"cannot read run store {self.path}: {one_line(exc)}") from exc
            err = None
            try:
                with h5py.File(self.path.parent / target, "r", locking=False) as f:
                    self._check_version(f)
                    result = read_file(f)
            except (OSError, RuntimeError, ValueError, KeyError) as exc:  # also a copy renamed away
                err = exc
            try:
                unchanged = os.readlink(self.path) == target
            except OSError:
                unchanged = False
            if unchanged:  # no commit during the read: nobody touched that copy
                if err is None:
                    return result
                failures += 1
                if isinstance(err, StoreError) or failures >= 3:
                    break  # a stable copy that fails: corrupt or newer, not torn
                time.sleep(0.01)  # a network filesystem may still be catching up
        if isinstance(err, StoreError):
            raise err
        reason = one_line(err) if err else "a commit landed during every read attempt"
        raise StoreError(f"cannot read run store {self.path}: {reason}") from err

    def _read_v1(self, read_file: Callable[["h5py.File"], T]) -> T:
        """Format 1: its writer updates ``run.h5`` in place, so read under its lock."""
        import h5py

        with lock(self.lock_path, 10.0):  # as format 1 readers did
            try:
                with h5py.File(self.path, "r", locking=False) as f:
                    self._check_version(f)
                    return read_file(f)
            except StoreError:
                raise
            except (OSError, RuntimeError, ValueError, KeyError) as err:
                raise StoreError(f"cannot read run store {self.path}: {one_line(err)}") from err

    def _check_version(self, f: "h5py.File") -> None:
        version = f.attrs.get("format_version")
        if version is None:
            raise StoreError(f"{self.path} is not an hpctrack run store (no format_version attribute)")
        # Versions 1 and 2 have the same layout inside, with stats in attributes; read as is.
        if int(version) > self.format_version:
            raise FormatVersionError(
                f"{self.path} has format_version {int(version)} but this hpctrack reads up to "
                f"{self.format_version}; upgrade hpctrack: pip install -U hpctrack"
            )

    # -- integrity ---------------------------------------------------------

    def _copies(self) -> List[Tuple[int, Path]]:
        """Every copy ``run.<gen>.h5`` beside ``run.h5``, newest generation first."""
        found = []
        for entry in os.scandir(self.path.parent):
            match = self._copy_re.match(entry.name)
            if match:
                found.append((int(match.group(1)), Path(entry.path)))
        return sorted(found, reverse=True)

    def _copy_problem(self, copy: Path) -> Optional[str]:
        """Why one copy is not a whole store (sections, stats and every committed point read back), or None."""
        import h5py

        try:
            with h5py.File(copy, "r", locking=False) as f:
                self._check_version(f)
                for name in SECTIONS:
                    ds = f.get(f"sections/{name}")
                    if ds is not None:
                        json.loads(ds.asstr()[()])
                stats, _ = _read_stats(f)
                for key, st in stats.items():
                    ds = f.get(f"metrics/{_dataset_name(key)}")
                    if ds is None or ds.shape[0] < st.stored_rows:
                        return f"{key!r} lacks committed points"
                    ds[: st.stored_rows]
        except (OSError, RuntimeError, ValueError, KeyError, StoreError) as err:
            return one_line(err)
        return None

    def verify(self) -> List[str]:
        """:meth:`Store.verify`, plus what the copies behind ``run.h5`` offer for a repair."""
        try:
            target = os.readlink(self.path)
        except FileNotFoundError:
            copies = self._copies()
            if not copies:
                return [f"no run store at {self.path}"]
            names = ", ".join(p.name for _, p in copies)
            return [f"{self.path.name} is missing; copies remain: {names} (repair restores the newest intact one)"]
        except OSError as err:
            if err.errno != errno.EINVAL:
                return [f"unreadable: {one_line(err)}"]
            return super().verify()  # format 1: one plain file
        problems = super().verify()
        if problems:
            current = self.path.parent / target
            spare = next((p for _, p in self._copies() if p != current and self._copy_problem(p) is None), None)
            problems.append(f"its spare copy {spare.name} is intact (repair restores it)" if spare is not None
                            else "no intact copy to restore from")  # fmt: skip
        return problems

    def repair(self) -> Tuple[List[str], List[str]]:
        """Point ``run.h5`` at the newest intact copy when the current one is damaged or gone.

        Done under the run lock, with the writer's own commit (a new generation, then
        the symlink replace), so readers never see a half-repaired store. The damaged
        copy is kept beside it as ``run.<gen>.h5.damaged-<time>``; nothing is deleted.
        """
        problems = self.verify()
        if not problems:
            return [], []
        with lock(self.lock_path, DEFAULT_LOCK_TIMEOUT_S) as guard:
            try:
                current: Optional[Path] = self.path.parent / os.readlink(self.path)
            except FileNotFoundError:
                current = None
            except OSError:
                return super().repair()  # format 1 keeps no spare copy
            if current is not None and current.exists() and self._copy_problem(current) is None:
                return [], problems  # the current copy reads whole: what is wrong is not a torn file
            copies = self._copies()
            for _, candidate in copies:
                if candidate == current or self._copy_problem(candidate) is not None:
                    continue
                restored = self._copy(copies[0][0] + 1)  # generations only grow: readers rely on it
                os.replace(candidate, restored)
                _fsync(restored)
                self._commit(restored, guard, count=False)  # a repair, not an update of the run
                _fsync(self.path.parent)
                self._synced = None
                kept = ""
                if current is not None and current.exists() and is_inside(current, self.path.parent):
                    aside = current.with_name(f"{current.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
                    os.replace(current, aside)
                    kept = f"; the damaged copy is kept as {aside.name}"
                elif current is not None and current.exists():  # a link planted out of the run: left alone
                    kept = f"; {self.path.name} pointed out of the run (to {current.resolve()}), which was left alone"
                return [f"restored {self.path.name} from its intact spare copy {candidate.name} as of its last "
                        f"complete update (now {restored.name}){kept}"], []  # fmt: skip
        return [], [f"{problems[0]}; no intact copy to restore from"]
