"""``hpctrack launch --exec CMD OVERRIDES...``: a sweep of any program, without a Python Hydra app.

The overrides are expanded as Hydra's basic sweeper expands a script's (``a=1,2``,
``range(3)``, ``choice(...)``), each job's config is composed from them and the optional
``--config`` YAML (Hydra's override rules: with a YAML, a key it does not have needs
``+key=...``), and every job's config and command are checked before anything is written.
Then the sweep goes through :func:`hpctrack.launch.submit_sweep`, as a script's does, with
:class:`hpctrack.launch._command.CommandJob` as its job function: requeue, resume, status,
tables and provenance treat its runs as any other. Launcher settings that have no
``launch`` option are given as ``hydra.launcher.KEY=VALUE`` overrides, as for a script.

The code of an ``--exec`` sweep is its launch directory: the snapshot is taken of it (the
git-tracked files of its repository, or the folder outside git), and each job's command
finds it in ``$HPCTRACK_CODE_DIR``.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .._names import check_name, check_sweep_name
from ..errors import ConfigError
from ..manifest import Manifest, load_manifest
from .registry import backend_class, backend_names, backends_with_setting, check_launcher_setting, launcher_fields

__all__ = ["launch_command", "expand_overrides"]

_LAUNCHER_PREFIX = "hydra.launcher."
#: Programs that start the real one: a sweep is named after what they run (``srun ./heat`` -> ``heat``).
_STARTERS = {"srun", "mpirun", "mpiexec", "env", "time", "exec", "nice", "sh", "bash", "python", "python3"}


def _parse(overrides: Sequence[str]) -> List[Any]:
    """Each override parsed with Hydra's grammar; a malformed one (or a flag) is one line naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for arg in overrides:
        if arg.startswith("-"):
            raise ConfigError(f"unknown option {arg.split('=', 1)[0]!r}: not an option of hpctrack launch (see "
                              "`hpctrack launch --help`); an --exec sweep takes overrides KEY=VALUE")  # fmt: skip
        try:
            override = parser.parse_override(arg)
        except HydraException as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            raise ConfigError(f"malformed override {arg!r}: {lines[-1] if lines else type(err).__name__}") from None
        check_name("param key", override.key_or_group, "shorten the override's key")
        parsed.append(override)
    return parsed


def expand_overrides(overrides: Sequence[str]) -> List[List[str]]:
    """The jobs of a sweep over ``overrides`` (each a list of ``key=value``), as Hydra's basic sweeper makes them.

    Raises
    ------
    ConfigError
        A malformed override, or a sweep the basic sweeper does not expand (``interval``, ``glob``).
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import HydraException

    parsed = _parse(overrides)
    for override in parsed:
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            raise ConfigError(f"{override.input_line}: glob() chooses among a config group's options, and an --exec "
                              "sweep has no config groups; list the values (a=1,2) or use range(...)")  # fmt: skip
    try:
        batches = BasicSweeper.split_arguments(parsed, None)
    except HydraException as err:
        first = " ".join(str(err).split())
        raise ConfigError(f"{first}: an --exec sweep takes lists (a=1,2), range(...) and choice(...); a search space "
                          "(interval, tag(log, ...)) needs a study, which --exec does not run") from None  # fmt: skip
    return [list(job) for job in batches[0]] if batches else [[]]


def _load_config(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The ``--config`` YAML's contents (unresolved); None without one."""
    if path is None:
        return None
    from omegaconf import DictConfig, OmegaConf

    if not Path(path).is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:
        raise ConfigError(f"--config {path}: not a YAML file hpctrack can read: {' '.join(str(err).split())}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"--config {path}: the YAML must be a mapping of keys to values, not a list")
    data = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


def _launcher(backend: str, settings: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """The backend's launcher config (as a script's sweep records it) with ``settings`` and the
    ``hydra.launcher.KEY=VALUE`` overrides applied, checked against its fields."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    conf = backend_class(backend).conf
    if conf is None:
        raise ConfigError(f"backend {backend!r} has no launcher config: --exec sweeps cannot run on it")
    fields = launcher_fields(backend)
    for key, value in settings.items():
        if value is not None and key not in fields:
            owners = backends_with_setting(key)
            where = " or ".join(backend_class(n).label for n in owners) or "no backend's"
            raise ConfigError(f"--{key.replace('_', '-')} is a {where} option; add --backend {owners[0]}"
                              if owners else f"--{key.replace('_', '-')} is an option of no backend")  # fmt: skip
    structured = OmegaConf.structured(conf)
    try:
        merged = OmegaConf.merge(structured, {k: v for k, v in settings.items() if v is not None})
        for override in _parse(overrides):
            key = override.key_or_group[len(_LAUNCHER_PREFIX) :]
            if override.is_sweep_override():
                raise ConfigError(f"{override.input_line}: a launcher setting is one value for the whole sweep")
            check_launcher_setting(backend, key, override.input_line)
            OmegaConf.update(merged, key, override.value(), merge=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"launcher setting: {' '.join(str(err).split()).split(' full_key:')[0]}") from None
    data = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


def _words(template: str) -> List[str]:
    """The command's shell words (split on blanks when its quoting does not parse)."""
    try:
        return shlex.split(template)
    except ValueError:
        return template.split()


def _program(template: str) -> Optional[str]:
    """The word of the command that names the program it runs (``srun ./heat -n 2`` -> ``./heat``), if any."""
    for word in _words(template):
        if "=" in word and not word.startswith(("/", ".")):
            continue  # VAR=value before the program
        if word.startswith("-") or Path(word).name in _STARTERS:
            continue
        return word
    return None


def _relative_program_note(template: str, launch_dir: str) -> Optional[str]:
    """A warning when the program is a relative path to a file of the launch directory: each job
    runs in its own run directory, where that path names nothing."""
    program = _program(template)
    if not program or "/" not in program or program.startswith(("/", "$", "~")):
        return None
    if not (Path(launch_dir) / program).is_file():
        return None
    return (f"--exec: {program} is a file of the launch directory, but each job runs in its own run directory; "
            f"write $HPCTRACK_CODE_DIR/{os.path.normpath(program)} (the sweep's copy of the launch directory) "
            "unless the command makes it there")  # fmt: skip


# ${...} is the job's config (OmegaConf): the shell's variable is written $HPCTRACK_CODE_DIR
_CODE_DIR_PATH = re.compile(r"\$HPCTRACK_CODE_DIR/([^\s\"'`;|&<>()$]+)")


def _check_code_dir_files(template: str, launch_dir: str) -> None:
    """Refuse a command naming ``$HPCTRACK_CODE_DIR/<path>`` that the sweep's code snapshot will not hold.

    Each job would fail on it ("cannot open"): in a git repository the snapshot holds the tracked
    files only, and a new program is often not added yet.
    """
    from ..snapshot import snapshot_listing

    paths = [m.group(1) for m in _CODE_DIR_PATH.finditer(template) if "{" not in m.group(1)]
    if not paths:
        return
    root, files, source = snapshot_listing(launch_dir)
    held = set(files)
    base = os.path.relpath(os.path.realpath(launch_dir), os.path.realpath(root))
    for path in paths:
        rel = os.path.normpath(os.path.join(base, path))
        if rel in held or any(f.startswith(rel.rstrip("/") + "/") for f in files):
            continue
        why = (f"it is not tracked by git in {root}: `git add {rel}` (committing is not needed)" if source == "git"
               else f"it is not in {root}, or .hpctrackignore leaves it out")  # fmt: skip
        raise ConfigError(f"--exec: $HPCTRACK_CODE_DIR/{path}: {rel} is not in the sweep's code snapshot, so every "
                          f"job would fail on it; {why}")  # fmt: skip


def _default_name(template: str) -> str:
    """The sweep's name when none is given: the program the command runs (``./heat --dt 1`` -> ``heat``)."""
    for word in _words(template):
        if "=" in word and not word.startswith(("/", ".")):
            continue  # VAR=value before the program
        name = Path(word).stem  # $HPCTRACK_CODE_DIR/heat.sh -> heat
        if word.startswith("-") or name in _STARTERS or "$" in name or "{" in name:
            continue
        if name:
            return check_sweep_name(name[:100], "--name") if name != "latest" else "exec"
    return "exec"


def _check(
    template: str, backend: str, parallel: Optional[int], store: str, name: Optional[str], share_group: Optional[str],
    metrics_file: Optional[str],
) -> None:  # fmt: skip
    from ..metricsfile import check_metrics_file
    from ..store import store_class

    if not template.strip():
        raise ConfigError("--exec needs a command, e.g. --exec './heat --dt ${dt}'")
    if backend not in backend_names():
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(backend_names())}")
    if parallel is not None and parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {parallel}")
    store_class(store)
    if name is not None:
        check_sweep_name(name, "--name")
    if share_group:
        from ..safefs import resolve_group

        resolve_group(share_group)
    if metrics_file is not None:
        check_metrics_file(metrics_file)


def _jobs_and_configs(
    template: str, overrides: Sequence[str], base: Optional[Dict[str, Any]]
) -> Tuple[List[List[str]], List[str]]:
    """The sweep's jobs (the config overrides of each) and the launcher overrides, every job checked."""
    from ._command import check_command, check_template, compose_config

    check_template(template)  # a malformed ${ is said before anything else
    config, launcher = [], []
    for arg in overrides:
        key = arg.lstrip("+~").split("=", 1)[0]
        if key.startswith(_LAUNCHER_PREFIX):
            launcher.append(arg)
        elif key == "hydra" or key.startswith("hydra."):
            raise ConfigError(f"{arg}: an --exec sweep has no Hydra app; only hydra.launcher.KEY=VALUE settings apply")
        else:
            config.append(arg)
    jobs = expand_overrides(config)
    for index, job in enumerate(jobs):
        cfg = compose_config(base, job, strict=base is not None)
        check_command(template, cfg, index)
    return jobs, launcher


def launch_command(
    template: str,
    overrides: List[str],
    *,
    config_file: Optional[str] = None,
    metrics_file: Optional[str] = None,
    backend: str = "local",
    parallel: Optional[int] = None,
    detach: bool = False,
    name: Optional[str] = None,
    root: Optional[str] = None,
    store: str = "hdf5",
    progress: bool = True,
    command: Optional[List[str]] = None,
    slurm: Optional[Dict[str, Any]] = None,
    code_snapshot: bool = True,
    share_group: Optional[str] = None,
    dry_run: bool = False,
    launch_dir: Optional[str] = None,
) -> Optional[Manifest]:
    """Launch a sweep of the shell command ``template`` over ``overrides``; see the CLI's ``launch --exec``.

    Every check (command, config, overrides, every job's config and command, backend,
    root, store) happens before anything is written. A local launch waits for the jobs
    unless ``detach``; a SLURM launch returns once the array is queued.

    Parameters
    ----------
    template:
        The command; ``${key}`` is the job's value of config key ``key``.
    overrides:
        Config overrides with sweep syntax, and ``hydra.launcher.KEY=VALUE`` settings.
    config_file:
        A YAML file the jobs' configs start from.
    metrics_file:
        A ``.csv`` or ``.jsonl`` file the command appends rows to, in its run's directory.
    slurm:
        SLURM launcher settings given as options (``partition``, ``time``...).
    launch_dir:
        The directory whose code the jobs run (``$HPCTRACK_CODE_DIR``); default: the current one.

    Returns
    -------
    Manifest or None
        The sweep as recorded after submission (or after the jobs ended); None after a dry run.

    Raises
    ------
    ConfigError
        Bad input, with a one-line message; nothing was launched.
    """
    from ..config import ensure_writable_root, resolve_root
    from . import SweepRequest, submit_sweep
    from ._command import CommandJob

    _check(template, backend, parallel, store, name, share_group, metrics_file)
    base = _load_config(config_file)
    jobs, launcher_overrides = _jobs_and_configs(template, overrides, base)
    cls = backend_class(backend)
    settings: Dict[str, Any] = {**(slurm or {}), "name": name or _default_name(template), "store": store,
                                "detach": detach, "progress": progress, "code_snapshot": code_snapshot,
                                "share_group": share_group}  # fmt: skip
    if parallel is not None:
        settings[cls.parallel_option] = parallel
    launcher = _launcher(backend, settings, launcher_overrides)
    options = cls.options_from_launcher(launcher)
    cwd = os.path.abspath(launch_dir) if launch_dir else os.getcwd()
    if not os.path.isdir(cwd):
        raise ConfigError(f"the launch directory {cwd} no longer exists: its code cannot be run")
    if code_snapshot:
        _check_code_dir_files(template, cwd)
    note = _relative_program_note(template, cwd)
    if note is not None:
        print(f"hpctrack: warning: {note}", file=sys.stderr, flush=True)
    if dry_run:
        from .plan import launch_plan

        resolve_root(root)
        print("\n".join(launch_plan(backend, options, jobs, list(range(len(jobs))))), flush=True)
        return None
    ensure_writable_root(resolve_root(root))
    launcher.update(root=root, exec=template, metrics_file=metrics_file,
                    config=os.path.abspath(config_file) if config_file else None)  # fmt: skip
    request = SweepRequest(jobs=jobs, backend=backend, backend_options=options, store=store, root=root,
                           name=launcher["name"], script=cwd, command=command or
                           ["hpctrack", "launch", "--exec", template, *overrides], cwd=cwd, overrides=list(overrides),
                           launcher=launcher)  # fmt: skip
    job_fn = CommandJob(template=template, jobs=jobs, base=base, metrics_file=metrics_file, launch_dir=cwd)
    manifest = submit_sweep(request, job_fn)
    if not cls.has_queue and not detach:
        from .progress import wait_with_progress

        wait_with_progress(manifest.path, show=progress and sys.stderr.isatty())
    return load_manifest(manifest.path)
