"""The in-memory buffer ``Run.log`` appends to, and the thread that writes it to the store.

One flush is one store update with everything buffered; :class:`Flusher` runs it every
``flush_interval_s`` seconds and whenever ``Run.log`` finds the buffer full.
"""

from __future__ import annotations

import sys
import threading
from array import array
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from ._names import check_name
from .store import MetricBatch

if TYPE_CHECKING:
    from .run import Run

__all__ = ["Buffer", "Flusher"]


def as_number(key: str, value: Any) -> float:
    """``value`` as a float, or TypeError naming the metric; strings are not numbers here."""
    if not isinstance(value, (str, bytes)) and value is not None:
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"run.log: value of {key!r} must be a number, got {type(value).__name__}")


class _Group:
    """Buffered calls that logged the same keys: flat typed arrays, no Python object per point."""

    __slots__ = ("keys", "steps", "times", "values")

    def __init__(self, keys: Tuple[str, ...]) -> None:
        self.keys = keys
        self.steps = array("q")
        self.times = array("d")
        self.values = array("d")  # len(keys) values per call, row-major


class Buffer:
    """Points logged since the last flush.

    Why flat ``array.array`` columns: a training loop logs the same few keys
    millions of times, and a Python tuple or list per call made the cyclic
    garbage collector walk the whole buffer over and over. Calls with other
    keys go to another group; ``switches`` records where the calls changed
    group, which is enough to put every key's points back in call order.
    """

    def __init__(self, valid_keys: Optional[set] = None) -> None:
        self.groups: Dict[Tuple[str, ...], _Group] = {}
        self.switches: List[Tuple[_Group, int]] = []  # (group, its row where a run of its calls began)
        self.n_points = 0
        self._last: Optional[_Group] = None
        self._valid_keys = valid_keys if valid_keys is not None else set()  # survives flushes

    def call_times(self, n: int) -> List[float]:
        """Wall times of the last ``n`` calls buffered, oldest first."""
        out: List[float] = []
        for group in self.groups.values():
            out.extend(group.times[-n:])
        out.sort()
        return out[-n:]

    def empty_like(self) -> "Buffer":
        return Buffer(self._valid_keys)

    def add(self, step: int, now: float, values: Mapping[str, Any]) -> int:
        """Buffer one ``log`` call, all of it or (raising TypeError/OverflowError) none; returns the points held."""
        keys = tuple(values)
        group = self._last
        if group is None or group.keys != keys:
            group = self._switch_to(keys)
        column, steps, times = group.values, group.steps, group.times
        n, n_steps, n_times, points = len(column), len(steps), len(times), self.n_points
        try:
            try:
                column.extend(values.values())  # C loop; any float()-able number, strings refused
            except (TypeError, ValueError, OverflowError):
                del column[n:]
                for key, value in values.items():  # name the bad value
                    as_number(key, value)
                raise
            try:
                steps.append(step)
            except OverflowError:
                raise OverflowError(f"run.log: step {step} does not fit in 64 bits") from None
            times.append(now)
            self.n_points = points + len(keys)
        except BaseException:
            # All of the call or none of it, even when Ctrl-C lands between its columns: a
            # half-added call would leave more values than steps, and no flush could read it.
            del column[n:], steps[n_steps:], times[n_times:]
            self.n_points = points
            raise
        return self.n_points

    def _switch_to(self, keys: Tuple[str, ...]) -> _Group:
        group = self.groups.get(keys)
        if group is None:
            if keys not in self._valid_keys:
                for key in keys:
                    if type(key) is not str or not key:
                        raise TypeError(f"run.log: metric names must be non-empty strings, got {key!r}")
                    check_name("run.log: metric name", key)
                self._valid_keys.add(keys)
            group = self.groups[keys] = _Group(keys)
        self.switches.append((group, len(group.steps)))
        self._last = group
        return group

    def extend(self, later: "Buffer") -> None:
        """Append the calls of ``later`` (logged after this buffer's)."""
        base: Dict[Tuple[str, ...], int] = {}
        for keys in later.groups:
            mine = self.groups.setdefault(keys, _Group(keys))
            base[keys] = len(mine.steps)
        for theirs, start in later.switches:
            self.switches.append((self.groups[theirs.keys], base[theirs.keys] + start))
        for keys, theirs in later.groups.items():
            mine = self.groups[keys]
            mine.steps.extend(theirs.steps)
            mine.times.extend(theirs.times)
            mine.values.extend(theirs.values)
        self.n_points += later.n_points
        self._last = None  # the next call records a switch: correct whichever group it is

    def batch(self) -> MetricBatch:
        """Columns per metric, each in call order."""
        import numpy as np

        batch = MetricBatch()
        groups = [g for g in self.groups.values() if len(g.steps)]
        if len(groups) == 1:  # the usual case: every call logged the same keys
            group = groups[0]
            steps = np.frombuffer(group.steps, dtype=np.int64).copy()
            times = np.frombuffer(group.times, dtype=np.float64).copy()
            values = np.frombuffer(group.values, dtype=np.float64).reshape(len(steps), len(group.keys))
            for j, key in enumerate(group.keys):
                batch.points[key] = (steps, np.ascontiguousarray(values[:, j]), times)
            return batch
        # Several key sets: each key's points are the rows of its groups, in the order of the runs of calls.
        runs: List[Tuple[_Group, int, int]] = []
        next_start: Dict[int, int] = {}  # id(group) -> where its next run of calls begins
        for group, start in reversed(self.switches):
            runs.append((group, start, next_start.get(id(group), len(group.steps))))
            next_start[id(group)] = start
        slices: Dict[str, List[Tuple[_Group, int, int, int]]] = {}
        for group, start, end in reversed(runs):
            if end > start:
                for j, key in enumerate(group.keys):
                    slices.setdefault(key, []).append((group, j, start, end))
        for key, parts in slices.items():
            cols: List[List[Any]] = [[], [], []]
            for group, j, start, end in parts:
                width = len(group.keys)
                cols[0].append(np.frombuffer(group.steps, dtype=np.int64)[start:end])
                cols[1].append(np.frombuffer(group.values, dtype=np.float64).reshape(-1, width)[start:end, j])
                cols[2].append(np.frombuffer(group.times, dtype=np.float64)[start:end])
            batch.points[key] = tuple(np.concatenate(c) for c in cols)  # type: ignore[assignment]
        return batch


class Flusher(threading.Thread):
    """Flushes the buffer and refreshes the heartbeat every ``interval_s`` seconds, or when kicked.

    ``Run.log`` kicks it when the buffer is full, so the training loop goes on
    logging into a fresh buffer while the full one is written (an fsync on a
    busy parallel filesystem can take a long time). A write error is retried at
    the next interval, except one that ends the run's writing for good (a full
    disk, a store changed under it): the training loop hears of that at its
    next ``run.log``.
    """

    def __init__(self, run: "Run", interval_s: float) -> None:
        super().__init__(name="hpctrack-flush", daemon=True)
        self._run = run
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = False
        self._warned = False

    def run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()  # before flushing: a kick from now on means another flush
            if self._stopping:
                return
            try:
                self._run.flush()
            except Exception as err:  # a slow filesystem must not kill training
                if self._run._fatal is not None:
                    return  # recorded by the run; nothing more to write
                if not self._warned:
                    print(f"hpctrack: flush failed, will retry: {err}", file=sys.stderr)
                    self._warned = True

    def kick(self) -> None:
        """Flush now, in this thread."""
        self._wake.set()

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stopping = True
        self._wake.set()
        if self is not threading.current_thread() and self.is_alive():
            self.join(timeout=timeout_s)
