"""Job state of a sweep: the backend's view merged with each run's own record.

The run's record (state, heartbeat, last step, error) is the authority on what
happened inside the job; the backend (the local runner's manifest entries, or
one ``sacct`` call for a SLURM sweep) says what happened to the job from the
outside: queued, killed at its time limit, cancelled. A job that ended without
recording its end is reconciled here from what can be checked.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from ._types import JobState, RunStatus
from .errors import HpctrackError, RunNotFoundError, StoreError
from .manifest import JobRecord, Manifest, update_manifest
from .store import RunRecord, open_store

__all__ = ["JobStatus", "SweepStatus", "job_statuses", "sweep_status", "backend_view", "ended_state", "read_run",
           "HUNG_AFTER_INTERVALS"]  # fmt: skip

_RUN_TO_JOB = {
    RunStatus.COMPLETED.value: JobState.COMPLETED,
    RunStatus.FAILED.value: JobState.FAILED,
    RunStatus.INTERRUPTED.value: JobState.CANCELLED,
}
#: A running job whose heartbeat is older than this many flush intervals (+30 s) may be hung.
HUNG_AFTER_INTERVALS = 3


@dataclass
class JobStatus:
    """One job as ``hpctrack status`` shows it."""

    index: int
    state: JobState
    job_id: Optional[str]
    overrides: List[str]
    run_dir: Path
    last_step: Optional[int] = None
    start_time: Optional[float] = None
    runtime_s: Optional[float] = None
    heartbeat_age_s: Optional[float] = None
    possibly_hung: bool = False
    attempt: Optional[int] = None  # the run's attempt (2, 3, ... after requeues)
    node: Optional[str] = None
    error: Optional[str] = None
    record: Optional[RunRecord] = field(default=None, repr=False)

    def to_json(self) -> Dict[str, Any]:
        return {
            "job": self.index,
            "state": self.state.value,
            "job_id": self.job_id,
            "overrides": self.overrides,
            "last_step": self.last_step,
            "runtime_s": self.runtime_s,
            "heartbeat_age_s": self.heartbeat_age_s,
            "possibly_hung": self.possibly_hung,
            "attempt": self.attempt,
            "node": self.node,
            "error": self.error,
            "run_dir": str(self.run_dir),
        }


@dataclass
class SweepStatus:
    """Every job's status plus a note when the backend's view was degraded."""

    jobs: List[JobStatus]
    note: Optional[str] = None


def read_run(manifest: Manifest, index: int) -> Tuple[Optional[RunRecord], Optional[str]]:
    """The run record of job ``index`` (None before it starts), and a read error, if any."""
    try:
        return open_store(manifest.run_path(index), manifest.store).read(), None
    except RunNotFoundError:
        return None, None
    except StoreError as err:
        return None, f"unreadable run store: {err}"


def error_line(status: Dict[str, Any]) -> Optional[str]:
    """The one-line error of a run's status section (``Type: first line``), or None."""
    error = status.get("error")
    if not error:
        return None
    message = (error.get("message") or "").strip().splitlines()
    first = message[0] if message else ""
    return f"{error['type']}: {first}" if error.get("type") else first


def _process_gone(info: Dict[str, Any]) -> bool:
    from .launch.local import pid_alive

    return info.get("host") == socket.gethostname() and "pid" in info and not pid_alive(int(info["pid"]))


def ended_state(job: JobRecord, info: Any, run_state: Optional[str],
                own_error: Optional[str]) -> Tuple[JobState, Optional[str]]:
    """The state of a job that ended, by the backend's final state or by the run's own record."""
    backend_state = info.state if info is not None else None
    if backend_state is not None and backend_state.is_final:
        # What happened inside the job beats a task-level COMPLETED/FAILED (packed runs).
        if backend_state in (JobState.COMPLETED, JobState.FAILED) and run_state in ("completed", "failed"):
            return _RUN_TO_JOB[run_state], own_error
        return backend_state, own_error or (info.reason if backend_state != JobState.COMPLETED else None) or job.error
    return _RUN_TO_JOB[run_state], own_error  # type: ignore[index]


def _reconcile(job: JobRecord, info: Any, record: Optional[RunRecord],
               packed: bool) -> Tuple[JobState, Optional[str]]:
    """Merge the backend's view (``info``: a JobInfo or None) with the run's own record."""
    if record is not None and job.submitted is not None:
        attempt_start = record.status.get("attempt_start", record.status.get("start_time"))
        if attempt_start is not None and float(attempt_start) < job.submitted:
            # The record is of an earlier submission (the job was requeued since): it says
            # nothing about the current one, which has not started yet.
            record = None
    run_state = record.status.get("state") if record is not None else None
    own_error = error_line(record.status) if record is not None else None
    backend_state = info.state if info is not None else None
    if run_state == RunStatus.REQUEUED.value and not (backend_state is not None and backend_state.is_final):
        if backend_state == JobState.RUNNING:
            return JobState.RUNNING, None  # the next attempt is starting
        return backend_state or JobState.PENDING, "requeued: waiting for its next attempt"
    if (backend_state is not None and backend_state.is_final) or run_state in _RUN_TO_JOB:
        return ended_state(job, info, run_state, own_error)
    if record is not None:
        if _process_gone(record.info) or (info is not None and info.ended):
            return JobState.FAILED, "the job ended without recording a result (killed?)"
        return JobState.RUNNING, None
    if info is not None and info.ended:
        return JobState.FAILED, "the job ended before its run started; see its log files"
    if backend_state == JobState.RUNNING and packed:
        return JobState.PENDING, "waiting for its turn in a packed array task"
    if backend_state is not None:
        return backend_state, info.reason if backend_state == JobState.PENDING else None
    return job.state, job.error


def sweep_status(
    manifest: Manifest,
    *,
    now: Optional[float] = None,
    persist: bool = True,
    records: Optional[Dict[int, RunRecord]] = None,
    only: Optional[Set[int]] = None,
    view: Optional[Tuple[Dict[int, Any], Optional[str]]] = None,
) -> SweepStatus:
    """Every job of the sweep with its merged state, progress, runtime and error line.

    The backend is asked once for the whole sweep. With ``persist``, final
    states learned from a scheduler are written back to the manifest, so they
    survive the scheduler forgetting the job. ``records``: run records the caller
    already has (job index -> record of an ended run, e.g. from the index's
    columns); the other runs come from the sweep's index or their stores.
    ``only``: just these jobs. ``view``: the backend's view, from :func:`backend_view`.
    """
    now = time.time() if now is None else now
    infos, note = view if view is not None else backend_view(manifest)
    packed = int(manifest.launcher.get("runs_per_task") or 1) > 1
    from .index import ENDED_STATES, append_rows, read_index, record_to_row, row_to_record, usable

    index_rows = read_index(manifest.path) if records is None else {}
    missing_rows = []
    out = []
    for job in manifest.jobs:
        if only is not None and job.index not in only:
            continue
        row = index_rows.get(job.index)
        if records is not None and job.index in records:
            record, read_error = records[job.index], None
        elif usable(row, job.submitted):  # an ended run: its record is in the sweep's index
            record, read_error = row_to_record(row, manifest.run_path(job.index)), None  # type: ignore[arg-type]
        else:
            record, read_error = read_run(manifest, job.index)
            if record is not None and record.status.get("state") in ENDED_STATES and usable(
                    record_to_row(job.index, record), job.submitted):  # fmt: skip
                missing_rows.append(record_to_row(job.index, record))
        info = infos.get(job.index)
        state, error = _reconcile(job, info, record, packed)
        status = JobStatus(index=job.index, state=state, job_id=job.job_id, overrides=job.overrides,
                           run_dir=manifest.run_path(job.index), error=error or read_error, record=record,
                           node=getattr(info, "node", None))
        if record is not None:
            st = record.status
            status.attempt = int(st.get("attempt", 1))
            last = st.get("last_step", -1)
            status.last_step = last if last is not None and last >= 0 else None
            status.start_time = st.get("start_time")
            if st.get("end_time") and st.get("runtime_s") is not None and state.is_final:
                status.runtime_s = float(st["runtime_s"])  # the attempts' own time, not the queue between
            elif status.start_time is not None:
                start = st.get("attempt_start") or status.start_time
                earlier = sum(float(a["end"]) - float(a["start"]) for a in (st.get("attempts") or [])[:-1]
                              if a.get("end") is not None and a.get("start") is not None)  # fmt: skip
                end = st.get("end_time") or (job.ended if state.is_final else None) or (
                    st.get("heartbeat") if state.is_final else now)
                status.runtime_s = earlier + max(0.0, (end or now) - start)
            if state == JobState.RUNNING and st.get("heartbeat"):
                status.heartbeat_age_s = max(0.0, now - st["heartbeat"])
                interval = float(st.get("heartbeat_interval_s") or 10.0)
                if status.heartbeat_age_s > HUNG_AFTER_INTERVALS * interval + 30:
                    status.possibly_hung = True
                    status.error = f"no heartbeat for {status.heartbeat_age_s:.0f} s: possibly hung"
        out.append(status)
    if persist and manifest.backend == "slurm":
        _persist_final(manifest, out)
    if persist and missing_rows:  # ended runs the index lacks (older sweeps, a lost append): add them
        try:
            append_rows(manifest.path, missing_rows)
        except (HpctrackError, OSError):
            pass  # a read-only view of someone else's sweep still works
    return SweepStatus(jobs=out, note=note)


def backend_view(manifest: Manifest) -> Tuple[Dict[int, Any], Optional[str]]:
    """What the backend says of each job (one query for the whole sweep), and a note when degraded."""
    from .launch import get_backend

    note: Optional[str] = None
    infos: Dict[int, Any] = {}
    if manifest.backend != "direct" and (not manifest.submission_error or any(j.job_id for j in manifest.jobs)):
        infos, note = get_backend(manifest.backend).query(manifest)
    if manifest.submission_error:
        note = f"submission failed: {manifest.submission_error}" + (f"; {note}" if note else "")
    return infos, note


def _persist_final(manifest: Manifest, statuses: List[JobStatus]) -> None:
    learned = {s.index: s for s in statuses
               if s.state.is_final and manifest.jobs[s.index].state != s.state and manifest.jobs[s.index].job_id}
    if not learned:
        return

    def change(m: Manifest) -> None:
        for index, s in learned.items():
            rec = m.jobs[index]
            if rec.job_id == manifest.jobs[index].job_id:  # not resubmitted meanwhile
                rec.state, rec.error, rec.ended = s.state, s.error, rec.ended or time.time()

    try:
        update_manifest(manifest.path, change)
    except StoreError:
        pass  # a read-only view of someone else's sweep still works


def job_statuses(manifest: Manifest, *, now: Optional[float] = None) -> List[JobStatus]:
    """Every job of the sweep with its merged state; see :func:`sweep_status`."""
    return sweep_status(manifest, now=now).jobs
