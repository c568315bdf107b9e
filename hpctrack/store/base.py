"""The ``Store`` interface: the persistent record of one run.

A store is one file (or directory) per run with exactly one writer process, the
run itself. Readers (``status``, ``table``) are other processes that may read
while the run is still writing. Each backend documents how it keeps readers from
seeing a half-written update without taking the writer's lock, and how a writer
killed at any instruction leaves a readable store; see ``docs/store-format.md``.
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Type

if TYPE_CHECKING:
    import numpy as np

    from ..errors import DiskFullError, StoreReplacedError
    from ..locking import LockGuard

__all__ = [
    "Section",
    "SECTIONS",
    "MetricBatch",
    "MetricStats",
    "MetricHistory",
    "RunRecord",
    "Segments",
    "Store",
    "Update",
    "Migrations",
]

#: Named JSON sections of a run record. Writes merge keys into a section.
Section = Literal["params", "summary", "tags", "status", "info"]
SECTIONS: Tuple[Section, ...] = ("params", "summary", "tags", "status", "info")


@dataclass
class MetricBatch:
    """Metric points buffered by ``Run.log`` and written in one store update.

    ``points[key]`` holds three equally long lists: steps, values, wall times
    (seconds since the epoch). ``attempt`` is the run attempt (1, then 2, ...
    after each requeue) that logged them.
    """

    #: Lists as :meth:`add` builds them, or 1-D numpy arrays as the run's buffer hands them over.
    points: Dict[str, Tuple[Any, Any, Any]] = field(default_factory=dict)
    attempt: int = 1

    def add(self, key: str, step: int, value: float, time_s: float) -> None:
        cols = self.points.get(key)
        if cols is None:
            cols = self.points[key] = ([], [], [])  # lists: they grow here
        cols[0].append(step)
        cols[1].append(value)
        cols[2].append(time_s)

    def __len__(self) -> int:
        return sum(len(cols[0]) for cols in self.points.values())

    def __bool__(self) -> bool:
        return bool(self.points)


#: ``(attempt, first row)`` pairs: rows from ``first row`` on were logged by ``attempt``.
Segments = Tuple[Tuple[int, int], ...]


@dataclass(frozen=True)
class MetricStats:
    """Statistics of one metric's resolved history, kept up to date on every append.

    The resolved history is what a run logged once restarts are accounted
    for: when attempt ``a`` restarted at step ``k``, the points earlier
    attempts logged at steps ``>= k`` are superseded. ``count``, ``last``,
    ``min`` and ``max`` describe the resolved history; ``rows`` counts every
    stored point, superseded ones included. ``min``/``max`` ignore NaN; they
    are NaN when every value was NaN.
    """

    #: Points in the resolved history.
    count: int
    #: The value of the latest point.
    last: float
    #: The step of the latest point.
    last_step: int
    #: The smallest value (NaN ignored).
    min: float
    #: The largest value (NaN ignored).
    max: float
    # Bookkeeping of the stored rows, not compared: equal stats are equal histories.
    #: Stored rows, superseded ones included; -1: same as count (no point was ever superseded).
    rows: int = field(default=-1, compare=False)
    #: ``(attempt, first row)`` of each run of rows one attempt wrote, in row order.
    segments: Segments = field(default=((1, 0),), compare=False)
    # For mean/argmin/argmax without reading the history; None in stores written before they existed.
    #: Sum of the non-NaN values.
    sum: Optional[float] = field(default=None, compare=False)
    #: How many values are not NaN.
    finite: Optional[int] = field(default=None, compare=False)
    #: Step of the (first) minimum.
    argmin: Optional[int] = field(default=None, compare=False)
    #: Step of the (first) maximum.
    argmax: Optional[int] = field(default=None, compare=False)

    @property
    def stored_rows(self) -> int:
        """Stored rows of the metric, superseded ones included."""
        return self.count if self.rows < 0 else self.rows

    @property
    def mean(self) -> Optional[float]:
        """Mean of the non-NaN values (NaN when there are none); None when this store cannot say."""
        if self.sum is None or self.finite is None:
            return None
        return self.sum / self.finite if self.finite else math.nan

    def merged(
        self, steps: "Sequence[int] | np.ndarray", values: "Sequence[float] | np.ndarray", attempt: int = 1
    ) -> "MetricStats":
        """Stats after appending ``steps``/``values`` (non-empty) of ``attempt``, the latest one."""
        import numpy as np

        vals = np.asarray(values, dtype=np.float64)
        steps_arr = np.asarray(steps)
        ok = ~np.isnan(vals)  # inf counts: it is a value, NaN is not
        finite = vals[ok]
        lo = hi = math.nan
        lo_step = hi_step = None
        if finite.size:
            i, j = int(np.argmin(finite)), int(np.argmax(finite))
            lo, hi = float(finite[i]), float(finite[j])
            ok_steps = steps_arr[ok]
            lo_step, hi_step = int(ok_steps[i]), int(ok_steps[j])
        rows = self.stored_rows
        segments = self.segments if self.segments[-1][0] == attempt else self.segments + ((attempt, rows),)
        known = self.sum is not None or self.count == 0  # an older store's stats lack sum/argmin/argmax
        new_min, new_max = _nan_op(min, self.min, lo), _nan_op(max, self.max, hi)
        return MetricStats(
            count=self.count + len(vals),
            last=float(vals[-1]),
            last_step=int(steps_arr[-1]),
            min=new_min,
            max=new_max,
            rows=rows + len(vals),
            segments=segments,
            sum=(self.sum or 0.0) + float(finite.sum()) if known else None,
            finite=(self.finite or 0) + int(finite.size) if known else None,
            # The first occurrence wins: an earlier step keeps argmin/argmax on a tie.
            argmin=(lo_step if lo_step is not None and (math.isnan(self.min) or lo < self.min) else self.argmin)
            if known
            else None,
            argmax=(hi_step if hi_step is not None and (math.isnan(self.max) or hi > self.max) else self.argmax)
            if known
            else None,
        )

    @staticmethod
    def empty() -> "MetricStats":
        """The stats of a metric with no point yet."""
        return MetricStats(count=0, last=math.nan, last_step=-1, min=math.nan, max=math.nan, rows=0,
                           sum=0.0, finite=0)  # fmt: skip

    def to_json(self) -> Dict[str, Any]:
        """As stored: ``count``, ``last``, ``last_step``, ``min``, ``max``, ``rows``, ``segments``,
        and (when known) ``sum``, ``finite``, ``argmin``, ``argmax``."""
        out: Dict[str, Any] = {a: getattr(self, a) for a in ("count", "last", "last_step", "min", "max")}
        out["rows"] = self.stored_rows
        out["segments"] = [list(seg) for seg in self.segments]
        for name in ("sum", "finite", "argmin", "argmax"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> "MetricStats":
        """Inverse of :meth:`to_json`; older stores without ``rows``/``segments`` had one attempt."""
        count = int(data["count"])

        def opt(name: str, cast: Any) -> Any:
            value = data.get(name)
            return None if value is None else cast(value)

        return MetricStats(
            count=count, last=float(data["last"]), last_step=int(data["last_step"]),
            min=float(data["min"]), max=float(data["max"]), rows=int(data.get("rows", count)),
            segments=tuple((int(a), int(r)) for a, r in data.get("segments", [[1, 0]])),
            sum=opt("sum", float), finite=opt("finite", int), argmin=opt("argmin", int), argmax=opt("argmax", int),
        )  # fmt: skip


def _nan_op(op: Any, a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return float(op(a, b))


def row_attempts(segments: Segments, rows: int) -> "np.ndarray":
    """The attempt of each of ``rows`` stored rows."""
    import numpy as np

    out = np.empty(rows, dtype=np.int32)
    bounds = [first for _, first in segments[1:]] + [rows]
    for (attempt, first), end in zip(segments, bounds):
        out[first:end] = attempt
    return out


def superseded(steps: "np.ndarray", attempts: "np.ndarray", restarts: Mapping[int, int]) -> "np.ndarray":
    """Which rows later attempts superseded.

    ``restarts[a] = k``: attempt ``a`` restarted at step ``k``, so every point
    an earlier attempt logged at a step ``>= k`` is replaced by attempt ``a``'s.
    """
    import numpy as np

    out = np.zeros(len(steps), dtype=bool)
    if not restarts or not len(steps):
        return out
    for attempt in np.unique(attempts):
        later = [k for a, k in restarts.items() if a > attempt]
        if later:
            out |= (attempts == attempt) & (steps >= min(later))
    return out


def resolved_stats(
    steps: "np.ndarray", values: "np.ndarray", segments: Segments, restarts: Mapping[int, int]
) -> MetricStats:
    """Stats of a metric recomputed from all its stored rows (after a restart changed what is superseded)."""
    import numpy as np

    rows = len(steps)
    keep = ~superseded(steps, row_attempts(segments, rows), restarts)
    kept_steps, kept = steps[keep], np.asarray(values, dtype=np.float64)[keep]
    if not len(kept):
        return dataclasses.replace(MetricStats.empty(), rows=rows, segments=segments)
    base = MetricStats.empty().merged(kept_steps, kept)
    return dataclasses.replace(base, rows=rows, segments=segments)


@dataclass(frozen=True)
class MetricHistory:
    """The points of one metric, in the order they were logged.

    By default the resolved history (points superseded by a restart left
    out); ``attempt`` says which run attempt logged each point.
    """

    #: The metric's key, e.g. ``val/loss``.
    key: str
    #: The step of each point (int64).
    step: "np.ndarray"
    #: The logged values (float64).
    value: "np.ndarray"
    #: Wall-clock time of each point, in seconds since the epoch (float64).
    time: "np.ndarray"
    #: The run attempt that logged each point (int32); None where the store does not say.
    attempt: Optional["np.ndarray"] = None

    def __len__(self) -> int:
        return len(self.step)


def history_of(
    key: str, data: Mapping[str, "np.ndarray"], stats: MetricStats, restarts: Mapping[int, int], raw: bool
) -> MetricHistory:
    """A :class:`MetricHistory` from a metric's stored rows (``step``, ``value``, ``time`` columns)."""
    import numpy as np

    attempts = row_attempts(stats.segments, len(data["step"]))
    cols = {c: np.ascontiguousarray(data[c]) for c in ("step", "value", "time")}
    if not raw:
        keep = ~superseded(cols["step"], attempts, restarts)
        if not keep.all():
            cols = {c: np.ascontiguousarray(a[keep]) for c, a in cols.items()}
            attempts = attempts[keep]
    return MetricHistory(key=key, attempt=attempts, **cols)


@dataclass(frozen=True)
class RunRecord:
    """Everything about a run except its metric histories."""

    #: The run's store (``run.h5`` or ``run.zarr``).
    path: Path
    #: The store's on-disk format version.
    format_version: int
    #: The run's config, flattened to dotted keys.
    params: Dict[str, Any]
    #: Final values the run set (``run.summary``).
    summary: Dict[str, Any]
    #: Free-form labels (``run.tags``).
    tags: Dict[str, Any]
    #: State, heartbeat, last step, attempts, error: what ``hpctrack status`` reads.
    status: Dict[str, Any]
    #: Host, environment, provenance and artifacts of the run.
    info: Dict[str, Any]
    #: Each metric's :class:`MetricStats`, by key.
    metrics: Mapping[str, MetricStats]
    #: attempt -> the step it restarted the run at.
    restarts: Dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Update:
    """One validated update, as :meth:`Store.write` hands it to the backend's :meth:`Store._commit_update`."""

    #: Section name -> keys to merge, already round-tripped through JSON.
    sections: Dict[str, Dict[str, Any]]
    #: The metric points in the backend's own encoding (:meth:`Store._encode_points`), keys validated.
    points: Any
    #: The run attempt that logged the points.
    attempt: int
    #: ``(attempt, step)``: ``attempt`` restarted the run at ``step``; None when it did not.
    restart: Optional[Tuple[int, int]]


#: Upgrades of a stored layout, keyed by the format version each one upgrades *from*:
#: ``migrations[v](obj)`` brings ``obj`` (what the backend migrates: an open file, a record)
#: from version ``v`` to ``v + 1``. A store of version ``v`` runs ``v``, ``v + 1``, ... in turn.
Migrations = Mapping[int, Callable[[Any], None]]


class Store(abc.ABC):
    """Persistent record of one run.

    One writer process per run (the run itself); any number of reader
    processes. Implementations hold the run's lock (``hpctrack.locking``) for
    the duration of each update only; readers never take it, yet see every
    update completely or not at all. Neither relies on the file format's own
    locking. A writer killed at any point loses at most the update in flight.

    Parameters
    ----------
    path:
        The store's file or directory. It need not exist for :meth:`write`.
    """

    #: Version of the on-disk layout this class writes; readers refuse newer ones.
    format_version: ClassVar[int]
    #: File-name suffix that selects this backend in ``open_store``.
    suffix: ClassVar[str]
    #: Short name used in configs and manifests (``store: hdf5``).
    name: ClassVar[str]
    #: Upgrades from older format versions (see :data:`Migrations`): one entry for every
    #: version from 1 up to ``format_version - 1``. Writers apply them under the run lock
    #: before their first update; readers read older versions as they are.
    migrations: ClassVar[Migrations] = {}

    #: Modules this backend imports (lazily) to work at all; ``store_class`` checks them
    #: before anything is written.
    requires: ClassVar[Tuple[str, ...]] = ()
    #: What to install when one of :attr:`requires` is missing, e.g. ``"pip install 'hpctrack[zarr]'"``.
    install_hint: ClassVar[str] = ""

    # -- capabilities: what code outside the backend may ask, instead of its name ----------

    #: The store keeps a second complete copy of itself that :meth:`repair` restores from.
    keeps_spare_copy: ClassVar[bool] = False

    #: Exceptions of :meth:`_commit_update` that mean "the store could not be written":
    #: :meth:`write` turns them into ``StoreError`` (``DiskFullError`` for ENOSPC/EDQUOT).
    write_errors: ClassVar[Tuple[Type[BaseException], ...]] = (OSError, RuntimeError, ValueError, KeyError)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        #: Updates this object has committed. It grows exactly at the commit point of
        #: :meth:`write`, so a caller that sees an exception can tell whether its update
        #: is stored (``commits`` grew) or not, whatever the exception was.
        self.commits = 0
        # Set once this writer found its store changed under it: every later write is refused.
        self._refused: Optional[str] = None
        self._warned = False
        # The file the update in progress was writing, named by a full disk's error.
        self._writing = self.path

    @property
    def lock_path(self) -> Path:
        """The run lock, ``<store name>.lock`` beside the store (``run.h5.lock``, ``run.zarr.lock``).

        Held by :meth:`write` for each update only; readers never take it.
        """
        return self.path.with_name(self.path.name + ".lock")

    def _replaced(self, reason: str) -> "StoreReplacedError":
        """Refuse this store from now on: it is no longer what this writer committed."""
        from ..errors import StoreReplacedError

        self._refused = (f"run store {self.path} was changed under its writer: {reason}; "
                         "the writer stopped writing to it")  # fmt: skip
        return StoreReplacedError(self._refused)

    def _check_not_refused(self) -> None:
        if self._refused is not None:
            from ..errors import StoreReplacedError

            raise StoreReplacedError(self._refused)

    def _warn_once(self, message: str) -> None:
        """A failure after the commit: the update is stored, so it is reported, not raised (once per store)."""
        if not self._warned:
            self._warned = True
            print(f"hpctrack: warning: {message}", file=sys.stderr, flush=True)

    @abc.abstractmethod
    def fingerprint(self) -> Optional[str]:
        """A cheap identity of the store's committed state (a few ``stat`` calls), or None when it is missing.

        It changes with every commit, and when the store's files are removed,
        truncated or replaced behind its writer's back: the sweep index records
        it, and readers compare it to tell whether an ended run's store still
        holds what the index says.
        """

    @classmethod
    def fingerprint_of(cls, path: str) -> Optional[str]:
        """:meth:`fingerprint` of the store at ``path``.

        A table checks every ended run's fingerprint at every call: for 10,000 runs,
        building a store object (and its paths) per run cost more than the ``stat``
        calls, so backends override this with the calls alone (and ``fingerprint``
        calls it). This default makes the store object.
        """
        return cls(Path(path)).fingerprint()

    @classmethod
    def fingerprints_of(cls, base: str, paths: Sequence[str]) -> List[Optional[str]]:
        """:meth:`fingerprint_of` of each of ``paths`` (relative to the directory ``base``), in order.

        A table of 100,000 runs checks 100,000 stores; backends may override this to resolve the
        paths from one open directory (``dir_fd``) instead of walking ``base`` again per store.
        """
        return [cls.fingerprint_of(os.path.join(base, path)) for path in paths]

    def write(
        self,
        *,
        metrics: Optional[MetricBatch] = None,
        sections: Optional[Mapping[Section, Mapping[str, Any]]] = None,
        restart: Optional[Tuple[int, int]] = None,
    ) -> None:
        """Apply one update: append metric points and merge keys into sections.

        Creates the store on first use. The whole update is one critical
        section under the run lock and one atomic commit: readers see all of
        it or none of it. Values in ``sections`` must be JSON-serialisable.

        ``restart=(attempt, step)`` records that ``attempt`` restarted the run
        at ``step``: points earlier attempts logged at ``step`` or later are
        superseded (kept, but left out of stats and resolved histories).

        A template method: this validates the whole update before touching
        anything, refuses a store changed under its writer, takes the run
        lock and maps the backend's errors; the backend's
        :meth:`_commit_update` applies and commits the update under the lock.

        Raises
        ------
        TypeError, ValueError
            Bad input (an unknown section, a value JSON cannot hold, an empty
            metric key); nothing was written.
        StoreReplacedError
            The store was changed under this writer; it stays refused.
        DiskFullError
            No space left (ENOSPC/EDQUOT); the committed store stays readable.
        StoreError
            The store could not be written (``commits`` tells whether the update is stored).
        """
        from ..errors import FormatVersionError, StoreError
        from ..locking import DEFAULT_LOCK_TIMEOUT_S, lock

        update = Update(sections=prepare_sections(self.path, sections), points=self._encode_points(metrics),
                        attempt=metrics.attempt if metrics else 1, restart=restart)  # fmt: skip
        self._check_not_refused()
        self._check_paths()
        # filelock would silently create a missing directory; a run dir must already exist.
        if not self.path.parent.is_dir():
            if self._has_committed():
                raise self._replaced(f"its directory {self.path.parent} was removed")
            raise StoreError(f"cannot write {self.path}: directory {self.path.parent} does not exist")
        with lock(self.lock_path, DEFAULT_LOCK_TIMEOUT_S) as guard:
            before = self.commits
            self._writing = self.path
            try:
                after = self._commit_update(update, guard)
            except (StoreError, FormatVersionError):
                self._abandon()
                raise
            except self.write_errors as err:  # corrupt file, bad JSON, full disk
                self._abandon()
                guard.check()  # a holder that lost its lock meets the other writer's files: say so
                full = disk_full(err, self.path.parent, self._writing)
                if full is not None:
                    raise full from err
                raise StoreError(f"cannot write run store {self.path}: {one_line(err)}") from err
            # Committed: what follows reports failures (``_warn_once``), never raises; the
            # caller must not write the update again.
            if self.commits > before and after is not None:
                after()

    def _encode_points(self, metrics: Optional[MetricBatch]) -> Any:
        """The batch's points as the backend writes them, every key validated; before anything is touched.

        The default: ``[(key, (steps, values, times)), ...]`` for each key with points.
        """
        return [(check_key(k), cols) for k, cols in (metrics.points if metrics else {}).items() if len(cols[0])]

    def _check_paths(self) -> None:
        """Refuse a store whose files lead out of the run directory (before the lock); the default checks nothing."""

    @abc.abstractmethod
    def _has_committed(self) -> bool:
        """Whether this writer object committed to its store before (a missing directory then means removed)."""

    @abc.abstractmethod
    def _commit_update(self, update: Update, guard: "LockGuard") -> Optional[Callable[[], None]]:
        """Apply ``update`` and commit it, under the run lock; the backend's one write primitive.

        Called by :meth:`write` only. It creates the store when missing, applies
        :attr:`migrations` to an older one before changing it, and refuses a newer
        one (``FormatVersionError``) before touching a file. ``commits`` grows by
        one exactly at the commit point; ``guard.check()`` goes right before each
        ``os.replace`` made under the lock. Set ``self._writing`` to the file being
        written, for the message of a full disk. Errors in :attr:`write_errors` are
        mapped by :meth:`write`.

        Returns
        -------
        callable or None
            Work to do once the update is committed, still under the lock (an
            fsync, bringing a spare copy up to date). It must not raise: a
            failure there is reported with ``_warn_once``.
        """

    def _abandon(self) -> None:
        """Forget what this writer cached about the store after an update that failed; the default has none."""

    def _upgrade(self, obj: Any, version: int) -> None:
        """Bring ``obj`` of format ``version`` to :attr:`format_version` through :attr:`migrations`, in turn."""
        from ..errors import FormatVersionError

        for v in range(version, self.format_version):
            step = self.migrations.get(v)
            if step is None:
                raise FormatVersionError(f"{self.path} has format_version {v}, which this hpctrack cannot upgrade "
                                         f"to {self.format_version}")  # fmt: skip
            step(obj)

    @abc.abstractmethod
    def read(self) -> RunRecord:
        """Read sections and per-metric stats without reading full histories.

        Raises
        ------
        RunNotFoundError
            The store does not exist (the run has not started).
        FormatVersionError
            The store was written by a newer hpctrack.
        """

    @abc.abstractmethod
    def read_history(self, key: str, *, raw: bool = False) -> MetricHistory:
        """The resolved history of metric ``key`` (``raw=True``: every stored point, superseded ones too).

        Raises
        ------
        KeyError
            The run never logged ``key``.
        """

    def read_history_indexed(
        self, key: str, fingerprint: str, rows: int, segments: Any, restarts: Mapping[str, Any], format_version: int
    ) -> Optional[MetricHistory]:
        """:meth:`read_history` of ``key`` told where its rows end by the sweep's index, or None.

        ``fingerprint``, ``rows`` (the metric's stored rows), ``segments`` (its attempts'
        ``[attempt, first row]``), ``restarts`` and ``format_version`` are what the run's index
        line recorded. A backend that can read the rows alone uses them only while the store
        still has that fingerprint (the line then describes it exactly), and skips reading the
        stats from the store. None: not used (another fingerprint, anything unusual, or a
        backend that does not do this); the caller then calls :meth:`read_history`.
        """
        return None

    def exists(self) -> bool:
        return self.path.exists()

    # -- integrity (read-only checks; repair only by the backend's own mechanisms) -----------

    def verify(self) -> List[str]:
        """Every problem of this store, one line each; [] when it is whole.

        Checks that it opens, that its format version is one this hpctrack reads,
        and that every metric's stored points read back and agree with its stats
        (rows, count, last value and step). Reads every history: meant for
        ``hpctrack verify``, not for every ``status``.
        """
        import numpy as np

        from ..errors import FormatVersionError, RunNotFoundError, StoreError

        try:
            record = self.read()
        except RunNotFoundError:
            return [f"no run store at {self.path}"]
        except FormatVersionError as err:
            return [one_line(err)]
        except (StoreError, OSError) as err:
            return [f"unreadable: {read_failure(err)}"]
        problems = []
        for key, stats in record.metrics.items():
            try:
                raw = self.read_history(key, raw=True)
            except (KeyError, StoreError, OSError, ValueError, RuntimeError) as err:
                problems.append(f"points of {key!r} unreadable: {one_line(err)}")
                continue
            if len(raw) != stats.stored_rows:
                problems.append(f"{key!r} has {len(raw)} stored points, its stats say {stats.stored_rows}")
                continue
            keep = ~superseded(raw.step, row_attempts(stats.segments, len(raw)), record.restarts)
            steps, values = raw.step[keep], np.asarray(raw.value, dtype=np.float64)[keep]
            if len(steps) != stats.count:
                problems.append(f"{key!r} has {len(steps)} points, its stats say {stats.count}")
            elif len(steps) and (int(steps[-1]) != stats.last_step or not (
                    values[-1] == stats.last or (math.isnan(values[-1]) and math.isnan(stats.last)))):  # fmt: skip
                problems.append(f"{key!r} ends at step {int(steps[-1])} = {float(values[-1])!r}, "
                                f"its stats say step {stats.last_step} = {stats.last!r}")  # fmt: skip
        return problems

    def repair(self) -> Tuple[List[str], List[str]]:
        """Restore what can be restored: (what was done, what cannot be repaired), one line each.

        The base store keeps no second copy, so it can only say what is wrong; a
        backend with its own redundancy (HDF5's spare copy) overrides this. Nothing
        is ever deleted.
        """
        problems = self.verify()
        return [], [f"{p} (this {self.name} store keeps no spare copy to restore from)" for p in problems]


# -- helpers shared by the backends ----------------------------------------------


def check_key(key: Any) -> str:
    """``key`` if it is a valid metric key: any non-empty string (keys are data, never paths)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"metric key must be a non-empty string, got {key!r}")
    return key


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars and arrays become Python values."""
    import numpy as np

    if isinstance(obj, np.generic):  # np.int64, np.float32, np.bool_ ... -> Python
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


def prepare_sections(path: Path, sections: Optional[Mapping[Section, Mapping[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Validate section updates and round-trip them through JSON.

    Done before a store is touched: an error half-way through an update would
    leave half of it on disk. The round trip turns numpy scalars into Python
    values and makes a bad value fail here, naming the section.
    """
    updates: Dict[str, Dict[str, Any]] = {}
    for name, values in (sections or {}).items():
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name!r}; choose one of: {', '.join(SECTIONS)}")
        try:
            updates[name] = json.loads(json.dumps(dict(values), default=json_default))
        except (TypeError, ValueError) as err:
            raise TypeError(f"section {name!r} of {path}: {err}") from err
    return updates


def disk_full(err: BaseException, directory: Path, path: Path) -> Optional["DiskFullError"]:
    """A :class:`DiskFullError` when ``err`` (or what caused it) is ENOSPC or EDQUOT, else None."""
    from ..errors import DiskFullError

    seen = err
    for _ in range(5):
        if isinstance(seen, DiskFullError):
            return seen
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return DiskFullError(f"no space left on {directory} (writing {path})")
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    return None


def one_line(err: BaseException) -> str:
    """An exception as one line, for messages the CLI prints on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def read_failure(err: BaseException) -> str:
    """Why a store could not be read, on one line, without the ``cannot read run store PATH:`` preamble."""
    import re

    return re.sub(r"^cannot read run store \S+: ", "", one_line(err))
