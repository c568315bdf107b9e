"""Job state of a sweep: the backend's view merged with each run's own record.

The run's record (state, heartbeat, last step, error) is the authority on what
happened inside the job; the backend (the local runner's manifest entries, or
one ``sacct`` call for a SLURM sweep) says what happened to the job from the
outside: queued, killed at its time limit, cancelled. A job that ended without
recording its end is reconciled here from what can be checked: whether its
writer or process is still alive, its end record (``runs/<i>/end.json``), and
the signal that ended it.

Ended runs are served from the sweep's index for speed, but only while their
store still has the fingerprint the index line recorded: a store that was
deleted, truncated or replaced since is read again, and a run whose store is
gone or unreadable is ``LOST``, never shown with the index's old numbers.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from . import endrecord, settings
from ._types import JobState, RunStatus, attempts_runtime_s, signal_name, state_summary
from .errors import ConfigError, FormatVersionError, HpctrackError, RunNotFoundError, StoreError
from .manifest import JobRecord, Manifest, update_manifest
from .store import RunRecord, open_store
from .store.base import one_line, read_failure

__all__ = ["JobStatus", "SweepStatus", "job_statuses", "sweep_status", "backend_view", "ended_state", "read_run",
           "signal_of_exit_code", "HUNG_AFTER_INTERVALS"]  # fmt: skip

_RUN_TO_JOB = {
    RunStatus.COMPLETED.value: JobState.COMPLETED,
    RunStatus.FAILED.value: JobState.FAILED,
    RunStatus.INTERRUPTED.value: JobState.CANCELLED,
}
#: The job state of an ended run, by the run's own state (public name for the catalog).
RUN_TO_JOB = _RUN_TO_JOB
#: A running job whose heartbeat is older than this many flush intervals (+30 s) may be hung.
HUNG_AFTER_INTERVALS = 3
#: What the error column says of a cancelled job, whoever cancelled it and however.
CANCELLED = "cancelled"


@dataclass
class JobStatus:
    """One job as ``hpctrack status`` shows it.

    ``error`` says why a job failed or was lost; ``note`` says something worth
    knowing that is not an error (why it is pending, that it stalled).

    Attributes
    ----------
    index : int
        The job's index in the sweep (its run is ``runs/<index>``).
    state : JobState
        The merged state: the backend's view reconciled with the run's own record.
    job_id : str or None
        The scheduler's id of the current submission (a pid for local jobs).
    overrides : list of str
        The job's Hydra overrides (secret values masked).
    run_dir : Path
        The run's directory.
    last_step : int or None
        The last step the run logged.
    start_time : float or None
        When the run first started (epoch seconds).
    runtime_s : float or None
        Seconds the run's attempts ran, queue time excluded.
    heartbeat_age_s : float or None
        Seconds since the run's last heartbeat (running jobs).
    possibly_hung : bool
        No heartbeat for many intervals: the process may be hung.
    attempt : int or None
        The run's attempt (2, 3, ... after requeues).
    node : str or None
        Where the backend says the job runs or ran.
    error : str or None
        One line: why the job failed, was cancelled or lost.
    note : str or None
        One line worth knowing that is not an error.
    stalled : bool
        Running, but no ``run.log`` call for longer than the stall threshold.
    last_log_age_s : float or None
        Seconds since the run's latest ``run.log`` call.
    step_interval_s : float or None
        The run's median seconds between ``run.log`` calls.
    record : RunRecord or None
        The run's record when it was read.
    data_lost : str or None
        Why the run's recorded data is gone or unreadable.
    """

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
    note: Optional[str] = None
    #: No ``run.log`` call for longer than the stall threshold while the job runs.
    stalled: bool = False
    last_log_age_s: Optional[float] = None  # seconds since the run's latest run.log call
    step_interval_s: Optional[float] = None  # the run's median seconds between run.log calls
    record: Optional[RunRecord] = field(default=None, repr=False)
    #: Why the run's recorded data is gone or unreadable (LOST jobs, and FAILED ones whose store
    #: was lost under them); such a job is only resubmitted with ``include_lost``.
    data_lost: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        """The job as plain JSON data (``hpctrack status --format json``)."""
        return {
            "job": self.index,
            "state": self.state.value,
            "job_id": self.job_id,
            "overrides": self.overrides,
            "last_step": self.last_step,
            "runtime_s": self.runtime_s,
            "heartbeat_age_s": self.heartbeat_age_s,
            "possibly_hung": self.possibly_hung,
            "stalled": self.stalled,
            "last_log_age_s": self.last_log_age_s,
            "step_interval_s": self.step_interval_s,
            "attempt": self.attempt,
            "node": self.node,
            "error": self.error,
            "note": self.note,
            "data_lost": self.data_lost,
            "run_dir": str(self.run_dir),
        }


@dataclass
class SweepStatus:
    """Every job's status plus a note when the backend's view was degraded or the index is damaged.

    Attributes
    ----------
    jobs : list of JobStatus
        One per job, in job order.
    note : str or None
        A degraded backend view or a damaged index, in one line.
    """

    jobs: List[JobStatus]
    note: Optional[str] = None

    @property
    def lost(self) -> Dict[int, str]:
        """Jobs whose run data is gone or unreadable: index -> why."""
        return {s.index: s.error or "run store missing or unreadable" for s in self.jobs if s.state == JobState.LOST}

    @property
    def stalled(self) -> List[int]:
        """Jobs that stalled: running, but no ``run.log`` call for far longer than their step cadence."""
        return [s.index for s in self.jobs if s.stalled]

    def to_json(self, manifest: Manifest, *, only_stalled: bool = False) -> Dict[str, Any]:
        """The ``hpctrack status --format json`` payload (stable keys); ``only_stalled`` lists only those jobs."""
        from .launch.registry import can_submit
        from .requeue import incomplete_jobs  # requeue builds on this module

        jobs = [s for s in self.jobs if s.stalled] if only_stalled else self.jobs
        return {"sweep": manifest.id, "name": manifest.name, "path": str(manifest.path),
                "backend": manifest.backend, "resumable": can_submit(manifest.backend), "note": self.note,
                "summary": state_summary(s.state for s in self.jobs),
                "incomplete": {str(i): why for i, why in incomplete_jobs(manifest, self.jobs).items()},
                "lost": {str(i): why for i, why in self.lost.items()},
                "stalled": self.stalled,
                "jobs": [s.to_json() for s in jobs]}  # fmt: skip


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


def signal_of_exit_code(exit_code: Optional[str]) -> Optional[str]:
    """The signal in sacct's ``ExitCode`` (``exit:signal``): ``"0:12"`` -> ``"SIGUSR2"``; None if none."""
    if not exit_code:
        return None
    _, sep, number = str(exit_code).partition(":")
    return signal_name(int(number)) if sep and number.isdigit() else None


def cancelled_line(error: Optional[str]) -> str:
    """The one wording of a cancelled job's error column: ``cancelled``, with the signal or when, if known."""
    text = error or ""
    if "before it started" in text:
        return f"{CANCELLED} before it started"
    if "KeyboardInterrupt" in text or "SIGINT" in text:
        return f"{CANCELLED} (SIGINT)"
    found = re.search(r"\bSIG[A-Z0-9]+\b", text)
    if found:
        return f"{CANCELLED} ({found.group(0)})"
    if not text or text.lower().startswith(CANCELLED):
        return CANCELLED
    return f"{CANCELLED}: {text}"


def _same_host(host: Optional[str]) -> bool:
    return host is not None and host == socket.gethostname()


def _alive(run_dir: Path, host: Optional[str], pid: Any) -> Optional[bool]:
    """Whether a job's writer is alive: its writer lease (any host), or its process (this host).

    True when the lease is presumed alive or the process is alive here; False when
    the process is provably gone; None when nothing can be told from here.
    """
    from ._process import pid_alive
    from .locking import writer_state

    try:
        writer = writer_state(run_dir)
    except (HpctrackError, OSError):
        writer = None
    if writer is not None and writer.presumed_alive:
        return True
    if _same_host(host) and pid is not None:
        try:
            return pid_alive(int(pid))
        except (TypeError, ValueError):
            return None
    return None


def _end_of(run_dir: Path, job: JobRecord, record: Optional[RunRecord]) -> Optional[Dict[str, Any]]:
    """The end record of the job's current submission (and of the record's attempt), or None."""
    end = endrecord.read(run_dir)
    if end is None:
        return None
    if job.submitted is not None and float(end.get("time") or 0) < job.submitted:
        return None  # an earlier submission's end
    if record is not None and end.get("attempt") is not None and \
            int(end["attempt"]) < int(record.status.get("attempt", 1)):  # fmt: skip
        return None  # an earlier attempt's end
    return end


def _signal_of(info: Any, record: Optional[RunRecord], end: Optional[Mapping[str, Any]]) -> Optional[str]:
    """Which signal ended the job, from the run's attempt record, its end record or sacct's exit code."""
    attempts = (record.status.get("attempts") if record is not None else None) or []
    if attempts and attempts[-1].get("signal"):
        return str(attempts[-1]["signal"])
    if end is not None and end.get("signal"):
        return str(end["signal"])
    return signal_of_exit_code(getattr(info, "exit_code", None))


def _local_writer(run_dir: Path) -> Optional[int]:
    """The pid of a live process on this host that holds the run's writer lease, else None."""
    from .locking import writer_state

    try:
        writer = writer_state(run_dir)
    except (HpctrackError, OSError):
        return None
    return writer.pid if writer is not None and writer.alive is True else None


def _end_state(end: Mapping[str, Any]) -> JobState:
    return _RUN_TO_JOB.get(str(end.get("state")), JobState.FAILED)


def _end_error(end: Mapping[str, Any]) -> Optional[str]:
    """An end record's error line, or the signal that ended the attempt."""
    if end.get("error"):
        return str(end["error"])
    return f"killed by {end['signal']}" if end.get("signal") else None


def ended_state(
    job: JobRecord,
    info: Any,
    run_state: Optional[str],
    own_error: Optional[str],
    *,
    signal: Optional[str] = None,
    end: Optional[Mapping[str, Any]] = None,
) -> Tuple[JobState, Optional[str]]:
    """The state of a job that ended, by the run's own record or the backend's final state.

    A run that recorded its own completion is COMPLETED whatever the scheduler's
    final state (a job requeued at its time limit whose last attempt completed
    is TIMEOUT to sacct). A scheduler's reason field is never an error.
    """
    backend_state = info.state if info is not None else None
    end_error = _end_error(end) if end is not None else None
    killed = f"killed by {signal}" if signal else None
    if run_state == RunStatus.COMPLETED.value:
        return JobState.COMPLETED, None
    if backend_state is not None and backend_state.is_final:
        if run_state in _RUN_TO_JOB and backend_state in (JobState.COMPLETED, JobState.FAILED):
            state, error = _RUN_TO_JOB[run_state], own_error  # what happened inside beats the task's state
        elif end is not None and backend_state in (JobState.COMPLETED, JobState.FAILED):
            state, error = _end_state(end), end_error  # so does the end record of a store left "running"
        elif backend_state == JobState.COMPLETED:  # the task ended well, but this run never recorded its end
            state, error = JobState.FAILED, "the job ended without recording its end (killed?)"
        else:
            state, error = backend_state, own_error or end_error or killed or job.error or getattr(info, "error", None)
            if error is None and backend_state == JobState.FAILED and run_state == RunStatus.RUNNING.value:
                code = str(getattr(info, "exit_code", None) or "").partition(":")[0]
                exited = f" (exit code {code})" if code not in ("", "0") else ""
                error = f"the job ended without recording its end{exited} (killed?)"
    elif run_state in _RUN_TO_JOB:
        state, error = _RUN_TO_JOB[run_state], own_error
    else:
        state, error = (_end_state(end), end_error) if end is not None else (JobState.FAILED, killed or job.error)
    if state == JobState.CANCELLED:
        error = cancelled_line(error or (f"by {signal}" if signal else None))
    return _pruned(job, state, error)


def pruned_line(job: JobRecord) -> str:
    """What the error column says of a pruned trial: ``pruned at step 3 (trial 7)``."""
    step = job.pruned.get("step")
    trial = job.pruned.get("trial")
    return "pruned" + (f" at step {step}" if step is not None else "") + (f" (trial {trial})" if trial is not None
                                                                           else "")  # fmt: skip


def _pruned(job: JobRecord, state: JobState, error: Optional[str]) -> Tuple[JobState, Optional[str]]:
    """A study's trial its pruner stopped is PRUNED once it has ended (LOST data stays LOST)."""
    if job.pruned and state.is_final and state != JobState.LOST:
        return JobState.PRUNED, pruned_line(job)
    return state, error


def _reconcile(
    job: JobRecord,
    info: Any,
    record: Optional[RunRecord],
    packed: bool,
    *,
    run_dir: Path,
    runner: Optional[Mapping[str, Any]] = None,
) -> Tuple[JobState, Optional[str], Optional[str]]:
    """Merge the backend's view (``info``: a JobInfo or None) with the run's own record.

    Returns (state, error, note). ``runner``: a direct run's recorded host/pid (a
    plain script has no backend to ask).
    """
    if record is not None and job.submitted is not None:
        attempt_start = record.status.get("attempt_start", record.status.get("start_time"))
        if attempt_start is not None and float(attempt_start) < job.submitted:
            # The record is of an earlier submission (the job was requeued since): it says
            # nothing about the current one, which has not started yet.
            record = None
    run_state = record.status.get("state") if record is not None else None
    own_error = error_line(record.status) if record is not None else None
    backend_state = info.state if info is not None else None
    backend_final = backend_state is not None and backend_state.is_final
    if run_state == RunStatus.REQUEUED.value and not backend_final:
        if backend_state == JobState.RUNNING:
            return JobState.RUNNING, None, None  # the next attempt is starting
        return backend_state or JobState.PENDING, None, "requeued: waiting for its next attempt"
    if backend_final and record is not None and run_state == RunStatus.RUNNING.value:
        writer = _local_writer(run_dir)
        if writer is not None and backend_state is not None:  # its controller was killed, its task was not
            return JobState.RUNNING, None, (f"{backend_state.value} to the backend (its controller ended), but its "
                                            f"run still writes (pid {writer} on this host)")  # fmt: skip
    if backend_final or run_state in _RUN_TO_JOB:
        end = None if run_state in _RUN_TO_JOB else _end_of(run_dir, job, record)
        state, error = ended_state(job, info, run_state, own_error, signal=_signal_of(info, record, end), end=end)
        return state, error, None
    if record is not None:  # the run says it is running
        alive = _alive(run_dir, record.info.get("host"), record.info.get("pid"))
        if alive:
            return JobState.RUNNING, None, None  # whatever became of its runner: never FAILED, never resubmitted
        if alive is False or (info is not None and info.ended):
            end = _end_of(run_dir, job, record)
            if end is not None:
                return _end_state(end), _end_error(end), None
            if job.cancelled is not None:  # asked to stop, and it stopped before it could say so
                return JobState.CANCELLED, cancelled_line(None), None
            signal = _signal_of(info, record, None)
            return JobState.FAILED, (f"killed by {signal} without recording a result" if signal else
                                     "the job ended without recording a result (killed?)"), None  # fmt: skip
        return JobState.RUNNING, None, None
    if runner is not None and not job.state.is_final:  # a plain script run that has not written its store yet
        alive = _alive(run_dir, runner.get("host"), runner.get("pid"))
        if alive is False:
            end = _end_of(run_dir, job, None)
            if end is not None:
                return _end_state(end), _end_error(end), None
            return JobState.FAILED, (f"the script ended before its run recorded anything (pid {runner.get('pid')} "
                                     "is gone)"), None  # fmt: skip
        return JobState.RUNNING, None, None
    if info is not None and info.ended:
        end = _end_of(run_dir, job, None)
        if end is not None:
            return _end_state(end), _end_error(end), None
        signal = _signal_of(info, None, None)
        return JobState.FAILED, (f"killed by {signal} before its run started" if signal else
                                 "the job ended before its run started") + "; see its log files", None  # fmt: skip
    if backend_state == JobState.RUNNING and packed:
        return JobState.PENDING, None, "waiting for its turn in a packed array task"
    if backend_state is not None:
        reason = info.reason if backend_state == JobState.PENDING else None
        return backend_state, None, (f"waiting ({reason})" if reason else None)
    if job.state == JobState.CANCELLED:
        return job.state, cancelled_line(job.error), None
    return job.state, job.error, None


def _backend(manifest: Manifest) -> Any:
    """The sweep's backend, with no options: enough to ask it about the sweep."""
    from .launch.registry import backend_class

    return backend_class(manifest.backend)()


@dataclass
class _Read:
    """What status knows of one run's store."""

    record: Optional[RunRecord] = None
    lost: Optional[str] = None  # why the run's data is gone or unreadable
    error: Optional[str] = None  # a read problem that is not (yet) a loss
    failed: Optional[str] = None  # the store is unreadable, and the run's end record says it failed: why
    data_lost: Optional[str] = None  # with ``failed``: the store's data is gone (why)
    fresh_row: Optional[Dict[str, Any]] = None  # an index line to append (ended run, current fingerprint)


def _check_store(store: Any, job: int) -> _Read:
    """Read a store that changed since it was indexed, checking it whole (points included)."""
    from .index import ENDED_STATES, indexed_row

    problems = store.verify()
    if problems:
        if problems[0].startswith("no run store at") or "is missing" in problems[0]:
            return _Read(lost=f"run store missing: {store.path} (deleted or moved?)")
        if problems[0].startswith("unreadable: "):
            return _Read(lost=f"unreadable run store {store.path.name}: {problems[0][len('unreadable: ') :]}")
        return _Read(lost=f"damaged run store {store.path.name}: {problems[0]}")
    try:
        record, row = indexed_row(job, store)
    except HpctrackError as err:
        return _Read(lost=f"unreadable run store {store.path.name}: {read_failure(err)}")
    ended = record.status.get("state") in ENDED_STATES
    return _Read(record=record, fresh_row=row if ended else None)


def _read_job(manifest: Manifest, job: JobRecord, info: Any, row: Optional[Mapping[str, Any]], serve: bool) -> _Read:
    """The run of ``job``: from its index line while its store still matches it, else from its store."""
    from .index import ENDED_STATES, indexed_row, row_to_record, usable

    run_dir = manifest.run_path(job.index)
    store = open_store(run_dir, manifest.store)
    if usable(row, job.submitted):
        assert row is not None
        if row.get("lost"):  # marked by reindex: read whole again (a repair may have brought it back)
            checked = _check_store(store, job.index)
            return checked if checked.lost is None else _Read(lost=checked.lost or str(row["lost"]))
        indexed = row.get("fingerprint")
        now = store.fingerprint()
        if now is None:
            return _Read(lost=f"run store missing: {store.path} (deleted or moved?)")
        if serve and (indexed is None or indexed == now):  # an older line has none: the store exists, enough
            return _Read(record=row_to_record(row, run_dir))
        if indexed is not None and indexed != now:
            return _check_store(store, job.index)  # changed since indexed: truncated, replaced, written to
    try:
        record, fresh = indexed_row(job.index, store)
    except RunNotFoundError:
        end = _end_of(run_dir, job, None)
        completed = job.state == JobState.COMPLETED or getattr(info, "state", None) == JobState.COMPLETED
        if (end is not None and end.get("state") == RunStatus.COMPLETED.value) or (end is None and completed):
            # A launched job writes its store before its task runs: a job that completed had one.
            return _Read(lost=f"run store missing: {store.path} (deleted or moved?)")
        wrote = _left_behind(run_dir)
        if end is not None and wrote:
            # It ran (it left checkpoints or a recovery file) and ended, and its store is gone.
            gone = f"its run store {store.path.name} is gone (deleted or moved?); {wrote}"
            return _Read(failed=f"{_end_error(end) or end.get('state') or 'failed'}; {gone}", data_lost=gone)
        return _Read()
    except FormatVersionError as err:
        return _Read(error=one_line(err))
    except StoreError as err:
        if _alive(run_dir, None, None):  # its writer is at work: a transient failure, not a loss
            return _Read(error=f"run store unreadable right now: {read_failure(err)}")
        end = _end_of(run_dir, job, None)
        if end is not None and end.get("state") == RunStatus.FAILED.value:
            # The run itself saw its store damaged and failed: it ended FAILED, and says why.
            unreadable = f"its run store {store.path.name} is unreadable ({read_failure(err)}): see hpctrack verify"
            return _Read(failed=f"{_end_error(end) or 'failed'}; {unreadable}", data_lost=unreadable)
        ended = f"; the run ended {end.get('state')}: {_end_error(end)}" if end is not None and _end_error(end) else ""
        return _Read(lost=f"unreadable run store {store.path.name}: {read_failure(err)}{ended}")
    # An ended run the index lacks (an append that failed, an older sweep): its line is added.
    lacking = record.status.get("state") in ENDED_STATES and usable(fresh, job.submitted) and not usable(
        row, job.submitted)  # fmt: skip
    return _Read(record=record, fresh_row=fresh if lacking else None)


def _left_behind(run_dir: Path) -> Optional[str]:
    """What a run that wrote left beside its store (checkpoints, recovery files), as a phrase; None if nothing."""
    found = []
    try:
        if any(e.name.isdigit() for e in os.scandir(run_dir / "checkpoints")):
            found.append("checkpoints/")
    except OSError:
        pass
    try:
        found += sorted(e.name for e in os.scandir(run_dir) if e.name.startswith("recovery-"))
    except OSError:
        pass
    return f"left behind: {', '.join(found)}" if found else None


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _every(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"


def _progress(status: JobStatus, st: Mapping[str, Any], now: float) -> None:
    """Flag a running job that stalled (no run.log) or may be hung (no flush at all)."""
    if st.get("heartbeat"):
        status.heartbeat_age_s = max(0.0, now - float(st["heartbeat"]))
        interval = float(st.get("heartbeat_interval_s") or 10.0)
        if status.heartbeat_age_s > HUNG_AFTER_INTERVALS * interval + 30:
            status.possibly_hung = True
            status.error = f"no heartbeat for {status.heartbeat_age_s:.0f} s: possibly hung"
    last_log = st.get("last_log_time")
    if last_log is None:
        return  # nothing logged yet, or written by a run that does not record it
    status.last_log_age_s = age = max(0.0, now - float(last_log))
    step_interval = st.get("step_interval_s")
    status.step_interval_s = float(step_interval) if step_interval is not None else None
    threshold = float(settings.get("HPCTRACK_STALL_AFTER_S"))
    if status.step_interval_s:
        threshold = max(threshold, float(settings.get("HPCTRACK_STALL_FACTOR")) * status.step_interval_s)
    if age > threshold and not status.possibly_hung:
        status.stalled = True
        usual = f" (usually every {_every(status.step_interval_s)})" if status.step_interval_s else ""
        status.note = f"stalled: last step {status.last_step} logged {_ago(age)}{usual}"


def sweep_status(
    manifest: Manifest,
    *,
    now: Optional[float] = None,
    persist: bool = True,
    records: Optional[Dict[int, RunRecord]] = None,
    only: Optional[Set[int]] = None,
    view: Optional[Tuple[Dict[int, Any], Optional[str]]] = None,
    index_rows: Optional[Mapping[int, Mapping[str, Any]]] = None,
) -> SweepStatus:
    """Every job of the sweep with its merged state, progress, runtime and error line.

    The backend is asked once for the whole sweep. With ``persist``, final
    states learned from a scheduler are written back to the manifest, so they
    survive the scheduler forgetting the job, and ended runs the index lacks
    are added to it. ``records``: run records the caller already has (job index
    -> record); with it, the other runs are read from their stores, never
    served from the index. ``only``: just these jobs. ``view``: the backend's
    view, from :func:`backend_view`. ``index_rows``: the index lines the caller
    already read (by job), else the sweep's index is read here.
    """
    from .index import append_rows, read_index_lines

    now = time.time() if now is None else now
    infos, note = view if view is not None else backend_view(manifest, only=only, persist=persist)
    backend = _backend(manifest)
    packed = int(manifest.launcher.get("runs_per_task") or 1) > 1
    notes = [note] if note else []
    if index_rows is None:
        lines = read_index_lines(manifest.path)
        index_rows = lines.rows
        damage = lines.damage_note()
        if damage:
            notes.append(damage)
    fresh_rows = []
    out = []
    for job in manifest.jobs:
        if only is not None and job.index not in only:
            continue
        info = infos.get(job.index)
        run_dir = manifest.run_path(job.index)
        if records is not None and job.index in records:
            read = _Read(record=records[job.index])
        else:
            read = _read_job(manifest, job, info, index_rows.get(job.index), serve=records is None)
        if read.fresh_row is not None:
            fresh_rows.append(read.fresh_row)
        record = read.record
        error: Optional[str]
        if read.lost is not None:
            state, error, job_note = JobState.LOST, read.lost, None
        elif read.failed is not None:
            state, error, job_note = JobState.FAILED, read.failed, None
        else:
            state, error, job_note = _reconcile(job, info, record, packed, run_dir=run_dir,
                                                runner=backend.process_of(manifest, job))  # fmt: skip
            error = error or read.error
            state, error = _pruned(job, state, error)
        status = JobStatus(index=job.index, state=state, job_id=job.job_id, overrides=job.overrides, run_dir=run_dir,
                           error=error, note=job_note, record=record, node=getattr(info, "node", None),
                           data_lost=read.lost or read.data_lost)  # fmt: skip
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
                earlier = attempts_runtime_s((st.get("attempts") or [])[:-1])
                end = (
                    st.get("end_time")
                    or (job.ended if state.is_final else None)
                    or (st.get("heartbeat") if state.is_final else now)
                )
                status.runtime_s = earlier + max(0.0, (end or now) - start)
            if state == JobState.RUNNING:
                _progress(status, st, now)
        out.append(status)
    if persist and not backend.records_final_states:
        _persist_final(manifest, out)
    if persist and fresh_rows:  # ended runs the index lacks, or whose store changed since: add their lines
        try:
            append_rows(manifest.path, fresh_rows)
        except (HpctrackError, OSError):
            pass  # a read-only view of someone else's sweep still works
    return SweepStatus(jobs=out, note="; ".join(notes) or None)


def backend_view(
    manifest: Manifest, *, only: Optional[Set[int]] = None, persist: bool = True
) -> Tuple[Dict[int, Any], Optional[str]]:
    """What the backend says of each job (one query for the whole sweep), and a note when degraded.

    For a backend whose final states only its scheduler knows (SLURM), the
    scheduler's final word on each job is kept in the manifest (``jobs[].scheduler``)
    once the scheduler will not change it by itself; while every job of the sweep
    (of ``only``, when given) has it, the scheduler is not asked at all, and the view
    is what it answered then. With ``persist``, the final words learned by the
    query are written to the manifest.
    """
    note: Optional[str] = None
    infos: Dict[int, Any] = {}
    backend = _backend(manifest)
    recorded = {} if backend.records_final_states else _recorded_infos(manifest)
    asked = [j for j in manifest.jobs if j.job_id and (only is None or j.index in only)]
    if recorded and all(j.index in recorded for j in asked):
        infos = recorded  # every job's final word is known: nothing to ask the scheduler
    elif not manifest.submission_error or any(j.job_id for j in manifest.jobs):
        infos, note = backend.query(manifest)
        if persist and not backend.records_final_states:
            _persist_scheduler(manifest, backend, infos, recorded)
    if manifest.submission_error:
        note = f"submission failed: {manifest.submission_error}" + (f"; {note}" if note else "")
    return infos, note


_INFO_KEYS = ("state", "node", "reason", "exit_code", "scheduler_state", "error")


def _recorded_infos(manifest: Manifest) -> Dict[int, Any]:
    """The scheduler's final words kept in the manifest, as the JobInfo its query returned then."""
    from .launch.base import JobInfo

    out: Dict[int, Any] = {}
    # Jobs the scheduler said the same of share one (frozen) JobInfo: 100,000 ended jobs say a few things.
    shared: Dict[Tuple[Any, ...], Any] = {}
    for job in manifest.jobs:
        said = job.scheduler
        if said and job.job_id and said.get("job_id") == job.job_id and said.get("state") in _STATES:
            words = tuple(said.get(k) for k in _INFO_KEYS)
            try:
                info = shared.get(words)
                hashable = True
            except TypeError:  # a hand-edited value that is not text: this job's own JobInfo
                info, hashable = None, False
            if info is None:
                info = JobInfo(state=_STATES[said["state"]], ended=True,
                               **{k: said.get(k) for k in _INFO_KEYS if k != "state"})  # fmt: skip
                if hashable:
                    shared[words] = info
            out[job.index] = info
    return out


_STATES = {s.value: s for s in JobState}


def _persist_scheduler(manifest: Manifest, backend: Any, infos: Mapping[int, Any], recorded: Mapping[int, Any]) -> None:
    """Keep the scheduler's final word on each job that has one now, so it is not asked again."""
    learned = {}
    for job in manifest.jobs:
        info = infos.get(job.index)
        if job.job_id and job.index not in recorded and info is not None and backend.settled(info):
            said = {k: getattr(info, k) for k in _INFO_KEYS}
            said["state"] = info.state.value
            learned[job.index] = {"job_id": job.job_id, **{k: v for k, v in said.items() if v is not None}}
    if not learned:
        return

    def change(m: Manifest) -> None:
        for index, said in learned.items():
            if index < len(m.jobs) and m.jobs[index].job_id == said["job_id"]:  # not resubmitted meanwhile
                m.jobs[index].scheduler = said

    try:
        update_manifest(manifest.path, change)
    except (StoreError, OSError):
        return  # a read-only view of someone else's sweep still works; it asks again next time
    for index, said in learned.items():
        manifest.jobs[index].scheduler = said


def _persist_final(manifest: Manifest, statuses: List[JobStatus]) -> None:
    # LOST is hpctrack's own finding about the run's data, not what the scheduler said: never persisted.
    learned = {s.index: s for s in statuses
               if s.state.is_final and s.state != JobState.LOST and manifest.jobs[s.index].state != s.state
               and manifest.jobs[s.index].job_id}  # fmt: skip
    if not learned:
        return

    def change(m: Manifest) -> None:
        for index, s in learned.items():
            rec = m.jobs[index]
            if rec.job_id == manifest.jobs[index].job_id:  # not resubmitted meanwhile
                rec.state, rec.error, rec.ended = s.state, s.error, rec.ended or time.time()

    try:
        update_manifest(manifest.path, change)
    except (StoreError, OSError):
        pass  # a read-only view of someone else's sweep (no right to create its lock file) still works


def job_statuses(manifest: Manifest, *, now: Optional[float] = None) -> List[JobStatus]:
    """Every job of the sweep with its merged state; see :func:`sweep_status`."""
    return sweep_status(manifest, now=now).jobs


def recorded_states(manifest: Manifest) -> Tuple[List[JobState], int]:
    """Each job's state from what is on disk, without asking the scheduler (what ``hpctrack ls`` shows).

    The manifest's states are brought up to date from the sweep's index (ended
    runs, lost runs) and the runs' end records. Returns the states and how many
    of them are unconfirmed: not final, and nothing on disk says more (a SLURM
    job the manifest last saw queued, a local job whose runner is gone); only
    ``hpctrack status`` can tell those. An ended run whose store changed since it
    was indexed is read whole, as ``status`` does: LOST when damaged or gone.
    """
    from .index import read_index, usable

    rows = read_index(manifest.path)
    try:
        confirmed = _backend(manifest).states_current(manifest)
    except ConfigError:  # a backend not registered here: nothing on this host keeps its states current
        confirmed = False
    states, unconfirmed = [], 0
    for job in manifest.jobs:
        row = rows.get(job.index)
        if usable(row, job.submitted):
            assert row is not None
            if row.get("lost"):
                states.append(JobState.LOST)
                continue
            indexed = row.get("fingerprint")
            store = open_store(manifest.run_path(job.index), manifest.store)
            if indexed and store.fingerprint() != indexed:  # a few stats per run; rare: an ended run's store changed
                checked = _check_store(store, job.index)  # so it is read whole, as status does
                if checked.lost is not None or checked.record is None:
                    states.append(JobState.LOST)
                    continue
                states.append(_pruned(job, _RUN_TO_JOB.get(str(checked.record.status.get("state")),
                                                            JobState.FAILED), None)[0])  # fmt: skip
                continue
            states.append(_pruned(job, _RUN_TO_JOB[row["status"]["state"]], None)[0])
            continue
        if job.state.is_final:
            states.append(_pruned(job, job.state, None)[0])
            continue
        end = _end_of(manifest.run_path(job.index), job, None)
        if end is not None:
            states.append(_pruned(job, _end_state(end), None)[0])
            continue
        if job.state != JobState.RUNNING and _writing(manifest.run_path(job.index), job.job_id):
            states.append(JobState.RUNNING)  # its run has a live writer: the job runs, whatever was last seen
            continue
        states.append(job.state)
        unconfirmed += 0 if confirmed else 1
    return states, unconfirmed


def _writing(run_dir: Path, job_id: Optional[str]) -> bool:
    """Whether the run has a live writer (a fresh lease) of this submission of the job."""
    from .locking import WRITER_LEASE_FILE, writer_state

    if not (run_dir / WRITER_LEASE_FILE).exists():  # the usual case for a queued job: one stat
        return False
    writer = writer_state(run_dir)
    if writer is None or not writer.presumed_alive:
        return False
    # A lease of an earlier submission's process (a requeue since) is not this one's; a packed task's
    # runs carry the task's id, which the job's is too.
    return writer.job_id is None or job_id is None or writer.job_id == job_id
