"""What runs inside each job process: open the job's run, then call the job function.

The job function (for Hydra sweeps: the composed config plus the task
function) is pickled once per sweep into ``job.pkl``; the entry points here
are importable, so submitit pickles only them and plain arguments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

JOB_FN_FILE = "job.pkl"

#: SLURM's view of the job, recorded in the run's info as its SLURM identity.
_SLURM_ENV = {
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
    ident: Dict[str, Any] = {k: os.environ[v] for k, v in _SLURM_ENV.items() if v in os.environ}
    try:
        import submitit

        paths = submitit.JobEnvironment().paths
        ident["stdout"], ident["stderr"] = str(paths.stdout), str(paths.stderr)
    except Exception:  # not started by submitit: the ids above still say where it ran
        pass
    ident["requested"] = {k: v for k, v in manifest.launcher.items()
                          if k not in ("_target_", "root", "name", "sweep_id", "detach", "progress") and v is not None}
    return ident


def _on_time_limit_signal(signum: int, frame: Any) -> None:
    # SLURM warns (--signal) that the time limit is near. Without checkpointing the
    # job runs on until SLURM ends it, so it is recorded as TIMEOUT, not as a failure.
    print("hpctrack: SLURM signalled that the time limit is near", file=sys.stderr, flush=True)


def run_job(sweep_dir: str, index: int) -> Any:
    """Run job ``index`` of the sweep in ``sweep_dir`` and record its outcome in its run."""
    from .._types import RunStatus
    from ..manifest import load_manifest
    from ..run import _status_for, open_job_run

    manifest = load_manifest(Path(sweep_dir))
    if manifest.script:
        # The script's own modules (e.g. a sibling `model.py`) must import as they do
        # when the script runs plainly.
        script_dir = os.path.dirname(manifest.script)
        if script_dir not in sys.path:
            sys.path.insert(0, script_dir)
    slurm = _slurm_identity(manifest)
    if slurm is not None and hasattr(signal, "SIGUSR2"):
        signal.signal(signal.SIGUSR2, _on_time_limit_signal)
    run = open_job_run(Path(sweep_dir), index, {"slurm": slurm} if slurm else None)
    try:
        import cloudpickle

        with open(Path(sweep_dir) / JOB_FN_FILE, "rb") as fh:
            job_fn = cloudpickle.load(fh)
        result = job_fn(index)
    except BaseException as exc:
        run.finish(_status_for(exc), error=exc)
        raise
    run.finish(RunStatus.COMPLETED)
    return result


def run_task(sweep_dir: str, indices: List[int], pack: str = "serial") -> List[Any]:
    """Run several jobs of a sweep inside one scheduler task (``runs_per_task``).

    ``serial`` runs them one after the other in this process; ``parallel`` runs
    them side by side as child processes, splitting the allocation's CPUs (and
    visible GPUs) between them. Each job is its own run either way. Raises
    when any job failed, after all of them ran.
    """
    if len(indices) == 1:
        return [run_job(sweep_dir, indices[0])]
    if pack == "parallel":
        return _run_side_by_side(sweep_dir, indices)
    results, failures = [], []
    for index in indices:
        try:
            results.append(run_job(sweep_dir, index))
        except Exception as exc:  # the others still run; each failure is in its run
            failures.append(f"job {index}: {type(exc).__name__}: {exc}")
            results.append(None)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(indices)} packed jobs failed: " + "; ".join(failures))
    return results


def _run_side_by_side(sweep_dir: str, indices: List[int]) -> List[Any]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    procs = []
    for slot, index in enumerate(indices):
        env = dict(os.environ)
        if gpus:
            share = gpus[slot::len(indices)] or [gpus[slot % len(gpus)]]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(share)
        share_cpus = cpus[slot::len(indices)] if len(cpus) >= len(indices) else cpus
        env["OMP_NUM_THREADS"] = str(max(1, len(share_cpus)))
        proc = subprocess.Popen([sys.executable, "-m", "hpctrack.launch._entrypoint", sweep_dir, str(index)],
                                env=env, preexec_fn=(lambda c=share_cpus: os.sched_setaffinity(0, c)) if share_cpus else None)
        procs.append((index, proc))
    failures = [f"job {i} (exit code {p.wait()})" for i, p in procs if p.wait() != 0]
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(indices)} packed jobs failed: " + ", ".join(failures))
    return [None] * len(indices)


if __name__ == "__main__":  # one job of a side-by-side packed task
    run_job(sys.argv[1], int(sys.argv[2]))
