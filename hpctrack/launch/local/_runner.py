"""The local job runner: ``python -m hpctrack.launch.local._runner SWEEP_DIR``.

Starts the sweep's pending jobs through submitit's LocalExecutor, at most
``--parallel`` at once, and records each job's id, log files and final state in
the manifest. SIGTERM or SIGINT cancels: running jobs are stopped, pending
ones are never started, and both are recorded as CANCELLED.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..._process import process_identity
from ..._types import JobState
from ...locking import lock
from ...manifest import LOG_DIR, Manifest, load_manifest, update_manifest
from .._entrypoint import run_job

# submitit's local controller kills a job after timeout_min (default 2 min); "no limit" is a year.
NO_LIMIT_MIN = 60 * 24 * 365


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _outcome(job: Any) -> "tuple[JobState, Optional[str]]":
    """Final state and one error line of a finished submitit LocalJob."""
    import submitit

    if not job.paths.result_pickle.exists():
        # Local disk has no attribute-cache lag: no result now means none is coming
        # (submitit's results() would poll for 15 s first).
        return JobState.FAILED, f"job process ended without a result (killed?); see {job.paths.stderr}"
    try:
        job.results()
    except submitit.core.utils.FailedJobError as err:
        return JobState.FAILED, _last_line(str(err)) or "job raised an exception"
    except Exception as err:  # an unreadable result pickle is still a failed job
        return JobState.FAILED, f"{type(err).__name__}: {err}"
    return JobState.COMPLETED, None


#: Held by a runner while it counts the sweep's running jobs and starts its own (``parallel`` bounds the sweep).
SLOTS_LOCK = "runner.slots.lock"


class Runner:
    def __init__(self, sweep_dir: Path, parallel: int, jobs: List[int], timeout_min: float) -> None:
        self.sweep_dir = sweep_dir
        self.parallel = max(1, parallel)
        self.pending = list(jobs)
        self.timeout_min = timeout_min
        self.running: Dict[int, Any] = {}
        self.stopping = False
        self._next_look = 0.0

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _start(self, index: int) -> None:
        import submitit

        manifest = load_manifest(self.sweep_dir)
        if manifest.jobs[index].state != JobState.PENDING:  # cancelled while it waited
            return
        executor = submitit.LocalExecutor(folder=manifest.run_path(index) / LOG_DIR)
        executor.update_parameters(timeout_min=self.timeout_min)
        job = executor.submit(run_job, str(self.sweep_dir), index)
        self.running[index] = job

        def change(m: Manifest) -> None:
            rec = m.jobs[index]
            rec.state, rec.job_id, rec.submitted = JobState.RUNNING, str(job.job_id), time.time()
            rec.process = ident  # what `cancel` checks before it signals this pid
            rec.stdout, rec.stderr = str(job.paths.stdout), str(job.paths.stderr)
            rec.ended = rec.exit_code = rec.error = None

        ident = process_identity(int(job.job_id))
        update_manifest(self.sweep_dir, change)

    def _finish(self, index: int, job_id: str, state: JobState, error: Optional[str]) -> None:
        """Record how the submission ``job_id`` of job ``index`` ended.

        A requeue may have made the job pending again between its store saying it
        ended and this runner noticing its process exit: the outcome then belongs
        to that earlier submission in the job's history, and the new one is left
        for the runner that starts it.
        """

        def change(m: Manifest) -> None:
            rec = m.jobs[index]
            if rec.job_id != job_id:
                for earlier in reversed(rec.history):
                    if earlier.get("job_id") == job_id:
                        earlier["ended"] = earlier.get("ended") or time.time()
                        if earlier.get("state") is None or state != JobState.COMPLETED:
                            earlier["state"], earlier["error"] = state.value, error
                        break
                return
            error_: Optional[str]
            if rec.cancelled is not None and state != JobState.COMPLETED:
                state_, error_ = JobState.CANCELLED, "cancelled"
            else:
                state_, error_ = state, error
            rec.state, rec.ended, rec.error = state_, time.time(), error_

        update_manifest(self.sweep_dir, change)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while self.pending or self.running:
            if self.stopping:
                self._cancel_all()
                break
            if self.pending and len(self.running) < self.parallel and time.monotonic() >= self._next_look:
                self._next_look = time.monotonic() + 0.5  # a look at the manifest at most twice a second
                # One runner at a time counts the sweep's running jobs and starts its own: two runners
                # started together would otherwise both see a free slot.
                with lock(self.sweep_dir / SLOTS_LOCK):
                    busy = self._running_elsewhere()
                    while self.pending and len(self.running) + busy < self.parallel:
                        self._start(self.pending.pop(0))
            for index, job in list(self.running.items()):
                if job.done():
                    del self.running[index]
                    self._finish(index, str(job.job_id), *_outcome(job))
            time.sleep(0.1)
        return 0

    def _running_elsewhere(self) -> int:
        """Jobs of the sweep that another live runner runs right now (a sweeper's earlier batch, a requeue).

        ``parallel`` bounds the sweep, not one runner: a sweeper that hands its
        batches over without waiting starts a runner per batch. A job counts only
        while its process is still its own, so a runner killed with its jobs
        never holds a slot.
        """
        from ..._process import why_not_ours

        manifest = load_manifest(self.sweep_dir)
        return sum(1 for job in manifest.jobs
                   if job.state == JobState.RUNNING and job.index not in self.running and job.process
                   and why_not_ours(job.process, str(manifest.run_path(job.index))) is None)  # fmt: skip

    def _cancel_all(self) -> None:
        for job in self.running.values():
            job.cancel()
        deadline = time.time() + 10
        while any(not j.done() for j in self.running.values()) and time.time() < deadline:
            time.sleep(0.1)
        for index, job in self.running.items():
            state, error = _outcome(job)
            # A job that finished before the cancel reached it keeps its real outcome.
            self._finish(
                index,
                str(job.job_id),
                state if state == JobState.COMPLETED else JobState.CANCELLED,
                None if state == JobState.COMPLETED else "cancelled",
            )
        for index in self.pending:
            self._cancel_pending(index)
        self.running.clear()
        self.pending.clear()

    def _cancel_pending(self, index: int) -> None:
        def change(m: Manifest) -> None:
            rec = m.jobs[index]
            if rec.state == JobState.PENDING and rec.job_id is None:  # not taken over by another runner
                rec.state, rec.ended, rec.error = JobState.CANCELLED, time.time(), "cancelled before it started"

        update_manifest(self.sweep_dir, change)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hpctrack-local-runner")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--jobs", default="")
    parser.add_argument("--timeout-min", type=float, default=NO_LIMIT_MIN)
    args = parser.parse_args(argv)
    jobs = [int(i) for i in args.jobs.split(",") if i]
    from ...safefs import job_umask

    # The runner and submitit's controllers write the jobs' logs: never writable by others.
    job_umask(load_manifest(args.sweep_dir).launcher.get("share_group"))
    return Runner(args.sweep_dir, args.parallel, jobs, args.timeout_min).run()


if __name__ == "__main__":
    sys.exit(main())
