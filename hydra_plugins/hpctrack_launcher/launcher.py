"""Hydra ``Launcher`` adapters over :func:`hpctrack.launch.submit_sweep`.

Hydra's launcher contract is synchronous: ``launch`` returns one ``JobReturn``
per job. The local launcher honours it by waiting (with a progress bar) and
returning each job's real outcome (``cfg``, ``hydra_cfg``, working directory,
return value or exception, as the job recorded it in ``hydra_return.pkl`` in its
run directory), so a failed job raises in Hydra as usual. The SLURM launcher
does so with ``wait: true``. Otherwise (``detach: true``; SLURM's default) it
returns as soon as the jobs are handed over, with placeholder ``JobReturn``s
(status COMPLETED, return value None): the real outcomes are in the sweep's
manifest and runs (``hpctrack status``). Hydra upstream declined asynchronous
launchers (hydra#2171); this is the documented workaround.

Every ``launch`` call of one multirun adds its jobs to one hpctrack sweep, so a
sweeper that asks for trials in batches (Optuna, Nevergrad, Ax) makes one sweep.
Hydra's directories are Hydra's: ``hydra.sweep.dir`` is created at launch, each
job's output directory is ``hydra.sweep.dir/hydra.sweep.subdir``, and
``hydra.job.chdir`` decides whether the job runs there. The run records that
directory (``hpctrack show``), and the directory names its run in ``.hpctrack_run``.
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

from hpctrack.errors import FAILED_JOB_ATTR
from hpctrack.secrets import mask_overrides

log = logging.getLogger(__name__)

#: Set by ``hpctrack launch`` so the manifest records the command the user typed.
COMMAND_ENV = "HPCTRACK_COMMAND"
#: The job's ``JobReturn`` (config, Hydra config, working dir, return value or exception), in its run directory.
RETURN_FILE = "hydra_return.pkl"


class HydraJob:
    """Picklable job function: compose job ``index``'s config and run the task in it."""

    config_code: Optional[Dict[str, Any]] = None  # the code snapshot whose config files the job reads
    # keep the JobReturn in the run directory (RETURN_FILE) for a launch that waits for it; it holds the
    # job's config with its real values, so it is written only then, and removed once read
    record_return: bool = False

    def __init__(
        self,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
        job_overrides: List[List[str]],
        initial_job_idx: int,
        job_nums: Optional[List[int]] = None,
    ) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        self.job_overrides = job_overrides  # every job of the sweep, by its index
        self.initial_job_idx = initial_job_idx
        # Hydra's job number of each job, by index (a sweeper's batches continue from initial_job_idx);
        # None, in job functions pickled before batches made one sweep: initial_job_idx + index
        self.job_nums = job_nums
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

    def job_num(self, index: int) -> int:
        """Hydra's ``hydra.job.num`` of the sweep's job ``index``."""
        nums = getattr(self, "job_nums", None)  # absent from job functions pickled by earlier versions
        return nums[index] if nums else self.initial_job_idx + index

    def __call__(self, index: int) -> Any:
        from hydra.core.utils import setup_globals

        from hpctrack.run import current_run

        from ._job import run_job

        _set_singletons(self.singleton_state)
        setup_globals()
        if self.script:
            _restore_filenames(self.task_function, self.script)
        # Relative directories (hydra.sweep.dir) mean what they meant where the sweep was launched.
        launch_dir = OmegaConf.select(self.config, "hydra.runtime.cwd")
        if launch_dir and os.path.isdir(launch_dir):
            os.chdir(launch_dir)
        from ._compose import job_context

        # the config files inside the code from its snapshot; each file parsed once per process
        context = job_context(self.hydra_context, self.config_code)
        sweep_config = context.config_loader.load_sweep_config(self.config, list(self.job_overrides[index]))
        run = current_run()
        with open_dict(sweep_config):
            sweep_config.hydra.job.num = self.job_num(index)
            sweep_config.hydra.job.id = run.run_id if run is not None else str(index)
            if run is not None and "job_nums" not in vars(self):
                # A job function pickled before Hydra's directories were Hydra's (a requeue of an older
                # sweep): its jobs keep running in their run directories, as they did when launched.
                sweep_config.hydra.sweep.dir, sweep_config.hydra.sweep.subdir = str(run.run_dir), "."
                if sweep_config.hydra.job.get("chdir") is None:
                    sweep_config.hydra.job.chdir = True
        if run is not None:
            _remove_return(run.run_dir)  # an earlier attempt's, never taken for this one's
        # Hydra's run_job: the job's config becomes Hydra's own (HydraConfig) first thing, its record
        # (.hydra/*.yaml) is written with secrets masked
        ret = run_job(
            hydra_context=context,
            task_function=_recording_outputs(self.task_function),
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if run is not None and self.record_return:
            _save_return(run, ret)
        if ret.status == JobStatus.FAILED:
            raise ret._return_value
        return ret._return_value


def _set_singletons(state: Dict[str, Any]) -> None:
    """Hydra's process-wide state as the launching process had it (``Singleton.set_state``).

    ``set_state`` discovers every Hydra plugin again (an import scan of ``hydra_plugins``); the
    runs of a packed task reuse the discovery of the one before them while ``sys.path`` (where
    plugins are found) is the same.
    """
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton

    found = Singleton._instances.get(Plugins)
    key = tuple(sys.path)
    if found is not None and _PLUGINS_FOUND_WITH.get("path") == key:
        state = {**state, "instances": {**state["instances"], Plugins: found}}
    Singleton.set_state(state)
    _PLUGINS_FOUND_WITH["path"] = key


#: The ``sys.path`` with which this process's Hydra plugins were last discovered.
_PLUGINS_FOUND_WITH: Dict[str, Any] = {}


def _recording_outputs(task_function: TaskFunction) -> TaskFunction:
    """The task, first linking the job's Hydra output directory and its run both ways."""
    import functools

    @functools.wraps(task_function)
    def task(cfg: DictConfig) -> Any:
        _link_output_dir()
        return task_function(cfg)

    return task


def _link_output_dir() -> None:
    """Record the job's Hydra output directory in its run, and the run in that directory (``.hpctrack_run``)."""
    from hydra.core.hydra_config import HydraConfig

    from hpctrack.run import current_run

    run = current_run()
    if run is None or not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    output_dir = Path(str(hydra.runtime.output_dir))
    run._note_info("hydra", {"output_dir": str(output_dir), "job_num": int(hydra.job.num),
                             "job_name": str(hydra.job.name), "chdir": bool(hydra.job.chdir)})  # fmt: skip
    if output_dir.resolve() == run.run_dir.resolve():
        return
    from hpctrack.runinfo import HYDRA_LINK_FILE
    from hpctrack.safefs import write_file

    link = {"run_id": run.run_id, "run_dir": str(run.run_dir)}
    try:
        write_file(output_dir / HYDRA_LINK_FILE, json.dumps(link) + "\n", output_dir)
    except OSError as err:  # the link is a convenience: the run has the directory either way
        log.warning(f"hpctrack: could not write {output_dir / HYDRA_LINK_FILE}: {err}")


def _remove_return(run_dir: Path) -> None:
    import contextlib

    with contextlib.suppress(FileNotFoundError):
        os.unlink(run_dir / RETURN_FILE)


def _save_return(run: Any, ret: JobReturn) -> None:
    """Keep the job's ``JobReturn`` in its run directory, for a launch that waits (any host, any backend)."""
    import copy

    import cloudpickle

    from hpctrack.safefs import PRIVATE_FILE_MODE, write_file

    ret = copy.copy(ret)
    if ret.status == JobStatus.FAILED and isinstance(ret._return_value, BaseException):
        _note_traceback(ret._return_value, run)
    try:
        payload = cloudpickle.dumps(ret)
    except Exception as err:  # the return value (or exception) cannot leave this process
        what = "exception" if ret.status == JobStatus.FAILED else "return value"
        log.warning(f"hpctrack: the job's {what} cannot be pickled ({err}); the launch gets a stand-in")
        if ret.status == JobStatus.FAILED:
            ret._return_value = JobFailedError(f"{type(ret._return_value).__name__}: {ret._return_value}")
        else:
            ret._return_value = None
        payload = cloudpickle.dumps(ret)
    write_file(run.run_dir / RETURN_FILE, payload, run.run_dir, mode=PRIVATE_FILE_MODE)


def _note_traceback(exc: BaseException, run: Any) -> None:
    """Keep the job's own traceback (from the task on) on its exception: pickling drops the frames,
    and the launching process would show Hydra's only."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_name != "run_job":  # Hydra's frames before the task
        tb = tb.tb_next
    frames = traceback.format_exception(type(exc), exc, tb.tb_next if tb is not None else exc.__traceback__)
    note = f"the job's traceback (run {run.run_id}, in its log under {run.run_dir / 'logs'}):\n" + "".join(frames)
    add_note = getattr(exc, "add_note", None)  # Python 3.11+; on 3.10 the log file has it
    if add_note is not None:
        add_note(note.rstrip())


def load_return(run_dir: Path) -> Optional[JobReturn]:
    """The ``JobReturn`` the job in ``run_dir`` recorded, or None when it recorded none (it never ran its task)."""
    import cloudpickle

    from hpctrack.safefs import check_owner_only

    path = Path(run_dir) / RETURN_FILE
    if not path.exists():
        return None
    check_owner_only(path, "the job's return value")  # unpickled here: written by this user only
    with open(path, "rb") as f:
        ret = cloudpickle.load(f)
    return ret if isinstance(ret, JobReturn) else None


def take_return(run_dir: Path) -> Optional[JobReturn]:
    """:func:`load_return`, then remove the file: it holds the job's config with its real (secret) values."""
    ret = load_return(run_dir)
    _remove_return(Path(run_dir))
    return ret


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


#: Hydra sweepers (their ``_target_``'s module) that choose their next trials from the values the jobs return.
_SWEEPERS_THAT_NEED_VALUES = ("optuna_sweeper", "nevergrad_sweeper", "ax_sweeper")


class BaseHpctrackLauncher(Launcher):
    """Launches the sweep through hpctrack; each backend of the registry gets a subclass (below).

    On a backend with a queue (``has_queue``), ``launch`` returns as soon as the
    scheduler accepted the jobs, with placeholder ``JobReturn``s, unless the
    launcher config says ``wait: true``. Otherwise it waits for the jobs (unless
    ``detach``) and returns their real outcomes. Every ``launch`` of one
    multirun adds to one sweep (:attr:`sweep_dir`).
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
        #: The hpctrack sweep this multirun's jobs go to; None before the first launch.
        self.sweep_dir: Optional[Path] = None
        #: The sweep's indices of the jobs of the latest launch.
        self.last_indices: List[int] = []
        self._overrides: List[List[str]] = []  # every job of the sweep, by index (real values)
        self._nums: List[int] = []  # Hydra's job number of each
        self._output_dirs: Dict[str, int] = {}  # Hydra output directory -> job index

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _backend_options(self) -> Dict[str, Any]:
        from hpctrack.launch import backend_options

        options = backend_options(self._BACKEND, dict(self.params))
        return {k: (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v) for k, v in options.items()}

    @property
    def waits(self) -> bool:
        """Whether ``launch`` blocks until its jobs ended and returns their real outcomes."""
        from hpctrack.launch import backend_class

        if backend_class(self._BACKEND).has_queue:
            return bool(self.params.get("wait"))
        return not self.params.get("detach")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra.errors import CompactHydraException

        from hpctrack.errors import HpctrackError

        by_hpctrack = COMMAND_ENV in os.environ  # `hpctrack launch` says hpctrack's errors itself, in one line
        try:
            return self._launch(job_overrides, initial_job_idx)
        except HpctrackError as err:
            if by_hpctrack:
                raise
            # Hydra prints a CompactHydraException as its message alone: one line that says what to fix
            raise CompactHydraException(f"hpctrack: {str(err).strip()}") from None
        except KeyboardInterrupt:
            if by_hpctrack:
                raise
            print("hpctrack: interrupted: the jobs of this launch were cancelled "
                  "(see `hpctrack status`)", file=sys.stderr, flush=True)  # fmt: skip
            raise SystemExit(130) from None

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hpctrack.launch import SweepRequest, add_jobs, backend_class, submit_sweep
        from hpctrack.secrets import mask_yaml_file

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        self._check_sweeper()
        jobs = [list(o) for o in job_overrides]
        nums = [initial_job_idx + i for i in range(len(jobs))]
        if self.params.get("dry_run"):
            return self._dry_run(jobs, nums)
        hydra_sweep_dir = Path(str(self.config.hydra.sweep.dir))
        hydra_sweep_dir.mkdir(parents=True, exist_ok=True)  # as Hydra's own launchers do
        # Hydra's sweeper has just saved the sweep's config with the real values; only the job
        # function (job.pkl, owner-only) keeps them. The manifest is masked by submit_sweep.
        if (hydra_sweep_dir / "multirun.yaml").exists():
            mask_yaml_file(hydra_sweep_dir / "multirun.yaml")
        if self.sweep_dir is None:
            self.sweep_dir = self._existing_sweep()
        first = len(self._overrides)
        self._check_output_dirs(jobs, nums, first)
        self._overrides, self._nums = [*self._overrides, *jobs], [*self._nums, *nums]
        job_fn = HydraJob(self.hydra_context, self.task_function, self.config, self._overrides, 0, self._nums)
        job_fn.record_return = self.waits
        if self.sweep_dir is None:
            command = json.loads(os.environ[COMMAND_ENV]) if COMMAND_ENV in os.environ else [sys.executable, *sys.argv]
            launcher_conf = OmegaConf.to_container(self.config.hydra.launcher, resolve=True)
            request = SweepRequest(
                jobs=jobs,
                backend=self._BACKEND,
                backend_options=self._backend_options(),
                store=self.params.get("store", "hdf5"),
                root=self.params.get("root"),
                sweep_id=self.params.get("sweep_id"),
                # a sweep of `python app.py --multirun` is found by the app's name
                name=self.params.get("name") or str(self.config.hydra.job.name),
                script=os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None,
                command=command,
                # unresolved: an override may hold an interpolation of a key only the jobs add ('a=${seed}')
                overrides=list(OmegaConf.to_container(self.config.hydra.overrides.task, resolve=False)),
                launcher=launcher_conf if isinstance(launcher_conf, dict) else {},
            )
            manifest = submit_sweep(request, job_fn)
            self.sweep_dir, indices = manifest.path, [job.index for job in manifest.jobs]
        else:
            manifest, indices = add_jobs(self.sweep_dir, jobs, job_fn, backend_options=self._backend_options())
        self.last_indices = indices
        backend = backend_class(self._BACKEND)
        log.info(
            f"hpctrack: sweep {manifest.id} ({len(jobs)} job{'s' if len(jobs) != 1 else ''}"
            f"{f', {len(manifest.jobs)} in all' if len(manifest.jobs) != len(jobs) else ''}, "
            f"{self._BACKEND}) in {manifest.path}"
        )
        if COMMAND_ENV not in os.environ:  # `hpctrack launch` says what it launched itself
            from hpctrack._terminal import printable

            for index, overrides in zip(indices, jobs):  # as Hydra's own launchers list them
                log.info(printable(f"    #{self._nums[index]} : {' '.join(mask_overrides(overrides))}"))
        if backend.has_queue:
            arrays = sorted({j.job_id.split("_", 1)[0] for j in manifest.jobs if j.index in indices and j.job_id})
            log.info(f"hpctrack: queued as {backend.label} job array {', '.join(arrays)}"
                     + ("" if self.waits else f"; not waiting (hydra.launcher.wait=false): watch with "
                                              f"`hpctrack status {manifest.id} --watch`"))  # fmt: skip
        if not self.waits:
            # Placeholders: Hydra's launcher contract is synchronous, hpctrack's is not (see module docs).
            return [JobReturn(overrides=mask_overrides(o), status=JobStatus.COMPLETED, _return_value=None)
                    for o in jobs]  # fmt: skip
        return self._wait(indices, jobs)

    def _dry_run(self, jobs: List[List[str]], nums: List[int]) -> Sequence[JobReturn]:
        """Say what this launch would submit (``hydra.launcher.dry_run``); submit and write nothing."""
        from hpctrack.launch.plan import launch_plan

        self._check_output_dirs(jobs, nums, len(self._overrides))
        self._overrides, self._nums = [*self._overrides, *jobs], [*self._nums, *nums]
        print("\n".join(launch_plan(self._BACKEND, self._backend_options(), jobs, nums)), flush=True)
        return [JobReturn(overrides=mask_overrides(o), status=JobStatus.COMPLETED, _return_value=None)
                for o in jobs]  # fmt: skip

    def _check_sweeper(self) -> None:
        """Refuse, before anything is submitted, a sweeper that needs each job's value from a launch that won't wait."""
        from hpctrack.errors import ConfigError

        assert self.config is not None
        target = str(OmegaConf.select(self.config, "hydra.sweeper._target_") or "")
        if self.waits or not any(name in target for name in _SWEEPERS_THAT_NEED_VALUES):
            return
        option = "hydra.launcher.wait=true" if "wait" in self.params else "hydra.launcher.detach=false"
        raise ConfigError(f"the sweeper {target.rsplit('.', 1)[-1]} chooses its next trials from each job's "
                          f"returned value, but this launch does not wait for the jobs: add {option}, or run the "
                          f"study with `hpctrack launch --optimize`")  # fmt: skip

    def _existing_sweep(self) -> Optional[Path]:
        """The sweep named by ``sweep_id`` when it already exists (a study driver started again), else None.

        Its jobs keep their indices: the job function read back from it carries
        their real overrides, and this launch adds after them.
        """
        from hpctrack.config import resolve_root
        from hpctrack.errors import ConfigError
        from hpctrack.formats import load_job
        from hpctrack.launch import JOB_FN_FILE
        from hpctrack.manifest import MANIFEST_FILE, SWEEPS_DIR, load_manifest
        from hpctrack.safefs import check_owner_only

        sweep_id = self.params.get("sweep_id")
        if not sweep_id:
            return None
        path = resolve_root(self.params.get("root")) / SWEEPS_DIR / str(sweep_id)
        if not (path / MANIFEST_FILE).exists():
            return None
        manifest = load_manifest(path)
        if manifest.backend != self._BACKEND:
            raise ConfigError(f"sweep {sweep_id} runs on the {manifest.backend!r} backend, not "
                              f"{self._BACKEND!r}; use hydra/launcher=hpctrack_{manifest.backend}")  # fmt: skip
        if manifest.jobs:
            check_owner_only(path / JOB_FN_FILE, "the job function")
            earlier = load_job(path / JOB_FN_FILE)
            overrides = getattr(earlier, "job_overrides", None)
            if not isinstance(earlier, HydraJob) or overrides is None or len(overrides) != len(manifest.jobs):
                raise ConfigError(f"sweep {sweep_id} was not made by a Hydra launch of this kind: "
                                  "jobs cannot be added to it; launch a new sweep")  # fmt: skip
            self._overrides = [list(o) for o in overrides]
            self._nums = [earlier.job_num(i) for i in range(len(overrides))]
        return path

    def _check_output_dirs(self, jobs: List[List[str]], nums: List[int], first: int) -> None:
        """Refuse, before anything is submitted, two jobs of the sweep that would share a Hydra output dir.

        With Hydra's default ``hydra.sweep.subdir`` (``${hydra.job.num}``) each
        job's is its own; any other subdir is resolved for every job.
        """
        from hpctrack.errors import ConfigError
        from hpctrack.manifest import RUNS_DIR

        assert self.config is not None and self.hydra_context is not None
        sweep = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)
        raw = str(sweep.get("subdir") or "") if isinstance(sweep, dict) else ""
        if raw in ("${hydra.job.num}", f"{RUNS_DIR}/${{hydra.job.num}}") or "hydra.job.id" in raw:
            return
        sweep_path = self._sweep_path()
        for offset, (overrides, num) in enumerate(zip(jobs, nums)):
            index = first + offset
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                with open_dict(cfg):
                    cfg.hydra.job.num = num
                output_dir = os.path.abspath(os.path.join(str(cfg.hydra.sweep.dir), str(cfg.hydra.sweep.subdir)))
            except Exception:  # composing failed: the job fails on it as under Hydra's own launchers
                continue
            if sweep_path is not None and _among_hpctracks_files(output_dir, sweep_path, index):
                raise ConfigError(f"hydra.sweep.subdir={raw} puts job {index}'s Hydra outputs in {output_dir}, "
                                  f"among hpctrack's own files of the sweep ({sweep_path}); give hydra.sweep.dir "
                                  "too, for Hydra's outputs to go there")  # fmt: skip
            other = self._output_dirs.setdefault(output_dir, index)
            if other != index:
                raise ConfigError(f"jobs {other} and {index} would share the Hydra output directory "
                                  f"{output_dir}; make hydra.sweep.subdir unique per job, e.g. "
                                  "hydra.sweep.subdir=${hydra.job.num}")  # fmt: skip

    def _sweep_path(self) -> Optional[str]:
        """The sweep's directory, known before the first submission when the caller chose its id."""
        from hpctrack.config import resolve_root
        from hpctrack.manifest import SWEEPS_DIR

        if self.sweep_dir is not None:
            return os.path.abspath(self.sweep_dir)
        if not self.params.get("sweep_id"):
            return None
        return os.path.abspath(resolve_root(self.params.get("root")) / SWEEPS_DIR / str(self.params["sweep_id"]))

    def _wait(self, indices: List[int], jobs: List[List[str]]) -> Sequence[JobReturn]:
        """Wait for the jobs ``indices`` and return their outcomes as Hydra expects."""
        from hpctrack.launch import backend_class

        assert self.sweep_dir is not None
        show = bool(self.params.get("progress", True))
        if backend_class(self._BACKEND).has_queue:
            states, errors = _wait_in_queue(self.sweep_dir, indices, show, float(self.params.get("wait_poll_s") or 10))
        else:
            from hpctrack.launch.progress import wait_with_progress
            from hpctrack.status import sweep_status

            manifest = wait_with_progress(self.sweep_dir, show=show, indices=indices)
            wanted = set(indices)
            # what status says, with the run's own error line (a SystemExit, a time limit)
            statuses = sweep_status(manifest, only=wanted).jobs  # this batch's runs only, not the whole sweep's
            states, errors = {s.index: s.state for s in statuses}, {s.index: s.error for s in statuses}
        from hpctrack.manifest import load_manifest

        manifest = load_manifest(self.sweep_dir)
        returns = []
        for index, overrides in zip(indices, map(mask_overrides, jobs)):  # Hydra prints them on failure
            ret = take_return(manifest.run_path(index))
            if ret is not None:
                ret.overrides = overrides
                if isinstance(ret._return_value, BaseException):
                    _mark_failed_job(ret._return_value, index)
                returns.append(ret)
                continue
            state = states.get(index)
            error = JobFailedError(f"job {index} {state.value if state else 'ended'}: "
                                   f"{errors.get(index) or 'see hpctrack status'}")  # fmt: skip
            returns.append(JobReturn(overrides=overrides, status=JobStatus.FAILED,
                                     _return_value=_mark_failed_job(error, index)))  # fmt: skip
        return returns


def _wait_in_queue(
    sweep_dir: Path, indices: List[int], show: bool, poll_s: float
) -> "tuple[Dict[int, Any], Dict[int, Optional[str]]]":
    """Block until the jobs ``indices`` of a queued sweep ended; their states and errors as ``status`` says.

    One scheduler query per ``poll_s`` for the whole sweep. Ctrl-C cancels the
    jobs, as a waiting local launch does, and is re-raised.
    """
    import time

    from hpctrack.launch import get_backend
    from hpctrack.launch.progress import SweepProgress
    from hpctrack.manifest import load_manifest
    from hpctrack.status import sweep_status

    wanted = set(indices)
    manifest = load_manifest(sweep_dir)
    try:
        with SweepProgress(manifest.name or manifest.id, len(indices), show=show) as bar:
            while True:
                manifest = load_manifest(sweep_dir)
                statuses = sweep_status(manifest, only=wanted).jobs  # this batch's runs only, not the whole sweep's
                bar.update([s.state for s in statuses])
                if all(s.state.is_final for s in statuses):
                    return {s.index: s.state for s in statuses}, {s.index: s.error for s in statuses}
                time.sleep(poll_s)
    except KeyboardInterrupt:
        get_backend(manifest.backend).cancel(load_manifest(sweep_dir), indices)
        raise


def _mark_failed_job(exc: BaseException, index: int) -> BaseException:
    """Mark a job's exception as the job's (Hydra raises it in the launching process): the sweep
    records it, and ``hpctrack launch`` must not take it for an error of the launch itself."""
    try:
        setattr(exc, FAILED_JOB_ATTR, index)
    except AttributeError:  # an exception type that takes no attributes
        pass
    return exc


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _among_hpctracks_files(output_dir: str, sweep_path: str, index: int) -> bool:
    """Whether a job's Hydra output directory lies among hpctrack's files of its sweep (another run's
    directory, ``logs/``, ...): anywhere in the sweep but its own run directory or ``hydra/``."""
    from hpctrack.manifest import RUNS_DIR

    own = os.path.join(sweep_path, RUNS_DIR, str(index))
    return (_inside(output_dir, sweep_path) and output_dir != own
            and not _inside(output_dir, os.path.join(sweep_path, "hydra")))  # fmt: skip


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
