"""Local backend: the sweep's jobs run as processes on this machine.

A detached job runner (``python -m hpctrack.launch.local._runner``) starts each
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..._process import pid_alive, process_identity, why_not_ours
from ..._types import JobState
from ...config import BaseLauncherConf, launcher_target
from ...manifest import LOG_DIR, Manifest, load_manifest, update_manifest
from ..base import Backend, JobInfo

__all__ = ["LocalBackend", "LocalLauncherConf", "RUNNER_LOG", "runner_alive", "wait_for_sweep"]

RUNNER_LOG = "runner.log"


@dataclass
class LocalLauncherConf(BaseLauncherConf):
    """Run the sweep's jobs as local processes through submitit's LocalExecutor."""

    _target_: str = launcher_target("local")
    # most jobs running at once; None -> number of CPU cores
    parallel: Optional[int] = None
    # wall-clock limit per job in minutes; None -> no limit
    timeout_min: Optional[float] = None


def _interrupt_writer(run_dir: Path, controller: int) -> None:
    """SIGINT the process writing the run (the job's task) when it is not its controller.

    A controller whose runner died does not always take its task down with it;
    the task is signalled itself, under the same checks (this host, alive, its
    command line naming the run).
    """
    from ...locking import writer_state

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
    label = "local"
    conf = LocalLauncherConf
    has_queue = False
    records_final_states = True  # the runner records every state change as it happens
    parallel_option = "parallel"
    resource_options = ("parallel", "timeout_min")

    @classmethod
    def options_from_launcher(cls, launcher: Mapping[str, Any]) -> Dict[str, Any]:
        return {k: launcher.get(k) for k in ("parallel", "timeout_min")}

    def __init__(self, *, parallel: Optional[int] = None, timeout_min: Optional[float] = None) -> None:
        from ...errors import ConfigError

        if parallel is not None and int(parallel) < 1:
            raise ConfigError(f"parallel must be at least 1, got {parallel} (hydra.launcher.parallel, --parallel)")
        if timeout_min is not None and float(timeout_min) <= 0:
            raise ConfigError(f"timeout_min must be more than 0 minutes, got {timeout_min}")
        self.parallel = parallel or os.cpu_count() or 1
        self.timeout_min = timeout_min

    def plan(self, n_jobs: int) -> List[str]:
        limit = f", each stopped after {self.timeout_min} min" if self.timeout_min else ""
        return [f"local processes: {min(self.parallel, n_jobs)} at a time ({self.parallel} at most){limit}"]

    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        cmd = [
            sys.executable,
            "-m",
            "hpctrack.launch.local._runner",
            str(manifest.path),
            "--parallel",
            str(self.parallel),
            "--jobs",
            ",".join(str(i) for i in indices),
        ]
        if self.timeout_min:
            cmd += ["--timeout-min", str(self.timeout_min)]
        # Created by the launching process, under its umask: never writable by others.
        fd = os.open(manifest.path / RUNNER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o640 if manifest.launcher.get("share_group") else 0o600)
        with open(fd, "ab") as log:
            # Own session: Ctrl-C in the launching terminal must not reach the jobs
            # directly; a waiting launch forwards it as a clean cancel instead.
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=manifest.cwd or None
            )

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

    def states_current(self, manifest: Manifest) -> bool:
        return runner_alive(manifest) is True  # the runner records every state change as it happens

    def wait(
        self, sweep_dir: Path, *, poll_s: float = 0.5, on_update: Optional[Callable[[Manifest], None]] = None
    ) -> Manifest:
        return wait_for_sweep(sweep_dir, poll_s=poll_s, on_update=on_update)

    def start_driver(self, manifest: Manifest, command: Sequence[str], log_dir: Path) -> Dict[str, Any]:
        """A background process in its own session (the launching terminal's Ctrl-C or hang-up never
        reaches it), its output in ``log_dir/driver.log``, recorded with its identity."""
        fd = os.open(log_dir / "driver.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with open(fd, "ab") as log:
            proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, cwd=manifest.cwd or None)  # fmt: skip
        identity = process_identity(proc.pid)
        return {"host": socket.gethostname(), "pid": proc.pid, "started": time.time(),
                **{k: v for k, v in identity.items() if k in ("start", "boot")}}  # fmt: skip

    def driver_state(self, driver: Mapping[str, Any], sweep_dir: Path) -> Optional[str]:
        if driver.get("pid") and why_not_ours(dict(driver), str(sweep_dir)) is None:
            return "started"
        return None

    def stop_driver(self, driver: Mapping[str, Any], sweep_dir: Path) -> Optional[str]:
        why = why_not_ours(dict(driver), str(sweep_dir))
        if why is not None:
            return f"the study's driver (pid {driver.get('pid')}) {why}" if "gone" not in why else None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(driver["pid"]), signal.SIGTERM)
        return None

    def result(self, manifest: Manifest, index: int) -> Any:
        """What job ``index`` returned, from submitit's result file in the run's log folder."""
        job = manifest.jobs[index]
        if job.state != JobState.COMPLETED or not job.job_id:
            return None
        import submitit

        return submitit.LocalJob(folder=manifest.run_path(index) / LOG_DIR, job_id=job.job_id).results()[0]


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
