"""Short critical sections on shared files, and atomic whole-file writes.

Lock type: ``filelock.SoftFileLease``, an *existence* lock. The lock file is
created with ``O_CREAT | O_EXCL`` and deleted on release. Exclusive creation
is coherent across the nodes of NFS (v3 and later), Lustre and GPFS, unlike
``flock``, which failed to exclude processes on different nodes of a GPFS
mount (filelock#389) and is node-local on Lustre mounted without ``-o flock``.

A soft lock survives its holder's death, so the lock file records who holds
it: host, pid (with the process start time), the SLURM or local job id, and a
heartbeat that the holder refreshes from a thread while it holds the lock.
A contender breaks a lock only when its holder is provably gone (same host,
pid dead) or when its heartbeat is older than the TTL (``HPCTRACK_LOCK_TTL_S``,
default 60 s): a node that died cannot be probed, so only the TTL frees its
locks. Every process that contends for a lock should use the same TTL; a lock
published under another TTL is broken once its holder is provably gone or its
heartbeat is older than the larger of the two. Locks are held for one short
update, never for the life of a run, and a wait is bounded and ends in
:class:`LockTimeout`, which names the lock and its holder.

Fencing: a holder that stalls past the TTL (SIGSTOP, a suspended job, a frozen
filesystem) loses its lock to a contender but does not know it. Every commit
made under a lock therefore asks the :class:`LockGuard` that :func:`lock`
yields, right before its ``os.replace``, whether the lock is still its own
(same lock file, same claim token) and aborts with :class:`StoreError`
otherwise. The check and the replace are two steps, so a holder stalled
exactly between them can still commit; the window is a few microseconds
instead of the whole critical section.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

from .errors import LockTimeout, RunBusyError, StoreError

__all__ = ["lock", "LockGuard", "atomic_write", "describe_holder", "lock_ttl_s", "DEFAULT_LOCK_TIMEOUT_S",
           "DEFAULT_LOCK_TTL_S", "WRITER_LEASE_FILE", "WriterLease", "WriterInfo", "writer_state", "process_owner",
           "owner_is_gone"]  # fmt: skip

#: Bounded wait for one short update; long enough for a slow shared filesystem.
DEFAULT_LOCK_TIMEOUT_S = 60.0
#: A lock whose heartbeat is older than this is free (its holder's node is presumed dead).
DEFAULT_LOCK_TTL_S = 60.0
LOCK_TTL_ENV = "HPCTRACK_LOCK_TTL_S"

PathLike = Union[str, "os.PathLike[str]"]
_lease_class: Any = None


def lock_ttl_s() -> float:
    """The lock TTL in seconds: ``$HPCTRACK_LOCK_TTL_S`` or :data:`DEFAULT_LOCK_TTL_S`."""
    from . import settings

    return float(settings.get(LOCK_TTL_ENV))


def _lease() -> Any:
    """``SoftFileLease`` whose marker also names the holder's job (unknown keys are ignored by readers),
    and which breaks a stale lock published under another TTL instead of refusing it forever."""
    global _lease_class
    if _lease_class is None:
        import filelock
        from filelock._identity import owner_is_stale  # private: the lease's own liveness rule
        from filelock._util import break_lock_file  # private: its race-free break

        class _JobLease(filelock.SoftFileLease):
            # filelock declares the hook a staticmethod; an instance method is called the same way
            def _write_lock_info(self, fd: int) -> None:  # type: ignore[override]
                super()._write_lock_info(fd)
                from .settings import scheduler_job_id

                job = scheduler_job_id()
                if job:
                    os.write(fd, f"job={job}\n".encode())

            def _try_break_stale_lock(self) -> None:
                peer = self._read_peer()
                if peer is not None and peer[0].mode == "lease" and peer[0].lease_duration != self.lease_duration:
                    # filelock refuses such a lock for good; a dead holder, or one silent for longer
                    # than either TTL, cannot be in its critical section any more.
                    owner, mtime, ino = peer
                    with contextlib.suppress(OSError):
                        if owner_is_stale(owner.pid, owner.hostname, owner.start) or (
                            time.time() - mtime >= max(float(owner.lease_duration or 0), self.lease_duration)
                        ):
                            break_lock_file(self.lock_file, mtime, ino)
                    return
                super()._try_break_stale_lock()

        _lease_class = _JobLease
    return _lease_class


def describe_holder(path: PathLike) -> str:
    """Who holds the lock ``path``, from its marker: host, pid, job and heartbeat age."""
    lock_path = Path(path)
    try:
        text = lock_path.read_text()
        age = time.time() - lock_path.stat().st_mtime
    except OSError:
        return "no holder any more"
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if "pid" not in fields:
        return "an unreadable holder record"
    job = f", job {fields['job']}" if "job" in fields else ""
    ttl = ""
    with contextlib.suppress(ValueError, KeyError):
        if float(fields["duration"]) != lock_ttl_s():
            ttl = f", under {LOCK_TTL_ENV}={float(fields['duration']):g} (this process uses {lock_ttl_s():g})"
    return f"held by pid {fields['pid']} on {fields.get('host', '?')}{job}, heartbeat {age:.0f} s ago{ttl}"


class LockGuard:
    """What :func:`lock` yields: ask :meth:`check` right before each commit made under the lock."""

    def __init__(self, path: PathLike, token: Optional[str], lease: Any) -> None:
        self.path = Path(path)
        self._token = token
        self._lease = lease
        try:
            st = os.lstat(self.path)
            self._identity: Optional[tuple] = (st.st_dev, st.st_ino)
        except OSError:
            self._identity = None

    @property
    def held(self) -> bool:
        """The lock file is still this holder's: same file, same claim token, no compromise seen."""
        if self._token is None or self._identity is None or self._lease.compromise is not None:
            return False
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) != self._identity:
                return False
            with open(self.path, "rb") as fh:
                text = fh.read(4096).decode("utf-8", "replace")
        except OSError:
            return False
        return f"token={self._token}\n" in text

    def check(self) -> None:
        """Raise :class:`StoreError` when another process took the lock over since it was acquired.

        Raises
        ------
        StoreError
            This holder stalled past the TTL and a contender broke its lock: the
            update must not be committed (the other holder's may already be).
        """
        if not self.held:
            raise StoreError(f"lock {self.path} was taken over by another process while this one held it "
                             f"(it stalled for more than {LOCK_TTL_ENV}={lock_ttl_s():g} s); "
                             "its update was not committed")  # fmt: skip


@contextlib.contextmanager
def lock(path: PathLike, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[LockGuard]:
    """Hold the exclusive lock ``path`` for the duration of the ``with`` block.

    Yields a :class:`LockGuard`: call its ``check()`` right before each commit
    (``os.replace``) made under the lock, so a holder that stalled past the TTL
    never commits over the update of the process that took the lock from it.

    Raises
    ------
    LockTimeout
        Not acquired within ``timeout_s``; the message names the lock and its holder.
    StoreError
        The lock is held under a different TTL (``HPCTRACK_LOCK_TTL_S`` differs between processes).
    """
    import filelock

    ttl = lock_ttl_s()
    lease = _lease()(str(path), lease_duration=ttl, timeout=timeout_s, thread_local=False)
    try:
        lease.acquire()
    except filelock.Timeout as err:
        raise LockTimeout(
            f"could not lock {path} within {timeout_s:g} s ({describe_holder(path)}); it frees itself when "
            f"that process ends or after {ttl:g} s without a heartbeat"
        ) from err
    except filelock.LeaseSettingsMismatch as err:
        raise StoreError(
            f"lock {path} is held under another TTL: every process must use the same {LOCK_TTL_ENV} ({err})"
        ) from err
    except OSError as err:  # the lock file itself could not be created
        from .store.base import disk_full

        raise disk_full(err, Path(path).parent, Path(path)) or err  # noqa: B904 - err itself, or its DiskFullError
    try:
        yield LockGuard(path, lease.token, lease)
    finally:
        lease.release()


def atomic_write(path: PathLike, data: Union[str, bytes], guard: Optional[LockGuard] = None) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half.

    Writes a uniquely named temporary file next to ``path``, fsyncs it, then
    ``os.replace``-s it over the target (never remove-then-rename): a symlink at
    ``path`` is replaced, never written through. A file rewritten keeps its
    mode; none is ever group- or world-writable, whatever the umask. With ``guard`` (from :func:`lock`), the
    lock is checked right before the replace.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        # Exclusive and no-follow: a link planted under the temporary name is never written through.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with open(fd, mode) as fh:
            st_mode = os.fstat(fd).st_mode & 0o7777
            with contextlib.suppress(OSError):  # a rewrite keeps the file's mode (0640 in a shared sweep)
                existing = os.lstat(target)
                if stat.S_ISREG(existing.st_mode):
                    st_mode = existing.st_mode & 0o777
            os.fchmod(fd, st_mode & ~0o022)  # never group- or world-writable, whatever the umask
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if guard is not None:
            guard.check()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def fsync_dir(path: PathLike) -> None:
    """Make a rename inside directory ``path`` durable (where the filesystem allows fsync on a directory)."""
    import errno

    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:  # some filesystems cannot fsync a directory: renames are synchronous there
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


# -- the live writer of a run ---------------------------------------------------------------

#: The lease file naming a run's live writer, in its run directory.
WRITER_LEASE_FILE = "writer.lease"


@dataclass(frozen=True)
class WriterInfo:
    """Who holds a run's writer lease, as its lease file says."""

    host: str
    pid: int
    job_id: Optional[str]
    heartbeat_age_s: float
    #: True/False when provable from here (same host: the process is or is not alive); None otherwise
    #: (another host: only the heartbeat age speaks, against the TTL).
    alive: Optional[bool]

    @property
    def presumed_alive(self) -> bool:
        """Alive, or on another host with a heartbeat younger than the lock TTL."""
        return self.alive if self.alive is not None else self.heartbeat_age_s < lock_ttl_s()


class WriterLease:
    """The lease that makes a process the one live writer of a run, for one attempt.

    Held from before the attempt's first write until it ends; a thread refreshes
    its heartbeat every third of the TTL. A second writer of the same run (a
    resume or requeue while the first attempt still runs) fails to acquire it
    with :class:`RunBusyError` naming the holder. A holder that died leaves a
    lease that is broken at once on its own host, or after ``HPCTRACK_LOCK_TTL_S``
    without a heartbeat from another host.
    """

    def __init__(self, run_dir: PathLike) -> None:
        self.path = Path(run_dir) / WRITER_LEASE_FILE
        self._lease: Any = None
        self._guard: Optional[LockGuard] = None

    def acquire(self, timeout_s: float = 5.0) -> "WriterLease":
        """Become the run's writer, or raise :class:`RunBusyError` after ``timeout_s``."""
        import filelock

        ttl = lock_ttl_s()
        lease = _lease()(str(self.path), lease_duration=ttl, timeout=timeout_s, thread_local=False)
        try:
            lease.acquire()
        except filelock.Timeout:
            raise RunBusyError(f"run {self.path.parent} already has a live writer ({describe_holder(self.path)}); "
                               "wait for it to end or cancel it first") from None  # fmt: skip
        except filelock.LeaseSettingsMismatch as err:
            raise StoreError(f"writer lease {self.path} is held under another TTL: every process must use the "
                             f"same {LOCK_TTL_ENV} ({err})") from err  # fmt: skip
        except OSError as err:  # the lease file itself could not be created
            from .store.base import disk_full

            raise disk_full(err, self.path.parent, self.path) or err  # noqa: B904 - err itself, or its DiskFullError
        self._lease = lease
        self._guard = LockGuard(self.path, lease.token, lease)
        return self

    @property
    def held(self) -> bool:
        """Acquired, not released, and not taken over by another process since.

        Reads the lease file (its inode and claim token): a holder that was stopped
        past the TTL learns at once that another process took the run over, without
        waiting for its heartbeat thread to notice.
        """
        return (self._lease is not None and self._lease.is_locked and self._guard is not None
                and self._guard.held)  # fmt: skip

    def release(self) -> None:
        """Stop being the writer (no-op when not held)."""
        lease, self._lease, self._guard = self._lease, None, None
        if lease is not None:
            with contextlib.suppress(OSError):
                lease.release()


def writer_state(run_dir: PathLike) -> Optional[WriterInfo]:
    """Who holds the writer lease of the run in ``run_dir``; None when nobody does."""
    from filelock._identity import host_name, owner_is_stale  # private: the lease's own liveness rule

    path = Path(run_dir) / WRITER_LEASE_FILE
    try:
        text = path.read_text()
        age = max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        pid, host = int(fields["pid"]), fields["host"]
    except (KeyError, ValueError):
        return None
    start = int(fields["start"]) if fields.get("start", "").isdigit() else None
    alive: Optional[bool] = None
    if host == host_name():
        alive = not owner_is_stale(pid, host, start)
    return WriterInfo(host=host, pid=pid, job_id=fields.get("job"), heartbeat_age_s=age, alive=alive)


def process_owner() -> Dict[str, Any]:
    """This process as :func:`owner_is_gone` can later judge it: host, pid and the pid's start token."""
    from filelock._identity import host_name, process_start_token  # private: the lease's own liveness rule

    pid = os.getpid()
    return {"host": host_name(), "pid": pid, "start": process_start_token(pid)}


def owner_is_gone(owner: Any) -> bool:
    """Whether the process :func:`process_owner` described is provably gone (same host, pid dead or recycled).

    A process on another host cannot be probed: False (only an age can speak for it).
    """
    from filelock._identity import owner_is_stale  # private: the lease's own liveness rule

    try:
        pid, host = int(owner["pid"]), str(owner["host"])
        start = owner.get("start")
        return bool(owner_is_stale(pid, host, int(start) if start is not None else None))
    except (KeyError, TypeError, ValueError, AttributeError, OSError):
        return False
