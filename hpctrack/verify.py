"""``hpctrack verify``: check every run of a sweep, and repair what can be repaired.

Checks, per run that had started: its store opens, its format version is
readable, every metric's points read back and agree with its stats
(:meth:`Store.verify`), its index line agrees with the store, and every
checkpoint is whole (the ``files`` map of ``checkpoint.json`` when there is one:
each file's size and sha256; otherwise ``checkpoint.json`` and ``state.pkl``
exist and parse). Per sweep: the index has no torn or malformed lines.

``repair`` restores what can be: the HDF5 store's intact spare copy
(:meth:`Store.repair`), a damaged checkpoint moved aside so the previous one is
the latest, and the index rebuilt from the stores. Nothing is ever deleted;
what cannot be restored is named, with ``resume --include-lost`` to rerun it.
"""

from __future__ import annotations

import json
import pickletools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .errors import HpctrackError
from .index import ENDED_STATES, INDEX_FILE, had_started, read_index_lines, rebuild_index, record_to_row, usable
from .manifest import Manifest, sweep_ref
from .safefs import check_inside, sha256_file
from .safefs import replace as safe_replace
from .store import open_store

__all__ = ["Problem", "RepairReport", "verify_sweep", "repair_sweep", "checkpoint_problems", "check_sweeps"]

#: Where a run keeps its checkpoints, and their files (as ``hpctrack.run`` writes them).
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_META = "checkpoint.json"
CHECKPOINT_STATE = "state.pkl"
#: Prefix of a damaged checkpoint moved aside: not a number, so runs never restore it.
DAMAGED_PREFIX = "damaged-"


@dataclass(frozen=True)
class Problem:
    """One problem ``hpctrack verify`` found: in job ``job``'s run, or (``job`` None) in the sweep's files."""

    job: Optional[int]
    what: str
    #: Which part: "store", "index" or "checkpoint" (what a repair would act on).
    part: str = "store"

    def line(self, sweep_id: str) -> str:
        """``<sweep>/<job>: <what>``, or ``<sweep>: <what>``."""
        return f"{sweep_id}/{self.job}: {self.what}" if self.job is not None else f"{sweep_id}: {self.what}"


@dataclass
class RepairReport:
    """What a repair did and what it could not do, one line each (``<sweep>/<job>: ...``)."""

    done: List[str] = field(default_factory=list)
    cannot: List[str] = field(default_factory=list)


def verify_sweep(manifest: Manifest) -> List[Problem]:
    """Every problem of the sweep's runs and index, in job order (the sweep's own files first)."""
    lines = read_index_lines(manifest.path)
    problems = [Problem(None, f"{INDEX_FILE} line {n}: {why}", "index") for n, why in lines.damaged]
    for job in manifest.jobs:
        problems += _verify_run(manifest, job.index, lines.rows.get(job.index))
    return problems


def _comparable(row: Mapping[str, Any]) -> str:
    keys = ("params", "summary", "tags", "status", "metrics", "restarts")
    return json.dumps({k: row.get(k) or {} for k in keys}, sort_keys=True, allow_nan=True, default=str)


def _verify_run(manifest: Manifest, index: int, row: Optional[Dict[str, Any]]) -> List[Problem]:
    store = open_store(manifest.run_path(index), manifest.store)
    job = manifest.jobs[index]
    found = store.verify()
    if found and found[0].startswith("no run store at"):
        if not had_started(manifest, index, row):
            return []  # not started yet: nothing to check
        found = [f"run store missing: {store.path} (deleted or moved?)"]
    problems = [Problem(index, what) for what in found]
    if not found:
        try:
            record = store.read()
        except HpctrackError as err:  # changed between the checks
            return [Problem(index, f"unreadable: {err}")]
        ended = record.status.get("state") in ENDED_STATES
        if row is not None and row.get("lost") and usable(row, job.submitted):
            problems.append(Problem(index, f"{INDEX_FILE} marks it lost ({row['lost']}) but its store reads "
                                           "whole now (repair rebuilds the index)", "index"))  # fmt: skip
        elif row is not None and usable(row, job.submitted):
            if _comparable(row) != _comparable(record_to_row(index, record)):
                problems.append(Problem(index, f"its {INDEX_FILE} line disagrees with its store (repair rebuilds "
                                               "the index from the stores)", "index"))  # fmt: skip
        elif ended and usable(record_to_row(index, record), job.submitted):
            problems.append(Problem(index, f"{INDEX_FILE} lacks this ended run (repair adds it)", "index"))
    problems += [Problem(index, what, "checkpoint") for what in checkpoint_problems(manifest.run_path(index))]
    return problems


def _pickle_problem(path: Path) -> Optional[str]:
    """Why ``path`` is not one whole pickle stream, or None. Walks the opcodes: never unpickles."""
    try:
        with open(path, "rb") as fh:
            for _ in pickletools.genops(fh):
                pass
    except (ValueError, EOFError, OSError) as err:
        return str(err) or type(err).__name__
    return None


def checkpoint_problems(run_dir: Path) -> List[str]:
    """What is wrong with each numbered checkpoint of the run in ``run_dir``, one line each."""
    directory = Path(run_dir) / CHECKPOINTS_DIR
    if not directory.is_dir():
        return []
    problems = []
    for entry in sorted(p for p in directory.iterdir() if p.name.isdigit() and p.is_dir()):
        rel = f"{CHECKPOINTS_DIR}/{entry.name}"
        try:
            meta = json.loads((entry / CHECKPOINT_META).read_text())
        except FileNotFoundError:
            problems.append(f"{rel}: {CHECKPOINT_META} missing")
            continue
        except (OSError, ValueError) as err:
            problems.append(f"{rel}: {CHECKPOINT_META} unreadable ({err})")
            continue
        if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
            problems.append(f"{rel}: {CHECKPOINT_META} is not a checkpoint record")
            continue
        files = meta.get("files")
        if isinstance(files, dict):  # every file with its size and sha256
            for name, spec in sorted(files.items()):
                path = entry / name
                if not path.is_file():
                    problems.append(f"{rel}: {name} missing")
                elif isinstance(spec, dict) and path.stat().st_size != spec.get("size"):
                    problems.append(f"{rel}: {name} has {path.stat().st_size} bytes, the checkpoint recorded "
                                    f"{spec.get('size')}")  # fmt: skip
                elif isinstance(spec, dict) and spec.get("sha256") and sha256_file(path) != spec["sha256"]:
                    problems.append(f"{rel}: {name} changed since it was saved (its sha256 differs)")
            continue
        state = entry / CHECKPOINT_STATE
        if meta.get("state") or state.exists():
            if not state.is_file():
                problems.append(f"{rel}: {CHECKPOINT_STATE} missing")
            else:
                why = _pickle_problem(state)
                if why is not None:
                    problems.append(f"{rel}: {CHECKPOINT_STATE} is not a whole pickle ({why})")
    return problems


def _move_aside(checkpoint: Path, base: Path) -> Path:
    aside = checkpoint.with_name(f"{DAMAGED_PREFIX}{checkpoint.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{DAMAGED_PREFIX}{checkpoint.name}-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    safe_replace(checkpoint, aside, base)
    return aside


def repair_sweep(manifest: Manifest) -> RepairReport:
    """Repair what can be repaired in the sweep; see the module docstring.

    Stores first (so the index is rebuilt from what they hold after), then
    checkpoints, then the index.
    """
    problems = verify_sweep(manifest)
    report = RepairReport()
    ref = sweep_ref(manifest)
    by_job: Dict[Optional[int], List[Problem]] = {}
    for problem in problems:
        by_job.setdefault(problem.job, []).append(problem)
    rebuild = any(p.part == "index" for p in problems)
    for index, found in sorted(by_job.items(), key=lambda item: -1 if item[0] is None else item[0]):
        if index is None:
            continue
        prefix = f"{manifest.id}/{index}: "
        # Repairs rename inside the run directory: one planted as a link out of the sweep is refused.
        check_inside(manifest.run_path(index), manifest.path, "repair")
        if any(p.part == "store" for p in found):
            store = open_store(manifest.run_path(index), manifest.store)
            missing = any(p.what.startswith("run store missing") for p in found)
            done, cannot = ([], [p.what for p in found if p.part == "store"]) if missing else store.repair()
            report.done += [prefix + line for line in done]
            rebuild = rebuild or bool(done)  # the index describes what the store held before
            report.cannot += [prefix + line + f"; `hpctrack resume {ref} --include-lost` reruns it"
                              for line in cannot[:1]]  # fmt: skip
        damaged = sorted({p.what.split(":", 1)[0] for p in found if p.part == "checkpoint"})
        for rel in damaged:
            aside = _move_aside(manifest.run_path(index) / rel, manifest.run_path(index))
            report.done.append(f"{prefix}moved the damaged {rel} aside to {aside.name}; the previous checkpoint "
                               "is the latest")  # fmt: skip
    if rebuild:
        count, lost = rebuild_index(manifest.path)
        report.done.append(
            f"{manifest.id}: rebuilt {INDEX_FILE} from the run stores ({count} ended runs"
            + (f", {len(lost)} kept marked LOST" if lost else "")
            + ")"
        )
    return report


def check_sweeps(sweeps: Sequence[Any], *, repair: bool = False) -> Dict[str, Any]:
    """Verify each sweep (a :class:`~hpctrack.sweep.Sweep`), repairing first with ``repair``: the report.

    Returns ``{"sweeps": [...], "problems": N}`` (``hpctrack verify --format json``): per sweep
    ``sweep``, ``path``, ``problems`` [{``job``, ``what``, ``part``}] and, after a repair,
    ``repaired``, ``cannot`` and ``remaining``; N counts the problems left. A sweep whose
    manifest cannot be read is one problem of part ``manifest``.
    """
    out: List[Dict[str, Any]] = []
    remaining = 0
    for sw in sweeps:
        entry: Dict[str, Any] = {"sweep": sw.id, "path": str(sw.path)}
        try:
            problems = sw.verify()
        except HpctrackError as err:  # a damaged manifest: nothing else of the sweep can be checked
            entry.update(problems=[{"job": None, "what": " ".join(str(err).split()), "part": "manifest"}])
            remaining += 1
            out.append(entry)
            continue
        entry["problems"] = [{"job": p.job, "what": p.what, "part": p.part} for p in problems]
        if repair and problems:
            report = sw.repair()
            entry.update(repaired=report.done, cannot=report.cannot)
            problems = sw.verify()
            entry["remaining"] = [{"job": p.job, "what": p.what, "part": p.part} for p in problems]
        remaining += len(problems)
        out.append(entry)
    return {"sweeps": out, "problems": remaining}
