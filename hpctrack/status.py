"""Job state of a sweep: the backend's record merged with each run's own record.

The run's record (state, heartbeat, last step, error) is the authority on what
happened inside the job; the manifest says what the backend did with it. A
job that ended without recording its end (killed, or its launcher died) is
reconciled here from what can be checked: whether its process still lives.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ._types import JobState, RunStatus
from .errors import RunNotFoundError, StoreError
from .manifest import JobRecord, Manifest
from .store import RunRecord, open_store

__all__ = ["JobStatus", "job_statuses", "read_run"]

_RUN_TO_JOB = {
    RunStatus.COMPLETED.value: JobState.COMPLETED,
    RunStatus.FAILED.value: JobState.FAILED,
    RunStatus.INTERRUPTED.value: JobState.CANCELLED,
}


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
            "error": self.error,
            "run_dir": str(self.run_dir),
        }


def read_run(manifest: Manifest, index: int) -> "tuple[Optional[RunRecord], Optional[str]]":
    """The run record of job ``index`` (None before it starts), and a read error, if any."""
    try:
        return open_store(manifest.run_path(index), manifest.store).read(), None
    except RunNotFoundError:
        return None, None
    except StoreError as err:
        return None, f"unreadable run store: {err}"


def _error_line(status: Dict[str, Any]) -> Optional[str]:
    error = status.get("error")
    if not error:
        return None
    message = (error.get("message") or "").strip().splitlines()
    first = message[0] if message else ""
    return f"{error['type']}: {first}" if error.get("type") else first


def _process_gone(info: Dict[str, Any]) -> bool:
    from .launch.local import pid_alive

    return info.get("host") == socket.gethostname() and "pid" in info and not pid_alive(int(info["pid"]))


def _reconcile(manifest: Manifest, job: JobRecord, record: Optional[RunRecord],
               runner_alive: Optional[bool]) -> "tuple[JobState, Optional[str]]":
    if job.state.is_final:
        # The run's own traceback beats the backend's summary of it.
        own = _error_line(record.status) if record is not None else None
        return job.state, own or job.error
    if record is not None:
        state = record.status.get("state")
        if state in _RUN_TO_JOB:
            return _RUN_TO_JOB[state], _error_line(record.status)
        if _process_gone(record.info):
            return JobState.FAILED, f"process {record.info['pid']} ended without recording a result (killed?)"
        return JobState.RUNNING, None
    if runner_alive is False:
        if job.state == JobState.PENDING:
            return JobState.CANCELLED, "the job runner stopped before this job started"
        return JobState.FAILED, "the job ended before its run started; see its log files"
    return job.state, job.error


def job_statuses(manifest: Manifest, *, now: Optional[float] = None) -> List[JobStatus]:
    """Every job of the sweep with its merged state, progress, runtime and error line."""
    from .launch.local import runner_alive as local_runner_alive

    now = time.time() if now is None else now
    runner = local_runner_alive(manifest) if manifest.backend == "local" else None
    out = []
    for job in manifest.jobs:
        record, read_error = read_run(manifest, job.index)
        state, error = _reconcile(manifest, job, record, runner)
        status = JobStatus(index=job.index, state=state, job_id=job.job_id, overrides=job.overrides,
                           run_dir=manifest.run_path(job.index), error=error or read_error, record=record)
        if record is not None:
            st = record.status
            last = st.get("last_step", -1)
            status.last_step = last if last is not None and last >= 0 else None
            status.start_time = st.get("start_time")
            if status.start_time is not None:
                end = st.get("end_time") or (job.ended if state.is_final else None) or now
                status.runtime_s = max(0.0, end - status.start_time)
            if state == JobState.RUNNING and st.get("heartbeat"):
                status.heartbeat_age_s = max(0.0, now - st["heartbeat"])
        out.append(status)
    return out
