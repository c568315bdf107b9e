"""Metric histories the dashboard has read, kept per sweep and metric, each run's rows read again only when its store changed.

A sweep page asks for the same metric's history again and again: per run or per group, x step or
time, smoothed, and at each change of a running sweep. :meth:`HistoryCache.read` answers as
:meth:`hpctrack.sweep.Sweep.history` does, from the rows it read before for every run whose store
has not changed since: the file each commit of a run's store replaces is ``stat``-ed (as the
page's change stamp does, :func:`hpctrack.ui.overview.change_stamp`), and only the runs whose
file changed, or that have no store, are read again. A finished sweep is read once; a running one
costs the reads of the runs that wrote since the last look.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import pandas as pd

    from ..sweep import Sweep

__all__ = ["HistoryCache", "DEFAULT_MAX_ROWS"]

#: Rows kept over all sweeps and metrics: 4 M rows of a 10-param sweep are about 300 MB.
DEFAULT_MAX_ROWS = 4_000_000
#: The ``stat`` of a run whose store is not there (:func:`hpctrack.ui.overview.stat_text`): read again
#: each time, as the store may appear or be found lost.
MISSING = "-"


@dataclass
class _Entry:
    """One sweep's history of one metric, as far as it was read."""

    frame: "Optional[pd.DataFrame]" = None
    #: Job -> the ``stat`` of its store's commit file when its rows were read.
    stats: Dict[int, str] = field(default_factory=dict)
    #: Job -> why its store could not be read (from the read that saw it).
    skipped: Dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)


class HistoryCache:
    """Histories read through :meth:`~hpctrack.sweep.Sweep.history`, kept while their runs' stores are unchanged.

    Thread-safe: requests for the same sweep and metric wait for each other's read (the second one
    then finds the rows there); other requests go on.

    Parameters
    ----------
    max_rows:
        Rows kept in all; the least recently read sweep-and-metric goes first. A history longer
        than this is returned but not kept.
    """

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._entries: "OrderedDict[Tuple[str, str], _Entry]" = OrderedDict()
        self._lock = threading.Lock()

    def read(self, sweep: "Sweep", key: str, jobs: Optional[Sequence[int]] = None) -> "pd.DataFrame":
        """``sweep.history(key, jobs=jobs)``, reading only the runs whose stores changed since they were last read.

        Raises
        ------
        ConfigError
            A job index the sweep does not have (as :meth:`~hpctrack.sweep.Sweep.history`).
        """
        import pandas as pd

        from .overview import commit_file_name, stat_text

        manifest = sweep.manifest
        wanted = list(range(len(manifest.jobs))) if jobs is None else sorted(set(jobs))
        if any(isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < len(manifest.jobs) for j in wanted):
            return sweep.history(key, jobs=jobs)  # its error names the job
        commit, base = commit_file_name(manifest.store), str(sweep.path)
        # Before the read: a store that changes while it is read is read again next time.
        now = {j: stat_text(os.path.join(base, manifest.jobs[j].run_dir, commit)) for j in wanted}
        entry = self._entry((base, key))
        with entry.lock:
            stale = [j for j in wanted if now[j] == MISSING or entry.stats.get(j) != now[j]]
            if stale:
                fresh = sweep.history(key, jobs=stale)
                kept = entry.frame
                if kept is not None:
                    kept = kept[~kept["job"].isin(stale)]
                parts = [f for f in (kept, fresh) if f is not None and len(f)]
                frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else fresh)
                if len(parts) > 1:  # job order, each run's rows as read (a stable sort keeps them)
                    frame = frame.sort_values("job", kind="stable", ignore_index=True)
                frame.attrs = {}
                entry.frame = frame
                for j in stale:
                    entry.skipped.pop(j, None)
                entry.skipped.update(fresh.attrs.get("skipped") or {})
                entry.stats.update({j: now[j] for j in stale})
            frame = entry.frame
            assert frame is not None  # stale held every job on the first read
            if jobs is not None or len(entry.stats) != len(wanted):
                frame = frame[frame["job"].isin(wanted)].reset_index(drop=True)
            out = frame.copy(deep=False)
            out.attrs["skipped"] = {j: why for j, why in entry.skipped.items() if j in now}
        self._trim()
        return out

    def _entry(self, name: Tuple[str, str]) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = _Entry()
            self._entries.move_to_end(name)
            return entry

    def _trim(self) -> None:
        """Forget the least recently read histories until the rows kept fit ``max_rows``."""
        with self._lock:
            names: List[Tuple[str, str]] = list(self._entries)
            total = sum(e.rows for e in self._entries.values())
            for name in names:
                if total <= self.max_rows:
                    break
                total -= self._entries.pop(name).rows
