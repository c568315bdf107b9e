"""What runs inside each job process: open the job's run, then call the job function.

The job function (for Hydra sweeps: the composed config plus the task
function) is pickled once per sweep into ``job.pkl``; the entry points here
are importable, so a scheduler pickles only them and plain arguments. What
is particular to one scheduler (SLURM's task and requeue hook, its identity
in the run's info) lives in that backend's folder and reaches the job
through :meth:`hpctrack.launch.base.Backend.job_environment`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from ..safefs import check_owner_only, check_tree_owner_only, job_umask

__all__ = ["JOB_FN_FILE", "run_job", "job_command"]

JOB_FN_FILE = "job.pkl"
#: Seconds since its last change after which a manifest read is kept for the process's next jobs.
MANIFEST_SETTLE_S = 2.0
#: The manifest this process read last, by sweep directory: (the file's identity when read, the manifest).
_MANIFESTS: Dict[str, Tuple[Tuple[int, ...], Any]] = {}


def _manifest(sweep_dir: Path) -> Any:
    """The sweep's manifest, read once for the jobs of a task while it stays the same file.

    A manifest is only ever replaced whole (a new file renamed over it), so another
    identity (inode, size, times) is another manifest: read again. One changed in the
    last :data:`MANIFEST_SETTLE_S` seconds is not kept (two within one tick of the
    filesystem's clock could share the times).
    """
    import time

    from ..manifest import MANIFEST_FILE, load_manifest

    try:
        st = os.stat(sweep_dir / MANIFEST_FILE)
    except OSError:
        return load_manifest(sweep_dir)  # and its error
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    found = _MANIFESTS.get(str(sweep_dir))
    if found is not None and found[0] == identity:
        return found[1]
    manifest = load_manifest(sweep_dir)
    if time.time() - st.st_mtime > MANIFEST_SETTLE_S:
        _MANIFESTS[str(sweep_dir)] = (identity, manifest)
    return manifest


def job_command(sweep_dir: "str | os.PathLike[str]", index: int) -> List[str]:
    """The command that runs job ``index`` of a sweep in a new process, for schedulers that start commands."""
    return [sys.executable, "-m", "hpctrack.launch.job", str(sweep_dir), str(index)]


def _job_environment(manifest: Any, early: Any) -> Dict[str, Any]:
    """The first registered scheduler that recognises this process, under its name (``{"slurm": {...}}``)."""
    from .registry import backend_class, backend_names

    for name in backend_names(launchable=False):
        found = backend_class(name).job_environment(manifest, early)
        if found is not None:
            return {name: found}
    return {}


def _job_signals() -> List[int]:
    return [getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)]


def _end_with_local_controller() -> None:
    """A local job's task stops (SIGINT, as its controller's own cancel) when its controller process ends.

    Only the task the controller started is tied to it; a process the task starts that
    runs a job again (a Lightning DDP rank) is the task's to stop. A task whose controller
    is already gone is interrupted at once.
    """
    if os.environ.get("SUBMITIT_EXECUTOR") != "local":
        return
    try:
        controller = int(os.environ["SUBMITIT_LOCAL_JOB_ID"])
    except (KeyError, ValueError):
        return
    from .._process import pid_alive, signal_when_parent_ends

    if os.getppid() == controller:
        signal_when_parent_ends(controller, signal.SIGINT)
    elif not pid_alive(controller):
        signal.raise_signal(signal.SIGINT)


def run_job(sweep_dir: str, index: int) -> Any:
    """Run job ``index`` of the sweep in ``sweep_dir`` and record its outcome in its run."""
    from .._signals import EarlySignals

    # First of all: a cancel or SLURM's signal that lands while the job starts is kept for its run.
    early = EarlySignals(_job_signals())
    _end_with_local_controller()
    from .._types import RunStatus
    from ..identity import export_identity
    from ..relay import follow_relay
    from ..run import _status_for, open_job_run

    try:
        manifest = _manifest(Path(sweep_dir))
        # What the job writes is never writable by others (readable by the sweep's share_group, if any).
        job_umask(manifest.launcher.get("share_group"))
        job = manifest.jobs[index]
        code = job.code or manifest.code  # the snapshot this job runs (a requeue may give it its own)
        if manifest.script:
            # The script's own modules (e.g. a sibling `model.py`) must import as they do when the
            # script runs plainly: from the job's code snapshot, else from where the script is.
            script_dir = (os.path.dirname(os.path.join(code["path"], code["script"])) if code.get("path")
                          else os.path.dirname(manifest.script))  # fmt: skip
            if script_dir in sys.path:
                sys.path.remove(script_dir)
            sys.path.insert(0, script_dir)
        extra = _job_environment(manifest, early)
        run = open_job_run(Path(sweep_dir), index, extra or None, early=early, manifest=manifest)
        export_identity(run)  # every process the job starts (ranks, a command, `hpctrack log`) knows its run
        follow_relay(run)  # and what they record with `hpctrack log` reaches the run through its relay
    except BaseException:
        early.restore()
        early.replay(None)
        raise
    try:
        from ..formats import load_job

        # Refused before anything of the user's runs (the run records why): a job.pkl or code that
        # another user could have written would run as this user.
        check_owner_only(Path(sweep_dir) / JOB_FN_FILE, "the job function")
        if code.get("path"):
            check_tree_owner_only(Path(code["path"]), "the code snapshot")
        job_fn = load_job(Path(sweep_dir) / JOB_FN_FILE)  # a job.pkl without a version header is version 1
        if code and hasattr(job_fn, "with_code"):
            # The config files as in the snapshot; the script too when it is the job's own, not the sweep's.
            job_fn = job_fn.with_code(code, script=bool(manifest.jobs[index].code))
        result = job_fn(index)
    except BaseException as exc:
        # After a requeue was prepared, submitit's exit is not a failure: finish keeps "requeued".
        try:
            run.finish(_status_for(exc), error=exc)
        except Exception as err:  # the store failed too; the end record has it, the job's error stays
            print(f"hpctrack: {err}", file=sys.stderr)
        raise
    run.finish(RunStatus.COMPLETED)
    return result


def __getattr__(name: str) -> Any:
    # Jobs queued before SLURM's task moved to its backend's folder pickled it under this module.
    if name == "SlurmTask":
        from .slurm import SlurmTask

        return SlurmTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
