"""Submitting sweeps: one mechanism behind ``hpctrack launch`` and the Hydra launcher plugin.

:func:`submit_sweep` takes the already-expanded jobs (lists of overrides) and a
picklable job function, writes the sweep's manifest, and hands the jobs to a
backend. It knows nothing of Hydra's ``JobReturn``: it returns once the jobs are
handed over, and waiting is a separate, optional step (:func:`wait_for_sweep`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..config import ensure_writable_root, resolve_root, user_share_group
from ..errors import ConfigError
from ..manifest import SWEEPS_DIR, JobRecord, Manifest, create_new_sweep, create_sweep, load_manifest, new_sweep_id
from ..safefs import PRIVATE_FILE_MODE, SHARED_DIR_MODE, resolve_group, share_tree, strip_write_by_others, write_file
from ..snapshot import CODE_DIR
from ..store import store_class
from ._entrypoint import JOB_FN_FILE, job_command
from .base import NOT_BACKEND_OPTIONS, Backend
from .registry import BACKENDS, backend_class, backend_names

__all__ = ["SweepRequest", "submit_sweep", "prepare_sweep", "add_jobs", "get_backend", "backend_class", "backend_names", "backend_options",
           "wait_for_sweep", "swept_keys", "job_command", "BACKENDS", "NOT_BACKEND_OPTIONS"]  # fmt: skip


@dataclass
class SweepRequest:
    """What to launch: the expanded jobs and where and how to run them."""

    jobs: List[List[str]]  # per-job overrides, in launch order
    backend: str = "local"
    backend_options: Dict[str, Any] = field(default_factory=dict)  # e.g. {"parallel": 2}
    store: str = "hdf5"
    root: Optional[str] = None
    sweep_id: Optional[str] = None
    name: Optional[str] = None
    script: Optional[str] = None
    command: List[str] = field(default_factory=list)
    cwd: str = field(default_factory=os.getcwd)
    overrides: List[str] = field(default_factory=list)  # as typed, with sweep syntax
    launcher: Dict[str, Any] = field(default_factory=dict)  # launcher config, recorded as is
    study: Dict[str, Any] = field(default_factory=dict)  # a study's settings (hpctrack.optimize); {}: none


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name`` configured with ``options``."""
    return backend_class(name)(**options)


def backend_options(backend: str, launcher: Dict[str, Any]) -> Dict[str, Any]:
    """The options of ``backend`` in a launcher config (as recorded in a manifest)."""
    return backend_class(backend).options_from_launcher(launcher)


def wait_for_sweep(
    sweep_dir: Path, *, poll_s: float = 0.5, on_update: Optional[Callable[[Manifest], None]] = None
) -> Manifest:
    """Block until every job of a sweep launched on a backend without a queue has ended.

    See :meth:`hpctrack.launch.base.Backend.wait`; a KeyboardInterrupt cancels the jobs and is re-raised.
    """
    backend = backend_class(load_manifest(sweep_dir).backend)()
    return backend.wait(sweep_dir, poll_s=poll_s, on_update=on_update)


def _split(override: str) -> "tuple[str, str]":
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def swept_keys(jobs: Sequence[Sequence[str]]) -> List[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    values: Dict[str, set] = {}
    for overrides in jobs:
        for override in overrides:
            key, value = _split(override)
            values.setdefault(key, set()).add(value)
    if len(jobs) > 1:
        # A key missing from some jobs varies too (e.g. `+extra=1` in only part of a sweep).
        for key in values:
            if any(key not in {_split(o)[0] for o in overrides} for overrides in jobs):
                values[key].add(None)
    return [key for key, seen in values.items() if len(seen) > 1]


def _set_modes(root: Path, manifest: Manifest, gid: Optional[int]) -> None:
    """What the launch wrote (Hydra's files too): never writable by others; with a group, readable by it."""
    if gid is None:
        strip_write_by_others(folder for folder in (root / SWEEPS_DIR, root / CODE_DIR) if folder.is_dir())
        strip_write_by_others(Path(d) / n for d, dirs, names in os.walk(manifest.path) for n in [".", *names])
        if manifest.code.get("path"):
            snapshot = Path(manifest.code["path"])
            strip_write_by_others(Path(d) / n for d, _, names in os.walk(snapshot) for n in [".", *names])
        return
    share_tree(manifest.path, gid, private=[JOB_FN_FILE])
    for folder in (root, root / SWEEPS_DIR, root / CODE_DIR):  # the way in: traversable and listable by the group
        if folder.is_dir() and folder.stat().st_uid == os.geteuid():
            os.chown(folder, -1, gid)
            os.chmod(folder, SHARED_DIR_MODE)
    if manifest.code.get("path"):
        share_tree(Path(manifest.code["path"]), gid)


def prepare_sweep(request: SweepRequest, job_fn: Optional[Callable[[int], Any]] = None) -> Manifest:
    """Write the sweep's manifest, code snapshot and job function, and submit nothing.

    ``request.jobs`` may be empty: a study driver (``hpctrack launch --optimize``)
    creates its sweep up front and adds each batch of trials with :func:`add_jobs`.
    Everything is checked before anything is written.

    Raises
    ------
    ConfigError
        Bad input (store, backend, group); nothing was written.
    """
    store_class(request.store)  # validate before anything is written
    share_group = request.launcher.get("share_group") or user_share_group()
    gid = resolve_group(str(share_group)) if share_group else None
    backend = get_backend(request.backend, **request.backend_options)
    if not backend.launches:
        raise ConfigError(f"backend {request.backend!r} cannot launch sweeps; choose one of: "
                          f"{', '.join(backend_names())}")  # fmt: skip
    backend.preflight()
    root = ensure_writable_root(resolve_root(request.root))
    from ..secrets import mask_argv, mask_mapping, mask_overrides

    # Secret values never reach the manifest: the jobs get theirs from the job function.
    manifest = Manifest(
        id=request.sweep_id or new_sweep_id(),
        created=time.time(),
        backend=backend.name,
        store=request.store,
        script=request.script,
        name=request.name,
        command=mask_argv(request.command),
        cwd=request.cwd,
        overrides=mask_overrides(request.overrides),
        # a study's searched keys vary between its trials, however few of them have run
        swept_keys=swept_keys(request.jobs) or [str(p["key"]).lstrip("+~") for p in request.study.get("space") or []],
        launcher=mask_mapping({**request.launcher, "share_group": share_group or None}),
        jobs=[
            JobRecord(index=i, overrides=mask_overrides(ov), run_dir=f"runs/{i}") for i, ov in enumerate(request.jobs)
        ],
        study=dict(request.study),
    )
    from ..formats import dump_job

    if request.script and request.launcher.get("code_snapshot", True):
        from ..snapshot import make_snapshot

        manifest.code = make_snapshot(request.script, root)  # before anything is written to the sweep
        if manifest.code.get("skipped_count"):
            import sys

            names = manifest.code["skipped"]
            shown = ", ".join(names[:5]) + (f" and {manifest.code['skipped_count'] - 5} more"
                                            if manifest.code["skipped_count"] > 5 else "")  # fmt: skip
            print(f"hpctrack: code snapshot: skipped {manifest.code['skipped_count']} "
                  f"file{'s' if manifest.code['skipped_count'] != 1 else ''} that may hold secrets or that "
                  f".hpctrackignore lists: {shown}", file=sys.stderr, flush=True)  # fmt: skip
    payload = dump_job(job_fn) if job_fn is not None else None  # cloudpickle behind a version header
    # An id given by the caller must be used as is; a drawn one is drawn again on a clash.
    manifest = create_sweep(root, manifest) if request.sweep_id else create_new_sweep(root, manifest)
    if payload is not None:
        # Owner-only whatever the umask or sharing: every job unpickles it, and it holds the job's overrides.
        write_file(manifest.path / JOB_FN_FILE, payload, manifest.path, mode=PRIVATE_FILE_MODE)
    _set_modes(root, manifest, gid)
    return manifest


def submit_sweep(request: SweepRequest, job_fn: Callable[[int], Any]) -> Manifest:
    """Write the sweep's manifest and job function, then submit every job.

    Parameters
    ----------
    request:
        The expanded jobs and launch options.
    job_fn:
        Picklable callable run in each job as ``job_fn(index)`` after the job's
        run has been opened (``hpctrack.start_run`` returns that run).

    Returns
    -------
    Manifest
        As recorded once the backend accepted the jobs (local: the runner started).
    """
    if not request.jobs:
        raise ConfigError("the sweep has no jobs: an override matched nothing (glob() selects config group options)")
    manifest = prepare_sweep(request, job_fn)
    get_backend(request.backend, **request.backend_options).submit(manifest, [job.index for job in manifest.jobs])
    return load_manifest(manifest.path)


def add_jobs(
    sweep_dir: Path,
    jobs: Sequence[Sequence[str]],
    job_fn: Callable[[int], Any],
    *,
    backend_options: Optional[Dict[str, Any]] = None,
) -> "tuple[Manifest, List[int]]":
    """Add ``jobs`` to an existing sweep and submit them; the jobs already in it are left as they are.

    A sweeper that asks for its trials in batches (Optuna, Nevergrad, Ax through
    Hydra, or ``hpctrack launch --optimize``) makes one sweep this way: the new
    jobs take the next indices. ``job_fn`` replaces the sweep's job function and
    must run every job of the sweep, old and new (a requeue of an earlier job
    reads it too). ``backend_options``: the backend's options for this
    submission (default: the sweep's launcher config).

    Returns
    -------
    tuple
        The manifest once the backend accepted the jobs, and the new jobs' indices.
    """
    if not jobs:
        raise ConfigError("no jobs to add: an override matched nothing (glob() selects config group options)")
    sweep_dir = Path(sweep_dir)
    manifest = load_manifest(sweep_dir)
    options = (
        backend_options
        if backend_options is not None
        else backend_class(manifest.backend).options_from_launcher(manifest.launcher)
    )
    backend = get_backend(manifest.backend, **options)
    backend.preflight()
    from ..formats import dump_job
    from ..manifest import update_manifest
    from ..secrets import mask_overrides

    payload = dump_job(job_fn)
    # The job function first: it runs every job named in the manifest, the new ones included.
    write_file(sweep_dir / JOB_FN_FILE, payload, sweep_dir, mode=PRIVATE_FILE_MODE)
    added: List[int] = []

    def append(m: Manifest) -> None:
        start = len(m.jobs)
        for offset, overrides in enumerate(jobs):
            index = start + offset
            (m.path / f"runs/{index}").mkdir(parents=True, exist_ok=True)
            m.jobs.append(JobRecord(index=index, overrides=mask_overrides(list(overrides)), run_dir=f"runs/{index}"))
            added.append(index)
        # the keys swept so far stay (they were judged on the real values, these are masked)
        m.swept_keys = list(dict.fromkeys([*m.swept_keys, *swept_keys([job.overrides for job in m.jobs])]))

    manifest = update_manifest(sweep_dir, append)
    share_group = manifest.launcher.get("share_group")
    root = sweep_dir.parent.parent
    _set_modes(root, manifest, resolve_group(str(share_group)) if share_group else None)
    backend.submit(manifest, added)
    return load_manifest(sweep_dir), added
