"""Local backend: the sweep's jobs run as processes on this machine.

A detached job runner (``python -m hpctrack.launch._local_runner``) starts each
job through submitit's LocalExecutor, at most ``parallel`` at a time, and
records job ids and final states in the manifest. Because the runner is its own
session, the launching shell may exit (``--detach``) and the jobs carry on;
when the launch waits, it only watches the manifest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .._types import JobState
from ..manifest import Manifest, load_manifest, update_manifest
from .base import Backend, JobInfo

__all__ = ["LocalBackend", "RUNNER_LOG", "pid_alive", "runner_alive", "process_identity", "why_not_ours"]

RUNNER_LOG = "runner.log"


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a live (not zombie) process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_identity(pid: int) -> Dict[str, Any]:
    """What tells the live process ``pid`` on this host apart from a later one given the same pid.

    ``{"host", "pid", "start", "boot"}``: its start time in clock ticks since
    boot and the boot id; ``{}`` when it cannot be read (no such process, no /proc).
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            start = int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return {}
    return {"host": socket.gethostname(), "pid": pid, "start": start, "boot": _boot_id()}


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def why_not_ours(recorded: Dict[str, Any], names: str) -> Optional[str]:
    """Why the process ``recorded`` (host, pid, start, boot) must not be signalled; None when it may be.

    It may be only on the host that recorded it, while it is alive with the
    recorded start time and boot, and while its command line names ``names``
    (the run's or the sweep's directory): a pid alone may have been reused.
    """
    host = recorded.get("host")
    if host and host != socket.gethostname():
        return f"runs on {host}, not on this host; cancel it there"
    try:
        pid = int(recorded["pid"])
    except (KeyError, TypeError, ValueError):
        return "has no process recorded"
    now = process_identity(pid)
    if not now or not pid_alive(pid):
        return "has already gone"
    if "start" in recorded and (recorded.get("start"), recorded.get("boot")) != (now["start"], now["boot"]):
        return f"has already gone (pid {pid} is now another process)"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "has already gone"
    if names not in cmdline:
        return f"has already gone (pid {pid} is now another process)"
    return None


def _interrupt_writer(run_dir: Path, controller: int) -> None:
    """SIGINT the process writing the run (the job's task) when it is not its controller.

    A controller whose runner died does not always take its task down with it;
    the task is signalled itself, under the same checks (this host, alive, its
    command line naming the run).
    """
    from ..locking import writer_state

    try:
        writer = writer_state(run_dir)
    except OSError:
        return
    if writer is None or writer.alive is not True or writer.pid == controller:
        return
    if why_not_ours({"host": writer.host, "pid": writer.pid}, str(run_dir)) is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(writer.pid, signal.SIGINT)


def _runners(manifest: Manifest) -> List[Dict[str, Any]]:
    runner = manifest.runner
    if not runner or "pid" not in runner:
        return []
    return [runner, *runner.get("previous", [])]


def runner_alive(manifest: Manifest) -> Optional[bool]:
    """Whether a local runner of the sweep still runs; None when that can't be known from here.

    A requeue or resume starts another runner while earlier ones may still be
    running their jobs: any of them alive counts.
    """
    runners = _runners(manifest)
    if not runners or any(r.get("host") != socket.gethostname() for r in runners):
        return None
    return any(pid_alive(int(r["pid"])) for r in runners)


class LocalBackend(Backend):
    """Run jobs as local processes, ``parallel`` at a time (default: CPU count)."""

    name = "local"

    def __init__(self, *, parallel: Optional[int] = None, timeout_min: Optional[float] = None) -> None:
        self.parallel = parallel or os.cpu_count() or 1
        self.timeout_min = timeout_min

    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        cmd = [sys.executable, "-m", "hpctrack.launch._local_runner", str(manifest.path),
               "--parallel", str(self.parallel), "--jobs", ",".join(str(i) for i in indices)]
        if self.timeout_min:
            cmd += ["--timeout-min", str(self.timeout_min)]
        # Created by the launching process, under its umask: never writable by others.
        fd = os.open(manifest.path / RUNNER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o640 if manifest.launcher.get("share_group") else 0o600)
        with open(fd, "ab") as log:
            # Own session: Ctrl-C in the launching terminal must not reach the jobs
            # directly; a waiting launch forwards it as a clean cancel instead.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, cwd=manifest.cwd or None)

        def record(m: Manifest) -> None:
            earlier = [{k: r[k] for k in ("host", "pid", "started", "start", "boot") if k in r} for r in _runners(m)]
            alive = [r for r in earlier if r.get("host") != socket.gethostname() or pid_alive(int(r["pid"]))]
            m.runner = {"host": socket.gethostname(), "pid": proc.pid, "started": time.time(),
                        **{k: v for k, v in ident.items() if k in ("start", "boot")},
                        **({"previous": alive} if alive else {})}  # fmt: skip

        ident = process_identity(proc.pid)  # what `cancel` checks before it signals this pid

        update_manifest(manifest.path, record)

    def query(self, manifest: Manifest) -> Tuple[Dict[int, JobInfo], Optional[str]]:
        # The runner records every state change in the manifest; a runner that died
        # (reboot, kill -9) can no longer end its jobs, which status reconciles.
        alive = runner_alive(manifest)
        infos = {}
        for job in manifest.jobs:
            if alive is False and job.state == JobState.PENDING:
                infos[job.index] = JobInfo(state=JobState.CANCELLED, ended=True,
                                           error="never started: its job runner stopped (killed?)")  # fmt: skip
            elif alive is False and job.state == JobState.RUNNING:
                infos[job.index] = JobInfo(state=None, ended=True)
            else:
                infos[job.index] = JobInfo(state=job.state, reason=job.error)
        return infos, None

    def cancel(self, manifest: Manifest, indices: Optional[Sequence[int]] = None) -> List[str]:
        """Cancel jobs; returns one line per job or runner that was not signalled, saying why.

        A pid is signalled only when :func:`why_not_ours` finds it is still the
        runner's or the job's process on this host.
        """
        notes: List[str] = []
        everything = indices is None or set(indices) >= {j.index for j in manifest.jobs if not j.state.is_final}
        if everything and runner_alive(manifest):
            signalled = False
            for runner in _runners(manifest):  # each runner stops all its jobs and records it
                why = why_not_ours(runner, str(manifest.path))
                if why is not None:
                    notes.append(f"the job runner (pid {runner.get('pid')}) {why}")
                    continue
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(runner["pid"]), signal.SIGTERM)
                    signalled = True
            if signalled:
                return notes
        wanted = set(indices) if indices is not None else {j.index for j in manifest.jobs}
        now = time.time()

        def mark(m: Manifest) -> None:
            for job in m.jobs:
                if job.index in wanted and not job.state.is_final:
                    job.cancelled = now  # the runner skips it, or records its end as CANCELLED
                    if job.state == JobState.PENDING:
                        job.state, job.ended, job.error = JobState.CANCELLED, now, "cancelled before it started"

        manifest = update_manifest(manifest.path, mark)
        for job in manifest.jobs:
            if job.index in wanted and job.state == JobState.RUNNING and job.job_id:
                # The job id is its submitit controller's pid, whose command line names the run's logs.
                recorded = job.process or {"host": (manifest.runner or {}).get("host"), "pid": job.job_id}
                why = why_not_ours(recorded, str(manifest.run_path(job.index)))
                if why is not None:
                    notes.append(f"job {job.index} {why}")
                    continue
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.kill(int(job.job_id), signal.SIGINT)  # the controller stops its tasks
                _interrupt_writer(manifest.run_path(job.index), int(job.job_id))
        return notes


def wait_for_sweep(
    sweep_dir: Path,
    *,
    poll_s: float = 0.5,
    on_update: Optional[Callable[[Manifest], None]] = None,
) -> Manifest:
    """Block until every job of a local sweep has ended (or its runner is gone).

    ``on_update`` is called with the manifest after each poll (progress display).
    A KeyboardInterrupt cancels the sweep's jobs, waits for the runner to record
    it, and is re-raised.
    """
    try:
        while True:
            manifest = load_manifest(sweep_dir)
            if on_update is not None:
                on_update(manifest)
            if all(j.state.is_final for j in manifest.jobs) or runner_alive(manifest) is False:
                return manifest
            time.sleep(poll_s)
    except KeyboardInterrupt:
        manifest = load_manifest(sweep_dir)
        LocalBackend().cancel(manifest)
        deadline = time.time() + 30
        while runner_alive(load_manifest(sweep_dir)) and time.time() < deadline:
            time.sleep(0.2)
        raise
