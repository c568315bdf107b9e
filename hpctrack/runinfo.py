"""One run, whole: ``hpctrack show`` and ``hpctrack diff`` (provenance, code, config, attempts, artifacts).

A run is named by its run id (``<sweep id>/<job>``), ``SWEEP/JOB`` with any way of naming a
sweep (``latest/3``, ``digits/0``), or its run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import endrecord
from .errors import ConfigError, StoreError
from .manifest import MANIFEST_FILE
from .store.base import one_line

__all__ = [
    "resolve_run",
    "is_run_ref",
    "describe_run",
    "describe_sweep",
    "describe_status",
    "diff_runs",
    "HYDRA_LINK_FILE",
]


def is_run_ref(ref: str) -> bool:
    """Whether ``ref`` names a run (``SWEEP/JOB``, a run directory) rather than a sweep."""
    _, sep, job = ref.rstrip("/").rpartition("/")
    return bool(sep) and job.isdigit()


def describe_sweep(sweep: Any) -> Dict[str, Any]:
    """A sweep at a glance (``hpctrack show SWEEP``): its ``ls`` fields, tags and note, from disk only."""
    import time

    from ._types import JobState, state_summary
    from .status import recorded_states

    manifest = sweep.manifest
    states, unconfirmed = recorded_states(manifest)
    labels = _labels(sweep)
    return {
        "id": manifest.id,
        "name": manifest.name,
        "path": str(manifest.path),
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(manifest.created)),
        "backend": manifest.backend,
        "store": manifest.store,
        "script": manifest.script,
        "launched_with": manifest.command,
        "jobs": state_summary(states),
        "n_jobs": len(states),
        "states": {s.value: states.count(s) for s in JobState},
        "unconfirmed": unconfirmed,
        "tags": labels.get("tags", {}),
        "note": labels.get("note"),
        **({"labels_error": labels["error"]} if "error" in labels else {}),
        **_pins(sweep),
    }


def describe_status(sweep: Any, *, only_stalled: bool = False) -> Dict[str, Any]:
    """Every job of the sweep with its state (``hpctrack status --format json``), and a study's summary.

    ``only_stalled`` lists only the jobs that stalled (``--stalled``).
    """
    manifest = sweep.manifest  # before the status: what the status finds may update it
    st = sweep.sweep_status()
    data = st.to_json(manifest, only_stalled=only_stalled)
    if manifest.study:
        from .optimize.view import study_summary

        summary = study_summary(manifest, st.jobs)
        data["study"] = summary.to_json() if summary is not None else None
    return data


def resolve_run(ref: str, root: Optional[str] = None) -> Tuple[Any, int]:
    """``(Sweep, job index)`` for a run reference; ConfigError with what to write otherwise."""
    from .sweep import Sweep, load_sweep

    path = Path(ref).expanduser()
    try:
        is_run_dir = path.is_dir() and (path.parent.parent / MANIFEST_FILE).is_file() and path.name.isdigit()
    except OSError:  # not a path at all (a sweep name longer than a file name may be)
        is_run_dir = False
    if is_run_dir:
        return Sweep(path.parent.parent.absolute()), int(path.name)
    sweep_ref, sep, job = ref.rstrip("/").rpartition("/")
    if not sep or not job.isdigit():
        raise ConfigError(f"run {ref!r}: name a run as SWEEP/JOB (e.g. latest/3), its run id, or its run directory")
    sweep = load_sweep(sweep_ref, root=root)
    index = int(job)
    if index >= len(sweep.manifest.jobs):
        raise ConfigError(f"sweep {sweep.id} has jobs 0-{len(sweep.manifest.jobs) - 1}; no job {index}")
    return sweep, index


def describe_run(sweep: Any, index: int) -> Dict[str, Any]:
    """Everything recorded about one run, as plain JSON data."""
    from .errors import RunNotFoundError

    manifest = sweep.manifest
    job = manifest.jobs[index]
    status = next(s for s in sweep.sweep_status().jobs if s.index == index)
    labels = _labels(sweep)
    out: Dict[str, Any] = {
        "run_id": f"{manifest.id}/{index}",
        "sweep": {
            "id": manifest.id,
            "name": manifest.name,
            "path": str(manifest.path),
            "backend": manifest.backend,
            "store": manifest.store,
            "launched_with": manifest.command,
            "tags": labels.get("tags", {}),
            "note": labels.get("note"),
            **({"labels_error": labels["error"]} if "error" in labels else {}),
        },
        "job": {
            "index": index,
            "state": status.state.value,
            "job_id": job.job_id,
            "error": status.error,
            "overrides": job.overrides,
            "submissions": len(job.history) + 1,
            "resources": job.resources,
        },
        "run_dir": str(manifest.run_path(index)),
        **_pins(sweep, index),
        **_models(manifest.path, f"{manifest.id}/{index}"),
    }
    run_dir = manifest.run_path(index)
    end = endrecord.read(run_dir)
    try:
        record = sweep.run(index)
    except RunNotFoundError:
        out["record"] = None
        out["data_lost"] = status.data_lost
        out["end_record"] = end
        out["left_behind"] = _left_behind(run_dir)
        return out
    except StoreError as err:  # unreadable: what is known of it outside the store
        out["record"] = None
        out["data_lost"] = status.data_lost or f"its run store is unreadable: {one_line(err)}"
        out["end_record"] = end
        out["left_behind"] = _left_behind(run_dir)
        return out
    info, st = record.info, record.status
    out.update({
        "params": record.params,
        "config_yaml": info.get("config_yaml"),
        "summary": record.summary,
        "tags": record.tags,
        "status": {**{k: st.get(k) for k in ("state", "start_time", "end_time", "runtime_s", "last_step", "attempt")},
                   # an attempt that never recorded its end: its runtime as `status` has it (to its last sign of life)
                   **({"runtime_s": status.runtime_s} if st.get("runtime_s") is None else {})},
        "attempts": _attempts_as_ended(st.get("attempts") or [], status, end),
        "error": st.get("error"),
        # The newest whole checkpoint on disk: the store names it only from the flush after it was saved.
        "checkpoint": _newest_checkpoint(run_dir) or st.get("checkpoint"),
        "metrics": {k: {"count": v.count, "last": v.last, "last_step": v.last_step, "min": v.min, "max": v.max}
                    for k, v in record.metrics.items()},
        "artifacts": info.get("artifacts") or {},
        "slurm": info.get("slurm"),
        "hydra": _hydra_dir(info.get("hydra"), out["run_id"]),
        "exec": info.get("exec"),  # an --exec job's command (masked), code directory and exit code
        "provenance": info.get("provenance") or {},
    })  # fmt: skip
    return out


def _labels(sweep: Any) -> Dict[str, Any]:
    """The sweep's tags and note; a damaged ``labels.json`` is said, never fatal to ``show``."""
    from .errors import HpctrackError

    try:
        labels = sweep.labels
    except HpctrackError as err:
        return {"error": one_line(err)}
    return {"tags": labels.tags, "note": labels.note}


def _pins(sweep: Any, index: Optional[int] = None) -> Dict[str, Any]:
    """``pins`` (of run ``index``, or every pin of the sweep); a damaged ``pins.json`` is said, never fatal."""
    from dataclasses import asdict

    from .errors import HpctrackError

    try:
        pins = sweep.pins
    except HpctrackError as err:
        return {"pins": [], "pins_error": one_line(err)}
    return {"pins": [asdict(p) for p in pins if index is None or p.run == index]}


def _models(sweep_dir: Path, run_id: str) -> Dict[str, Any]:
    """``models``: the registry's versions registered from the run (the registry of the root holding the
    sweep, ``ROOT/sweeps/<id>`` or ``ROOT/trash/<id>``); a damaged registry is said, never fatal."""
    from .errors import HpctrackError
    from .models import registered_from_run

    try:
        return {"models": registered_from_run(run_id, root=Path(sweep_dir).parent.parent)}
    except (HpctrackError, OSError) as err:
        return {"models": [], "models_error": one_line(err)}


#: Written by the Hydra launcher into a job's Hydra output directory: the run that wrote there.
HYDRA_LINK_FILE = ".hpctrack_run"


def _hydra_dir(hydra: Any, run_id: str) -> Optional[Dict[str, Any]]:
    """The run's Hydra output directory as recorded, plus the run that wrote there since (a later
    sweep with the same ``hydra.sweep.dir``), read from the directory's link file."""
    if not isinstance(hydra, dict) or not hydra.get("output_dir"):
        return None
    out = dict(hydra)
    link = Path(str(hydra["output_dir"])) / HYDRA_LINK_FILE
    try:
        other = json.loads(link.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return out
    if other and other != run_id:
        out["reused_by"] = other
    return out


def _attempts_as_ended(
    attempts: List[Dict[str, Any]], status: Any, end: Optional[Dict[str, Any]]
) -> List[Dict[str, Any]]:
    """The run's attempts, the last one with how it ended when the job has ended but the attempt never said.

    A job killed (kill -9, a node failure) cannot record its attempt's end: the
    end record speaks for it when it has one for that attempt, else the job's state.
    """
    out = [dict(a) for a in attempts]
    if not out or out[-1].get("outcome") or not status.state.is_final:
        return out
    last = out[-1]
    if end is not None and end.get("attempt") == last.get("attempt") and end.get("state"):
        last["outcome"] = str(end["state"]) + (f": {end['error']}" if end.get("error") else "")
        last.setdefault("end", end.get("time"))
        last["outcome_from"] = "end record"
    else:
        last["outcome"] = f"{status.state.value}: ended without recording its end"
        last["outcome_from"] = "job state"
    return out


def _newest_checkpoint(run_dir: Path) -> Optional[Dict[str, Any]]:
    from .checkpoint import CHECKPOINTS_DIR, Checkpoints

    latest = Checkpoints(run_dir / CHECKPOINTS_DIR).latest()
    return latest.describe() if latest is not None else None


def _left_behind(run_dir: Path) -> Dict[str, List[str]]:
    """Files a run left beside its store: checkpoints and recovery files (relative names)."""
    from .checkpoint import CHECKPOINTS_DIR, Checkpoints

    checkpoints = [f"{CHECKPOINTS_DIR}/{c.path.name}" for c in Checkpoints(run_dir / CHECKPOINTS_DIR).all()]
    try:
        recovery = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("recovery-"))
    except OSError:
        recovery = []
    return {"checkpoints": checkpoints, "recovery": recovery}


def _flat(prefix: str, value: Any, out: Dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _changes(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, List[Any]]:
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def diff_runs(a: Dict[str, Any], b: Dict[str, Any], *, lines: bool = True) -> Dict[str, Any]:
    """What differs between two :func:`describe_run` results: config, code, packages, host/resources.

    ``code`` compares the code's identity (snapshot digest, git commit, branch, dirty flag,
    diff hash); ``code_files`` the code itself, file by file (see
    :func:`hpctrack.codediff.diff_code`; ``lines``: with line counts and unified diffs).
    """
    from .codediff import diff_code

    pa, pb = a.get("provenance") or {}, b.get("provenance") or {}
    ga = {**(pa.get("git") or {}), "snapshot": (pa.get("code_snapshot") or {}).get("digest")}
    gb = {**(pb.get("git") or {}), "snapshot": (pb.get("code_snapshot") or {}).get("digest")}
    code_keys = ("snapshot", "available", "commit", "branch", "remote", "dirty", "diff_sha256", "untracked_count")
    packages_a = dict(p.split("==", 1) for p in pa.get("packages") or [] if "==" in p)
    packages_b = dict(p.split("==", 1) for p in pb.get("packages") or [] if "==" in p)
    host_a: Dict[str, Any] = {}
    host_b: Dict[str, Any] = {}
    for src, dst in ((pa, host_a), (pb, host_b)):
        for key in ("hostname", "platform", "cpu_count", "cpus_usable", "gpus"):
            dst[key] = src.get(key)
        dst["python"] = (src.get("python") or {}).get("version")
    for src, dst in ((a, host_a), (b, host_b)):
        slurm = src.get("slurm") or {}
        _flat("slurm", {k: v for k, v in slurm.items() if k not in ("job_id", "array_job_id", "array_task_id",
                                                                   "stdout", "stderr")}, dst)  # fmt: skip
    return {
        "runs": [a["run_id"], b["run_id"]],
        "config": _changes(a.get("params") or {}, b.get("params") or {}),
        "code": _changes({k: ga.get(k) for k in code_keys}, {k: gb.get(k) for k in code_keys}),
        "code_diff_differs": ga.get("diff") != gb.get("diff"),
        "code_files": diff_code(pa, pb, lines=lines),
        "packages": _changes(packages_a, packages_b),
        "host_and_resources": _changes(host_a, host_b),
    }
