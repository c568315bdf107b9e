"""``hpctrack rm``: move sweeps to the root's trash (``ROOT/trash/<sweep id>``), or delete them for good.

A sweep is moved (one ``rename`` of its directory within the root), so ``ls`` and every
command that looks a sweep up stop seeing it at once, and nothing in it is read, followed
or rewritten: a symlink planted inside the sweep moves with it as a link. ``purge``
deletes the directory tree with :func:`hpctrack.safefs.rmtree`, which removes links
without following them. A sweep is removed only while none of its jobs is pending or
running (asked of :mod:`hpctrack.status`, i.e. the scheduler) and its study's driver,
if any, has ended, and none of its runs is pinned (:mod:`hpctrack.pins`); sweeps are
checked all before any is moved.

The sweep directory must be a real directory directly in ``ROOT/sweeps/`` (never a
link, never a path elsewhere), and ``ROOT/trash`` a real directory in the root. Paths
come from the directory's own name, never from the manifest's ``id`` or ``name``.
"""

from __future__ import annotations

import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ._types import JobState
from .errors import ConfigError, SweepNotFoundError, UnsafePathError
from .locking import fsync_dir
from .manifest import (
    MANIFEST_FILE,
    SWEEPS_DIR,
    TRASH_DIR,
    Manifest,
    find_sweep,
    iter_sweep_dirs,
    load_manifest,
    match_sweep_dir,
)
from .safefs import ROOT_MODE, check_inside, rmtree

__all__ = ["TRASH_DIR", "RemovedSweep", "remove_sweeps", "find_trashed", "trashed_sweeps"]

_ACTIVE = (JobState.PENDING, JobState.RUNNING)


@dataclass(frozen=True)
class RemovedSweep:
    """One sweep ``hpctrack rm`` moved to the trash (``path``) or deleted (``purged``)."""

    id: str
    name: Optional[str]
    jobs: int
    path: Optional[Path]  # where it is now; None once purged
    purged: bool


@dataclass(frozen=True)
class _Target:
    path: Path
    manifest: Manifest
    trashed: bool  # already in the trash (only --purge reaches one)


def trashed_sweeps(root: Path) -> List[Path]:
    """The sweep directories in ``ROOT/trash``, newest first."""
    return list(iter_sweep_dirs(root, under=TRASH_DIR))


def find_trashed(root: Path, ref: str) -> Path:
    """The trashed sweep ``ref`` (its id, a unique prefix of it, or its name: the newest of that name)."""
    found = match_sweep_dir(trashed_sweeps(root), ref)
    if found is not None:
        return found
    raise SweepNotFoundError(f"no sweep {ref!r} under {root} nor in its trash (try `hpctrack ls` / `hpctrack ls "
                             "--trash`, or pass --root / set HPCTRACK_ROOT)")  # fmt: skip


def _check_directory(path: Path, parent: Path, root: Path) -> None:
    """``path`` must be a real directory whose parent is ``parent`` (resolved), inside ``root``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise SweepNotFoundError(f"no sweep directory {path}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"refusing to remove {path}: it is a symlink (to {os.readlink(path)}), not a sweep "
                              "directory hpctrack made; remove the link")  # fmt: skip
    if os.path.realpath(path.parent) != os.path.realpath(parent) or path.name in ("", ".", ".."):
        raise ConfigError(f"refusing to remove {path}: hpctrack rm removes sweeps of the root {root} only "
                          f"(directories in {parent})")  # fmt: skip
    check_inside(path, root, "remove")


def _refuse_two_meanings(root: Path, ref: str, found: Path) -> None:
    """``rm --purge REF`` where REF (a name, an id prefix) names a sweep in the root and another in the
    trash: after ``rm NAME``, the name finds the older sweep of that name, which --purge would delete
    for good. Refused, naming both; a full id or a path names one."""
    if ref == "latest" or ref == found.name or os.path.isfile(os.path.join(os.path.expanduser(ref), MANIFEST_FILE)):
        return
    try:
        trashed = find_trashed(root, ref)
    except SweepNotFoundError:
        return
    if trashed.name != found.name:
        raise ConfigError(f"{ref!r} is ambiguous: it names sweep {found.name} in the root and {trashed.name} in the "
                          f"trash; give the id of the one to delete for good (`hpctrack rm --purge {trashed.name}`)")  # fmt: skip


def _locate(root: Path, ref: str, purge: bool) -> _Target:
    try:
        path = find_sweep(root, ref)
    except SweepNotFoundError:
        if not purge:
            raise
        path = find_trashed(root, ref)
        _check_directory(path, root / TRASH_DIR, root)
        return _Target(path, load_manifest(path), True)
    if purge:
        _refuse_two_meanings(root, ref, path)
    if os.path.realpath(path.parent) == os.path.realpath(root / TRASH_DIR):
        _check_directory(path, root / TRASH_DIR, root)
        if not purge:
            raise ConfigError(f"sweep {path.name} is already in the trash; `hpctrack rm --purge {path.name}` "
                              "deletes it for good")  # fmt: skip
        return _Target(path, load_manifest(path), True)
    _check_directory(path, root / SWEEPS_DIR, root)
    return _Target(path, load_manifest(path), False)


def _still_active(manifest: Manifest) -> Optional[str]:
    """Why the sweep cannot be removed now (jobs pending or running, a live study driver), or None."""
    from .requeue import never_submitted
    from .status import sweep_status

    statuses = sweep_status(manifest).jobs
    active = [s for s in statuses if s.state in _ACTIVE and not never_submitted(manifest, s)]
    if active:
        shown = ", ".join(f"job {s.index} {s.state.value}" for s in active[:5]) + (" ..." if len(active) > 5 else "")
        return (f"{len(active)} job{'s are' if len(active) != 1 else ' is'} pending or running ({shown}): "
                f"cancel {'them' if len(active) != 1 else 'it'} first (`hpctrack cancel {manifest.path.name}`) "
                "or wait until they end")  # fmt: skip
    if manifest.study:
        from .optimize.control import driver_state

        driver = driver_state(manifest)
        if driver.alive:
            return (f"its study's driver is {driver.state} ({driver.where}): cancel the study first "
                    f"(`hpctrack cancel {manifest.path.name}`)")  # fmt: skip
    return None


def _pinned(target: _Target) -> Optional[str]:
    """Which runs of the sweep are pinned and why (``hpctrack pin``), or None."""
    from .pins import describe_pinned, pinned_runs

    pinned = pinned_runs(target.path)  # a damaged or linked pins.json is an error: never guess "none"
    if not pinned:
        return None
    runs = " ".join(str(r) for r in sorted(pinned))
    return (f"{describe_pinned(pinned)} {'is' if len(pinned) == 1 else 'are'} pinned; "
            f"`hpctrack unpin {target.path.name} {runs}` first if {'it' if len(pinned) == 1 else 'they'} may go")  # fmt: skip


def _submissions(manifest: Manifest) -> List[Tuple[Optional[str], Optional[float], int]]:
    return [(j.job_id, j.submitted, len(j.history)) for j in manifest.jobs]


def _trash(root: Path) -> Path:
    trash = root / TRASH_DIR
    if os.path.islink(trash):
        raise UnsafePathError(f"refusing to move sweeps into {trash}: it is a symlink (to {os.readlink(trash)}); "
                              "remove the link")  # fmt: skip
    trash.mkdir(mode=ROOT_MODE, exist_ok=True)
    check_inside(trash, root, "move sweeps into")
    return trash


def _move(target: _Target, into: Path, name: str) -> Path:
    """Rename the sweep directory to ``into/name``; undone when a job was submitted meanwhile."""
    before = _submissions(target.manifest)
    dest = into / name
    if os.path.lexists(dest):
        raise ConfigError(f"{dest} already exists: `hpctrack rm --purge {name}` deletes the trashed copy first")
    os.rename(target.path, dest)
    fsync_dir(into)
    if _submissions(load_manifest(dest)) != before:  # a requeue or resume got in between the check and the move
        os.rename(dest, target.path)
        raise ConfigError(f"sweep {target.path.name}: a job was submitted while it was being removed; it was left "
                          "in place (see `hpctrack status`)")  # fmt: skip
    return dest


def remove_sweeps(refs: Sequence[str], *, root: Path, purge: bool = False) -> List[RemovedSweep]:
    """Move the sweeps ``refs`` to ``ROOT/trash/<id>`` (``purge``: delete them for good).

    Every sweep is checked before any is touched: it must be a sweep directory of
    ``root`` (``purge`` also finds sweeps already in the trash), none of its jobs
    may be pending or running, and none of its runs pinned (:mod:`hpctrack.pins`).

    Parameters
    ----------
    refs:
        Sweeps as every command names them: an id or unique prefix, a name, ``latest``,
        or the sweep directory's path (which must be in ``ROOT/sweeps``).
    root:
        The root the sweeps belong to.
    purge:
        Delete instead of moving to the trash.

    Returns
    -------
    list of RemovedSweep
        In the order of ``refs``.

    Raises
    ------
    ConfigError
        A sweep still has jobs pending or running (or a live study driver) or pinned runs, is not
        in the root, or its trashed copy is in the way. Nothing was moved.
    UnsafePathError
        The sweep directory or ``ROOT/trash`` is a symlink. Nothing was moved.
    SweepNotFoundError
        No such sweep.
    """
    root = Path(root)
    targets: List[_Target] = []
    for ref in refs:
        target = _locate(root, ref, purge)
        if not target.trashed:
            why = _still_active(target.manifest)
            if why:
                raise ConfigError(f"not removing sweep {target.path.name}: {why}; nothing was moved")
        why = _pinned(target)
        if why:
            raise ConfigError(f"not removing sweep {target.path.name}: {why}; nothing was moved")
        if any(t.path == target.path for t in targets):
            continue
        targets.append(target)
    out: List[RemovedSweep] = []
    for target in targets:
        m, sweep_id = target.manifest, target.path.name
        if not purge:
            dest = _move(target, _trash(root), sweep_id)
            out.append(RemovedSweep(sweep_id, m.name, len(m.jobs), dest, False))
            continue
        doomed = target.path
        if not target.trashed:  # out of sweeps/ first: a half-deleted sweep is never listed
            doomed = _move(target, _trash(root), f".{sweep_id}.purging-{uuid.uuid4().hex[:8]}")
        rmtree(doomed, root / TRASH_DIR)
        out.append(RemovedSweep(sweep_id, m.name, len(m.jobs), None, True))
    return out
