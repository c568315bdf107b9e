"""One run, whole: ``hpctrack show`` and ``hpctrack diff`` (provenance, code, config, attempts, artifacts).

A run is named by its run id (``<sweep id>/<job>``), ``SWEEP/JOB`` with any way of naming a
sweep (``latest/3``, ``digits/0``), or its run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import ConfigError
from .manifest import MANIFEST_FILE

__all__ = ["resolve_run", "describe_run", "diff_runs"]


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
    out: Dict[str, Any] = {
        "run_id": f"{manifest.id}/{index}",
        "sweep": {"id": manifest.id, "name": manifest.name, "path": str(manifest.path), "backend": manifest.backend,
                  "store": manifest.store, "launched_with": manifest.command},
        "job": {"index": index, "state": status.state.value, "job_id": job.job_id, "error": status.error,
                "overrides": job.overrides, "submissions": len(job.history) + 1, "resources": job.resources},
        "run_dir": str(manifest.run_path(index)),
    }
    try:
        record = sweep.run(index)
    except RunNotFoundError:
        out["record"] = None
        return out
    info, st = record.info, record.status
    out.update({
        "params": record.params,
        "config_yaml": info.get("config_yaml"),
        "summary": record.summary,
        "tags": record.tags,
        "status": {k: st.get(k) for k in ("state", "start_time", "end_time", "runtime_s", "last_step", "attempt")},
        "attempts": st.get("attempts") or [],
        "error": st.get("error"),
        "checkpoint": st.get("checkpoint"),
        "metrics": {k: {"count": v.count, "last": v.last, "last_step": v.last_step, "min": v.min, "max": v.max}
                    for k, v in record.metrics.items()},
        "artifacts": info.get("artifacts") or {},
        "slurm": info.get("slurm"),
        "provenance": info.get("provenance") or {},
    })  # fmt: skip
    return out


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
