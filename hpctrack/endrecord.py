"""A run's end record: how its latest attempt ended, written even when the store cannot be.

``runs/<i>/end.json`` is reserved (written full of spaces) when an attempt
starts, so that recording the end later overwrites blocks the file already
has: on a full disk or an exceeded quota, where the run's store can no longer
be written, the run's outcome and its one-line reason still reach ``hpctrack
status``. The store remains the authority when it is readable and says the
run ended; the end record speaks for runs whose store is missing, unreadable,
or still says "running" after the job ended.

The record is one JSON object padded with spaces to :data:`RESERVED_BYTES`:
``{"format_version": 1, "attempt": 2, "state": "failed", "error": "...",
"time": 1764400000.0}``. A reserved file that was never written reads as None.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

__all__ = ["END_FILE", "FORMAT_VERSION", "RESERVED_BYTES", "reserve", "record", "read"]

END_FILE = "end.json"
FORMAT_VERSION = 1
#: Bytes reserved per run; an error line is cut to fit.
RESERVED_BYTES = 4096

PathLike = Union[str, "os.PathLike[str]"]


def reserve(run_dir: PathLike) -> None:
    """Create (or blank) ``run_dir/end.json`` at its full size, on disk, before the attempt runs.

    Blanking also clears the previous attempt's record: until this attempt
    ends, it has none. Never follows a symlink planted in its place.
    """
    path = Path(run_dir) / END_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, b" " * RESERVED_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)


def record(
    run_dir: PathLike, *, attempt: int, state: str, error: Optional[str] = None, extra: Optional[Dict[str, Any]] = None
) -> bool:
    """Write the attempt's end into the reserved file, in place; returns False if it could not.

    Overwrites the reserved blocks without growing the file, so it works on a
    full disk. Never raises: the caller is already failing for another reason.
    """
    payload: Dict[str, Any] = {"format_version": FORMAT_VERSION, "attempt": attempt, "state": state,
                               "error": error, "time": time.time(), **(extra or {})}  # fmt: skip
    data = json.dumps(payload, allow_nan=False, default=str).encode()
    if len(data) > RESERVED_BYTES and error:
        over = len(data) - RESERVED_BYTES + 3
        payload["error"] = error[: max(0, len(error.encode()) - over)].rstrip() + "..."
        data = json.dumps(payload, default=str).encode()
    if len(data) > RESERVED_BYTES:
        return False
    path = Path(run_dir) / END_FILE
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        # In place: never grow the file (a full disk has no block to give it); pad what is left.
        os.pwrite(fd, data.ljust(size, b" "), 0)
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def read(run_dir: PathLike) -> Optional[Dict[str, Any]]:
    """The end record of the run in ``run_dir``; None when there is none or it was only reserved."""
    try:
        with open(Path(run_dir) / END_FILE, "rb") as fh:
            text = fh.read(RESERVED_BYTES * 2).strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("state"), str):
        return None
    if int(data.get("format_version", 0) or 0) > FORMAT_VERSION:
        return None  # a newer hpctrack's record: the store and the scheduler still answer
    return data
