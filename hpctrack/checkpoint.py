"""Checkpoints of a run: numbered directories ``runs/<i>/checkpoints/<seq>/``, each complete or absent.

``checkpoint.json`` in each (``format_version`` 2) names every file of the
checkpoint with its size and sha256, taken when it was written, so a reader
(``hpctrack verify``) can tell a whole checkpoint from one damaged since.
Checkpoints written before (no ``files``) still load.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

__all__ = ["Checkpoint", "Checkpoints", "CHECKPOINTS_DIR", "CHECKPOINT_STATE", "CHECKPOINT_META",
           "CHECKPOINT_VERSION"]

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_STATE = "state.pkl"
CHECKPOINT_META = "checkpoint.json"
#: Version of ``checkpoint.json``: 2 adds ``files`` (1 had none, and no ``format_version``).
CHECKPOINT_VERSION = 2


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """One saved checkpoint: a directory ``checkpoints/<seq>/`` of the run."""

    path: Path
    seq: int
    step: int
    attempt: int
    time: float
    has_state: bool
    #: relative path -> {"size", "sha256"} of every file, as written; None for a checkpoint from before
    files: Optional[Dict[str, Dict[str, Any]]] = None

    def load(self) -> Any:
        """The saved state object (None when the checkpoint holds files only)."""
        if not self.has_state:
            return None
        with open(self.path / CHECKPOINT_STATE, "rb") as fh:
            return pickle.load(fh)

    def describe(self) -> Dict[str, Any]:
        return {"seq": self.seq, "step": self.step, "attempt": self.attempt, "time": self.time,
                "path": f"{CHECKPOINTS_DIR}/{self.path.name}"}  # fmt: skip

    def problems(self) -> List[str]:
        """What differs from when it was written: missing files, other sizes or contents (one line each).

        Empty for a whole checkpoint, and for one from before the ``files`` map (nothing to check against).
        """
        out = []
        for rel, expected in sorted((self.files or {}).items()):
            path = self.path / rel
            try:
                size = path.stat().st_size
            except OSError:
                out.append(f"{path}: missing")
                continue
            if size != expected.get("size"):
                out.append(f"{path}: {size} bytes, {expected.get('size')} when written")
            elif _sha256(str(path)) != expected.get("sha256"):
                out.append(f"{path}: content differs from when it was written (sha256)")
        return out


class Checkpoints:
    """The checkpoints of one run: numbered directories, each written under a temporary name and renamed.

    A directory only ever appears under its final name complete (``os.rename``
    of a directory is atomic), so the newest numbered one is always whole,
    whatever instant the writer was killed at.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def all(self) -> List[Checkpoint]:
        if not self.directory.is_dir():
            return []
        out = []
        for entry in os.scandir(self.directory):
            if not entry.name.isdigit() or entry.is_symlink():
                continue  # a link is not a checkpoint hpctrack wrote: never restored from, never removed
            try:
                with open(os.path.join(entry.path, CHECKPOINT_META)) as fh:
                    meta = json.load(fh)
            except (OSError, ValueError):
                continue  # not a checkpoint (a user's stray directory): ignored
            files = meta.get("files")
            out.append(Checkpoint(path=Path(entry.path), seq=int(entry.name), step=int(meta["step"]),
                                  attempt=int(meta.get("attempt", 1)), time=float(meta.get("time", 0.0)),
                                  has_state=bool(meta.get("state")),
                                  files=files if isinstance(files, dict) else None))  # fmt: skip
        return sorted(out, key=lambda c: c.seq)

    def latest(self) -> Optional[Checkpoint]:
        found = self.all()
        return found[-1] if found else None

    @contextlib.contextmanager
    def writing(self, *, step: int, attempt: int, state: Any, keep: int) -> Iterator[Path]:
        import uuid

        from .locking import fsync_dir

        from .safefs import check_inside
        from .safefs import rmtree as safe_rmtree

        base = self.directory.parent  # the run directory: checkpoints/ planted as a link out of it is refused
        check_inside(self.directory, base, "write checkpoints in")
        self.directory.mkdir(parents=True, exist_ok=True)
        check_inside(self.directory, base, "write checkpoints in")

        def remove(path: str) -> None:
            with contextlib.suppress(OSError):  # UnsafePathError is not an OSError: a planted link is said
                safe_rmtree(path, self.directory)

        for entry in os.scandir(self.directory):  # left by a writer killed mid-checkpoint
            if entry.name.startswith(".tmp-") and not entry.is_symlink():
                remove(entry.path)
        # After every numbered name, a checkpoint's or not (a planted link, a stray folder): never onto one.
        seq = max((int(e.name) for e in os.scandir(self.directory) if e.name.isdigit()), default=0) + 1
        tmp = self.directory / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            if state is not None:
                with open(tmp / CHECKPOINT_STATE, "wb") as fh:
                    pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
            yield tmp
            files: Dict[str, Dict[str, Any]] = {}
            for root, _, names in os.walk(tmp):  # what each file is, for whoever checks it later
                for name in names:
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, tmp).replace(os.sep, "/")
                    files[rel] = {"size": os.path.getsize(full), "sha256": _sha256(full)}
            meta = {"format_version": CHECKPOINT_VERSION, "step": step, "attempt": attempt, "time": time.time(),
                    "state": state is not None, "files": files}  # fmt: skip
            with open(tmp / CHECKPOINT_META, "w") as fh:
                json.dump(meta, fh)
            for root, _, names in os.walk(tmp):  # every byte on disk before the name appears
                for name in names:
                    fd = os.open(os.path.join(root, name), os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            os.rename(tmp, self.directory / f"{seq:06d}")
            fsync_dir(self.directory)
        except BaseException:
            remove(str(tmp))
            raise
        for old in self.all()[:-keep]:
            remove(str(old.path))
