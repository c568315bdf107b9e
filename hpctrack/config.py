"""Launcher configuration schemas and storage-root resolution.

The dataclasses are plain (no Hydra import) so ``import hpctrack`` stays
light. :class:`BaseLauncherConf` holds the fields every launcher shares; each
backend's own config subclasses it in the backend's folder
(``hpctrack/launch/<name>/``) and is named by the backend's ``conf``;
``hydra_plugins.hpctrack_launcher`` registers every one of the registry in
Hydra's ConfigStore as ``hydra/launcher=hpctrack_<name>``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import ConfigError

__all__ = [
    "BaseLauncherConf",
    "launcher_target",
    "ROOT_ENV",
    "default_root",
    "resolve_root",
    "ensure_writable_root",
    "user_config_path",
    "user_share_group",
]

#: Environment variable that sets the storage root.
ROOT_ENV = "HPCTRACK_ROOT"


@dataclass
class BaseLauncherConf:
    """Fields every hpctrack launcher shares."""

    # storage root; None -> $HPCTRACK_ROOT, then `root:` in the user config file, then the default
    root: Optional[str] = None
    # sweep name, so `hpctrack status NAME` finds it (newest sweep of that name wins)
    name: Optional[str] = None
    # run store backend for every run of the sweep
    store: str = "hdf5"
    # return as soon as the jobs are handed over; they carry on without this process
    detach: bool = False
    # show a live progress bar while waiting for the jobs
    progress: bool = True
    # sweep id chosen by the caller (`hpctrack launch` assigns it up front); None -> new id
    sweep_id: Optional[str] = None
    # jobs run a copy of the code taken at launch (git-tracked files, or the script's folder)
    code_snapshot: bool = True
    # make the sweep readable (never writable) by this group: directories 2750, files 0640;
    # None -> `share_group:` in the user config file, else owner only
    share_group: Optional[str] = None
    # print what would be submitted (jobs, arrays, resources) after checking every job's config;
    # submit nothing and write no sweep (`hpctrack launch --dry-run`)
    dry_run: bool = False


def launcher_target(backend: str) -> str:
    """The ``_target_`` of a backend's launcher config: the Hydra launcher class made for ``backend``."""
    return f"hydra_plugins.hpctrack_launcher.launcher.{backend.capitalize()}Launcher"


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/hpctrack/config.yaml`` (``~/.config/hpctrack/config.yaml``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "hpctrack" / "config.yaml"


def default_root() -> Path:
    """``$XDG_DATA_HOME/hpctrack`` (``~/.local/share/hpctrack``): a per-user default for laptops."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "hpctrack"


def _from_user_config(key: str) -> Optional[str]:
    path = user_config_path()
    if not path.is_file():
        return None
    from omegaconf import DictConfig, OmegaConf

    try:
        conf = OmegaConf.load(path)
    except Exception as err:  # a broken user config must name itself, on one line
        raise ConfigError(f"cannot read {path}: {_yaml_problem(err)}; fix or remove it") from err
    value = conf.get(key) if isinstance(conf, DictConfig) else None
    return str(value) if value else None


def _root_from_user_config() -> Optional[str]:
    return _from_user_config("root")


def user_share_group() -> Optional[str]:
    """``share_group:`` of the user config file: the group every sweep is shared with by default."""
    return _from_user_config("share_group")


def _yaml_problem(err: BaseException) -> str:
    """A YAML parser's error as one line: what it found and where (its own message spans four)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split()) or type(err).__name__


def resolve_root(root: Optional[str] = None) -> Path:
    """The storage root: ``root`` > ``$HPCTRACK_ROOT`` > user config file > :func:`default_root`."""
    chosen = root or os.environ.get(ROOT_ENV) or _root_from_user_config()
    path = Path(os.path.expandvars(os.path.expanduser(chosen))) if chosen else default_root()
    return path.absolute()


#: The root's folders that hold what jobs load: made owner-only, refused when others may write into them.
_PRIVATE_TOPS = ("sweeps", "code")


def _check_private(path: Path, what: str, *, sticky_ok: bool = False) -> None:
    """Refuse ``path`` unless this user owns it and no one else may write into it.

    ``sticky_ok``: a sticky directory (``/scratch``-like) lets others add entries
    but not rename this user's, which is enough for the root itself.
    """
    import stat

    from .errors import UnsafePathError

    st = path.stat()
    if st.st_uid != os.geteuid():
        raise UnsafePathError(f"{what} {path} belongs to uid {st.st_uid}, not to you: its owner could change the "
                              "files your jobs load and run code as you; use a root of your own "
                              f"(--root or {ROOT_ENV})")  # fmt: skip
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        who = "anyone" if st.st_mode & stat.S_IWOTH else "its group"
        raise UnsafePathError(f"{what} {path} is writable by {who} ({stat.filemode(st.st_mode)}): they could swap "
                              f"the files your jobs load and run code as you; `chmod go-w {path}`, or use a root "
                              "of your own inside it (a group reads a sweep launched with --share-group)")  # fmt: skip


def ensure_writable_root(root: Path) -> Path:
    """Create ``root`` if needed and prove it writable, or raise a one-line :class:`ConfigError`.

    A root created here is mode 0700 (the owner only) whatever the umask. An
    existing root keeps its mode, but must be this user's and not writable by
    others (nor may its ``sweeps/``, ``code/`` and ``worktrees/``): whoever can
    rename entries there can swap the files a job unpickles and runs before any
    check of the job's own (submitit's pickles) and run code as this user.
    A root shared with a group is readable by it, never writable
    (``--share-group``).

    Raises
    ------
    UnsafePathError
        The root, or one of its top folders, belongs to someone else or others may write into it.
    """
    from .safefs import ROOT_MODE

    try:
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            os.chmod(root, ROOT_MODE)
            # A root made inside a git repository (`--root ./runs`) is not the project's untracked work:
            # without this, every run's provenance would say its code is dirty.
            from .safefs import write_file

            write_file(root / ".gitignore", "# made by hpctrack: the runs under this root are not part of the "
                       "repository\n*\n", root)  # fmt: skip
        else:
            _check_private(root, "the hpctrack root", sticky_ok=True)
        for top in _PRIVATE_TOPS:
            try:  # made here, whatever the umask, before anything else would make them group-writable
                os.mkdir(root / top, ROOT_MODE)
            except FileExistsError:
                _check_private(root / top, f"the root's {top}/")
        if (root / "worktrees").is_dir():  # rerun --at-commit runs code from there
            _check_private(root / "worktrees", "the root's worktrees/")
        probe = root / f".write-test-{uuid.uuid4().hex}"
        with open(probe, "w") as fh:
            fh.write("ok")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or str(err)
        raise ConfigError(
            f"cannot write to the hpctrack root {root} ({reason}); "
            f"pass --root or set {ROOT_ENV} to a writable directory"
        ) from err
    return root
