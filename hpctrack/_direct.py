"""The one-run sweep of a plain script (``python train.py``, backend ``direct``).

``start_run`` outside a launcher creates a sweep of one job under the storage root, records
its end in the manifest when the run ends, and installs an excepthook so that an uncaught
exception fails the run. Started by torchrun or srun, only rank 0 creates the sweep; the
other ranks learn its run id from rank 0 and record nothing.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, List, Optional

from ._types import JobState, RunStatus
from .run import Run, RunSettings, _one_line, _status_for, global_rank
from .store import open_store

__all__ = ["start_direct_run", "RANKS_DIR", "RANK_WAIT_S"]


def start_direct_run(*, name: Optional[str], root: Optional[str], store: str, overrides: List[str]) -> Run:
    """A plain ``python train.py``: a sweep of one job, recorded as it runs (``overrides``: Hydra's, masked)."""
    from .config import ensure_writable_root, resolve_root
    from .identity import identity_from_env
    from .manifest import JobRecord, Manifest, create_new_sweep, new_sweep_id, update_manifest
    from .secrets import mask_argv
    from .store import store_class

    store_class(store)  # fail on an unknown store before writing anything
    settings = RunSettings.from_env()
    if global_rank() != 0:
        # Rank 0 creates and writes the run; this rank learns its id from rank 0 (from the environment
        # when rank 0 started it, as Lightning's DDP does) and records nothing.
        identity = identity_from_env()
        run_dir = identity.run_dir if identity is not None else _rank_zero_run(resolve_root(root))
        return Run(run_id=f"{run_dir.parent.parent.name}/{run_dir.name}" if run_dir else None,
                   run_dir=run_dir or Path(os.devnull), store=open_store(run_dir or Path(os.devnull), store),
                   settings=settings, writes=False)._begin({})  # fmt: skip
    root_path = ensure_writable_root(resolve_root(root))
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    now = time.time()
    manifest = create_new_sweep(
        root_path,
        Manifest(
            id=new_sweep_id(),
            created=now,
            backend="direct",
            store=store,
            script=script,
            name=name,
            command=mask_argv([sys.executable, *sys.argv]),
            cwd=os.getcwd(),
            overrides=overrides,
            runner={"host": socket.gethostname(), "pid": os.getpid(), "started": now},
            jobs=[
                JobRecord(
                    index=0,
                    overrides=overrides,
                    run_dir="runs/0",
                    state=JobState.RUNNING,
                    job_id=str(os.getpid()),
                    submitted=now,
                )
            ],
        ),
    )
    run = Run(run_id=f"{manifest.id}/0", run_dir=manifest.run_path(0), store=open_store(manifest.run_path(0), store),
              settings=settings)  # fmt: skip

    def record_end(status: RunStatus, error_line: Optional[str]) -> None:
        state = {RunStatus.COMPLETED: JobState.COMPLETED, RunStatus.INTERRUPTED: JobState.CANCELLED}.get(
            status, JobState.FAILED
        )

        def change(m: Manifest) -> None:
            m.jobs[0].state, m.jobs[0].ended, m.jobs[0].error = state, time.time(), error_line

        update_manifest(manifest.path, change)

    previous_hook = sys.excepthook

    def excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        # An exception that ends a script which never closed its run fails that run. Only for
        # the main thread's own uncaught exception: h5py reports errors through sys.excepthook
        # from inside a write, in whichever thread writes, and a write must never re-enter.
        if threading.current_thread() is threading.main_thread() and run._writer is None:
            try:
                run.finish(_status_for(exc), error=exc)
            except Exception as err:  # its cause is the exception being reported
                print(f"hpctrack: {_one_line(err)}", file=sys.stderr)
        previous_hook(exc_type, exc, tb)

    def restore_hook(status: RunStatus, error_line: Optional[str]) -> None:
        if sys.excepthook is excepthook:
            sys.excepthook = previous_hook

    rendezvous = _publish_rank_zero_run(root_path, run.run_dir)
    run._on_finish += [record_end, restore_hook, lambda status, error_line: _unpublish(rendezvous)]
    run._index_job = 0
    sys.excepthook = excepthook
    print(f"hpctrack: recording run {run.run_id} in {run.run_dir}", file=sys.stderr, flush=True)
    run._begin({"run_id": run.run_id, "sweep_id": manifest.id, "job_index": 0, "overrides": overrides,
                "script": script})  # fmt: skip
    from .identity import export_identity

    export_identity(run)  # the processes it starts (a framework's other ranks) know the run
    from .relay import follow_relay

    follow_relay(run)  # and a program it starts records into it with `hpctrack log`
    return run


# -- the ranks of a plain script -------------------------------------------------------------------
#
# Started by torchrun (or srun) without an hpctrack launcher, every rank calls start_run. Rank 0
# creates the one-run sweep and leaves its run directory in ROOT/.ranks/<key>, where <key> names
# this group of processes; the other ranks read it, so their run objects carry rank 0's run_id.

RANKS_DIR = ".ranks"
#: How long a rank other than 0 waits for rank 0 to say where its run is.
RANK_WAIT_S = 60.0


def _rank_key() -> Optional[str]:
    """A name shared by the processes of one multi-process start, and by no later one; None if unknown."""
    import hashlib

    env = os.environ
    if env.get("SLURM_JOB_ID") and env.get("SLURM_STEP_ID"):
        parts = ["slurm", env["SLURM_JOB_ID"], env["SLURM_STEP_ID"], env.get("SLURM_RESTART_COUNT", "0")]
    elif env.get("LOCAL_WORLD_SIZE") and env.get("LOCAL_WORLD_SIZE") == env.get("WORLD_SIZE"):
        # One node, one launcher process (torchrun's agent): its pid and start time name the group.
        parent = os.getppid()
        try:
            with open(f"/proc/{parent}/stat") as fh:
                started = fh.read().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            return None
        parts = ["local", socket.gethostname(), str(parent), started, env.get("TORCHELASTIC_RESTART_COUNT", "0")]
    else:
        return None
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def _publish_rank_zero_run(root: Path, run_dir: Path) -> Optional[Path]:
    size = os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or "1"
    key = _rank_key() if size.strip().isdigit() and int(size) > 1 else None
    if key is None:
        return None
    from .locking import atomic_write

    path = Path(root) / RANKS_DIR / key
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, str(run_dir))
    except OSError:
        return None  # the other ranks then run without rank 0's run id; nothing else depends on it
    return path


def _unpublish(path: Optional[Path]) -> None:
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def _rank_zero_run(root: Path) -> Optional[Path]:
    """Rank 0's run directory, as it published it (waiting up to RANK_WAIT_S); None if unknown."""
    key = _rank_key()
    if key is None:
        return None
    path = Path(root) / RANKS_DIR / key
    deadline = time.monotonic() + RANK_WAIT_S
    while True:
        try:
            return Path(path.read_text())
        except OSError:
            if time.monotonic() >= deadline:
                print(f"hpctrack: rank {global_rank()} did not learn rank 0's run in {RANK_WAIT_S:g} s; "
                      "it records nothing either way", file=sys.stderr)  # fmt: skip
                return None
            time.sleep(0.1)
