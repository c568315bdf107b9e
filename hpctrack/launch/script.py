"""``hpctrack launch SCRIPT OVERRIDES...``: run a Hydra script's sweep through hpctrack's launcher.

The script runs in this process exactly as ``python SCRIPT --multirun
hydra/launcher=hpctrack_<backend> OVERRIDES...`` would, so sweep expansion is
Hydra's own (parser, sweeper, config composition) and submission is the
launcher plugin's. Hydra's errors are caught here and turned into one line
before any job starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from .._names import check_name, check_sweep_name
from ..config import ensure_writable_root, resolve_root
from ..errors import FAILED_JOB_ATTR, ConfigError, HpctrackError
from ..manifest import MANIFEST_FILE, RUNS_DIR, SWEEPS_DIR, Manifest, load_manifest, new_sweep_id
from ..secrets import mask_argv
from ..store import store_class
from .registry import backend_class, backend_names, backends_with_setting, check_launcher_setting, launcher_fields

__all__ = ["launch_script", "split_flags"]


def _check_launcher_settings(backend: str, args: List[str]) -> None:
    """Each ``hydra.launcher.KEY=...`` override checked against ``backend``'s launcher (:func:`check_launcher_setting`).

    Hydra's own words for a missing one name a config class (``Key 'runs_per_task' not in
    'LocalLauncherConf'``), not the ``--backend`` that takes it.
    """
    prefix = "hydra.launcher."
    for arg in args:
        key = arg.lstrip("+~").split("=", 1)[0]
        if not arg.startswith("-") and key.startswith(prefix):
            check_launcher_setting(backend, key[len(prefix) :], arg)


def _quote(value: str) -> str:
    """A Hydra override value that stays one string whatever it contains."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


#: Hydra's own command-line flags that take a value; they pass through unparsed.
_HYDRA_VALUE_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--cfg", "-c",
                      "--package", "-p", "--experimental-rerun"}  # fmt: skip


def _hydra_flags() -> "set[str]":
    """Every flag of Hydra's own command line (``--config-name``, ``--cfg``, ``-cd``...)."""
    from hydra._internal.utils import get_args_parser

    return {flag for action in get_args_parser()._actions for flag in action.option_strings}


def _check_flag(arg: str) -> None:
    """A flag among the arguments is one of Hydra's; anything else is a mistyped option, said as such
    (Hydra would take its value for a malformed override)."""
    flag = arg.split("=", 1)[0]
    if flag not in _hydra_flags():
        raise ConfigError(f"unknown option {flag!r}: not an option of hpctrack launch (see `hpctrack launch "
                          "--help`) nor one of Hydra's flags (--config-name, --config-path, --config-dir, --cfg, "
                          "--package, --info)")  # fmt: skip


def _check_overrides(args: List[str]) -> None:
    """Parse every override with Hydra's grammar, naming the first malformed one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    skip_next = False
    for arg in args:
        if skip_next or arg.startswith("-"):
            if not skip_next:
                _check_flag(arg)
            skip_next = arg in _HYDRA_VALUE_FLAGS
            continue
        try:
            override = parser.parse_override(arg)
        except HydraException as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = lines[-1] if lines else type(err).__name__
            raise ConfigError(f"malformed override {arg!r}: {reason}") from None
        check_name("param key", override.key_or_group, "shorten the override's key")


def _hydra_dirs(sweep_dir: Path, overrides: List[str]) -> List[str]:
    """Hydra's sweep directory overrides for the sweep: the runs' directories, unless the user chose.

    A ``hydra.sweep.subdir`` of the user's own names other directories than the
    runs': they go under ``<sweep>/hydra/``, never into a run's. A ``hydra.sweep.dir``
    of the user's own puts everything there, as under Hydra.
    """
    if _overrides_key(overrides, "hydra.sweep.dir"):
        return []
    if _overrides_key(overrides, "hydra.sweep.subdir"):
        return [f"hydra.sweep.dir={_quote(str(sweep_dir / 'hydra'))}"]
    return [f"hydra.sweep.dir={_quote(str(sweep_dir))}", f"hydra.sweep.subdir={RUNS_DIR}/${{hydra.job.num}}"]


def _overrides_key(args: List[str], key: str) -> bool:
    """Whether an override among ``args`` sets ``key``."""
    return any(arg.lstrip("+~").split("=", 1)[0] == key for arg in args if not arg.startswith("-"))


def split_flags(args: List[str]) -> "tuple[List[str], List[str]]":
    """Hydra's own flags (``--config-name X``...) apart from the overrides, both in order."""
    flags: List[str] = []
    plain: List[str] = []
    take_value = False
    for arg in args:
        if take_value or arg.startswith("-"):
            flags.append(arg)
            take_value = arg in _HYDRA_VALUE_FLAGS
        else:
            plain.append(arg)
    return flags, plain


def _one_line(err: BaseException, script: Path) -> str:
    """Hydra's multi-line errors as one line that says what to fix."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if "does not support sweep type" in first:  # interval(...), tag(log, ...) under Hydra's basic sweeper
        return (f"{first}: a search space (interval, tag(log, ...)) needs a study: add --optimize KEY:min|max "
                "--trials N, or a Hydra sweeper (hydra/sweeper=optuna)")  # fmt: skip
    if isinstance(err, MissingConfigException):
        return f"{script}: {first}"
    if isinstance(err, ConfigCompositionException):
        cause = err.__cause__
        key = getattr(cause, "full_key", None)
        if key and cause is not None and "not in struct" in str(cause):
            hint = _did_you_mean(cause, key)
            return f"unknown config key {key!r} for {script.name}{hint}; to add a new key write +{key}=VALUE"
        detail = f": {str(cause).splitlines()[0]}" if cause is not None and str(cause) else ""
        return f"{first}{detail}"
    if isinstance(err, OverrideParseException):
        return " ".join(line.strip() for line in text.splitlines()[:2])
    return f"{type(err).__name__}: {first}"


def _did_you_mean(cause: BaseException, key: str) -> str:
    import difflib

    parent = getattr(cause, "parent_node", None)
    try:
        siblings = [str(k) for k in parent.keys()] if parent is not None else []
    except Exception:
        return ""
    prefix, _, leaf = key.rpartition(".")
    close = difflib.get_close_matches(leaf, siblings, n=1)
    if not close:
        return ""
    return f" (did you mean {'.'.join(filter(None, [prefix, close[0]]))!r}?)"


@contextlib.contextmanager
def _as_script(script: Path, argv: List[str], command: List[str]) -> Iterator[None]:
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_env = {k: os.environ.get(k) for k in ("HYDRA_FULL_ERROR", "HPCTRACK_COMMAND")}
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.parent))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us as exceptions
    os.environ["HPCTRACK_COMMAND"] = json.dumps(mask_argv(command))  # jobs inherit it: recorded masked
    try:
        yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()


def launch_script(
    script: str,
    overrides: List[str],
    *,
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
    sweeper: Sequence[str] = (),
    dry_run: bool = False,
) -> Optional[Manifest]:
    """Launch the sweep of a Hydra ``script`` over ``overrides``; see the CLI's ``launch``.

    Every check (script, root, store, backend, override syntax, config keys of
    every job) happens before any job starts. A local launch waits for the jobs
    unless ``detach``; a SLURM launch returns once the array is queued. A failed
    job does not raise here: it is recorded in the sweep. ``slurm`` holds
    SLURM launcher settings given as options (``partition``, ``time``).
    ``share_group`` makes the sweep readable by that group (see ``--share-group``).
    ``sweeper``: Hydra arguments choosing and configuring another sweeper
    (``hpctrack launch --optimize``: ``hydra/sweeper=hpctrack_optimize ...``).
    Without them, and unless the overrides or the script's config choose one,
    the sweep is Hydra's basic sweep, validated by ``hydra/sweeper=hpctrack_basic``:
    one config composed per combination of config-group choices, not one per job.
    ``dry_run``: check every job's config as a launch does, print what would be
    submitted (jobs, arrays, resources), and submit and write nothing.

    Returns
    -------
    Manifest or None
        The sweep as recorded after submission (or after the jobs ended); None after a dry run.

    Raises
    ------
    ConfigError
        Bad input, with a one-line message; nothing was launched.
    """
    path = Path(script)
    if not path.is_file():
        raise ConfigError(f"script not found: {script}")
    if backend not in backend_names():
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(backend_names())}")
    if parallel is not None and parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {parallel}")
    store_class(store)
    if name is not None:
        check_sweep_name(name, "--name")
    if share_group:
        from ..safefs import resolve_group

        resolve_group(share_group)  # a bad group is said before the root is even created
    _check_overrides(overrides)
    _check_launcher_settings(backend, overrides)
    # a dry run writes nothing under the root: Hydra's sweep directory (multirun.yaml) is a temporary one
    root_path = resolve_root(root) if dry_run else ensure_writable_root(resolve_root(root))
    path = path.absolute()
    sweep_id = new_sweep_id()
    sweep_dir = Path(tempfile.mkdtemp(prefix="hpctrack-dry-run-")) if dry_run else root_path / SWEEPS_DIR / sweep_id
    hydra_args = [
        "--multirun",
        f"hydra/launcher=hpctrack_{backend}",
        f"hydra.launcher.sweep_id={sweep_id}",
        f"hydra.launcher.root={_quote(str(root_path))}",
        f"hydra.launcher.store={store}",
        f"hydra.launcher.detach={str(detach).lower()}",
        f"hydra.launcher.progress={str(progress).lower()}",
        # Hydra's job output directories are the runs' own (runs/<job>; Hydra's job number is the job's
        # index): one directory per job, .hydra/ beside the store, multirun.yaml beside sweep.json.
        *_hydra_dirs(sweep_dir, overrides),
        # and each job runs there, so two jobs writing "weights.npy" never share one file (Hydra's
        # default since 1.2 is the launch directory); hydra.job.chdir=false, said explicitly, wins
        "hydra.job.chdir=true",
    ]
    if parallel is not None:
        hydra_args.append(f"hydra.launcher.{backend_class(backend).parallel_option}={parallel}")
    for key, value in (slurm or {}).items():
        if value is not None:
            if key not in launcher_fields(backend):
                owners = backends_with_setting(key)
                if not owners:
                    raise ConfigError(f"--{key.replace('_', '-')} is an option of no backend "
                                      f"({', '.join(backend_names())})")  # fmt: skip
                raise ConfigError(f"--{key.replace('_', '-')} is a {' or '.join(backend_class(n).label for n in owners)} option; "
                                  f"add --backend {owners[0]}")  # fmt: skip
            hydra_args.append(f"hydra.launcher.{key}={_quote(str(value))}")
    if name:
        hydra_args.append(f"hydra.launcher.name={_quote(name)}")
    if not code_snapshot:
        hydra_args.append("hydra.launcher.code_snapshot=false")
    if share_group:
        hydra_args.append(f"hydra.launcher.share_group={_quote(share_group)}")
    if dry_run:
        hydra_args.append("hydra.launcher.dry_run=true")
    flags, plain = split_flags(overrides)
    if sweeper or any(arg.startswith("hydra/sweeper=") for arg in plain):
        return _run(path, script, overrides, [*flags, *hydra_args, *sweeper, *plain], command, sweep_dir, dry_run)
    from .validate import SweeperChosenByConfig

    try:
        return _run(path, script, overrides, [*flags, *hydra_args, *_FAST_SWEEPER, *plain], command, sweep_dir,
                    dry_run)  # fmt: skip
    except SweeperChosenByConfig:  # raised before anything was launched: run with the config's sweeper
        return _run(path, script, overrides, [*flags, *hydra_args, *plain], command, sweep_dir, dry_run)


#: Hydra's basic sweeper with hpctrack's validation, standing aside for a sweeper the script's config chooses.
_FAST_SWEEPER = ("hydra/sweeper=hpctrack_basic", "hydra.sweeper.yield_to_config=true")


def _run(
    path: Path,
    script: str,
    overrides: List[str],
    argv: List[str],
    command: Optional[List[str]],
    sweep_dir: Path,
    dry_run: bool,
) -> Optional[Manifest]:
    """Run the script with Hydra's ``argv``; the sweep it launched in ``sweep_dir`` (None after a dry run)."""
    from .validate import SweeperChosenByConfig

    if dry_run:
        try:
            with _as_script(path, argv, command or ["hpctrack", "launch", script, *overrides]):
                try:
                    runpy.run_path(str(path), run_name="__main__")
                except (HpctrackError, KeyboardInterrupt, SweeperChosenByConfig):
                    raise
                except SystemExit as err:
                    if err.code in (None, 0):
                        return None
                    raise ConfigError(f"{script} rejected its command line (exit code {err.code}); "
                                      "see the message above") from None  # fmt: skip
                except BaseException as err:
                    raise ConfigError(_one_line(err, path)) from err
        finally:
            shutil.rmtree(sweep_dir, ignore_errors=True)
        return None
    with _as_script(path, argv, command or ["hpctrack", "launch", script, *overrides]):
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SweeperChosenByConfig:
            shutil.rmtree(sweep_dir, ignore_errors=True)
            raise
        except BaseException as err:
            if (sweep_dir / MANIFEST_FILE).exists():
                # The sweep exists: either the backend refused it (the manifest records that,
                # so it stays) or Hydra re-raised a failed job's error, which the sweep records.
                if isinstance(err, KeyboardInterrupt):
                    raise
                if isinstance(err, HpctrackError) and getattr(err, FAILED_JOB_ATTR, None) is None:
                    raise  # the launch's own error (a later batch refused), not a job's
                return load_manifest(sweep_dir)
            shutil.rmtree(sweep_dir, ignore_errors=True)
            if isinstance(err, HpctrackError):
                raise
            if isinstance(err, SystemExit):
                if err.code in (None, 0):
                    raise ConfigError(f"{script} exited before launching a sweep") from None
                raise ConfigError(
                    f"{script} rejected its command line (exit code {err.code}); see the message above"
                ) from None
            if isinstance(err, KeyboardInterrupt):
                raise
            raise ConfigError(_one_line(err, path)) from err
    if not (sweep_dir / MANIFEST_FILE).exists():
        shutil.rmtree(sweep_dir, ignore_errors=True)
        raise ConfigError(
            f"{script} ran but launched no sweep: its entry point must be decorated with "
            '@hydra.main and called under `if __name__ == "__main__":`'
        )
    return load_manifest(sweep_dir)
