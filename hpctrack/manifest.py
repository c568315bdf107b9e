"""The sweep manifest: what was launched, how, and where each job's run lives.

One ``sweep.json`` per sweep directory, replaced atomically (write a unique
temporary file, then ``os.replace``) while holding ``sweep.json.lock``, so a
reader never sees half a manifest and two writers never lose each other's
update. Sweeps live in ``ROOT/sweeps/<id>/``; ids start with the creation time
so they sort oldest to newest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

from ._types import JobState
from .errors import ConfigError, FormatVersionError, StoreError, SweepNotFoundError
from .locking import atomic_write, lock

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "SWEEPS_DIR",
    "TRASH_DIR",
    "LOG_DIR",
    "JobRecord",
    "Manifest",
    "new_sweep_id",
    "create_sweep",
    "load_manifest",
    "read_manifest_json",
    "update_manifest",
    "find_sweep",
    "iter_sweep_dirs",
    "sweep_ref",
    "manifest_problem",
]

#: The manifest format this hpctrack writes (and the newest it reads): 2 adds a study (``study``,
#: ``jobs[].pruned``, the state ``PRUNED``), which an older reader must not take for a plain sweep.
FORMAT_VERSION = 2
MANIFEST_FILE = "sweep.json"
SWEEPS_DIR = "sweeps"
#: ``ROOT/trash/<sweep id>``: sweeps moved out of ``sweeps/`` by ``hpctrack rm`` (:mod:`hpctrack.trash`).
TRASH_DIR = "trash"
RUNS_DIR = "runs"
#: Folder of a job's scheduler logs and submission files: ``runs/<i>/logs`` (local), ``logs/<job id>`` (SLURM).
LOG_DIR = "logs"


_JOB_FIELDS: Set[str] = set()  # JobRecord's field names, once: a manifest of 10,000 jobs asked 10,000 times
_STATES = {s.value: s for s in JobState}


@dataclass
class JobRecord:
    """One job of a sweep: its overrides, its run directory and what the backend knows."""

    index: int
    overrides: List[str]
    run_dir: str  # relative to the sweep directory
    state: JobState = JobState.PENDING
    job_id: Optional[str] = None
    submitted: Optional[float] = None  # epoch seconds
    ended: Optional[float] = None
    exit_code: Optional[int] = None
    error: Optional[str] = None  # one line, for a job that ended without recording it itself
    cancelled: Optional[float] = None  # when a cancel was asked for
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    # earlier submissions of this job (requeue, resume), oldest first: job_id, submitted, state, ended, error
    history: List[Dict[str, Any]] = field(default_factory=list)
    resources: Dict[str, Any] = field(default_factory=dict)  # launcher options changed by a requeue
    # the code snapshot this job runs when it is not the sweep's (``requeue --code current``); {}: the sweep's
    code: Dict[str, Any] = field(default_factory=dict)
    # the local process running this submission: host, pid, start (clock ticks since boot), boot id;
    # `cancel` signals it only when all of them still match (hpctrack._process.process_identity)
    process: Dict[str, Any] = field(default_factory=dict)
    # a study's trial that its pruner stopped: when, at which step, its trial number; {}: not pruned.
    # Once the job has ended its state is PRUNED, whatever stopped it (hpctrack.optimize)
    pruned: Dict[str, Any] = field(default_factory=dict)
    # the scheduler's final word on the current submission (``job_id``, ``state`` in hpctrack's words,
    # ``scheduler_state``, ``exit_code``, ``node``, ``reason``, ``error``), recorded by the first status that
    # learns it, once the scheduler will not change it by itself; {}: not known yet. With it for every job,
    # status and table no longer ask the scheduler (hpctrack.status.backend_view)
    scheduler: Dict[str, Any] = field(default_factory=dict)

    @property
    def last_state(self) -> Optional[str]:
        """How the previous submission ended, when the job was resubmitted."""
        return self.history[-1].get("state") if self.history else None

    def resubmit(self, state: Optional[JobState], error: Optional[str], now: float) -> None:
        """Move the current submission into ``history`` and make the job pending again."""
        self.history.append({"job_id": self.job_id, "submitted": self.submitted, "ended": self.ended,
                             "state": state.value if state else None, "error": error})  # fmt: skip
        self.state, self.job_id, self.submitted = JobState.PENDING, None, now
        self.ended = self.exit_code = self.error = self.cancelled = None
        self.stdout = self.stderr = None
        self.scheduler = {}

    def to_json(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "JobRecord":
        if not _JOB_FIELDS:
            _JOB_FIELDS.update(f.name for f in dataclasses.fields(cls))
        known = _JOB_FIELDS
        values = dict(data) if data.keys() <= known else {k: v for k, v in data.items() if k in known}
        state = values.get("state", "PENDING")
        values["state"] = _STATES.get(state) or JobState(state)
        return cls(**values)


@dataclass
class Manifest:
    """Everything hpctrack knows about one sweep, as stored in ``sweep.json``."""

    id: str
    created: float  # epoch seconds
    backend: str
    store: str
    script: Optional[str] = None
    name: Optional[str] = None
    command: List[str] = field(default_factory=list)
    cwd: str = ""
    overrides: List[str] = field(default_factory=list)  # as typed, sweep syntax included
    swept_keys: List[str] = field(default_factory=list)  # keys whose value differs between jobs
    launcher: Dict[str, Any] = field(default_factory=dict)  # the launcher config used
    runner: Dict[str, Any] = field(default_factory=dict)  # host/pid of the local job runner
    submission_error: Optional[str] = None  # the backend refused the sweep; what it said
    code: Dict[str, Any] = field(default_factory=dict)  # the code snapshot the jobs run (hpctrack.snapshot)
    jobs: List[JobRecord] = field(default_factory=list)
    # a study run by ``hpctrack launch --optimize`` (hpctrack.optimize): objective, space, driver; {}: none
    study: Dict[str, Any] = field(default_factory=dict)
    # as read from the file (1: written before studies existed); always written as FORMAT_VERSION
    format_version: int = field(default=FORMAT_VERSION, compare=False)
    path: Path = field(default=Path("."), compare=False)  # the sweep directory; not stored

    def run_path(self, index: int) -> Path:
        return self.path / self.jobs[index].run_dir

    def array_ids(self) -> List[str]:
        """The scheduler's job arrays the jobs were submitted as (a job id ``ARRAY_TASK``'s ``ARRAY``), sorted."""
        return sorted({j.job_id.split("_", 1)[0] for j in self.jobs if j.job_id})

    def to_json(self) -> Dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "path"}
        out["jobs"] = [j.to_json() for j in self.jobs]
        out["format_version"] = FORMAT_VERSION
        if not self.study:  # a plain sweep's manifest keeps the shape version 1 had
            del out["study"]
            for job in out["jobs"]:
                if not job["pruned"]:
                    del job["pruned"]
        for job in out["jobs"]:
            if not job["scheduler"]:  # not learned yet: the shape an older manifest has
                del job["scheduler"]
        return out

    @classmethod
    def from_json(cls, data: Dict[str, Any], path: Path) -> "Manifest":
        problem = manifest_problem(data)
        if problem is not None:
            raise StoreError(f"damaged sweep manifest {path / MANIFEST_FILE}: {problem}; restore it from a backup, "
                             "or move the sweep directory out of the root")  # fmt: skip
        version = int(data.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{path / MANIFEST_FILE} has format_version {version}, newer than this hpctrack "
                f"reads ({FORMAT_VERSION}); upgrade with `pip install -U hpctrack`"
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"path", "jobs"}
        values = {k: v for k, v in data.items() if k in known}
        jobs = [JobRecord.from_json(j) for j in data.get("jobs", [])]
        return cls(**values, jobs=jobs, path=path)


_NUMBER = (int, float)
_OPTIONAL_STR = (str, type(None))
_OPTIONAL_NUMBER = (int, float, type(None))
#: Top-level manifest keys and the JSON types they must have (``bool`` is excluded from numbers below).
_MANIFEST_TYPES: Dict[str, Any] = {
    "format_version": int, "id": str, "created": _NUMBER, "name": _OPTIONAL_STR, "backend": str, "store": str,
    "script": _OPTIONAL_STR, "command": list, "cwd": str, "overrides": list, "swept_keys": list, "launcher": dict,
    "runner": dict, "submission_error": _OPTIONAL_STR, "code": dict, "jobs": list, "study": dict,
}  # fmt: skip
_JOB_TYPES: Dict[str, Any] = {
    "index": int, "overrides": list, "run_dir": str, "state": str, "job_id": _OPTIONAL_STR,
    "submitted": _OPTIONAL_NUMBER, "ended": _OPTIONAL_NUMBER, "exit_code": (int, type(None)),
    "error": _OPTIONAL_STR, "cancelled": _OPTIONAL_NUMBER, "stdout": _OPTIONAL_STR, "stderr": _OPTIONAL_STR,
    "history": list, "resources": dict, "code": dict, "process": dict, "pruned": dict, "scheduler": dict,
}  # fmt: skip
#: The keys of a study's section that readers rely on (hpctrack.optimize), and their JSON types.
_STUDY_TYPES: Dict[str, Any] = {
    "objective": dict, "trials": int, "parallel": int, "space": list, "driver": dict, "state": _OPTIONAL_STR,
    "trial_of_job": dict, "prune": _OPTIONAL_STR, "sampler": _OPTIONAL_STR,
}  # fmt: skip
_TYPE_WORDS = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               type(None): "null", bool: "true/false"}  # fmt: skip


def _type_word(value: Any) -> str:
    return _TYPE_WORDS.get(type(value), type(value).__name__)


def _expected(expected: Any) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(dict.fromkeys(_TYPE_WORDS[k] if k is not int or float not in kinds else "a number"
                                      for k in kinds))  # fmt: skip


def _mistyped(where: str, value: Any, expected: Any) -> str:
    return f"{where} must be {_expected(expected)}, got {_type_word(value)} {json.dumps(value, default=str)[:40]}"


def _wrong_type(value: Any, expected: Any) -> bool:
    if isinstance(value, bool) and expected is not bool:  # JSON true is not a number here
        return True
    return not isinstance(value, expected)


def manifest_problem(data: Any) -> Optional[str]:
    """What is wrong with a parsed ``sweep.json`` (valid JSON of the wrong shape), or None.

    Checked on every load so that a hand-edited or damaged manifest gives one line
    naming the key, never a traceback deep in a command.
    """
    if not isinstance(data, dict):
        return f"expected a JSON object, got {_type_word(data)}"
    for key, expected in _MANIFEST_TYPES.items():
        if key in data and _wrong_type(data[key], expected):
            return _mistyped(repr(key), data[key], expected)
    for key in ("id", "backend", "store"):
        if key not in data:
            return f"{key!r} is missing"
    study = data.get("study") or {}
    for key, expected in _STUDY_TYPES.items():
        if key in study and _wrong_type(study[key], expected):
            return _mistyped(f"study.{key}", study[key], expected)
    if _jobs_look_whole(data.get("jobs", [])):
        return None
    for position, job in enumerate(data.get("jobs", [])):
        if not isinstance(job, dict):
            return f"jobs[{position}] must be an object, got {_type_word(job)}"
        # Only the keys the job has, and the run directory as text: this runs for every job at every
        # load (a table of 10,000 runs loads the manifest first).
        for key, value in job.items():
            expected = _JOB_TYPES.get(key)
            if expected is not None and _wrong_type(value, expected):
                return _mistyped(f"jobs[{position}].{key}", value, expected)
        if job.get("index", position) != position:
            return f"jobs[{position}].index is {job['index']}, not its position {position}"
        if "run_dir" not in job:
            return f"jobs[{position}].run_dir is missing"
        run_dir = job["run_dir"]
        if os.path.isabs(run_dir) or ".." in run_dir.split(os.sep):
            return f"jobs[{position}].run_dir {job['run_dir']!r} must be a path inside the sweep directory"
        state = job.get("state", "PENDING")
        if state not in _STATES:
            return f"jobs[{position}].state {state!r} is not a job state ({', '.join(_STATES)})"
    return None


def _allowed(expected: Any) -> "frozenset[type]":
    """The exact types ``json.loads`` gives that :func:`_wrong_type` accepts for ``expected``."""
    kinds = set(expected if isinstance(expected, tuple) else (expected,))
    return frozenset(k for k in kinds if k is not bool)


_JOB_ALLOWED = {key: _allowed(expected) for key, expected in _JOB_TYPES.items()}


def _jobs_look_whole(jobs: Any) -> bool:
    """Whether every job passes the checks of :func:`manifest_problem`, found in bulk.

    A sweep of 100,000 jobs spent seconds in the job-by-job walk; this asks the same
    questions of all jobs at once (the set of (key, type) pairs that occur, the indices, the
    run directories, the states). False sends the caller to the walk, which names the problem.
    """
    if not isinstance(jobs, list) or not all(type(job) is dict for job in jobs):
        return False
    pairs = {(key, type(value)) for job in jobs for key, value in job.items()}
    if any(kind not in _JOB_ALLOWED[key] for key, kind in pairs if key in _JOB_ALLOWED):
        return False
    if [job.get("index", position) for position, job in enumerate(jobs)] != list(range(len(jobs))):
        return False
    try:
        run_dirs = [job["run_dir"] for job in jobs]
    except KeyError:
        return False
    absolute = os.path.isabs if os.name == "nt" else None  # POSIX: a leading "/", tested without a call per job
    if any(".." in d or d.startswith("/") for d in run_dirs) or (absolute and any(map(absolute, run_dirs))):
        return False  # ".." anywhere: the walk tells a harmless "a..b" from a parent
    return {job.get("state", "PENDING") for job in jobs} <= _STATES.keys()


class SweepExistsError(ConfigError):
    """A sweep with that id is already under the root."""


def create_new_sweep(root: Path, manifest: Manifest, attempts: int = 50) -> Manifest:
    """:func:`create_sweep` under a fresh id, drawing again when another sweep took the same id.

    Many runs started in the same second (64 plain scripts at once) can draw the same
    4 random hex digits.
    """
    for _ in range(attempts - 1):
        try:
            return create_sweep(root, manifest)
        except SweepExistsError:
            manifest.id = new_sweep_id()
    return create_sweep(root, manifest)


def new_sweep_id(now: Optional[float] = None) -> str:
    """``YYYYmmdd-HHMMSS-xxxx``: local creation time plus 4 random hex digits."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def _write(manifest: Manifest, guard: Any = None) -> None:
    # guard: the manifest lock's, checked right before the replace (a stalled holder never commits)
    atomic_write(manifest.path / MANIFEST_FILE, json.dumps(manifest.to_json(), indent=1), guard=guard)


def create_sweep(root: Path, manifest: Manifest) -> Manifest:
    """Create the sweep directory for ``manifest.id`` under ``root`` and write its manifest.

    The directory may already exist (Hydra writes ``hydra/multirun.yaml`` into
    it first) but must not hold a manifest yet.
    """
    sweep_dir = Path(root) / SWEEPS_DIR / manifest.id
    sweep_dir.mkdir(parents=True, exist_ok=True)
    manifest.path = sweep_dir
    with lock(sweep_dir / f"{MANIFEST_FILE}.lock") as guard:
        if (sweep_dir / MANIFEST_FILE).exists():
            raise SweepExistsError(f"sweep {manifest.id} already exists under {root}; choose another id")
        for job in manifest.jobs:
            (sweep_dir / job.run_dir).mkdir(parents=True, exist_ok=True)
        _write(manifest, guard)
    return manifest


def load_manifest(sweep_dir: Path) -> Manifest:
    """Read ``sweep_dir/sweep.json`` (no lock needed: it is only ever replaced atomically)."""
    return Manifest.from_json(read_manifest_json(sweep_dir), Path(sweep_dir))


def read_manifest_json(sweep_dir: Path) -> Any:
    """``sweep_dir/sweep.json`` parsed, not checked (:meth:`Manifest.from_json` checks it)."""
    path = Path(sweep_dir) / MANIFEST_FILE
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SweepNotFoundError(f"no sweep manifest at {path}") from None
    except (OSError, ValueError) as err:
        raise StoreError(f"cannot read sweep manifest {path}: {err}") from err


def update_manifest(sweep_dir: Path, change: Callable[[Manifest], None]) -> Manifest:
    """Read, ``change`` in place, and atomically rewrite the manifest under its lock."""
    sweep_dir = Path(sweep_dir)
    with lock(sweep_dir / f"{MANIFEST_FILE}.lock") as guard:
        manifest = load_manifest(sweep_dir)
        change(manifest)
        _write(manifest, guard)
    return manifest


def iter_sweep_dirs(root: Path, *, under: str = SWEEPS_DIR) -> Iterator[Path]:
    """Sweep directories under ``root`` that hold a manifest, newest first (``under=TRASH_DIR``: the trashed ones)."""
    base = Path(root) / under
    try:
        names = sorted(os.listdir(base), reverse=True)
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(".") and (base / name / MANIFEST_FILE).is_file():
            yield base / name


def _newest(root: Path) -> Optional[Path]:
    # Ids share a one-second timestamp prefix at most; break such ties by creation time.
    candidates: List[Path] = []
    for path in iter_sweep_dirs(root):
        if candidates and path.name[:15] != candidates[0].name[:15]:
            break
        candidates.append(path)
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=_created_or_oldest)


def _created_or_oldest(path: Path) -> float:
    """A sweep's creation time; a damaged manifest never wins a tie (its commands name it)."""
    try:
        return load_manifest(path).created
    except (StoreError, FormatVersionError):
        return float("-inf")


def _is_file(path: Path) -> bool:
    """``path.is_file()``, false for a name too long to be a path (a sweep name of 300 characters is not one)."""
    try:
        return path.is_file()
    except OSError:
        return False


def find_sweep(root: Path, ref: str) -> Path:
    """Resolve ``ref`` to a sweep directory.

    ``ref`` is ``latest``, a sweep id (or a unique prefix of one), a sweep name
    (the newest sweep of that name) or a path to a sweep directory.
    """
    root = Path(root)
    candidate = Path(os.path.expanduser(ref))
    if _is_file(candidate / MANIFEST_FILE):
        return candidate.absolute()
    if ref == "latest":
        newest = _newest(root)
        if newest is None:
            raise SweepNotFoundError(f"no sweep under {root} (launch one, or pass --root / set HPCTRACK_ROOT)")
        return newest
    by_id = root / SWEEPS_DIR / ref
    if _is_file(by_id / MANIFEST_FILE):
        return by_id
    dirs = list(iter_sweep_dirs(root))
    found = match_sweep_dir(dirs, ref)
    if found is not None:
        return found
    prefixed = [d.name for d in dirs if d.name.startswith(ref)]
    if prefixed:
        shown = ", ".join(prefixed[:5]) + (f", ... ({len(prefixed) - 5} more)" if len(prefixed) > 5 else "")
        raise SweepNotFoundError(f"sweep {ref!r} is ambiguous: {len(prefixed)} ids start with it ({shown}); "
                                 "give more of the id, or the sweep's name")  # fmt: skip
    raise SweepNotFoundError(f"no sweep {ref!r} under {root} (try `hpctrack ls`, or pass --root / set HPCTRACK_ROOT)")


def match_sweep_dir(dirs: List[Path], ref: str) -> Optional[Path]:
    """The sweep of ``dirs`` (newest first) that ``ref`` names, or None.

    ``ref`` is a sweep id, a prefix only one id starts with, or a name (the newest
    sweep of that name). A damaged sweep is never the one asked for by name
    (`hpctrack ls` names it).
    """
    exact = [d for d in dirs if d.name == ref]
    prefixed = exact or [d for d in dirs if d.name.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    for d in dirs:
        try:
            if load_manifest(d).name == ref:
                return d
        except (StoreError, FormatVersionError):
            continue
    return None


def sweep_ref(manifest: Manifest) -> str:
    """How a hint names this sweep for the next command: its name when that finds it, else its id.

    Many sweeps share a name (every multirun of one Hydra app is named after it),
    and a name finds only the newest of them.
    """
    if manifest.name:
        try:
            if find_sweep(manifest.path.parent.parent, manifest.name).resolve() == manifest.path.resolve():
                return manifest.name
        except (SweepNotFoundError, StoreError, FormatVersionError, OSError):
            pass
    return manifest.id
