"""The run-side API: ``start_run(cfg)`` and the :class:`Run` a training script logs to.

``Run.log`` only appends to an in-memory buffer (about a microsecond). A
background thread writes the buffer to the run's store in one update every
``flush_interval_s`` seconds (refreshing the heartbeat) and as soon as it holds
``flush_max_points`` points, while logging goes on into a fresh buffer; ``log``
itself writes only when the buffer reaches twice that size. The buffer is also
written when the run ends, at interpreter exit, and on SIGTERM/SIGUSR1/SIGUSR2
before the previous handler of that signal runs.

"The current run" is one module-level variable, set while a run is active in
this process and cleared when it ends: under a launcher the job entry point
opens the run before the task starts, and ``start_run`` returns that run.
"""

from __future__ import annotations

import atexit
import operator
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from . import endrecord
from ._artifacts import ARTIFACTS_DIR, artifact_target, copy_artifact  # noqa: F401  (ARTIFACTS_DIR: re-exported)
from ._buffer import Buffer as _Buffer
from ._buffer import Flusher
from ._rank import global_rank
from ._signals import DeferredSigint, EarlySignals, signal_name
from ._types import RunStatus, attempts_runtime_s
from ._values import TrackedDict, flatten_config, whole_params
from .checkpoint import (  # noqa: F401  (re-exported: hpctrack.run.Checkpoint and the file names)
    CHECKPOINT_META,
    CHECKPOINT_STATE,
    CHECKPOINTS_DIR,
    Checkpoint,
    Checkpoints,
    RunCheckpoints,
)
from .errors import DiskFullError, HpctrackError, RunNotFoundError, StoreReplacedError
from .settings import scheduler_job_id
from .store import Store
from .store.base import disk_full

__all__ = [
    "Run",
    "RunSettings",
    "Checkpoint",
    "start_run",
    "open_job_run",
    "current_run",
    "flatten_config",
    "global_rank",
]

#: Environment knobs for the flush policy (seconds, points), read through ``hpctrack.settings``.
FLUSH_INTERVAL_ENV = "HPCTRACK_FLUSH_INTERVAL_S"
FLUSH_MAX_POINTS_ENV = "HPCTRACK_FLUSH_MAX_POINTS"
DEFAULT_FLUSH_INTERVAL_S = 5.0
DEFAULT_FLUSH_MAX_POINTS = 100_000
#: How many checkpoints ``save_checkpoint`` keeps per run.
CHECKPOINT_KEEP_ENV = "HPCTRACK_CHECKPOINT_KEEP"
DEFAULT_CHECKPOINT_KEEP = 2
#: A signal handler waits this long for a write in progress (another thread's) before it gives up
#: its flush: SIGTERM must end the process within seconds whatever the store is doing.
SIGNAL_WAIT_S = 10.0
#: ``finish`` waits this long for a write in progress before recording the end without its final write.
FINISH_WAIT_S = 120.0
#: How long a new attempt waits for the run's writer lease held by a live process on this host.
LEASE_WAIT_S = 5.0
#: The step interval in the status is the median over this many of the latest run.log calls.
STEP_WINDOW = 100

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))

_current: Optional["Run"] = None


def current_run() -> Optional["Run"]:
    """The run active in this process, or None."""
    return _current


@dataclass(frozen=True)
class RunSettings:
    """A run's settings from the environment, read once when it starts (a bad value fails the start)."""

    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    flush_max_points: int = DEFAULT_FLUSH_MAX_POINTS
    checkpoint_keep: int = DEFAULT_CHECKPOINT_KEEP

    @staticmethod
    def from_env() -> "RunSettings":
        """``HPCTRACK_FLUSH_INTERVAL_S``, ``HPCTRACK_FLUSH_MAX_POINTS``, ``HPCTRACK_CHECKPOINT_KEEP``.

        Raises
        ------
        ConfigError
            A variable holds a bad value; the message names it.
        """
        from . import settings

        return RunSettings(flush_interval_s=float(settings.get(FLUSH_INTERVAL_ENV)),
                           flush_max_points=int(settings.get(FLUSH_MAX_POINTS_ENV)),
                           checkpoint_keep=int(settings.get(CHECKPOINT_KEEP_ENV)))  # fmt: skip


def _error_record(error: Union[BaseException, str]) -> Dict[str, str]:
    if isinstance(error, BaseException):
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        message = str(error) or type(error).__name__
        return {"type": type(error).__name__, "message": message, "traceback": tb}
    return {"type": "", "message": error, "traceback": ""}


def _status_for(exc: Optional[BaseException]) -> RunStatus:
    if exc is None:
        return RunStatus.COMPLETED
    if isinstance(exc, SystemExit):
        return RunStatus.COMPLETED if exc.code in (None, 0) else RunStatus.FAILED
    if isinstance(exc, KeyboardInterrupt):
        return RunStatus.INTERRUPTED
    return RunStatus.FAILED


class Run(RunCheckpoints):
    """One tracked run: params, step-wise metrics, summary, tags, artifacts, status.

    Do not construct directly; use :func:`start_run`. Use it as a context
    manager: leaving the block records the run as completed, or as failed with
    the traceback when an exception escapes.

    The run is its store's one writer: it holds the run's writer lease
    (``hpctrack.locking.WriterLease``) from before its first write until it
    ends, so a second process opening the same run fails with
    :class:`~hpctrack.errors.RunBusyError`. In a job of several ranks
    (``RANK``, ``SLURM_PROCID``), only global rank 0 writes; the run object of
    every other rank has the same ``run_id`` and drops its writes.

    Attributes
    ----------
    dir, run_id, attempt:
        Where the run keeps its files, its id, and which attempt this is (read-only).
    summary:
        Final values (``run.summary["test/acc"] = 0.97``), written at the next flush.
    tags:
        Free-form labels (``run.tags["stage"] = "baseline"``).
    """

    def __init__(
        self,
        *,
        run_id: Optional[str],
        run_dir: Path,
        store: Store,
        flush_interval_s: Optional[float] = None,
        flush_max_points: Optional[int] = None,
        settings: Optional[RunSettings] = None,
        writes: bool = True,
    ) -> None:
        settings = settings or RunSettings.from_env()
        self._run_id = run_id
        self._run_dir = Path(run_dir)
        self.summary = TrackedDict()
        self.tags = TrackedDict()
        self._store = store
        self._writes = writes  # False on ranks other than 0: every write is dropped
        self._interval_s = float(flush_interval_s if flush_interval_s is not None else settings.flush_interval_s)
        self._max_points = int(flush_max_points if flush_max_points is not None else settings.flush_max_points)
        self._keep = settings.checkpoint_keep
        self._buffer = _Buffer()
        self._flush_requested = False  # the flusher was kicked for a full buffer
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: Optional[int] = None  # thread ident inside _write
        self._pending_signal: Optional[int] = None
        self._pending_sections: Dict[str, Dict[str, Any]] = {}  # params, info: written at the next write
        self._params: Dict[str, Any] = {}
        self._next_step = 0
        self._last_step = -1
        self._recent_calls: List[float] = []  # times of the last run.log calls stored, for the step interval
        self._last_log_time: Optional[float] = None
        self._start_time = time.time()
        self._attempt = 1  # 2, 3, ... when a requeue or resume reopens the run
        self._attempts: List[Dict[str, Any]] = []  # every attempt's record, this one last
        self._first_start = self._start_time  # the first attempt's start
        self._restart_step: Optional[int] = None  # set by restoring a checkpoint
        self._restart_recorded = False
        self._checkpoints = Checkpoints(self.run_dir / CHECKPOINTS_DIR)
        self._checkpoint_info: Optional[Dict[str, Any]] = None  # last saved, for the next flush
        self._on_requeue: List[Callable[[], None]] = []
        self._requeued = False
        self._index_job: Optional[int] = None  # job index in the sweep's index, when part of a sweep
        self._params_recorded = False
        self._artifacts: Dict[str, Dict[str, Any]] = {}
        self._finished = False
        self._fatal: Optional[BaseException] = None  # the store can no longer be written: why
        self._lease: Optional[Any] = None  # the WriterLease of this attempt
        self._signal: Optional[str] = None  # the signal that is ending this attempt
        self._attempts_dirty = False  # this attempt's record changed: the next write carries it
        self._on_finish: List[Callable[[RunStatus, Optional[str]], None]] = []
        # Called first when the run ends, while it still takes points: the relay's last read (hpctrack.relay).
        self._before_finish: List[Callable[[], None]] = []
        self._previous_handlers: Dict[int, Any] = {}
        self._flusher = Flusher(self, self._interval_s)
        if not writes:
            self.log = self._log_dropped  # type: ignore[method-assign]

    @property
    def dir(self) -> Path:
        """The run's directory: the place for the job's own files.

        Under an hpctrack launcher each job also runs in this directory (unless
        ``hydra.job.chdir=false``), so relative file names of two jobs never
        collide; ``hydra.utils.to_absolute_path`` still resolves against the
        directory the sweep was launched from. The run's store, checkpoints
        (``checkpoints/``) and artifacts (``artifacts/``) are kept here too.
        """
        return self._run_dir

    @property
    def run_dir(self) -> Path:
        """The same as :attr:`dir` (``ROOT/sweeps/<sweep id>/runs/<job>``)."""
        return self._run_dir

    @property
    def run_id(self) -> Optional[str]:
        """The run's id, ``<sweep id>/<job index>``: what ``hpctrack show`` and ``diff`` take.

        The same in every attempt of the run and on every rank of its job. None
        only on a rank other than 0 that could not learn rank 0's run.
        """
        return self._run_id

    @property
    def attempt(self) -> int:
        """This attempt's number: 1, then 2, 3, ... each time a requeue or resume reopens the run.

        Read from the run's store when the attempt starts; every point logged is
        recorded with it, so a later attempt supersedes what an earlier one logged
        after the checkpoint it restarted from.
        """
        return self._attempt

    # -- lifecycle -------------------------------------------------------------------------

    def _acquire_lease(self) -> None:
        """Become the run's one live writer for this attempt, or raise RunBusyError (nothing written)."""
        from .errors import RunBusyError
        from .locking import WriterLease, lock_ttl_s, writer_state

        if not self._writes or self._lease is not None:
            return
        lease = WriterLease(self.run_dir)
        try:
            lease.acquire(timeout_s=LEASE_WAIT_S)
        except RunBusyError:
            holder = writer_state(self.run_dir)
            if holder is None or holder.alive is not None:
                raise
            # A holder on another node can only be judged by its heartbeat: one that died
            # (a node failure before this requeue) frees the lease after the TTL.
            lease.acquire(timeout_s=lock_ttl_s() + LEASE_WAIT_S)
        self._lease = lease

    def _release_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    def _begin(
        self,
        info: Mapping[str, Any],
        previous: Optional[Mapping[str, Any]] = None,
        early: Optional[EarlySignals] = None,
    ) -> "Run":
        """Record the start of this attempt; ``previous`` is the run's status when it is reopened."""
        global _current
        if not self._writes:
            _current = self
            if early is not None:
                early.restore()
                early.replay(None)
            return self
        attempt_record: Dict[str, Any] = {
            "attempt": 1,
            "start": self._start_time,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "code": (info.get("code_snapshot") or {}).get("digest"),
        }
        job_id = scheduler_job_id()
        if job_id:
            attempt_record["job_id"] = job_id
        if previous:
            self._attempts = [dict(a) for a in previous.get("attempts") or []] or [
                {"attempt": 1, "start": previous.get("start_time")}  # a run from before attempts were recorded
            ]
            last = self._attempts[-1]
            if last.get("end") is None:  # it never recorded its end: killed, cancelled, node failure
                last["end"] = previous.get("heartbeat") or last.get("start")
                last["outcome"] = previous.get("lost_as") or "ended without recording its end (killed?)"
            self._attempt = int(last.get("attempt", len(self._attempts))) + 1
            self._first_start = float(previous.get("start_time") or self._start_time)
            attempt_record["attempt"] = self.attempt
        self._attempts.append(attempt_record)
        self._acquire_lease()
        from .provenance import capture, host_info

        reserved = False
        try:
            try:
                endrecord.reserve(self.run_dir)
                reserved = True
            except OSError as err:
                raise disk_full(err, self.run_dir, self.run_dir / endrecord.END_FILE) or err  # noqa: B904 - see locking
            self._store.write(
                sections={
                    "status": {
                        "state": RunStatus.RUNNING.value,
                        "start_time": self._first_start,
                        "attempt_start": self._start_time,
                        "heartbeat": self._start_time,
                        "heartbeat_interval_s": self._interval_s,
                        "last_step": self._last_step,
                        "last_log_time": None,
                        "step_interval_s": None,
                        "attempt": self.attempt,
                        "attempts": self._attempts,
                        "end_time": None,
                        "error": None,
                    },
                    "info": {
                        **host_info(),
                        **info,
                        "provenance": capture(info.get("script"), info.get("code_snapshot")),
                    },
                }
            )
        except BaseException as err:
            if reserved:  # the attempt could not even start (a full disk, a damaged store): say why
                endrecord.record(self.run_dir, attempt=self.attempt, state=RunStatus.FAILED.value, error=_one_line(err))
            self._release_lease()
            raise
        _current = self
        self._flusher.start()
        if early is not None:
            early.restore()
        self._install_signal_handlers()
        if early is not None:
            early.replay(self.handle_signal)
        atexit.register(self._at_exit)
        return self

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.finish(_status_for(exc), error=exc if _status_for(exc) != RunStatus.COMPLETED else None)

    @property
    def finished(self) -> bool:
        """The run has ended (:meth:`finish` was called, or its ``with`` block was left)."""
        return self._finished

    def finish(
        self,
        status: RunStatus = RunStatus.COMPLETED,
        *,
        error: Union[BaseException, str, None] = None,
        wait_s: Optional[float] = None,
    ) -> None:
        """Flush everything and record how the run ended. Later calls do nothing.

        Raises
        ------
        StoreError
            The run was to end completed, but its store could no longer be
            written (a full disk, a store changed under it): it is recorded as
            failed with that reason, and the error is raised so the job fails.
        """
        global _current
        if self._finished:
            return
        if self._writes:
            hooks, self._before_finish = self._before_finish, []
            for hook in hooks:
                try:
                    hook()
                except Exception as err:  # what it would have added is lost; the end must still be recorded
                    print(f"hpctrack: run {self.run_id}: {_one_line(err)}", file=sys.stderr, flush=True)
        self._finished = True
        if not self._writes:
            if _current is self:
                _current = None
            return
        wait_s = FINISH_WAIT_S if wait_s is None else wait_s
        self._flusher.stop(timeout_s=wait_s)
        asked = status
        end = time.time()
        if self._requeued:  # the attempt was closed for a requeue; the exit that follows is not an outcome
            status, error = RunStatus.REQUEUED, None
        else:
            self._attempts[-1].update(end=end, outcome=status.value)
        signalled = self._signal if status != RunStatus.COMPLETED else None
        if not self._requeued:
            if signalled:
                self._attempts[-1]["signal"] = signalled
            else:  # a signal that did not end it (e.g. SLURM's warning with no requeue left)
                self._attempts[-1].pop("signal", None)
        runtime = attempts_runtime_s(self._attempts)
        final: Dict[str, Any] = {"state": status.value, "end_time": end, "runtime_s": runtime,
                                 "attempts": self._attempts}  # fmt: skip
        error_line = self._set_error(final, error)
        raise_after: Optional[BaseException] = None
        stored = False
        try:
            if self._fatal is None:
                try:
                    stored = self._write(final, wait_s=wait_s)
                    if not stored:
                        print(f"hpctrack: run {self.run_id}: its final update was skipped: a write in progress "
                              f"held the run for more than {wait_s:g} s", file=sys.stderr, flush=True)  # fmt: skip
                except Exception as err:
                    if self._fatal is None:  # not a reason to stop writing: raised after the end is recorded
                        status, raise_after = RunStatus.FAILED, err
                        error_line = f"its final update could not be written: {_one_line(err)}"
            if self._fatal is not None:
                # Whatever the run was ending with, its record is incomplete: it failed, and says why.
                if asked == RunStatus.COMPLETED or self._requeued:
                    raise_after = _again(self._fatal)
                status, error_line = RunStatus.FAILED, _one_line(self._fatal)
                self._attempts[-1].update(end=end, outcome=status.value, error=error_line)
                final.update(state=status.value, error=_error_record(self._fatal))
                self._keep_in_recovery(final)
            elif stored and not self._requeued and signalled is None:
                self._add_to_index()
        finally:
            if self._lease is not None and self._lease.held:  # not when another process took the run over
                endrecord.record(
                    self.run_dir,
                    attempt=self.attempt,
                    state=status.value,
                    error=error_line,
                    extra={"signal": signalled} if signalled and status != RunStatus.COMPLETED else None,
                )
            self._release_lease()
            self._restore_signal_handlers()
            atexit.unregister(self._at_exit)
            if _current is self:
                _current = None
            for callback in self._on_finish:
                try:
                    callback(status, error_line)
                except Exception as err:  # e.g. a manifest on a full disk; the end record has it
                    print(f"hpctrack: run {self.run_id}: could not record its end in the sweep: {_one_line(err)}",
                          file=sys.stderr)  # fmt: skip
        if raise_after is not None:
            raise raise_after

    def _set_error(self, final: Dict[str, Any], error: Union[BaseException, str, None]) -> Optional[str]:
        if error is None:
            return None
        record = _error_record(error)
        final["error"] = record
        error_line = f"{record['type']}: {record['message']}" if record["type"] else record["message"]
        self._attempts[-1]["error"] = error_line
        return error_line

    def _add_to_index(self) -> None:
        """Append the ended run's record to its sweep's index (``hpctrack.index``), with its store's fingerprint."""
        if self._index_job is None:
            return
        from .index import append_rows, record_to_row

        try:
            row = record_to_row(self._index_job, self._store.read())
            row["fingerprint"] = self._store.fingerprint()  # readers tell a store changed since from this
            append_rows(self.run_dir.parent.parent, [row])
        except Exception as err:  # the index is rebuildable; the run's own record is what counts
            print(f"hpctrack: could not add run {self.run_id} to the sweep index: {err}", file=sys.stderr)

    def _at_exit(self) -> None:
        # The interpreter is exiting and the script never ended the run: it ran to its end
        # (or raised, when an uncaught exception was seen: the excepthook ended it already).
        try:
            self.finish(RunStatus.COMPLETED)
        except HpctrackError as err:  # the run failed after all; the exit code must say so
            print(f"hpctrack: {_one_line(err)}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(1)

    # -- when the store can no longer be written ---------------------------------------------

    def _stop_writing(self, err: BaseException) -> None:
        """The store cannot be written any more (full disk, changed under us, lease lost): stop for good.

        The training loop hears of it at its next ``run.log`` or ``flush``; what
        the run still holds stays in memory until it ends.
        """
        if self._fatal is not None:
            return
        self._fatal = err
        self.log = self._raise_fatal  # type: ignore[method-assign]  # no cost on log() until then
        print(f"hpctrack: run {self.run_id} stopped writing its store: {_one_line(err)}", file=sys.stderr,
              flush=True)  # fmt: skip

    def _raise_fatal(self, values: Mapping[str, Any], step: Optional[int] = None) -> None:
        raise _again(self._fatal)  # type: ignore[arg-type]

    def _keep_in_recovery(self, final: Mapping[str, Any]) -> None:
        """Keep what the store never received in ``recovery-<attempt>.jsonl`` (see ``hpctrack._recovery``)."""
        from ._recovery import write_recovery

        with self._buffer_lock:
            batch = self._buffer.batch()
        batch.attempt = self.attempt
        sections = {
            "params": self._params,
            "summary": dict(self.summary),
            "tags": dict(self.tags),
            "status": dict(final),
            "info": {"artifacts": self._artifacts} if self._artifacts else {},
        }
        for name, values in self._pending_sections.items():
            sections[name] = {**values, **sections.get(name, {})}
        try:
            path = write_recovery(self.run_dir, run_id=str(self.run_id), attempt=self.attempt,
                                  reason=_one_line(self._fatal) if self._fatal else "", store=self._store.path, sections=sections,
                                  batch=batch)  # fmt: skip
            print(f"hpctrack: run {self.run_id}: {len(batch)} points and its summary, tags and params are "
                  f"kept in {path}", file=sys.stderr, flush=True)  # fmt: skip
        except OSError as err:
            print(f"hpctrack: run {self.run_id}: could not keep its {len(batch)} unstored points in a recovery "
                  f"file: {_one_line(err)}", file=sys.stderr, flush=True)  # fmt: skip

    # -- logging ---------------------------------------------------------------------------

    def log(self, values: Mapping[str, Any], step: Optional[int] = None) -> None:
        """Buffer one point per metric at ``step`` (default: the previous step + 1).

        Values must be numbers: Python, numpy or 0-d tensor scalars; NaN and
        infinities are kept. A call with any bad key or value raises TypeError
        and buffers nothing. Nothing touches the disk here: a full buffer is
        written by the background thread, unless it reached twice its size
        limit (the disk is not keeping up), when this call writes it.

        Raises
        ------
        StoreError
            The run stopped writing its store (``DiskFullError``, ``StoreReplacedError``).
        """
        if self._finished:
            raise HpctrackError(f"run {self.run_id} has ended; log inside the `with start_run(...)` block")
        step = self._next_step if step is None else operator.index(step)
        with self._buffer_lock:
            held = self._buffer.add(step, time.time(), values)
        self._next_step = step + 1
        if step > self._last_step:
            self._last_step = step
        if held >= self._max_points:
            if held >= 2 * self._max_points:
                self.flush()  # the background flush is not keeping up (or failing): wait for this one
            elif not self._flush_requested:
                self._flush_requested = True
                self._flusher.kick()

    def _log_dropped(self, values: Mapping[str, Any], step: Optional[int] = None) -> None:
        if self._finished:
            raise HpctrackError(f"run {self.run_id} has ended; log inside the `with start_run(...)` block")

    def log_params(self, params: Mapping[str, Any], *, flatten: bool = True) -> None:
        """Record extra params (merged into the flattened config).

        ``flatten=False`` records each key as given, a nested mapping as one whole value
        (a model's ``id2label`` is one param, not one per label). Secrets are masked either way.
        """
        flat = flatten_config(dict(params)) if flatten else whole_params(params)
        self._params.update(flat)
        self._pending_sections.setdefault("params", {}).update(flat)
        self.flush()

    def _note_info(self, key: str, value: Any) -> None:
        """Record ``value`` under ``key`` in the run's info (e.g. its Hydra output directory).

        Written with the run's next update: the params ``start_run`` records next, a background
        flush, a signal's flush or the end, whichever comes first (one store update less per run).
        """
        if not self._writes:
            return
        self._pending_sections.setdefault("info", {})[key] = value

    # -- for frameworks that drive the run (hpctrack.integrations) ---------------------------

    @property
    def writes(self) -> bool:
        """This process writes the run (global rank 0); elsewhere every write is dropped."""
        return self._writes

    @property
    def requeued(self) -> bool:
        """This attempt was closed for a requeue (:meth:`prepare_requeue`): the job starts again."""
        return self._requeued

    @property
    def params_recorded(self) -> bool:
        """The run's config is recorded as its params (by its launcher, or :meth:`record_config`)."""
        return self._params_recorded

    def record_config(self, cfg: Any) -> None:
        """Record ``cfg`` (flattened) as the params of a run started without a config; once."""
        if not self._params_recorded:
            self.log_params(flatten_config(cfg))
            self._params_recorded = True

    def recorded_params(self) -> Dict[str, Any]:
        """The params the run recorded: by earlier attempts (in its store) and by this one."""
        try:
            stored = dict(self._store.read().params)
        except RunNotFoundError:
            stored = {}
        return {**stored, **self._params}

    def note_attempt(self, key: str, value: Any) -> None:
        """Record ``value`` under ``key`` in this attempt's record (``status.attempts``), with the next update.

        For what concerns this attempt only, e.g. a framework's hyper-parameters that differ
        from those the run recorded (``hpctrack.integrations``).
        """
        if not self._writes or not self._attempts:
            return
        self._attempts[-1][key] = value
        self._attempts_dirty = True

    def attempt_note(self, key: str, default: Any = None) -> Any:
        """What this attempt's record holds under ``key`` (see :meth:`note_attempt`)."""
        return self._attempts[-1].get(key, default) if self._attempts else default

    def signal_handler_below(self, signum: int) -> Any:
        """The handler the run's own replaced for ``signum``: what a handler given back should call next."""
        return self._previous_handlers.get(signum, signal.SIG_DFL)

    def log_artifact(self, path: Union[str, "os.PathLike[str]"], name: Optional[str] = None) -> Path:
        """Copy a file or directory into the run's ``artifacts/`` folder; returns the copy's path."""
        target, name = artifact_target(self.run_dir, path, name)
        if not self._writes:
            return target  # another rank's: rank 0 keeps the run's artifacts
        target, entry = copy_artifact(self.run_dir, path, name)
        self._record_artifact(name, entry)
        self.flush()
        return target

    def _record_artifact(self, name: str, entry: Dict[str, Any]) -> None:
        """Record an artifact already copied into ``artifacts/`` (``hpctrack artifact`` copies its own)."""
        self._artifacts[name] = dict(entry)
        self._pending_sections.setdefault("info", {})["artifacts"] = dict(self._artifacts)

    def flush(self) -> None:
        """Write buffered points, summary and tags now, and refresh the heartbeat.

        Raises
        ------
        StoreError
            The write failed; the points stay buffered for the next flush (or,
            for ``DiskFullError`` and ``StoreReplacedError``, the run stopped
            writing its store for good).
        """
        self._write(None)

    def _write(self, final_status: Optional[Dict[str, Any]], *, wait_s: Optional[float] = None) -> bool:
        """One store update with everything buffered; False when the write lock was not had within ``wait_s``.

        A batch goes back to the buffer only when the store did not commit it
        (``Store.commits``), so nothing is ever written twice. From the main
        thread, SIGINT is held until the write has ended, then delivered.
        """
        if not self._writes:
            return True
        if self._fatal is not None:
            raise _again(self._fatal)
        deferred = DeferredSigint().begin()
        try:
            if not self._acquire_write_lock(wait_s, deferred):
                return False
            try:
                self._writer = threading.get_ident()
                self._write_locked(final_status)
            finally:
                self._writer = None
                self._write_lock.release()
        finally:
            deferred.end()  # raises KeyboardInterrupt here, after the write, if Ctrl-C came meanwhile
        pending, self._pending_signal = self._pending_signal, None
        if pending is not None:
            self._handle_signal(pending, None)
        return True

    def _acquire_write_lock(self, wait_s: Optional[float], deferred: DeferredSigint) -> bool:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while not self._write_lock.acquire(timeout=0.05):
            if deferred.pending:
                deferred.end()  # Ctrl-C while waiting for another thread's write: nothing was taken
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def _write_locked(self, final_status: Optional[Dict[str, Any]]) -> None:
        if self._lease is not None and not self._lease.held:
            from .errors import RunBusyError

            self._stop_writing(RunBusyError(f"run {self.run_id} lost its writer lease to another process "
                                            f"({self._lease.path}); it no longer writes its store"))  # fmt: skip
            raise _again(self._fatal)  # type: ignore[arg-type]
        with self._buffer_lock:
            taken, self._buffer = self._buffer, self._buffer.empty_like()
            self._flush_requested = False
        batch = taken.batch()
        batch.attempt = self.attempt
        restart = None
        if batch and self.attempt > 1 and not self._restart_recorded:
            # This attempt's first points: it restarted at its checkpoint's next step, or
            # wherever it began logging; earlier attempts' points from there on are superseded.
            first = min(int(cols[0].min()) for cols in batch.points.values())
            restart = (self.attempt, min(first, self._restart_step) if self._restart_step is not None
                       else first)  # fmt: skip
            self._attempts[-1]["restart_step"] = restart[1]
        calls = self._recent_calls + taken.call_times(STEP_WINDOW + 1)
        calls = calls[-(STEP_WINDOW + 1) :]
        status_update: Dict[str, Any] = {"heartbeat": time.time(), "last_step": self._last_step,
                                         "last_log_time": calls[-1] if calls else self._last_log_time,
                                         "step_interval_s": _median_interval(calls)}  # fmt: skip
        if restart is not None or self._attempts_dirty:
            status_update["attempts"] = self._attempts
            self._attempts_dirty = False
        checkpoint = self._checkpoint_info
        if checkpoint is not None:
            status_update["checkpoint"] = checkpoint
        sections: Dict[str, Any] = {"status": {**status_update, **(final_status or {})}}
        pending, self._pending_sections = self._pending_sections, {}
        sections.update(pending)
        summary = self.summary.take_dirty()
        if summary:
            sections["summary"] = summary
        tags = self.tags.take_dirty()
        if tags:
            sections["tags"] = tags
        before = self._store.commits
        try:
            self._store.write(metrics=batch if batch else None, sections=sections, restart=restart)  # type: ignore[arg-type]
        except BaseException as err:
            if self._store.commits == before:  # not stored: keep it all for the next write
                self._give_back(taken, summary, tags, pending)
            if isinstance(err, (DiskFullError, StoreReplacedError)):
                self._stop_writing(err)
            if self._store.commits == before:
                raise
        if restart is not None:
            self._restart_recorded = True
        if checkpoint is not None and self._checkpoint_info is checkpoint:
            self._checkpoint_info = None  # recorded; the next flushes need not repeat it
        self._recent_calls = calls
        self._last_log_time = status_update["last_log_time"]

    def _give_back(
        self, taken: _Buffer, summary: Dict[str, Any], tags: Dict[str, Any], pending: Dict[str, Dict[str, Any]]
    ) -> None:
        # A failed write keeps its points, ahead of anything logged meanwhile.
        with self._buffer_lock:
            taken.extend(self._buffer)
            self._buffer = taken
        self.summary._dirty.update(summary)
        self.tags._dirty.update(tags)
        for name, values in pending.items():
            self._pending_sections[name] = {**values, **self._pending_sections.get(name, {})}

    def on_requeue(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` when SLURM signals the time limit or preemption, before the job requeues.

        Typically ``run.on_requeue(lambda: run.save_checkpoint(state))`` for a job that
        checkpoints rarely. Metrics are flushed after ``fn`` either way.
        """
        self._on_requeue.append(fn)

    def prepare_requeue(self, reason: str) -> None:
        """The job is about to requeue itself: save what can be saved and close this attempt as requeued.

        ``reason`` is recorded as the attempt's outcome (``requeued: REASON``).
        """
        if not self._writes or self._finished:
            return
        for fn in self._on_requeue:
            try:
                fn()
            except Exception as err:  # the requeue must still happen; the previous checkpoint is used
                print(f"hpctrack: on_requeue callback failed: {type(err).__name__}: {err}", file=sys.stderr)
        now = time.time()
        self._attempts[-1].update(end=now, outcome=f"requeued: {reason}")
        if self._signal:
            self._attempts[-1]["signal"] = self._signal
        self._requeued = True
        self._write({"state": RunStatus.REQUEUED.value, "attempts": self._attempts}, wait_s=SIGNAL_WAIT_S)

    # -- signals ---------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            try:
                self._previous_handlers[sig] = signal.signal(sig, self.handle_signal)
            except (OSError, ValueError):
                pass

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._previous_handlers.items():
            try:
                if signal.getsignal(sig) == self.handle_signal:  # not one installed after ours
                    signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        self._previous_handlers.clear()

    def handle_signal(self, signum: int, frame: Any) -> None:
        """The run's own signal handler, installed in the main thread by a writing run (SIGINT, SIGTERM, ...)."""
        if self._writer == threading.get_ident():
            # Interrupted our own write: finish it first, then handle the signal.
            self._pending_signal = signum
            return
        self._handle_signal(signum, frame)

    def _handle_signal(self, signum: int, frame: Any) -> None:
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        name = signal_name(signum)
        # SIGTERM asks the job to end even where it is only logged (submitit, which leaves the end to
        # SLURM's SIGKILL), and SIGUSR2 is SLURM's time-limit signal (requeue, or the limit comes).
        ends = previous == signal.SIG_DFL or previous is None or name in ("SIGTERM", "SIGUSR2")
        if ends and not self._finished:
            self._signal = name
            self._attempts[-1]["signal"] = name
            self._attempts_dirty = True
            if callable(previous) and name == "SIGTERM" and self._lease is not None and self._lease.held:
                # What the end record says if the scheduler's SIGKILL follows; a run that goes on
                # and ends otherwise rewrites it.
                endrecord.record(self.run_dir, attempt=self.attempt, state=RunStatus.INTERRUPTED.value,
                                 error=f"terminated by {name}", extra={"signal": name})  # fmt: skip
        problem = None
        try:
            if not self._finished and self._fatal is None and not self._write(None, wait_s=SIGNAL_WAIT_S):
                problem = (f"the flush on {name} was skipped: a write in progress held the run for more than "
                           f"{SIGNAL_WAIT_S:g} s")  # fmt: skip
        except Exception as err:
            problem = f"the flush on {name} failed: {type(err).__name__}: {_one_line(err)}"
        if problem is not None:
            print(f"hpctrack: run {self.run_id}: {problem}", file=sys.stderr, flush=True)
            if self._attempts:
                self._attempts[-1]["flush_error"] = problem
                self._attempts_dirty = True
        if callable(previous):
            previous(signum, frame)
            return
        if previous == signal.SIG_IGN:
            return
        # The default action ends the process: record how, then die of the same signal.
        try:
            self.finish(RunStatus.INTERRUPTED, error=f"terminated by {name}", wait_s=SIGNAL_WAIT_S)
        except Exception as err:
            print(f"hpctrack: run {self.run_id}: {_one_line(err)}", file=sys.stderr, flush=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _median_interval(times: List[float]) -> Optional[float]:
    """Median seconds between consecutive calls; None with fewer than two."""
    if len(times) < 2:
        return None
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    mid = len(gaps) // 2
    return gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2


def _one_line(err: BaseException) -> str:
    from .store.base import one_line

    if isinstance(err, HpctrackError):
        return one_line(err)
    return f"{type(err).__name__}: {one_line(err)}"


def _again(err: BaseException) -> BaseException:
    """A fresh exception like ``err`` (raising one object again and again grows its traceback)."""
    try:
        return type(err)(*err.args)
    except Exception:
        return err


# Starting a run builds on everything above; the names stay importable from here.
from ._start import open_job_run, start_run  # noqa: E402
