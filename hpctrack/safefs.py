"""Deleting, overwriting and renaming under the root without following planted symlinks; file modes.

A sweep's directory may be writable by others (a project group, a shared
scratch space), and anyone who can write there can plant a symlink where
hpctrack will later delete, overwrite or rename: ``runs/0/run.zarr ->
/victim``. Every such operation here first resolves the path it acts on and
refuses, with :class:`UnsafePathError` naming the path, when the resolved
path is not inside the base directory (the run's or the sweep's). Files are
then opened with ``O_NOFOLLOW`` and written under a temporary name that is
``os.replace``-d over the target, so a link planted between the check and the
write is replaced, never written through.

Modes: files a job executes or unpickles (``job.pkl``, the code snapshot,
submission scripts) are never group- or world-writable whatever the umask,
and a job refuses to load one that another user could have written
(:func:`check_owner_only`). ``share_group`` makes a sweep readable by one
group, never writable by it (:func:`share_tree`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import BinaryIO, Iterable, Optional, Union

from .errors import ConfigError, UnsafePathError

__all__ = [
    "sha256_file",
    "is_inside",
    "check_inside",
    "unlink",
    "rmtree",
    "replace",
    "copy_file",
    "copy_tree",
    "write_file",
    "open_trusted",
    "check_owner_only",
    "check_tree_owner_only",
    "strip_write_by_others",
    "job_umask",
    "resolve_group",
    "share_tree",
    "ROOT_MODE",
    "PRIVATE_FILE_MODE",
    "SHARED_DIR_MODE",
    "SHARED_FILE_MODE",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Mode of a root hpctrack creates: the owner only.
ROOT_MODE = 0o700
#: Mode of ``job.pkl`` (it may hold the job's secret overrides) whatever the umask or group sharing.
PRIVATE_FILE_MODE = 0o600
#: ``share_group``: directories readable by the group, new files inherit the group (setgid).
SHARED_DIR_MODE = 0o2750
#: ``share_group``: files readable by the group, never writable by it.
SHARED_FILE_MODE = 0o640
#: Group and world write bits.
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_trusted(path: PathLike) -> "Optional[BinaryIO]":
    """``path`` opened for reading when it is a regular file of this user that only they can write; else None.

    How derived caches (the sweep index's columnar cache, the runs catalog) are read: a
    symlink planted in their place (``O_NOFOLLOW``), another user's file, or one that group
    or others could have written is never read, and the caller rebuilds and rewrites it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:  # missing, or a symlink (O_NOFOLLOW: ELOOP)
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & _OTHERS_WRITE:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def sha256_file(path: PathLike) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks (artifacts, checkpoint files)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_inside(path: PathLike, base: PathLike) -> bool:
    """Whether ``path``, every symlink resolved, is ``base`` (resolved) or below it."""
    real, top = os.path.realpath(path), os.path.realpath(base)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def check_inside(path: PathLike, base: PathLike, action: str = "write") -> Path:
    """Return ``path`` when it resolves inside ``base``; else raise a one-line :class:`UnsafePathError`.

    Parameters
    ----------
    path:
        What is about to be deleted, overwritten, renamed or written into.
    base:
        The run or sweep directory the operation must stay in.
    action:
        The verb for the message ("delete", "overwrite", ...).

    Raises
    ------
    UnsafePathError
        A symlink on the way leads out of ``base``.
    """
    if not is_inside(path, base):
        raise UnsafePathError(f"refusing to {action} {path}: a symlink leads it out of {base} (to "
                              f"{os.path.realpath(path)}); remove the link")  # fmt: skip
    return Path(path)


def unlink(path: PathLike, base: PathLike, *, missing_ok: bool = True) -> None:
    """Remove the file (or symlink itself) ``path`` whose directory must resolve inside ``base``.

    ``unlink`` never follows the last component: a planted link is removed, not
    its target. The check is on the directory, which a link could redirect.
    """
    path = Path(path)
    check_inside(path.parent, base, "delete")
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


def rmtree(path: PathLike, base: PathLike) -> None:
    """Remove the directory tree ``path``, which must be a real directory inside ``base``.

    ``shutil.rmtree`` uses ``dir_fd``-relative calls where the platform allows
    (``rmtree.avoids_symlink_attacks``): links inside the tree are removed,
    never followed. Only the top needs checking here.
    """
    path = Path(path)
    check_inside(path.parent, base, "delete")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"refusing to delete {path}: it is a symlink (to {os.readlink(path)}), not a "
                              "directory hpctrack made; remove the link")  # fmt: skip
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux and macOS avoid them
        for folder, dirs, _ in os.walk(path):
            for name in dirs:
                if os.path.islink(os.path.join(folder, name)):
                    raise UnsafePathError(f"refusing to delete {path}: it holds a symlink {folder}/{name}")
    shutil.rmtree(path)


def replace(source: PathLike, target: PathLike, base: PathLike) -> None:
    """``os.replace(source, target)`` when both directories resolve inside ``base``.

    A link at ``target`` itself is replaced (renaming never follows it); a link
    it would have replaced that leads out of ``base`` is refused instead, so a
    planted link is reported rather than silently swallowed.
    """
    source, target = Path(source), Path(target)
    check_inside(source.parent, base, "move")  # renaming ``source`` moves a link itself, never its target
    check_inside(target.parent, base, "overwrite")
    if os.path.islink(target):
        check_inside(target, base, "overwrite")
    os.replace(source, target)


def _tmp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def write_file(target: PathLike, data: Union[str, bytes], base: PathLike, *, mode: Optional[int] = None) -> Path:
    """Write ``data`` to ``target`` inside ``base``: temporary file, fsync, ``os.replace``.

    ``mode``: the file's mode (exactly, whatever the umask); None keeps the
    umask's but never group- or world-writable.
    """
    target = Path(target)
    check_inside(target.parent, base, "write")
    if os.path.islink(target):
        check_inside(target, base, "overwrite")
    tmp = _tmp_beside(target)
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666 if mode is None else mode)
    try:
        try:
            _fix_mode(fd, mode)
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def _fix_mode(fd: int, mode: Optional[int]) -> None:
    if mode is not None:
        os.fchmod(fd, mode)
    else:
        current = stat.S_IMODE(os.fstat(fd).st_mode)
        if current & _OTHERS_WRITE:
            os.fchmod(fd, current & ~_OTHERS_WRITE)


def copy_file(source: PathLike, target: PathLike, base: PathLike, *, mode: Optional[int] = None) -> Path:
    """Copy the file ``source`` to ``target`` inside ``base``, never writing through a link.

    The copy keeps the source's modification time and its mode without group or
    world write (``mode`` sets it exactly).
    """
    source, target = Path(source), Path(target)
    check_inside(target.parent, base, "write")
    if os.path.islink(target):
        check_inside(target, base, "overwrite")
    st = os.stat(source)
    want = stat.S_IMODE(st.st_mode) & ~_OTHERS_WRITE if mode is None else mode
    tmp = _tmp_beside(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        try:
            with open(source, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.fchmod(fd, want)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def copy_tree(source: PathLike, target: PathLike, base: PathLike) -> Path:
    """Copy the directory ``source`` into ``target`` (merged when it exists) inside ``base``.

    Links in ``source`` are copied as the files they name (as ``shutil.copytree``
    does by default); links already in ``target`` that lead out of ``base`` are refused.
    """
    source, target = Path(source), Path(target)
    for folder, _dirs, names in os.walk(source, followlinks=True):
        rel = Path(folder).relative_to(source)
        dest = target / rel
        check_inside(dest.parent, base, "write")
        if os.path.islink(dest):
            check_inside(dest, base, "write into")
        dest.mkdir(exist_ok=True)
        strip_write_by_others([dest])
        for name in names:
            copy_file(Path(folder) / name, dest / name, base)
    return target


def strip_write_by_others(paths: Iterable[PathLike]) -> None:
    """Remove group and world write from each of ``paths`` (links are left alone)."""
    for path in paths:
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & _OTHERS_WRITE:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~_OTHERS_WRITE)


def check_owner_only(path: PathLike, what: str, *, parent: bool = True) -> None:
    """Refuse to load ``path`` unless this user owns it and no one else may write it.

    Checks the file and (``parent``) its directory, which could swap it:
    ``what`` names it in the message (e.g. "the job function"). A link is
    resolved first and its target checked.

    Raises
    ------
    UnsafePathError
        Another user could have written the file.
    """
    path = Path(path)
    uid = os.geteuid()
    for item in (path, path.parent) if parent else (path,):
        st = os.stat(item)
        if st.st_uid != uid:
            raise UnsafePathError(f"refusing to load {what} {item}: it is owned by uid {st.st_uid}, not by this "
                                  "user; launch the sweep again as yourself")  # fmt: skip
        if st.st_mode & _OTHERS_WRITE and not (item == path.parent and st.st_mode & stat.S_ISVTX):
            raise UnsafePathError(f"refusing to load {what} {item}: its mode {stat.filemode(st.st_mode)} lets "
                                  f"others write it; run `chmod go-w {item}` after checking it")  # fmt: skip


def check_tree_owner_only(path: PathLike, what: str) -> None:
    """:func:`check_owner_only` for a directory and everything in it (Python's byte code aside)."""
    check_owner_only(path, what, parent=False)  # code/ itself may be shared by the root's users
    for folder, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in [*dirs, *names]:
            if not name.endswith(".pyc"):
                check_owner_only(Path(folder) / name, what)


def job_umask(share_group: Optional[str]) -> int:
    """Set the umask of a process hpctrack runs for a sweep; returns the previous one.

    Never group- or world-writable; with ``share_group``, group-readable and hidden from others.
    """
    previous = os.umask(0o077)
    os.umask(0o027 if share_group else previous | 0o022)
    return previous


def resolve_group(name: str) -> int:
    """The id of group ``name`` for ``share_group``, or a one-line :class:`ConfigError`.

    This user must belong to it (else the files could not be given to it).
    """
    import grp

    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"share_group: no group named {name!r} on this host; pick one of `id -Gn`") from None
    if os.geteuid() != 0 and gid != os.getegid() and gid not in os.getgroups():
        raise ConfigError(f"share_group: you are not a member of group {name!r}; pick one of `id -Gn`")
    return gid


def share_tree(path: PathLike, gid: int, *, private: Iterable[str] = ()) -> None:
    """Give ``path`` and everything under it to group ``gid``, readable by it, never writable by it.

    Directories get :data:`SHARED_DIR_MODE` (setgid, so new files inherit the
    group), files :data:`SHARED_FILE_MODE` (executable ones 0750); names in
    ``private`` (e.g. ``job.pkl``) keep :data:`PRIVATE_FILE_MODE`. Links are
    left alone, never followed.
    """
    keep = set(private)
    path = Path(path)
    for folder, _dirs, names in os.walk(path):
        os.chown(folder, -1, gid, follow_symlinks=False)
        os.chmod(folder, SHARED_DIR_MODE)
        for name in names:
            full = os.path.join(folder, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
                continue
            os.chown(full, -1, gid, follow_symlinks=False)
            if name in keep:
                os.chmod(full, PRIVATE_FILE_MODE)
            else:
                os.chmod(full, SHARED_FILE_MODE | (0o110 if st.st_mode & stat.S_IXUSR else 0))
