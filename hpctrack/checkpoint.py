"""Checkpoints of a run: numbered directories ``runs/<i>/checkpoints/<seq>/``, each complete or absent.

``checkpoint.json`` in each (``format_version`` 2) names every file of the
checkpoint with its size and sha256, taken when it was written, so a reader
(``hpctrack verify``) can tell a whole checkpoint from one damaged since.
Checkpoints written before (no ``files``) still load.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union

from .errors import HpctrackError, StoreError
from .safefs import sha256_file

__all__ = [
    "Checkpoint",
    "Checkpoints",
    "RunCheckpoints",
    "CHECKPOINTS_DIR",
    "CHECKPOINT_STATE",
    "CHECKPOINT_META",
    "CHECKPOINT_VERSION",
]

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_STATE = "state.pkl"
CHECKPOINT_META = "checkpoint.json"
#: Version of ``checkpoint.json``: 2 adds ``files`` (1 had none, and no ``format_version``).
CHECKPOINT_VERSION = 2


@dataclass(frozen=True)
class Checkpoint:
    """One saved checkpoint: a directory ``checkpoints/<seq>/`` of the run."""

    #: The checkpoint's directory, ``<run dir>/checkpoints/<seq>``.
    path: Path
    #: Its number: 1, 2, ... in the order the run saved them.
    seq: int
    #: The step the run was at when it saved it.
    step: int
    #: The run attempt that saved it (2, 3, ... after requeues).
    attempt: int
    #: When it was saved, in seconds since the epoch.
    time: float
    #: It holds a pickled state object (:meth:`load`), not only files.
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
        """Its seq, step, attempt, time and path relative to the run directory, as JSON-ready values."""
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
            elif sha256_file(path) != expected.get("sha256"):
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
                    files[rel] = {"size": os.path.getsize(full), "sha256": sha256_file(full)}
            meta = {"format_version": CHECKPOINT_VERSION, "step": step, "attempt": attempt, "time": time.time(),
                    "state": state is not None, "files": files}  # fmt: skip
            with open(tmp / CHECKPOINT_META, "w") as meta_fh:
                json.dump(meta, meta_fh)
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


class RunCheckpoints:
    """The checkpoint methods of :class:`hpctrack.Run` (a mixin: the state it reads is the run's).

    Kept here, beside the storage they drive, because they change with it: how a
    checkpoint is written, which one a restart uses, and what a restart supersedes.
    """

    # Set by Run.__init__ / Run._begin; declared here for the methods below.
    _finished: bool
    _writes: bool
    _keep: int
    _last_step: int
    _next_step: int
    _restart_step: Optional[int]
    _attempts: List[Dict[str, Any]]
    _attempts_dirty: bool
    _checkpoints: "Checkpoints"
    _checkpoint_info: Optional[Dict[str, Any]]

    if TYPE_CHECKING:

        @property
        def run_id(self) -> Optional[str]: ...

        @property
        def attempt(self) -> int: ...

        def flush(self) -> None: ...

    def save_checkpoint(
        self,
        state: Any = None,
        *,
        step: Optional[int] = None,
        files: Sequence[Union[str, "os.PathLike[str]"]] = (),
        keep: Optional[int] = None,
    ) -> Path:
        """Save a checkpoint atomically and keep only the newest ``keep``; returns its directory.

        ``state`` is any picklable object (e.g. ``{"epoch": e, "model": model.state_dict()}``);
        ``files`` are copied in (files your framework wrote). ``step`` defaults to the last
        logged step: a restart from this checkpoint continues at ``step + 1`` and supersedes
        what a killed attempt logged after it. Metrics logged so far are flushed first, so a
        restart never finds a checkpoint newer than the metrics on disk. On a rank other
        than 0 nothing is saved (rank 0 saves the run's checkpoints).
        """
        with self.checkpoint(step=step, keep=keep, state=state) as directory:
            for item in files:
                source = Path(item)
                if source.is_dir():
                    shutil.copytree(source, directory / source.name)
                else:
                    shutil.copy2(source, directory / source.name)
        latest = self._checkpoints.latest()
        return latest.path if latest is not None else directory

    @contextlib.contextmanager
    def checkpoint(
        self, *, step: Optional[int] = None, keep: Optional[int] = None, state: Any = None
    ) -> Iterator[Path]:
        """A fresh directory to write a checkpoint's files into, committed when the block ends.

        ``with run.checkpoint() as d: torch.save(model.state_dict(), d / "model.pt")``.
        An exception in the block discards the directory; the previous checkpoint stays.
        On a rank other than 0 the directory is a temporary one, discarded.
        """
        if self._finished:
            raise HpctrackError(f"run {self.run_id} has ended; checkpoint inside the `with start_run(...)` block")
        if not self._writes:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="hpctrack-rank-checkpoint-") as tmp:
                yield Path(tmp)
            return
        step = self._last_step if step is None else operator.index(step)
        self.flush()  # the metrics a restart from this checkpoint relies on are on disk first
        with self._checkpoints.writing(
            step=step, attempt=self.attempt, state=state, keep=keep if keep is not None else self.checkpoint_keep
        ) as directory:
            yield directory
        latest = self._checkpoints.latest()
        if latest is not None:
            self._checkpoint_info = latest.describe()

    def latest_checkpoint(self) -> Optional[Checkpoint]:
        """The newest checkpoint of this run (from any attempt), or None; marks this attempt as restored from it."""
        latest = self._checkpoints.latest()
        if latest is not None and self._restart_step is None:
            self.restored_from(latest.step, checkpoint=latest)
        return latest

    def restored_from(self, step: int, *, checkpoint: Optional[Checkpoint] = None, path: Optional[str] = None) -> None:
        """Say that this attempt continues from a checkpoint of ``step`` that it restored itself.

        For frameworks that keep their own checkpoints (a Hugging Face ``checkpoint-N``
        directory): logging continues at ``step + 1``, and the points earlier attempts logged
        after ``step`` are superseded by this attempt's, as after :meth:`latest_checkpoint`.
        ``checkpoint`` is the run's record of it, when it has one; else ``path`` names what
        was restored, in the attempt's record.

        Raises
        ------
        StoreError
            ``checkpoint`` was written by an earlier process under this attempt number or a
            later one: the run's store was lost, and continuing would leave a gap.
        """
        step = operator.index(step)
        if checkpoint is not None:
            self._refuse_a_gap(checkpoint)
        self._restart_step = step + 1
        self._next_step = step + 1
        self._last_step = max(self._last_step, step)  # the resolved history ends there
        if self._attempts:
            described: Dict[str, Any] = checkpoint.describe() if checkpoint is not None else {"step": step}
            if checkpoint is None and path is not None:
                described["path"] = path
            self._attempts[-1]["restored_from"] = described
            self._attempts_dirty = True

    def _refuse_a_gap(self, latest: Checkpoint) -> None:
        """Refuse a checkpoint an earlier process wrote under this attempt number or a later one.

        The attempt number comes from the store: a store that starts over at attempt 1
        while checkpoints of attempt 1 remain was lost (deleted, moved aside by hand).
        Continuing after the checkpoint would leave the steps before it missing.
        """
        started = float((self._attempts[-1] if self._attempts else {}).get("start") or time.time())
        if latest.attempt < self.attempt or latest.time >= started:
            return
        sweep = self.run_id.rsplit("/", 1)[0] if self.run_id else "SWEEP"
        raise StoreError(f"run {self.run_id}: its store starts over at attempt {self.attempt}, but checkpoint "
                         f"{latest.path.name} (step {latest.step}) was written by attempt {latest.attempt}: the "
                         f"store was lost, and continuing would leave steps 0-{latest.step} missing from its "
                         f"history; `hpctrack resume {sweep} --include-lost` starts the run over "
                         "(its old data is moved aside)")  # fmt: skip

    def restore_checkpoint(self) -> Any:
        """The state object of the newest checkpoint: None on a fresh start, else what was saved.

        Logging then continues at the checkpoint's step + 1 (when ``step`` is omitted), and
        points an earlier attempt logged after that step are superseded by this attempt's.
        """
        latest = self.latest_checkpoint()
        return None if latest is None else latest.load()

    @property
    def checkpoint_keep(self) -> int:
        """How many checkpoints :meth:`save_checkpoint` keeps (``HPCTRACK_CHECKPOINT_KEEP``, default 2)."""
        return self._keep
