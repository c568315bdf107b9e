"""A version's payload: staged outside any lock, read completely, hashed, made read-only, claimed by a rename.

Staging copies the artifact into ``.staging/<unique>/files/`` while computing each file's
sha256 and size from the bytes read (the manifest), fsyncs every file and directory, writes
``version.json`` whole, and removes every write bit. The claim is then one ``rename`` of the
staged directory to ``versions/<n>``: renaming a directory onto a name that exists (and is
not an empty directory) fails with EEXIST or ENOTEMPTY, so of two registrations that picked the
same number exactly one wins and the other retries with the next. No lock is held while copying.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

from .._faults import pause_point
from ..errors import ConfigError, StoreError, UnsafePathError
from ..locking import fsync_dir, process_owner
from ._layout import OWNER_FILE, PAYLOAD_DIR, VERSION_FILE, Layout, json_bytes, unique_stem

__all__ = [
    "Source",
    "check_source",
    "stage",
    "claim",
    "payload_problems",
    "make_read_only",
    "make_writable",
    "copy_verified",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 20
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True)
class Source:
    """What to register: a file or directory that resolves inside ``base`` (the run's directory)."""

    path: Path
    base: Path
    #: Its name under the version's ``files/``.
    name: str


def _refuse_link(path: Path, source: Source, action: str = "register") -> None:
    if action == "download":  # a link in a committed version was planted there: never copy what it names
        raise UnsafePathError(f"refusing to download {path}: it is a symlink (to {os.readlink(path)}) planted in the "
                              "registry; nothing was downloaded; run `hpctrack models verify`")  # fmt: skip
    raise UnsafePathError(f"refusing to register {path}: it is a symlink (to {os.readlink(path)}); a version holds "
                          "regular files only; give --artifact a file or subdirectory of the run that holds no "
                          "symlinks")  # fmt: skip


def _not_regular(path: Path) -> ConfigError:
    return ConfigError(f"{path} is not a regular file (a device, pipe or socket); register files only")


def check_source(source: Source) -> None:
    """Refuse, before anything is written, a source holding a symlink or anything but files and directories.

    Only ``lstat`` is used: a FIFO is never opened (opening one blocks until a writer comes). The
    copy checks each file again (:func:`_copy_file`), as the run may change in between.
    """
    st = os.lstat(source.path)
    if stat.S_ISLNK(st.st_mode):
        _refuse_link(source.path, source)
    if stat.S_ISREG(st.st_mode):
        return
    if not stat.S_ISDIR(st.st_mode):
        raise _not_regular(source.path)
    for folder, dirs, names in os.walk(source.path):
        for name in sorted(dirs + names):
            full = Path(folder) / name
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                _refuse_link(full, source)
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _not_regular(full)


def _open_regular(src: Path) -> int:
    """``src`` opened for reading, never through a link, never blocking on a FIFO: O_NONBLOCK on the
    open (a FIFO without a writer would block there), cleared once fstat says it is a regular file."""
    import fcntl

    fd = os.open(src, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(src)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy_file(src: Path, dst: Path, source: Source, action: str = "register") -> Dict[str, Any]:
    """Copy one regular file without following links; its size and sha256 from the bytes read."""
    try:
        fd_in = _open_regular(src)
    except OSError as err:
        if err.errno == errno.ELOOP:
            _refuse_link(src, source, action)
        raise ConfigError(f"cannot read {src}: {err.strerror}; register a file that exists and is readable") from err
    try:
        before = os.fstat(fd_in)
        digest, size = hashlib.sha256(), 0
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)  # the umask decides who reads
        try:
            while True:
                chunk = os.read(fd_in, _CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
            os.fsync(fd_out)
        finally:
            os.close(fd_out)
        after = os.fstat(fd_in)
    finally:
        os.close(fd_in)
    if size != before.st_size or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise StoreError(f"{src} changed while it was copied ({before.st_size} bytes at the start, {size} read); "
                         "register it again once the run has finished writing it")  # fmt: skip
    return {"size": size, "sha256": digest.hexdigest()}


def _copy_payload(source: Source, target: Path) -> Dict[str, Dict[str, Any]]:
    """Copy ``source`` to ``target/<name>``; the manifest: relative path -> size and sha256."""
    files: Dict[str, Dict[str, Any]] = {}
    st = os.lstat(source.path)
    if stat.S_ISLNK(st.st_mode):
        _refuse_link(source.path, source)
    if not stat.S_ISDIR(st.st_mode):
        files[source.name] = _copy_file(source.path, target / source.name, source)
        pause_point("register:staging")
        return files
    os.mkdir(target / source.name)
    for folder, dirs, names in os.walk(source.path):  # never follows links to directories
        rel = Path(folder).relative_to(source.path)
        for name in sorted(dirs):
            if os.path.islink(os.path.join(folder, name)):
                _refuse_link(Path(folder) / name, source)
            os.mkdir(target / source.name / rel / name)
        for name in sorted(names):
            key = (Path(source.name) / rel / name).as_posix()
            files[key] = _copy_file(Path(folder) / name, target / key, source)
            pause_point("register:staging")
    if not files:
        raise ConfigError(f"{source.path} is an empty directory: nothing to register")
    return files


def _fsync_tree(path: Path) -> None:
    for folder, _dirs, _names in os.walk(path, topdown=False):
        fsync_dir(folder)


def make_read_only(path: Path, *, top: bool = True) -> None:
    """Remove every write bit under ``path`` (links left alone); ``top``: ``path`` itself too."""
    for folder, dirs, names in os.walk(path, topdown=False):
        for name in names + dirs:
            full = os.path.join(folder, name)
            st = os.lstat(full)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & _WRITE_BITS:
                os.chmod(full, stat.S_IMODE(st.st_mode) & ~_WRITE_BITS)
    if top:
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & ~_WRITE_BITS)


def make_writable(path: Path) -> None:
    """Give this user write permission on ``path`` and every directory under it (before removing them)."""
    for folder, dirs, _names in os.walk(path):
        for name in [*dirs, ""]:
            full = os.path.join(folder, name) if name else folder
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(full, stat.S_IMODE(st.st_mode) | stat.S_IWUSR | stat.S_IXUSR)


def stage(layout: Layout, model: str, source: Source, record: Dict[str, Any]) -> Tuple[Path, Dict[str, Any]]:
    """Stage a version of ``model``: payload, manifest, ``version.json``; every file fsynced and read-only.

    Returns the staging directory, ready for :func:`claim`, and its register event (made once the
    payload is copied, so its time is the claim's, not the start of a long copy). Holds no lock. A
    failure removes what it staged; a process killed here leaves a directory that ``models gc``
    removes once it is gone.
    """
    from ..safefs import rmtree
    from ._state import new_event

    staging = layout.mkdir(model, ".staging")
    folder = staging / unique_stem()
    os.mkdir(folder)
    try:
        owner = {**process_owner(), "created": time.time(), "format_version": record["format_version"]}
        (folder / OWNER_FILE).write_bytes(json_bytes(owner))
        os.mkdir(folder / PAYLOAD_DIR)
        files = _copy_payload(source, folder / PAYLOAD_DIR)
        event = new_event(model, "register", reason=record.get("description"))
        data = {**record, "payload": source.name, "files": files, "size": sum(int(f["size"]) for f in files.values()),
                "created": event["time"], "by": event["by"], "host": event["host"], "job": event["job"],
                "event": event}  # fmt: skip
        fd = os.open(folder / VERSION_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(json_bytes(data))
            fh.flush()
            os.fsync(fh.fileno())
        make_read_only(folder, top=False)  # the top stays writable: moving it to versions/ updates its '..'
        _fsync_tree(folder)
    except BaseException:
        make_writable(folder)
        rmtree(folder, layout.base)
        raise
    return folder, event


def claim(layout: Layout, model: str, staged: Path) -> int:
    """Rename ``staged`` to ``versions/<n>``, the next free number; returns ``n``.

    A number another registration took first (EEXIST, ENOTEMPTY; a stray file or link: ENOTDIR)
    is skipped: the loop tries the next one, so no number is ever given twice.
    """
    versions = layout.mkdir(model, "versions")
    number = max(layout.version_numbers(model), default=0) + 1
    while True:
        pause_point("register:claim")
        try:
            os.rename(staged, versions / str(number))
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                number += 1
                continue
            raise
        break
    fsync_dir(versions)
    pause_point("register:claimed")
    make_read_only(versions / str(number))
    return number


def payload_problems(
    version_dir: Path, files: Dict[str, Any], *, contents: bool = True, modes: bool = True
) -> List[str]:
    """What differs between the payload on disk and its manifest (one line each); empty when whole.

    Every file is read in full (sha256); links, missing files, other sizes, other contents and
    files the manifest does not name are problems, and so are modes that let the version be written.
    ``contents=False``: no file read (a quick check that cannot see a changed byte).
    ``modes=False``: no mode checked (a version killed right after its claim is still writable
    until ``gc``, and is whole: fit for reading).
    """
    from ..safefs import sha256_file
    from ._layout import first_link, link_problem

    out: List[str] = []
    top = version_dir / PAYLOAD_DIR
    planted = first_link(top, version_dir)
    if planted is not None:  # nothing under a planted link is read: it may lead anywhere
        return [link_problem(planted)]
    for rel, expected in sorted(files.items()):
        path = top / rel
        planted = first_link(path.parent, top)
        if planted is not None:
            out.append(link_problem(planted))
            continue
        try:
            st = os.lstat(path)
        except OSError:
            out.append(f"{path}: missing")
            continue
        if not stat.S_ISREG(st.st_mode):
            out.append(f"{path}: not a regular file (a symlink or directory planted in its place)")
        elif st.st_size != expected.get("size"):
            out.append(f"{path}: {st.st_size} bytes, {expected.get('size')} when registered")
        elif contents and sha256_file(path) != expected.get("sha256"):
            out.append(f"{path}: content differs from when it was registered (sha256)")
    known = set(files)
    for folder, dirs, names in os.walk(top):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            rel = (Path(folder) / name).relative_to(top).as_posix()
            if rel not in known:
                out.append(f"{top / rel}: not part of the version (added after registration)")
    if not modes:
        return out
    for folder, dirs, names in os.walk(version_dir):
        for name in ["", *dirs, *names]:
            full = os.path.join(folder, name) if name else folder
            st = os.lstat(full)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & _WRITE_BITS:
                out.append(f"{full}: writable, but a committed version is read-only (`hpctrack models gc` fixes it)")
    return out


def copy_verified(version_dir: Path, files: Dict[str, Any], payload: str, dest: Path) -> Path:
    """Copy the payload to ``dest/<payload>``, checking every byte against the manifest on the way.

    Written under a temporary name in ``dest`` and renamed when whole and verified; an existing
    ``dest/<payload>`` is never overwritten; on a failure, the directories this call made are removed.
    """
    from ._layout import first_link, link_problem

    top = version_dir / PAYLOAD_DIR
    for rel in sorted(files):
        planted = first_link((top / rel).parent, version_dir)
        if planted is not None:
            raise UnsafePathError(f"refusing to download {top / rel}: {link_problem(planted)}; nothing was downloaded; "
                                  "run `hpctrack models verify`")  # fmt: skip
    target = dest / payload
    if os.path.lexists(target):
        raise ConfigError(f"{target} already exists; download into another directory or remove it first")
    made = [p for p in (dest, *dest.parents) if not os.path.lexists(p)]  # what a failure removes again
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return _copy_into(top, files, payload, dest)
    except BaseException:
        for folder in made:  # deepest first; only directories this call made, and only while empty
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise


def _copy_into(top: Path, files: Dict[str, Any], payload: str, dest: Path) -> Path:
    from ..safefs import rmtree

    target = dest / payload
    tmp = dest / f".{payload}.{unique_stem()}.tmp"
    source = Source(top, top, payload)
    os.mkdir(tmp, 0o700)
    try:
        for rel, expected in sorted(files.items()):
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            got = _copy_file(top / rel, out, source, "download")
            if got != {"size": expected.get("size"), "sha256": expected.get("sha256")}:
                raise StoreError(f"{top / rel} differs from when it was registered (size or sha256); nothing was "
                                 "downloaded; run `hpctrack models verify`")  # fmt: skip
        os.rename(tmp / payload, target)
    finally:
        if tmp.exists():
            rmtree(tmp, dest)
    return target
