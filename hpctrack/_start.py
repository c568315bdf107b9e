"""Starting a run: ``start_run`` (a plain script, or the task of a launched job) and ``open_job_run``
(the job entry point). Both read the run's settings first, so a bad ``HPCTRACK_*`` value is one
line before anything is written."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ._names import check_name
from ._signals import EarlySignals
from ._types import JobState, RunStatus
from .run import Run, RunSettings, _one_line, _status_for, current_run, flatten_config, global_rank
from .store import open_store

__all__ = ["start_run", "open_job_run", "mask_hydra_outputs"]


def _config_yaml(cfg: Any) -> Optional[str]:
    """The resolved config as YAML (what ``hpctrack show`` prints and a rerun starts from)."""
    if cfg is None:
        return None
    try:
        from omegaconf import OmegaConf

        from .secrets import mask_config

        # Masked, and rendered without resolving again: what mask_config kept unresolved
        # (${oc.env:DB_PASSWORD}) is recorded as written.
        return OmegaConf.to_yaml(OmegaConf.create(mask_config(cfg)), resolve=False)
    except Exception as err:  # an unresolvable interpolation must not fail the run
        return f"# could not render the config: {err}"


def _hydra_overrides() -> Optional[List[str]]:
    """This process's Hydra task overrides, secrets masked; None outside Hydra."""
    from .secrets import mask_overrides

    try:
        from hydra.core.hydra_config import HydraConfig

        from omegaconf import OmegaConf

        task = list(OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False))
    except Exception:  # not under Hydra, or Hydra not configured in this process
        return None
    return mask_overrides(task)


def mask_hydra_outputs() -> None:
    """Rewrite Hydra's record of this job (``<output_dir>/.hydra/*.yaml``) with secrets masked.

    Hydra writes these files with the real values before the task starts; this runs first
    thing in the task, so the secret is on disk only for that moment. Never raises: a file
    that cannot be rewritten is said once on stderr.
    """
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        if hydra.output_subdir is None:
            return
        folder = Path(hydra.runtime.output_dir) / hydra.output_subdir
    except Exception:  # not under Hydra
        return
    from .secrets import mask_yaml_file

    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        mask_yaml_file(folder / name)


def open_job_run(sweep_dir: Path, index: int, extra_info: Optional[Mapping[str, Any]] = None,
                 early: Optional[EarlySignals] = None) -> Run:
    """Open the run of job ``index`` of the sweep in ``sweep_dir`` (called by the job entry point).

    Raises
    ------
    RunBusyError
        Another live process is the run's writer; nothing was written.
    ConfigError
        An ``HPCTRACK_*`` setting holds a bad value.
    """
    from .manifest import load_manifest

    from .errors import RunNotFoundError

    settings = RunSettings.from_env()
    manifest = load_manifest(sweep_dir)
    job = manifest.jobs[index]
    run_dir = manifest.run_path(index)
    from .safefs import check_inside

    check_inside(run_dir, manifest.path, "write the run in")  # runs/<i> planted as a link out of the sweep
    store = open_store(run_dir, manifest.store)
    run = Run(run_id=f"{manifest.id}/{index}", run_dir=run_dir, store=store, settings=settings,
              writes=global_rank() == 0)  # fmt: skip
    run._index_job = index
    code = job.code or manifest.code
    info = {"run_id": run.run_id, "sweep_id": manifest.id, "job_index": index, "overrides": job.overrides,
            "script": manifest.script, **({"code_snapshot": code} if code else {}), **(extra_info or {})}
    if not run._writes:
        return run._begin(info, None, early)
    run._acquire_lease()  # before reading what the previous attempt left: it has ended
    try:
        previous: Optional[Dict[str, Any]] = None
        try:
            previous = dict(store.read().status)  # a requeue or resume: the same run, one attempt more
        except RunNotFoundError:
            pass
        if previous is not None and previous.get("state") == RunStatus.RUNNING.value:
            # The last attempt never recorded its end: say how the scheduler saw it end, if it knows.
            ended = job.last_state
            previous["lost_as"] = f"{ended}: ended without recording its end" if ended else None
    except BaseException:
        run._release_lease()
        raise
    return run._begin(info, previous, early)


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
    one-run sweep under the storage root and says where on stderr. On a rank
    other than 0 of a job of several tasks, the run records nothing (and a
    plain script creates no sweep).

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

    Raises
    ------
    ConfigError
        Bad input or a bad ``HPCTRACK_*`` setting, before anything is written.
    """
    active = current_run()
    run = active if active is not None and not active.finished else None
    if run is None:
        mask_hydra_outputs()  # a plain run of a Hydra script (a launched job's are masked before its task)
        if name is not None:
            check_name("sweep name", name, "give start_run a shorter name")
        flatten_config(cfg)  # a bad config (a key over 255 characters) is refused before a sweep is created
        run = _start_direct_run(name=name, root=root, store=store)
    if not run._params_recorded:
        params = flatten_config(cfg)
        overrides = _hydra_overrides()
        info: Dict[str, Any] = {"config_yaml": _config_yaml(cfg)}
        if overrides is not None:
            info["overrides"] = overrides
        run._params.update(params)
        run._pending_sections["params"] = {**run._pending_sections.get("params", {}), **params}
        run._pending_sections["info"] = {**run._pending_sections.get("info", {}), **info}
        run.flush()
        run._params_recorded = True
    if tags:
        run.tags.update(tags)
    return run


def _start_direct_run(*, name: Optional[str], root: Optional[str], store: str) -> Run:
    """A plain ``python train.py``: a sweep of one job, recorded as it runs."""
    from .config import ensure_writable_root, resolve_root
    from .manifest import JobRecord, Manifest, create_new_sweep, new_sweep_id, update_manifest
    from .secrets import mask_argv
    from .store import store_class

    store_class(store)  # fail on an unknown store before writing anything
    settings = RunSettings.from_env()
    if global_rank() != 0:
        # Rank 0 creates and writes the run; this rank learns its id from rank 0 and records nothing.
        run_dir = _rank_zero_run(resolve_root(root))
        return Run(run_id=f"{run_dir.parent.parent.name}/{run_dir.name}" if run_dir else None,
                   run_dir=run_dir or Path(os.devnull), store=open_store(run_dir or Path(os.devnull), store),
                   settings=settings, writes=False)._begin({})  # fmt: skip
    root_path = ensure_writable_root(resolve_root(root))
    overrides = _hydra_overrides() or []
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
                    index=0, overrides=overrides, run_dir="runs/0", state=JobState.RUNNING,
                    job_id=str(os.getpid()), submitted=now,
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
    return run._begin({"run_id": run.run_id, "sweep_id": manifest.id, "job_index": 0, "overrides": overrides,
                       "script": script})


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
