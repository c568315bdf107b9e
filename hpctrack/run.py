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
import contextlib
import hashlib
import json
import operator
import os
import platform
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ._types import JobState, RunStatus
from ._buffer import Buffer as _Buffer
from .checkpoint import CHECKPOINT_META, CHECKPOINT_STATE, CHECKPOINTS_DIR, Checkpoint, Checkpoints
from .errors import ConfigError, HpctrackError
from .store import MetricBatch, Store, open_store

__all__ = ["Run", "Checkpoint", "start_run", "current_run", "flatten_config"]

#: Environment knobs for the flush policy (seconds, points).
FLUSH_INTERVAL_ENV = "HPCTRACK_FLUSH_INTERVAL_S"
FLUSH_MAX_POINTS_ENV = "HPCTRACK_FLUSH_MAX_POINTS"
DEFAULT_FLUSH_INTERVAL_S = 5.0
DEFAULT_FLUSH_MAX_POINTS = 100_000
ARTIFACTS_DIR = "artifacts"
#: How many checkpoints ``save_checkpoint`` keeps per run.
CHECKPOINT_KEEP_ENV = "HPCTRACK_CHECKPOINT_KEEP"
DEFAULT_CHECKPOINT_KEEP = 2

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))

_current: Optional["Run"] = None


def current_run() -> Optional["Run"]:
    """The run active in this process, or None."""
    return _current


class _TrackedDict(dict):  # type: ignore[type-arg]
    """A dict that remembers which keys were set since the last flush."""

    def __init__(self) -> None:
        super().__init__()
        self._dirty: set = set()

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"keys must be strings, got {type(key).__name__}")
        super().__setitem__(key, _jsonable(value))
        self._dirty.add(key)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def take_dirty(self) -> Dict[str, Any]:
        dirty, self._dirty = self._dirty, set()
        return {k: self[k] for k in dirty if k in self}


def _jsonable(value: Any) -> Any:
    """Plain JSON types from numpy/torch scalars, tuples, paths and mappings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return str(value)


def flatten_config(cfg: Any) -> Dict[str, Any]:
    """The resolved config as ``{"optimizer.lr": 0.1, ...}``; lists stay whole values."""
    if cfg is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"start_run(cfg): cfg must be a mapping or DictConfig, got {type(cfg).__name__}")
    out: Dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                walk(value, name + ".")
            else:
                out[name] = _jsonable(value)

    walk(cfg, "")
    return out


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


class _Flusher(threading.Thread):
    """Flushes the buffer and refreshes the heartbeat every ``interval_s`` seconds, or when kicked.

    ``Run.log`` kicks it when the buffer is full, so the training loop goes on
    logging into a fresh buffer while the full one is written (an fsync on a
    busy parallel filesystem can take a long time).
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
                if not self._warned:
                    print(f"hpctrack: flush failed, will retry: {err}", file=sys.stderr)
                    self._warned = True

    def kick(self) -> None:
        """Flush now, in this thread."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self is not threading.current_thread() and self.is_alive():
            self.join(timeout=60)


class Run:
    """One tracked run: params, step-wise metrics, summary, tags, artifacts, status.

    Do not construct directly; use :func:`start_run`. Use it as a context
    manager: leaving the block records the run as completed, or as failed with
    the traceback when an exception escapes.

    Attributes
    ----------
    summary:
        Final values (``run.summary["test/acc"] = 0.97``), written at the next flush.
    tags:
        Free-form labels (``run.tags["stage"] = "baseline"``).
    """

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        store: Store,
        flush_interval_s: Optional[float] = None,
        flush_max_points: Optional[int] = None,
    ) -> None:
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.summary = _TrackedDict()
        self.tags = _TrackedDict()
        self._store = store
        self._interval_s = float(
            flush_interval_s if flush_interval_s is not None
            else os.environ.get(FLUSH_INTERVAL_ENV, DEFAULT_FLUSH_INTERVAL_S)
        )
        self._max_points = int(
            flush_max_points if flush_max_points is not None
            else os.environ.get(FLUSH_MAX_POINTS_ENV, DEFAULT_FLUSH_MAX_POINTS)
        )
        self._buffer = _Buffer()
        self._flush_requested = False  # the flusher was kicked for a full buffer
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: Optional[int] = None  # thread ident inside _write
        self._pending_signal: Optional[int] = None
        self._next_step = 0
        self._last_step = -1
        self._start_time = time.time()
        self.attempt = 1  # 2, 3, ... when a requeue or resume reopens the run
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
        self._on_finish: List[Callable[[RunStatus, Optional[str]], None]] = []
        self._previous_handlers: Dict[int, Any] = {}
        self._flusher = _Flusher(self, self._interval_s)

    # -- lifecycle -------------------------------------------------------------------------

    def _begin(self, info: Mapping[str, Any], previous: Optional[Mapping[str, Any]] = None) -> "Run":
        """Record the start of this attempt; ``previous`` is the run's status when it is reopened."""
        global _current
        attempt_record = {"attempt": 1, "start": self._start_time, "host": socket.gethostname(), "pid": os.getpid()}
        job_id = _job_id_from_env()
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
            self.attempt = int(last.get("attempt", len(self._attempts))) + 1
            self._first_start = float(previous.get("start_time") or self._start_time)
            attempt_record["attempt"] = self.attempt
        self._attempts.append(attempt_record)
        self._store.write(
            sections={
                "status": {
                    "state": RunStatus.RUNNING.value,
                    "start_time": self._first_start,
                    "attempt_start": self._start_time,
                    "heartbeat": self._start_time,
                    "heartbeat_interval_s": self._interval_s,
                    "last_step": self._last_step,
                    "attempt": self.attempt,
                    "attempts": self._attempts,
                    "end_time": None,
                    "error": None,
                },
                "info": {**_host_info(), **info, "provenance": _provenance(info.get("script"),
                                                                            info.get("code_snapshot"))},
            }
        )
        _current = self
        self._flusher.start()
        self._install_signal_handlers()
        atexit.register(self._at_exit)
        return self

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        self.finish(_status_for(exc), error=exc if _status_for(exc) != RunStatus.COMPLETED else None)
        return False

    @property
    def finished(self) -> bool:
        return self._finished

    def finish(self, status: RunStatus = RunStatus.COMPLETED, *, error: Union[BaseException, str, None] = None) -> None:
        """Flush everything and record how the run ended. Later calls do nothing."""
        global _current
        if self._finished:
            return
        self._finished = True
        self._flusher.stop()
        end = time.time()
        if self._requeued:  # the attempt was closed for a requeue; the exit that follows is not an outcome
            status, error = RunStatus.REQUEUED, None
        else:
            self._attempts[-1].update(end=end, outcome=status.value)
        runtime = sum(float(a["end"]) - float(a["start"]) for a in self._attempts
                      if a.get("end") is not None and a.get("start") is not None)  # fmt: skip
        final: Dict[str, Any] = {"state": status.value, "end_time": end, "runtime_s": runtime,
                                 "attempts": self._attempts}  # fmt: skip
        error_line: Optional[str] = None
        if error is not None:
            record = _error_record(error)
            final["error"] = record
            error_line = f"{record['type']}: {record['message']}" if record["type"] else record["message"]
            self._attempts[-1]["error"] = error_line
        try:
            self._write(final)
            if not self._requeued:
                self._add_to_index()
        finally:
            self._restore_signal_handlers()
            atexit.unregister(self._at_exit)
            if _current is self:
                _current = None
            for callback in self._on_finish:
                callback(status, error_line)

    def _add_to_index(self) -> None:
        """Append the ended run's record to its sweep's index (``hpctrack.index``)."""
        if self._index_job is None:
            return
        from .index import append_rows, record_to_row

        try:
            append_rows(self.run_dir.parent.parent, [record_to_row(self._index_job, self._store.read())])
        except Exception as err:  # the index is rebuildable; the run's own record is what counts
            print(f"hpctrack: could not add run {self.run_id} to the sweep index: {err}", file=sys.stderr)

    def _at_exit(self) -> None:
        # The interpreter is exiting and the script never ended the run: it ran to its end.
        self.finish(RunStatus.COMPLETED)

    # -- logging ---------------------------------------------------------------------------

    def log(self, values: Mapping[str, Any], step: Optional[int] = None) -> None:
        """Buffer one point per metric at ``step`` (default: the previous step + 1).

        Values must be numbers: Python, numpy or 0-d tensor scalars; NaN and
        infinities are kept. A call with any bad key or value raises TypeError
        and buffers nothing. Nothing touches the disk here: a full buffer is
        written by the background thread, unless it reached twice its size
        limit (the disk is not keeping up), when this call writes it.
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

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record extra params (merged into the flattened config)."""
        self._store.write(sections={"params": flatten_config(dict(params))})

    def log_artifact(self, path: Union[str, os.PathLike], name: Optional[str] = None) -> Path:
        """Copy a file or directory into the run's ``artifacts/`` folder; returns the copy's path."""
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"log_artifact: {source} does not exist")
        name = name or source.name
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise ValueError(f"log_artifact: name {name!r} must be a relative path inside the run's artifacts/")
        target = self.run_dir / ARTIFACTS_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
            size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            entry: Dict[str, Any] = {"kind": "dir", "size": size}
        else:
            shutil.copy2(source, target)
            entry = {"kind": "file", "size": target.stat().st_size, "sha256": _sha256(target)}
        self._artifacts[name] = {"path": f"{ARTIFACTS_DIR}/{name}", **entry}
        self._store.write(sections={"info": {"artifacts": self._artifacts}})
        return target

    def flush(self) -> None:
        """Write buffered points, summary and tags now, and refresh the heartbeat."""
        self._write(None)

    def _write(self, final_status: Optional[Dict[str, Any]]) -> None:
        with self._write_lock:
            self._writer = threading.get_ident()
            try:
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
                status_update: Dict[str, Any] = {"heartbeat": time.time(), "last_step": self._last_step}
                if restart is not None:
                    status_update["attempts"] = self._attempts
                checkpoint = self._checkpoint_info
                if checkpoint is not None:
                    status_update["checkpoint"] = checkpoint
                sections: Dict[str, Any] = {"status": {**status_update, **(final_status or {})}}
                summary = self.summary.take_dirty()
                if summary:
                    sections["summary"] = summary
                tags = self.tags.take_dirty()
                if tags:
                    sections["tags"] = tags
                try:
                    self._store.write(metrics=batch if batch else None, sections=sections, restart=restart)
                except BaseException:
                    self._requeue(taken, summary, tags)
                    raise
                if restart is not None:
                    self._restart_recorded = True
                if checkpoint is not None and self._checkpoint_info is checkpoint:
                    self._checkpoint_info = None  # recorded; the next flushes need not repeat it
            finally:
                self._writer = None
        pending, self._pending_signal = self._pending_signal, None
        if pending is not None:
            self._handle_signal(pending, None)

    def _requeue(self, taken: "_Buffer", summary: Dict[str, Any], tags: Dict[str, Any]) -> None:
        # A failed write keeps its points, ahead of anything logged meanwhile.
        with self._buffer_lock:
            taken.extend(self._buffer)
            self._buffer = taken
        self.summary._dirty.update(summary)
        self.tags._dirty.update(tags)

    # -- checkpoints -----------------------------------------------------------------------

    def save_checkpoint(
        self,
        state: Any = None,
        *,
        step: Optional[int] = None,
        files: Sequence[Union[str, os.PathLike]] = (),
        keep: Optional[int] = None,
    ) -> Path:
        """Save a checkpoint atomically and keep only the newest ``keep``; returns its directory.

        ``state`` is any picklable object (e.g. ``{"epoch": e, "model": model.state_dict()}``);
        ``files`` are copied in (files your framework wrote). ``step`` defaults to the last
        logged step: a restart from this checkpoint continues at ``step + 1`` and supersedes
        what a killed attempt logged after it. Metrics logged so far are flushed first, so a
        restart never finds a checkpoint newer than the metrics on disk.
        """
        with self.checkpoint(step=step, keep=keep, state=state) as directory:
            for item in files:
                source = Path(item)
                if source.is_dir():
                    shutil.copytree(source, directory / source.name)
                else:
                    shutil.copy2(source, directory / source.name)
        return self._checkpoints.latest().path  # type: ignore[union-attr]

    @contextlib.contextmanager
    def checkpoint(
        self, *, step: Optional[int] = None, keep: Optional[int] = None, state: Any = None
    ) -> Iterator[Path]:
        """A fresh directory to write a checkpoint's files into, committed when the block ends.

        ``with run.checkpoint() as d: torch.save(model.state_dict(), d / "model.pt")``.
        An exception in the block discards the directory; the previous checkpoint stays.
        """
        if self._finished:
            raise HpctrackError(f"run {self.run_id} has ended; checkpoint inside the `with start_run(...)` block")
        step = self._last_step if step is None else operator.index(step)
        self.flush()  # the metrics a restart from this checkpoint relies on are on disk first
        with self._checkpoints.writing(step=step, attempt=self.attempt, state=state,
                                       keep=keep if keep is not None else self.checkpoint_keep) as directory:
            yield directory
        latest = self._checkpoints.latest()
        if latest is not None:
            self._checkpoint_info = latest.describe()

    def latest_checkpoint(self) -> Optional["Checkpoint"]:
        """The newest checkpoint of this run (from any attempt), or None; marks this attempt as restored from it."""
        latest = self._checkpoints.latest()
        if latest is not None and self._restart_step is None:
            self._restart_step = latest.step + 1
            self._next_step = latest.step + 1
            self._last_step = max(self._last_step, latest.step)  # the resolved history ends there
            self._attempts[-1]["restored_from"] = latest.describe()
        return latest

    def restore_checkpoint(self) -> Any:
        """The state object of the newest checkpoint: None on a fresh start, else what was saved.

        Logging then continues at the checkpoint's step + 1 (when ``step`` is omitted), and
        points an earlier attempt logged after that step are superseded by this attempt's.
        """
        latest = self.latest_checkpoint()
        return None if latest is None else latest.load()

    @property
    def checkpoint_keep(self) -> int:
        """How many checkpoints :meth:`save_checkpoint` keeps (``HPCTRACK_CHECKPOINT_KEEP``, default 2)."""
        return max(1, int(os.environ.get(CHECKPOINT_KEEP_ENV, DEFAULT_CHECKPOINT_KEEP)))

    def on_requeue(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` when SLURM signals the time limit or preemption, before the job requeues.

        Typically ``run.on_requeue(lambda: run.save_checkpoint(state))`` for a job that
        checkpoints rarely. Metrics are flushed after ``fn`` either way.
        """
        self._on_requeue.append(fn)

    def _prepare_requeue(self, reason: str) -> None:
        """The job is about to requeue itself: save what can be saved and close this attempt."""
        for fn in self._on_requeue:
            try:
                fn()
            except Exception as err:  # the requeue must still happen; the previous checkpoint is used
                print(f"hpctrack: on_requeue callback failed: {type(err).__name__}: {err}", file=sys.stderr)
        now = time.time()
        self._attempts[-1].update(end=now, outcome=f"requeued: {reason}")
        self._requeued = True
        self._write({"state": RunStatus.REQUEUED.value, "attempts": self._attempts})

    # -- signals ---------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            try:
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
            except (OSError, ValueError):
                pass

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._previous_handlers.items():
            try:
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._writer == threading.get_ident():
            # Interrupted our own write: finish it first, then handle the signal.
            self._pending_signal = signum
            return
        self._handle_signal(signum, frame)

    def _handle_signal(self, signum: int, frame: Any) -> None:
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        try:
            self.flush()
        except Exception:
            pass
        if callable(previous):
            previous(signum, frame)
            return
        if previous == signal.SIG_IGN:
            return
        # The default action ends the process: record how, then die of the same signal.
        name = signal.Signals(signum).name
        self.finish(RunStatus.INTERRUPTED, error=f"terminated by {name}")
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _job_id_from_env() -> Optional[str]:
    if "SLURM_JOB_ID" in os.environ:
        array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    return os.environ.get("SUBMITIT_LOCAL_JOB_ID")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config_yaml(cfg: Any) -> Optional[str]:
    """The resolved config as YAML (what ``hpctrack show`` prints and a rerun starts from)."""
    if cfg is None:
        return None
    try:
        from omegaconf import DictConfig, OmegaConf

        conf = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
        return OmegaConf.to_yaml(conf, resolve=True)
    except Exception as err:  # an unresolvable interpolation must not fail the run
        return f"# could not render the config: {err}"


def _provenance(script: Optional[str], snapshot: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    from .provenance import capture

    return capture(script, snapshot=snapshot)


def _host_info() -> Dict[str, Any]:
    from . import __version__

    env_ids = {
        key: os.environ[key]
        for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_LOCAL_JOB_ID")
        if key in os.environ
    }
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "hpctrack_version": __version__,
        **({"job_env": env_ids} if env_ids else {}),
    }


def _hydra_overrides() -> Optional[List[str]]:
    try:
        from hydra.core.hydra_config import HydraConfig

        from omegaconf import OmegaConf

        return list(OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False))
    except Exception:  # not under Hydra, or Hydra not configured in this process
        return None


def open_job_run(sweep_dir: Path, index: int, extra_info: Optional[Mapping[str, Any]] = None) -> Run:
    """Open the run of job ``index`` of the sweep in ``sweep_dir`` (called by the job entry point)."""
    from .manifest import load_manifest

    from .errors import RunNotFoundError

    manifest = load_manifest(sweep_dir)
    job = manifest.jobs[index]
    run_dir = manifest.run_path(index)
    store = open_store(run_dir, manifest.store)
    run = Run(run_id=f"{manifest.id}/{index}", run_dir=run_dir, store=store)
    previous: Optional[Dict[str, Any]] = None
    try:
        previous = dict(store.read().status)  # a requeue or resume: the same run, one attempt more
    except RunNotFoundError:
        pass
    if previous is not None and previous.get("state") == RunStatus.RUNNING.value:
        # The last attempt never recorded its end: say how the scheduler saw it end, if it knows.
        ended = job.last_state
        previous["lost_as"] = f"{ended}: ended without recording its end" if ended else None
    run._index_job = index
    return run._begin({"run_id": run.run_id, "sweep_id": manifest.id, "job_index": index,
                       "overrides": job.overrides, "script": manifest.script, **(extra_info or {})}, previous)


def start_run(
    cfg: Any = None,
    *,
    name: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
    root: Optional[str] = None,
    store: str = "hdf5",
) -> Run:
    """Start tracking: record ``cfg`` (resolved, flattened) as params and return the run.

    Under an hpctrack launcher this returns the job's run, already opened by
    the job entry point. Run plainly (``python train.py``), it creates a
    one-run sweep under the storage root.

    Parameters
    ----------
    cfg:
        The Hydra config (``DictConfig``) or any mapping; None records no params.
    name:
        Sweep name for a plain run (ignored under a launcher, which names the sweep).
    tags:
        Initial tags.
    root:
        Storage root for a plain run; see :func:`hpctrack.config.resolve_root`.
    store:
        Store backend for a plain run.
    """
    run = _current if _current is not None and not _current.finished else None
    if run is None:
        run = _start_direct_run(name=name, root=root, store=store)
    if not run._params_recorded:
        params = flatten_config(cfg)
        overrides = _hydra_overrides()
        info: Dict[str, Any] = {"config_yaml": _config_yaml(cfg)}
        if overrides is not None:
            info["overrides"] = overrides
        run._store.write(sections={"params": params, "info": info})
        run._params_recorded = True
    if tags:
        run.tags.update(tags)
    return run


def _start_direct_run(*, name: Optional[str], root: Optional[str], store: str) -> Run:
    """A plain ``python train.py``: a sweep of one job, recorded as it runs."""
    from .config import ensure_writable_root, resolve_root
    from .manifest import JobRecord, Manifest, create_new_sweep, new_sweep_id, update_manifest
    from .store import store_class

    store_class(store)  # fail on an unknown store before writing anything
    root_path = ensure_writable_root(resolve_root(root))
    overrides = _hydra_overrides() or []
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    manifest = create_new_sweep(
        root_path,
        Manifest(
            id=new_sweep_id(),
            created=time.time(),
            backend="direct",
            store=store,
            script=script,
            name=name,
            command=[sys.executable, *sys.argv],
            cwd=os.getcwd(),
            overrides=overrides,
            jobs=[
                JobRecord(
                    index=0, overrides=overrides, run_dir="runs/0", state=JobState.RUNNING,
                    job_id=str(os.getpid()), submitted=time.time(),
                )
            ],
        ),
    )
    run = Run(run_id=f"{manifest.id}/0", run_dir=manifest.run_path(0), store=open_store(manifest.run_path(0), store))

    def record_end(status: RunStatus, error_line: Optional[str]) -> None:
        state = {RunStatus.COMPLETED: JobState.COMPLETED, RunStatus.INTERRUPTED: JobState.CANCELLED}.get(
            status, JobState.FAILED
        )

        def change(m: Manifest) -> None:
            m.jobs[0].state, m.jobs[0].ended, m.jobs[0].error = state, time.time(), error_line

        update_manifest(manifest.path, change)

    previous_hook = sys.excepthook

    def excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        # An exception that ends a script which never closed its run fails that run.
        run.finish(_status_for(exc), error=exc)
        previous_hook(exc_type, exc, tb)

    def restore_hook(status: RunStatus, error_line: Optional[str]) -> None:
        if sys.excepthook is excepthook:
            sys.excepthook = previous_hook

    run._on_finish += [record_end, restore_hook]
    run._index_job = 0
    sys.excepthook = excepthook
    return run._begin({"run_id": run.run_id, "sweep_id": manifest.id, "job_index": 0, "overrides": overrides,
                       "script": script})
