"""Hydra ``Launcher`` adapters over :func:`hpctrack.launch.submit_sweep`.

Hydra's launcher contract is synchronous: ``launch`` returns one ``JobReturn``
per job. The local launcher honours it by waiting (with a progress bar) and
returning each job's real outcome, so a failed job raises in Hydra as usual.
With ``detach: true`` it returns as soon as the jobs are handed over, with
placeholder ``JobReturn``s (status COMPLETED, return value None): the real
outcomes are in the sweep's manifest and runs (``hpctrack status``). Hydra
upstream declined asynchronous launchers (hydra#2171); this is the documented
workaround.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import sys
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hpctrack.secrets import mask_overrides

log = logging.getLogger(__name__)

#: Set by ``hpctrack launch`` so the manifest records the command the user typed.
COMMAND_ENV = "HPCTRACK_COMMAND"


class HydraJob:
    """Picklable job function: compose job ``index``'s config and run the task in it."""

    config_code: Optional[Dict[str, Any]] = None  # the code snapshot whose config files the job reads

    def __init__(
        self,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
        job_overrides: List[List[str]],
        initial_job_idx: int,
    ) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        self.job_overrides = job_overrides
        self.initial_job_idx = initial_job_idx
        # Hydra keeps the task name and other runtime facts in process-wide singletons;
        # the job process needs this process's copy to compose the same config.
        from hydra.core.singleton import Singleton

        self.singleton_state = Singleton.get_state()
        self.script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None

    def with_code(self, code: Dict[str, Any], *, script: bool = True) -> "HydraJob":
        """This job running the code of a snapshot (``hpctrack.snapshot``): its config files, and its script.

        Hydra composes each job's config again in the job, from the config directories;
        those inside the code are read from the snapshot. The script's functions are
        pickled by value at launch, so a job given another snapshot than the sweep's
        (``hpctrack requeue --code current``) loads the script from it (``script``).
        """
        import copy

        job = copy.copy(self)
        job.config_code = code  # applied when the job runs, once Hydra's plugin registry is restored
        if script:
            path = os.path.join(code["path"], code["script"])
            job.task_function = _task_in(path, getattr(self.task_function, "__name__", "main"))
            job.script = path
        return job

    def __call__(self, index: int) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.singleton import Singleton
        from hydra.core.utils import run_job, setup_globals

        from hpctrack.run import current_run

        Singleton.set_state(self.singleton_state)
        setup_globals()
        if self.script:
            _restore_filenames(self.task_function, self.script)
        context = _context_in(self.hydra_context, self.config_code) if self.config_code else self.hydra_context
        sweep_config = context.config_loader.load_sweep_config(self.config, list(self.job_overrides[index]))
        run = current_run()
        with open_dict(sweep_config):
            sweep_config.hydra.job.num = self.initial_job_idx + index
            sweep_config.hydra.job.id = run.run_id if run is not None else str(index)
            if run is not None:
                # Hydra's own outputs (.hydra/, the job log) land in the run's directory, and the
                # job runs there: two jobs writing "weights.npy" never share one file. Only an
                # explicit hydra.job.chdir=false keeps the launch directory (Hydra's
                # runtime.cwd and to_absolute_path still name it either way).
                sweep_config.hydra.sweep.dir = str(run.run_dir)
                sweep_config.hydra.sweep.subdir = "."
                if sweep_config.hydra.job.get("chdir") is None:
                    sweep_config.hydra.job.chdir = True
        HydraConfig.instance().set_config(sweep_config)
        ret = run_job(
            hydra_context=context,
            task_function=_masking_outputs(self.task_function),
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.FAILED:
            raise ret._return_value
        return ret._return_value


def _masking_outputs(task_function: TaskFunction) -> TaskFunction:
    """The task, first rewriting what Hydra just recorded of the job (``.hydra/*.yaml``) with secrets masked."""
    import functools

    @functools.wraps(task_function)
    def task(cfg: DictConfig) -> Any:
        from hpctrack._start import mask_hydra_outputs

        mask_hydra_outputs()
        return task_function(cfg)

    return task


def _context_in(context: HydraContext, code: Dict[str, Any]) -> HydraContext:
    """Hydra's context with the config directories that lie inside the code read from its snapshot."""
    import copy
    import dataclasses

    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    search_path = getattr(context.config_loader, "config_search_path", None)
    if search_path is None or not code.get("root") or not code.get("path"):
        return context
    search_path = copy.deepcopy(search_path)
    root = Path(code["root"]).resolve()
    moved = False
    for element in search_path.get_path():
        path = str(element.path or "")
        scheme = "file://" if path.startswith("file://") else ""
        if "://" in path and not scheme:  # pkg://, structured://: not files of the code
            continue
        try:
            inside = Path(path[len(scheme) :]).resolve().relative_to(root)
        except ValueError:  # a config directory outside the code: read where it is
            continue
        target = Path(code["path"]) / inside
        if target.is_dir():  # not, e.g., for configs git does not track
            element.path, moved = f"{scheme}{target}", True
    if not moved:
        return context
    return dataclasses.replace(context, config_loader=ConfigLoaderImpl(config_search_path=search_path))


def _task_in(script: str, name: str) -> Any:
    """The function ``name`` of ``script``, undecorated (``@hydra.main`` wraps it), loaded as a module."""
    import importlib.util
    import inspect

    from hpctrack.errors import ConfigError

    spec = importlib.util.spec_from_file_location("__hpctrack_task__", script)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load the script {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered, as dataclasses and typing need their module to be
    spec.loader.exec_module(module)  # __name__ is not "__main__": the script's own entry point does not run
    task = getattr(module, name, None)
    if not callable(task):
        raise ConfigError(f"{script} has no function {name!r}, the task the sweep was launched with")
    return inspect.unwrap(task)


def _restore_filenames(task_function: Any, filename: str) -> None:
    """Point the script's unpickled functions back at the script, for readable tracebacks.

    cloudpickle pickles a ``__main__`` script's functions by value and renames
    their code's file to ``<dynamic-code>``, which leaves tracebacks without
    file names or source lines.
    """

    def fix(code: CodeType) -> CodeType:
        consts = tuple(fix(c) if isinstance(c, CodeType) else c for c in code.co_consts)
        return code.replace(co_filename=filename, co_consts=consts)

    candidates = [task_function, *getattr(task_function, "__globals__", {}).values()]
    for obj in list(candidates):
        if isinstance(obj, type) and obj.__module__ == "__main__":
            candidates.extend(vars(obj).values())
    for obj in candidates:
        if isinstance(obj, FunctionType) and obj.__code__.co_filename == "<dynamic-code>":
            obj.__code__ = fix(obj.__code__)


class JobFailedError(RuntimeError):
    """A job of the sweep failed; its traceback is in the run and its log files."""


class BaseHpctrackLauncher(Launcher):
    """Launches the sweep through hpctrack; each backend of the registry gets a subclass (below).

    On a backend with a queue (``has_queue``), ``launch`` returns as soon as the
    scheduler accepted the jobs, with placeholder ``JobReturn``s: waiting for a
    cluster queue in the foreground is what such a launcher exists to avoid.
    Outcomes are in the sweep (``hpctrack status``). Otherwise it waits for the
    jobs (unless ``detach``) and returns their real outcomes.
    """

    @property
    @abc.abstractmethod
    def _BACKEND(self) -> str:
        """The backend's name in hpctrack's registry."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _backend_options(self) -> Dict[str, Any]:
        from hpctrack.launch import backend_options

        options = backend_options(self._BACKEND, dict(self.params))
        return {k: (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v) for k, v in options.items()}

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hpctrack.launch import SweepRequest, backend_class, submit_sweep

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        from hpctrack.secrets import mask_yaml_file

        if backend_class(self._BACKEND).has_queue:
            self.params["detach"] = True  # never wait for a queue in the foreground
        jobs = [list(o) for o in job_overrides]
        # Hydra's sweeper has just saved the sweep's config with the real values; only the job
        # function (job.pkl, owner-only) keeps them. The manifest is masked by submit_sweep.
        mask_yaml_file(Path(str(self.config.hydra.sweep.dir)) / "multirun.yaml")
        command = json.loads(os.environ[COMMAND_ENV]) if COMMAND_ENV in os.environ else [sys.executable, *sys.argv]
        launcher_conf = OmegaConf.to_container(self.config.hydra.launcher, resolve=True)
        request = SweepRequest(
            jobs=jobs,
            backend=self._BACKEND,
            backend_options=self._backend_options(),
            store=self.params.get("store", "hdf5"),
            root=self.params.get("root"),
            sweep_id=self.params.get("sweep_id"),
            name=self.params.get("name"),
            script=os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None,
            command=command,
            # unresolved: an override may hold an interpolation of a key only the jobs add ('a=${seed}')
            overrides=list(OmegaConf.to_container(self.config.hydra.overrides.task, resolve=False)),
            launcher=launcher_conf if isinstance(launcher_conf, dict) else {},
        )
        job_fn = HydraJob(self.hydra_context, self.task_function, self.config, jobs, initial_job_idx)
        manifest = submit_sweep(request, job_fn)
        log.info(
            f"hpctrack: sweep {manifest.id} ({len(jobs)} job{'s' if len(jobs) != 1 else ''}, "
            f"{self._BACKEND}) in {manifest.path}"
        )
        if self.params.get("detach"):
            # Placeholders: Hydra's launcher contract is synchronous, hpctrack's is not (see module docs).
            return [JobReturn(overrides=mask_overrides(o), status=JobStatus.COMPLETED, _return_value=None)
                    for o in jobs]  # fmt: skip
        return self._wait(manifest.path, jobs)

    def _wait(self, sweep_dir: Path, jobs: List[List[str]]) -> Sequence[JobReturn]:
        """Wait for the sweep's jobs and return their outcomes as Hydra expects."""
        from hpctrack._types import JobState
        from hpctrack.launch import get_backend
        from hpctrack.launch.progress import wait_with_progress

        manifest = wait_with_progress(sweep_dir, show=bool(self.params.get("progress", True)))
        backend = get_backend(self._BACKEND)
        returns = []
        for job, overrides in zip(manifest.jobs, map(mask_overrides, jobs)):  # Hydra prints them on failure
            if job.state == JobState.COMPLETED and job.job_id:
                value = backend.result(manifest, job.index)
                returns.append(JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value))
            else:
                error = JobFailedError(f"job {job.index} {job.state.value}: {job.error or 'see hpctrack status'}")
                returns.append(JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=error))
        return returns


def _launcher_for(backend: str) -> type:
    """The Hydra launcher class of ``backend``: ``hydra/launcher=hpctrack_<backend>`` instantiates it."""
    from hpctrack.config import launcher_target

    name = launcher_target(backend).rsplit(".", 1)[1]
    doc = f"``hydra/launcher=hpctrack_{backend}``: the sweep's jobs go to hpctrack's {backend!r} backend."
    return type(name, (BaseHpctrackLauncher,), {"_BACKEND": backend, "__doc__": doc, "__module__": __name__})


def _make_launchers() -> None:
    from hpctrack.launch.registry import backend_names

    for backend in backend_names():
        cls = _launcher_for(backend)
        globals()[cls.__name__] = cls


# One launcher class per backend of the registry: LocalLauncher, SlurmLauncher, ... (Hydra's plugin scan finds them).
_make_launchers()
