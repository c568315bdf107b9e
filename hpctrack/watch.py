"""``status --watch``: refresh a sweep's status reading only what can still change.

A job whose state is final and whose run recorded its end does not change until
it is resubmitted (its job id or submission time changes) or the index is
rewritten (``hpctrack reindex``): its status is kept from the refresh that saw it
end, and its run store is neither read nor checked again. The sweep's index is
read once, then only the lines appended since; the scheduler is asked only
while a job it has not settled remains (:func:`hpctrack.status.backend_view`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ._types import JobState
from .manifest import Manifest, load_manifest
from .status import JobStatus, SweepStatus, sweep_status

__all__ = ["StatusWatch"]

#: Final states that still change without a resubmission: a repair brings a lost run back, and
#: SLURM requeues a preempted job (or one whose node failed) by itself.
_MAY_CHANGE = (JobState.LOST, JobState.PREEMPTED, JobState.NODE_FAIL)


@dataclass
class _IndexTail:
    """The index as read so far: where reading stopped, and the newest line of each job."""

    identity: Optional[Tuple[int, int]] = None  # (device, inode): a rewritten index is a new file
    offset: int = 0
    lines: int = 0
    rows: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    damaged: List[Tuple[int, str]] = field(default_factory=list)


class StatusWatch:
    """Successive statuses of one sweep, each reading only what may have changed since the last.

    Parameters
    ----------
    sweep_dir : Path
        The sweep directory.

    Attributes
    ----------
    index_bytes_read : int
        Bytes of the sweep's index read by the latest refresh.
    jobs_read : int
        Jobs whose status the latest refresh worked out (the others were kept).
    """

    def __init__(self, sweep_dir: Path) -> None:
        self.path = Path(sweep_dir)
        self._tail = _IndexTail()
        self._kept: Dict[int, Tuple[Optional[str], Optional[float], JobStatus]] = {}
        self.index_bytes_read = 0
        self.jobs_read = 0

    def _read_index(self) -> bool:
        """Read the index lines appended since the last refresh; True when the index was rewritten."""
        from .index import INDEX_FILE, parse_lines

        path = self.path / INDEX_FILE
        self.index_bytes_read = 0
        try:
            st = os.stat(path)
        except FileNotFoundError:
            rewritten = self._tail.identity is not None
            self._tail = _IndexTail()
            return rewritten
        identity = (st.st_dev, st.st_ino)
        rewritten = self._tail.identity is not None and (identity != self._tail.identity or
                                                         st.st_size < self._tail.offset)  # fmt: skip
        if rewritten or self._tail.identity is None:
            self._tail = _IndexTail(identity=identity)
        if st.st_size == self._tail.offset:
            return rewritten
        with open(path, "rb") as fh:
            fh.seek(self._tail.offset)
            data = fh.read(st.st_size - self._tail.offset)
        complete = data.rfind(b"\n") + 1  # a line being appended right now is read next time, whole
        self.index_bytes_read = len(data)
        parsed = parse_lines(data[:complete], first_line=self._tail.lines + 1)
        self._tail.rows.update(parsed.rows)
        self._tail.damaged += parsed.damaged
        self._tail.offset += complete
        self._tail.lines += data[:complete].count(b"\n")
        return rewritten

    def refresh(self, manifest: Optional[Manifest] = None) -> SweepStatus:
        """The sweep's status now, as :func:`hpctrack.status.sweep_status` finds it.

        Jobs kept from earlier refreshes are those it found final (and not in a
        state that changes by itself), with a run that recorded its end or none
        at all, for the same submission as now.
        """
        from .index import ENDED_STATES, IndexLines

        manifest = manifest if manifest is not None else load_manifest(self.path)
        if self._read_index():
            self._kept.clear()  # reindexed: whatever it found is read again
        kept = {i: st for i, (job_id, submitted, st) in self._kept.items()
                if i < len(manifest.jobs) and manifest.jobs[i].job_id == job_id
                and manifest.jobs[i].submitted == submitted}  # fmt: skip
        wanted = {j.index for j in manifest.jobs} - set(kept)
        fresh = sweep_status(manifest, only=wanted, index_rows=self._tail.rows) if wanted else SweepStatus(jobs=[])
        self.jobs_read = len(fresh.jobs)
        for st in fresh.jobs:
            run_state = st.record.status.get("state") if st.record is not None else None
            if st.state.is_final and st.state not in _MAY_CHANGE and (st.record is None or run_state in ENDED_STATES):
                job = manifest.jobs[st.index]
                self._kept[st.index] = (job.job_id, job.submitted, st)
        notes = [n for n in (fresh.note, IndexLines(damaged=self._tail.damaged).damage_note()) if n]
        jobs = sorted([*kept.values(), *fresh.jobs], key=lambda s: s.index)
        return SweepStatus(jobs=jobs, note="; ".join(notes) or None)
