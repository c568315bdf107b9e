"""Starting a run: ``start_run`` (a plain script, or the task of a launched job) and ``open_job_run``
(the job entry point). Both read the run's settings first, so a bad ``HPCTRACK_*`` value is one
line before anything is written. A plain script's one-run sweep is made in :mod:`hpctrack._direct`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, cast

from ._names import check_sweep_name
from ._signals import EarlySignals
from ._types import RunStatus
from .run import Run, RunSettings, current_run, flatten_config, global_rank
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
    if "hydra" not in sys.modules:
        return None  # a script that never imported Hydra runs outside it (and importing it costs ~0.3 s)
    from .secrets import mask_overrides

    try:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        task = [str(t) for t in OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)]  # type: ignore[union-attr]
    except Exception:  # not under Hydra, or Hydra not configured in this process
        return None
    return mask_overrides(task)


def mask_hydra_outputs() -> None:
    """Rewrite Hydra's record of this job (``<output_dir>/.hydra/*.yaml``) with secrets masked.

    Hydra writes these files with the real values before the task starts; this runs first
    thing in the task, so the secret is on disk only for that moment. Never raises: a file
    that cannot be rewritten is said once on stderr.
    """
    if "hydra" not in sys.modules:
        return  # not under Hydra: a script that runs under it has imported it
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


def open_job_run(
    sweep_dir: Path,
    index: int,
    extra_info: Optional[Mapping[str, Any]] = None,
    early: Optional[EarlySignals] = None,
    manifest: Any = None,
) -> Run:
    """Open the run of job ``index`` of the sweep in ``sweep_dir`` (called by the job entry point).

    ``manifest`` is the sweep's manifest when the caller has just read it; else it is read here.

    Raises
    ------
    RunBusyError
        Another live process is the run's writer; nothing was written.
    ConfigError
        An ``HPCTRACK_*`` setting holds a bad value.
    """
    from .errors import RunNotFoundError
    from .manifest import load_manifest

    settings = RunSettings.from_env()
    if manifest is None:
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
    info = {
        "run_id": run.run_id,
        "sweep_id": manifest.id,
        "job_index": index,
        "overrides": job.overrides,
        "script": manifest.script,
        **({"code_snapshot": code} if code else {}),
        **(extra_info or {}),
    }
    if not run.writes:
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
    the job entry point. In another process of a job (a Python program that an
    ``hpctrack launch --exec`` command runs) it returns the job's run as a
    :class:`hpctrack._relayrun.RelayRun`, which records through the run's relay
    (no checkpoints there: they are the job's own). Run plainly (``python train.py``), it creates a
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
        from ._relayrun import relayed_run

        relayed = relayed_run()
        if relayed is not None:  # another process of a job: the job's run, through its relay
            relayed.log_params(flatten_config(cfg))
            if tags:
                relayed.tags.update(tags)
            # It records as a Run does (log, summary, tags, params, artifacts); checkpoints are the job's own.
            return cast(Run, relayed)
        mask_hydra_outputs()  # a plain run of a Hydra script (a launched job's are masked before its task)
        if name is not None:
            check_sweep_name(name, "start_run(name=...)")
        flatten_config(cfg)  # a bad config (a key over 255 characters) is refused before a sweep is created
        from ._direct import start_direct_run

        run = start_direct_run(name=name, root=root, store=store, overrides=_hydra_overrides() or [])
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
