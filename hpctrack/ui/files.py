"""A run's files for the dashboard: the listing, one file (checked to stay in the root), a log's tail.

No path outside the root is ever read. A requested path is relative to the run directory:
an absolute path, a ``..`` part, or a path whose every symlink resolved
(:func:`hpctrack.safefs.is_inside`) leaves the run directory or the root is refused the same
way as a file that does not exist. User files are never served as HTML (a page of the
dashboard's origin could read everything): images and plain text inline, anything else as
a download.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional

from ..errors import RunNotFoundError
from ..safefs import is_inside

__all__ = ["IMAGE_TYPES", "TEXT_SUFFIXES", "ServedFile", "file_kind", "list_run_files", "run_file", "log_tail",
           "MAX_LISTED_FILES", "DEFAULT_TAIL_BYTES"]  # fmt: skip

#: Served inline as images (SVG is not: it may hold scripts).
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}  # fmt: skip
#: Served inline as ``text/plain; charset=utf-8``.
TEXT_SUFFIXES = frozenset({".txt", ".log", ".out", ".err", ".yaml", ".yml", ".json", ".jsonl", ".csv", ".tsv",
                           ".md", ".rst", ".py", ".cfg", ".ini", ".toml", ".sh", ".diff", ".patch"})  # fmt: skip
#: A run directory listing stops here (a store's own files are not listed one by one).
MAX_LISTED_FILES = 5000
DEFAULT_TAIL_BYTES = 64 * 1024
#: Store directories listed as one entry, not file by file (a Zarr store holds thousands of chunks).
_STORE_DIRS = re.compile(r"^run(\.\d+)?\.zarr$")


def file_kind(name: str) -> str:
    """``image``, ``text`` or ``binary``, by the file's suffix."""
    suffix = PurePosixPath(name).suffix.lower()
    return "image" if suffix in IMAGE_TYPES else "text" if suffix in TEXT_SUFFIXES else "binary"


def list_run_files(run_dir: Path, root: Path) -> Dict[str, Any]:
    """``api/runs/<ref>/<job>/artifacts``: every file of the run directory, symlinks out of the root left out.

    Returns ``{"files": [{"path", "size", "kind", "checkpoint"}], "truncated": bool}``, sorted by path.
    """
    from ..checkpoint import CHECKPOINTS_DIR

    files: List[Dict[str, Any]] = []
    truncated = False
    if not run_dir.is_dir() or not is_inside(run_dir, root):
        return {"files": [], "truncated": False}
    for here, dirs, names in os.walk(run_dir, followlinks=False):
        base = Path(here)
        stores = [d for d in dirs if _STORE_DIRS.match(d)]
        files += [_entry(run_dir, base / d) for d in stores]  # one entry each, not walked
        dirs[:] = sorted(d for d in dirs if d not in stores)
        for name in sorted(names):
            path = base / name
            if path.is_symlink() and not (is_inside(path, run_dir) and is_inside(path, root)):
                continue  # a link leading out of the run: never listed, never served
            if len(files) >= MAX_LISTED_FILES:
                truncated = True
                break
            files.append(_entry(run_dir, path))
        if truncated:
            break
    for item in files:
        item["checkpoint"] = item["path"].startswith(CHECKPOINTS_DIR + "/")
    files.sort(key=lambda f: f["path"])
    return {"files": files, "truncated": truncated}


def _entry(run_dir: Path, path: Path) -> Dict[str, Any]:
    try:
        size = path.stat().st_size if not path.is_dir() else sum(
            f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())  # fmt: skip
    except OSError:
        size = None
    rel = path.relative_to(run_dir).as_posix()
    return {"path": rel + ("/" if path.is_dir() else ""), "size": size,
            "kind": "store" if path.is_dir() else file_kind(path.name)}  # fmt: skip


@dataclass(frozen=True)
class ServedFile:
    """A file to send: its real path, content type and whether it is a download."""

    path: Path
    media_type: str
    attachment: bool
    filename: str


def run_file(run_dir: Path, root: Path, rel: str, *, download: bool = False) -> ServedFile:
    """The file ``rel`` of the run directory, as it may be served.

    Raises
    ------
    RunNotFoundError
        No such regular file inside both the run directory and the root: ``rel`` is empty,
        absolute, has a ``..`` part, or a symlink on the way leads out (all answered 404).
    """
    parts = PurePosixPath(rel).parts
    if not rel or "\x00" in rel or rel.startswith(("/", "\\")) or ".." in parts or ".." in rel.split("\\"):
        raise RunNotFoundError(f"no file {rel!r} in the run (paths are relative to the run directory)")
    path = run_dir.joinpath(*parts)
    real = Path(os.path.realpath(path))
    if not (is_inside(real, run_dir) and is_inside(real, root)) or not real.is_file():
        raise RunNotFoundError(f"no file {rel!r} in the run")
    kind = file_kind(path.name)
    if download or kind == "binary":
        return ServedFile(real, "application/octet-stream", True, path.name)
    media = IMAGE_TYPES[path.suffix.lower()] if kind == "image" else "text/plain; charset=utf-8"
    return ServedFile(real, media, False, path.name)


def log_tail(path: Optional[str], root: Path, tail_bytes: int = DEFAULT_TAIL_BYTES) -> Dict[str, Any]:
    """``api/runs/<ref>/<job>/log``: the last ``tail_bytes`` of a job's log file (recorded in the manifest).

    Raises
    ------
    RunNotFoundError
        No log recorded (the job has not started), or the file is gone or outside the root.
    """
    if not path:
        raise RunNotFoundError("no log recorded for this job yet (it has not started)")
    real = os.path.realpath(path)
    if not is_inside(real, root):
        raise RunNotFoundError(f"log {path} is outside the root: not served")
    try:
        # O_NONBLOCK: opening a FIFO would wait for a writer; a regular file reads as without it
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise RunNotFoundError(f"log {path}: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RunNotFoundError(f"log {path} is not a regular file: not served")
        size = info.st_size
        start = max(0, size - tail_bytes)
        fh.seek(start)
        data = fh.read(size - start)
    if start:  # the first line is cut: start at the next whole one
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else data
    return {"path": path, "text": data.decode("utf-8", errors="replace"), "truncated": start > 0, "size": size}
