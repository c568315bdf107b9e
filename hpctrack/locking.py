"""Short critical sections on shared files, and atomic whole-file writes.

Locks are ``filelock.FileLock`` (``flock``): the kernel releases them when the
holder dies, even by SIGKILL, so a crashed writer never leaves a stale lock on a
local or NFSv4 filesystem. The holder writes its host, pid and time into the
lock file so a timeout can name who holds it. Locks are held for one short
update, never for the life of a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Iterator, Union

from .errors import LockTimeout

__all__ = ["lock", "atomic_write", "DEFAULT_LOCK_TIMEOUT_S"]

#: Bounded wait for one short update; long enough for a slow shared filesystem.
DEFAULT_LOCK_TIMEOUT_S = 60.0

PathLike = Union[str, "os.PathLike[str]"]


def _holder_text() -> str:
    return json.dumps(
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "job_id": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
            "time": time.time(),
        }
    )


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "unknown holder"
    return f"held by {text}" if text else "unknown holder"


@contextlib.contextmanager
def lock(path: PathLike, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive lock ``path`` for the duration of the ``with`` block.

    Raises
    ------
    LockTimeout
        Not acquired within ``timeout_s``; the message names the lock and the
        holder recorded in it.
    """
    import filelock

    lock_path = Path(path)
    flock = filelock.FileLock(str(lock_path), timeout=timeout_s, thread_local=False)
    try:
        flock.acquire()
    except filelock.Timeout as err:
        raise LockTimeout(
            f"could not lock {lock_path} within {timeout_s:g} s ({_read_holder(lock_path)}); "
            "if that process is gone, delete the lock file"
        ) from err
    try:
        with contextlib.suppress(OSError):
            with open(lock_path, "w") as fh:
                fh.write(_holder_text())
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(lock_path, "w"):
                pass
        flock.release()


def atomic_write(path: PathLike, data: Union[str, bytes]) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half.

    Writes a uniquely named temporary file next to ``path``, fsyncs it, then
    ``os.replace``-s it over the target (never remove-then-rename).
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
