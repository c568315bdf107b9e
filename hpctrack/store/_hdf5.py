"""HDF5 run store: one ``run.h5`` per run, layout ``format_version`` 1.

Concurrency
-----------
One writer (the run) and any number of readers (``status``, ``table``), possibly
on other nodes of a shared filesystem. The file is never held open between
updates:

* ``write()`` takes the run lock ``run.h5.lock`` (``hpctrack.locking.lock``,
  i.e. ``flock``), opens the file, appends one buffered batch, closes it, and
  only then releases the lock. Closing flushes all HDF5 metadata, so whenever
  the lock is free the file on disk is complete and self-consistent.
* ``read()`` / ``read_history()`` take the same lock with a short timeout
  (:data:`READ_LOCK_TIMEOUT_S`), open read-only, read, close.

Files are always opened with ``locking=False``. HDF5's own file locking fails
on Lustre/GPFS mounts without ``flock`` support, and with h5py 3.16 / HDF5 2.0 a
file open for writing makes every other process's open fail, even read-only;
our lock serialises access instead. SWMR is not used: it forbids creating
datasets after the switch to SWMR mode, and metric keys appear whenever the
run first logs them.

Crashes: a writer killed between updates leaves a complete file, and the
kernel drops its ``flock``. HDF5 has no journal: a SIGKILL that lands while
``close()`` writes metadata can leave the file unreadable (seen as "bad heap
index" in a section). The window is milliseconds per update, wider on a slow
filesystem. An exception inside an update still closes the file cleanly; each
metric's ``count`` attribute is its commit mark, so rows past it are never
returned and the next append overwrites them. See ``docs/store-format.md``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, Mapping, Optional, Tuple

from ..errors import FormatVersionError, RunNotFoundError, StoreError
from ..locking import DEFAULT_LOCK_TIMEOUT_S, lock
from .base import SECTIONS, MetricBatch, MetricHistory, MetricStats, RunRecord, Section, Store

if TYPE_CHECKING:
    import h5py
    import numpy as np

__all__ = ["HDF5Store", "READ_LOCK_TIMEOUT_S", "CHUNK_ROWS"]

#: Readers wait this long for a writer's update (milliseconds normally) before giving up.
READ_LOCK_TIMEOUT_S = 10.0
#: Rows per chunk of a metric dataset: 24 KiB, small enough for short runs,
#: large enough that long histories are not millions of chunks.
CHUNK_ROWS = 1024


def _metric_dtype() -> "np.dtype":
    import numpy as np

    return np.dtype([("step", "<i8"), ("value", "<f8"), ("time", "<f8")])


def _dataset_name(key: str) -> str:
    """HDF5 link name of metric ``key``: "train/loss" is one dataset, not a group."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"metric key must be a non-empty string, got {key!r}")
    name = key.replace("%", "%25").replace("/", "%2F")
    # HDF5 refuses "." as a link name (it means "this group").
    return "%2E" if name == "." else name


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):  # np.int64, np.float32, np.bool_ ... -> Python
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _stats(attrs: "h5py.AttributeManager") -> MetricStats:
    return MetricStats(
        count=int(attrs["count"]),
        last=float(attrs["last"]),
        last_step=int(attrs["last_step"]),
        min=float(attrs["min"]),
        max=float(attrs["max"]),
    )


class HDF5Store(Store):
    """Run store in one HDF5 file, safe for one writer and many readers.

    Sections are JSON objects in scalar string datasets ``/sections/<name>``;
    each metric is a resizable compound dataset ``/metrics/<escaped key>``
    whose attributes hold its running :class:`MetricStats`, so :meth:`read`
    never touches histories.

    Parameters
    ----------
    path:
        The ``run.h5`` file. Its directory must exist; the file is created by
        the first :meth:`write`. The lock is ``<path>.lock`` beside it.
    """

    name = "hdf5"
    suffix = ".h5"
    format_version = 1

    @property
    def lock_path(self) -> Path:
        """The run lock, ``run.h5.lock`` beside ``run.h5``."""
        return self.path.with_name(self.path.name + ".lock")

    # -- writing -----------------------------------------------------------

    def write(
        self,
        *,
        metrics: Optional[MetricBatch] = None,
        sections: Optional[Mapping[Section, Mapping[str, Any]]] = None,
    ) -> None:
        import h5py
        import numpy as np

        # Validate and convert everything before opening the file: an error
        # half-way through the update would leave half of it on disk.
        updates: Dict[str, Dict[str, Any]] = {}
        for name, values in (sections or {}).items():
            if name not in SECTIONS:
                raise ValueError(f"unknown section {name!r}; choose one of: {', '.join(SECTIONS)}")
            try:
                # Round trip: numpy scalars become Python values, and a bad value fails here.
                updates[name] = json.loads(json.dumps(dict(values), default=_json_default))
            except (TypeError, ValueError) as err:
                raise TypeError(f"section {name!r} of {self.path}: {err}") from err
        rows: Dict[str, Tuple[str, "np.ndarray"]] = {}
        for key, (steps, values, times) in (metrics.points if metrics else {}).items():
            if len(steps):
                arr = np.empty(len(steps), dtype=_metric_dtype())
                arr["step"], arr["value"], arr["time"] = steps, values, times
                rows[key] = (_dataset_name(key), arr)
        # filelock would silently create a missing directory; a run dir must already exist.
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot write {self.path}: directory {self.path.parent} does not exist")

        with self._session("a") as f:
            group = f.require_group("metrics")
            for key, (dname, arr) in rows.items():
                ds = group.get(dname)
                if ds is None:
                    ds = group.create_dataset(
                        dname, shape=(0,), maxshape=(None,), chunks=(CHUNK_ROWS,), dtype=arr.dtype
                    )
                    ds.attrs["key"] = key
                    old = MetricStats.empty()
                else:
                    old = _stats(ds.attrs)
                # Append at `count`, not at the dataset's length: rows past the
                # commit mark (an update interrupted by an exception) are overwritten.
                ds.resize((old.count + len(arr),))
                ds[old.count :] = arr
                new = old.merged(arr["step"].tolist(), arr["value"].tolist())
                for attr in ("count", "last", "last_step", "min", "max"):
                    ds.attrs[attr] = getattr(new, attr)
            secs = f.require_group("sections")
            for name, update in updates.items():
                ds = secs.get(name)
                if ds is None:
                    secs.create_dataset(name, data=json.dumps(update), dtype=h5py.string_dtype("utf-8"))
                else:
                    merged = json.loads(ds.asstr()[()])
                    merged.update(update)
                    # In place; HDF5 reuses the global-heap space, so the file does not grow.
                    ds[()] = json.dumps(merged)

    # -- reading -----------------------------------------------------------

    def read(self) -> RunRecord:
        self._require_exists()
        with self._session("r") as f:
            version = int(f.attrs["format_version"])
            secs = {}
            for name in SECTIONS:
                ds = f.get(f"sections/{name}")
                secs[name] = {} if ds is None else json.loads(ds.asstr()[()])
            stats = {str(ds.attrs["key"]): _stats(ds.attrs) for ds in f.get("metrics", {}).values()}
        return RunRecord(path=self.path, format_version=version, metrics=stats, **secs)

    def read_history(self, key: str) -> MetricHistory:
        import numpy as np

        name = _dataset_name(key)
        self._require_exists()
        with self._session("r") as f:
            ds = f.get(f"metrics/{name}")
            data = None if ds is None else ds[: int(ds.attrs["count"])]  # never past the commit mark
        if data is None:
            raise KeyError(f"metric {key!r} was never logged in {self.path}")
        return MetricHistory(
            key=key,
            step=np.ascontiguousarray(data["step"]),
            value=np.ascontiguousarray(data["value"]),
            time=np.ascontiguousarray(data["time"]),
        )

    def _require_exists(self) -> None:
        # Checked before locking: the lock would create files for a run that does not exist.
        if not self.path.exists():
            raise RunNotFoundError(f"no run store at {self.path}: the run has not started")

    # -- helpers -----------------------------------------------------------

    def _open(self, mode: str) -> "h5py.File":
        import h5py

        try:
            return h5py.File(self.path, mode, locking=False)
        except FileNotFoundError as err:  # removed between our check and the open
            raise RunNotFoundError(f"no run store at {self.path}: the run has not started") from err
        except OSError as err:
            raise StoreError(f"cannot open run store {self.path}: {_one_line(err)}") from err

    @contextlib.contextmanager
    def _session(self, mode: str) -> Iterator["h5py.File"]:
        """Lock, open, check the version, yield, close, unlock; h5py errors become StoreError."""
        timeout = READ_LOCK_TIMEOUT_S if mode == "r" else DEFAULT_LOCK_TIMEOUT_S
        with lock(self.lock_path, timeout):
            f = self._open(mode)
            try:
                with f:  # closing flushes all metadata, before the lock is released
                    if mode != "r" and len(f) == 0 and "format_version" not in f.attrs:
                        f.attrs["format_version"] = self.format_version
                        f.attrs["created"] = time.time()
                    self._check_version(f)
                    yield f
            except StoreError:
                raise
            except (OSError, RuntimeError, ValueError, KeyError) as err:  # corrupt file, bad JSON
                verb = "read" if mode == "r" else "write"
                raise StoreError(f"cannot {verb} run store {self.path}: {_one_line(err)}") from err

    def _check_version(self, f: "h5py.File") -> None:
        version = f.attrs.get("format_version")
        if version is None:
            raise StoreError(f"{self.path} is not an hpctrack run store (no format_version attribute)")
        # Older versions would be migrated here; version 1 is the first.
        if int(version) > self.format_version:
            raise FormatVersionError(
                f"{self.path} has format_version {int(version)} but this hpctrack reads up to "
                f"{self.format_version}; upgrade hpctrack: pip install -U hpctrack"
            )
