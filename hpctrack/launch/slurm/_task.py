"""What runs inside each SLURM array task, around the shared entry point (:func:`run_job`).

:class:`SlurmTask` is what submitit pickles for every array task: it runs the
task's jobs (``runs_per_task``, one after the other or side by side) and is
submitit's checkpoint hook, through which SLURM's time-limit or preemption
signal requeues the task. :func:`slurm_environment` records the job's SLURM
identity in its run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..base import NOT_BACKEND_OPTIONS
from .._entrypoint import run_job

__all__ = ["SlurmTask", "SLURM_ENV", "DEFAULT_MAX_REQUEUES", "max_requeues", "run_task", "slurm_environment"]

DEFAULT_MAX_REQUEUES = 3

#: SLURM's view of the job, recorded in the run's info as its SLURM identity.
SLURM_ENV = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "partition": "SLURM_JOB_PARTITION",
    "nodelist": "SLURM_JOB_NODELIST",
    "num_nodes": "SLURM_JOB_NUM_NODES",
    "ntasks": "SLURM_NTASKS",
    "cpus_per_task": "SLURM_CPUS_PER_TASK",
    "cpus_on_node": "SLURM_CPUS_ON_NODE",
    "mem_per_node_mb": "SLURM_MEM_PER_NODE",
    "mem_per_cpu_mb": "SLURM_MEM_PER_CPU",
    "gpus_on_node": "SLURM_GPUS_ON_NODE",
    "job_gpus": "SLURM_JOB_GPUS",
    "account": "SLURM_JOB_ACCOUNT",
    "qos": "SLURM_JOB_QOS",
    "restart_count": "SLURM_RESTART_COUNT",
}


def _slurm_identity(manifest: Any) -> Optional[Dict[str, Any]]:
    if "SLURM_JOB_ID" not in os.environ:
        return None
    ident: Dict[str, Any] = {k: os.environ[v] for k, v in SLURM_ENV.items() if v in os.environ}
    try:
        import submitit

        paths = submitit.JobEnvironment().paths
        ident["stdout"], ident["stderr"] = str(paths.stdout), str(paths.stderr)
    except Exception:  # not started by submitit: the ids above still say where it ran
        pass
    # Everything asked of SLURM; the store too, as always.
    ident["requested"] = {k: v for k, v in manifest.launcher.items()
                          if (k not in NOT_BACKEND_OPTIONS or k == "store") and v is not None}
    return ident


def max_requeues(launcher: Dict[str, Any]) -> int:
    """Automatic requeues allowed per job (``max_requeues`` of the SLURM launcher config)."""
    value = launcher.get("max_requeues")
    return DEFAULT_MAX_REQUEUES if value is None else int(value)


def _on_time_limit_signal(signum: int, frame: Any) -> None:
    # SLURM warns (--signal) that the time limit is near. Without checkpointing the
    # job runs on until SLURM ends it, so it is recorded as TIMEOUT, not as a failure.
    print("hpctrack: SLURM signalled that the time limit is near", file=sys.stderr, flush=True)


def slurm_environment(manifest: Any, early: Any) -> Optional[Dict[str, Any]]:
    """The job's SLURM identity for its run's info, or None outside SLURM.

    When the job has no automatic requeue left, SLURM's time-limit signal is
    kept from submitit (``early`` holds the job's handlers while it starts).
    """
    slurm = _slurm_identity(manifest)
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    if slurm is not None and hasattr(signal, "SIGUSR2") and restarts >= max_requeues(manifest.launcher):
        # No requeue left: the job runs on into its time limit and ends as TIMEOUT (requeue it
        # with more time), instead of submitit failing it at the signal.
        early.set_previous(signal.SIGUSR2, _on_time_limit_signal)
    return slurm


#: Exit code of a packed run that closed its attempt for a requeue (EX_TEMPFAIL).
REQUEUE_EXIT_CODE = 75
#: How long a task waits for its packed runs to close their attempts before it requeues itself.
PACKED_REQUEUE_WAIT_S = 90.0
#: The packed runs this task runs side by side (``pack: parallel``), while they run.
_PACKED: List[subprocess.Popen] = []


class SlurmTask:
    """What each SLURM array task runs: :func:`run_task`, and submitit's checkpoint hook.

    submitit calls :meth:`checkpoint` when SLURM signals (``--signal``) that the
    time limit is near or that the job is preempted; returning a submission
    makes submitit requeue the job (``scontrol requeue``), which then runs the
    same task again: each of its runs reopens as a new attempt and restores
    its latest checkpoint. After ``max_requeues`` requeues, :func:`run_job` no
    longer lets the signal reach submitit, and the job ends at its time limit.
    """

    def __init__(self, max_requeues: int) -> None:
        self.max_requeues = max_requeues

    def __call__(self, sweep_dir: str, indices: List[int], pack: str = "serial") -> List[Any]:
        return run_task(sweep_dir, indices, pack)

    def checkpoint(self, sweep_dir: str, indices: List[int], pack: str = "serial") -> Any:
        from submitit.helpers import DelayedSubmission

        from ...run import current_run

        run = current_run()
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        if run is not None:
            run.prepare_requeue("time limit or preemption signalled by SLURM")
        _requeue_packed_runs()
        print(f"hpctrack: requeueing this job (requeue {restarts + 1} of at most {self.max_requeues})",
              file=sys.stderr, flush=True)  # fmt: skip
        return DelayedSubmission(self, sweep_dir, indices, pack)


def _requeue_packed_runs() -> None:
    """SLURM's signal reaches only this task's main process: pass it on to the packed runs beside it,
    so each closes its attempt (flush, ``on_requeue`` hooks, checkpoint) before the task requeues."""
    children = [p for p in _PACKED if p.poll() is None]
    for child in children:
        try:
            child.send_signal(signal.SIGUSR2)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + PACKED_REQUEUE_WAIT_S
    while any(child.poll() is None for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in children:
        if child.poll() is None:
            print(f"hpctrack: packed run (pid {child.pid}) did not close its attempt in time", file=sys.stderr,
                  flush=True)  # fmt: skip


def requeue_this_packed_run(signum: int, frame: Any) -> None:
    """In a packed run's own process: the task is about to requeue; close this run's attempt and exit."""
    from ...run import current_run

    run = current_run()
    if run is not None:
        run.prepare_requeue("time limit or preemption signalled by SLURM")
    sys.exit(REQUEUE_EXIT_CODE)


def run_task(sweep_dir: str, indices: List[int], pack: str = "serial") -> List[Any]:
    """Run several jobs of a sweep inside one scheduler task (``runs_per_task``).

    ``serial`` runs them one after the other in this process; ``parallel`` runs
    them side by side as child processes, splitting the allocation's CPUs (and
    visible GPUs) between them. Each job is its own run either way. Raises
    when any job failed, after all of them ran.
    """
    if int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0:
        # SLURM requeued this task: its runs that already completed stay as they are.
        done = [i for i in indices if _run_completed(sweep_dir, i)]
        indices = [i for i in indices if i not in done]
        if not indices:
            return [None] * len(done)
    if len(indices) == 1:
        return [run_job(sweep_dir, indices[0])]
    if pack == "parallel":
        return _run_side_by_side(sweep_dir, indices)
    from ...provenance import shared_capture

    results, failures = [], []
    with shared_capture():  # the packages, machine and git state are read by the first run, for all
        for index in indices:
            try:
                results.append(run_job(sweep_dir, index))
            except Exception as exc:  # the others still run; each failure is in its run
                failures.append(f"job {index}: {type(exc).__name__}: {exc}")
                results.append(None)
            if len(results) == 1:
                _freeze_loaded_objects()
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(indices)} packed jobs failed: " + "; ".join(failures))
    return results


def _freeze_loaded_objects() -> None:
    """After the task's first run: keep what is loaded by then (modules, Hydra's and hpctrack's
    state) out of the garbage collector's scans while the other runs go one after the other.

    Each run makes many short-lived objects (Hydra composes its config), so collections are
    frequent, and a full one scans every object alive: mostly what the first run imported,
    which lives as long as the task anyway. Collected first, so that nothing unreachable is
    kept for good; what the runs make from then on is collected as before.
    """
    import gc

    gc.collect()
    gc.freeze()


def _run_completed(sweep_dir: str, index: int) -> bool:
    from ...errors import HpctrackError
    from ...manifest import load_manifest
    from ...store import open_store

    manifest = load_manifest(Path(sweep_dir))
    try:
        return open_store(manifest.run_path(index), manifest.store).read().status.get("state") == "completed"
    except HpctrackError:
        return False


def _shared_facts_file(sweep_dir: str) -> List[str]:
    """Read once what the task's runs share and leave it for them in the sweep's logs; ``[path]``, or ``[]``."""
    import json

    from ...locking import atomic_write
    from ...manifest import LOG_DIR
    from ...provenance import shared_facts

    path = Path(sweep_dir) / LOG_DIR / f"shared-{os.environ.get('SLURM_JOB_ID') or os.getpid()}.json"
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, json.dumps(shared_facts()))
    except OSError:
        return []  # each run reads its own
    return [str(path)]


def _run_side_by_side(sweep_dir: str, indices: List[int]) -> List[Any]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    procs = []
    facts = _shared_facts_file(sweep_dir)
    try:
        for slot, index in enumerate(indices):
            env = dict(os.environ)
            if gpus:
                share = gpus[slot::len(indices)] or [gpus[slot % len(gpus)]]
                env["CUDA_VISIBLE_DEVICES"] = ",".join(share)
            share_cpus = cpus[slot::len(indices)] if len(cpus) >= len(indices) else cpus
            env["OMP_NUM_THREADS"] = str(max(1, len(share_cpus)))
            proc = subprocess.Popen([sys.executable, "-m", "hpctrack.launch.slurm._packed", sweep_dir, str(index),
                                     *facts],
                                    env=env,
                                    preexec_fn=(lambda c=share_cpus: os.sched_setaffinity(0, c)) if share_cpus else None)
            procs.append((index, proc))
            _PACKED.append(proc)
        # Polled, not Popen.wait(): a signal handler of this process (SlurmTask.checkpoint) waits for
        # the same children, and a blocked wait() would hold the lock it needs.
        while any(p.poll() is None for _, p in procs):
            time.sleep(0.1)
        codes = {i: p.returncode for i, p in procs}
    finally:
        _PACKED.clear()
        for path in facts:
            Path(path).unlink(missing_ok=True)
    failures = [f"job {i} (exit code {code})" for i, code in codes.items() if code != 0]
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(indices)} packed jobs failed: " + ", ".join(failures))
    return [None] * len(indices)
