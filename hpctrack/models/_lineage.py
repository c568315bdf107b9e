"""Where a version comes from: the run's file to copy, and the lineage recorded with it.

The lineage is read from the run's own record when the version is registered (config, code
identity, packages, metrics, summary) and kept in ``version.json``, so it outlives the run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .._types import finite_json
from ..errors import ConfigError, HpctrackError, RunNotFoundError
from ..safefs import is_inside
from ._payload import Source

__all__ = ["find_source", "lineage_of", "metric_columns"]

#: The statistics of each metric recorded at registration (``val/acc:max``, as ``table`` names them).
_STATS = ("last", "min", "max")


def _checkpoint(run_dir: Path, which: str) -> Tuple[Path, Dict[str, Any]]:
    from ..checkpoint import CHECKPOINTS_DIR, Checkpoints

    every = Checkpoints(run_dir / CHECKPOINTS_DIR).all()
    if not every:
        raise ConfigError(f"run {run_dir} has no checkpoint; save one with run.save_checkpoint() or give --artifact")
    if which == "latest":
        chosen = every[-1]
    elif which.isdigit() and any(c.seq == int(which) for c in every):
        chosen = next(c for c in every if c.seq == int(which))
    else:
        raise ConfigError(f"--checkpoint {which!r}: give 'latest' or the number of one of the run's checkpoints "
                          f"({', '.join(str(c.seq) for c in every)})")  # fmt: skip
    problems = chosen.problems()
    if problems:
        raise ConfigError(f"checkpoint {chosen.path} is damaged ({problems[0]}); register another one")
    return chosen.path, {**chosen.describe(), "step": chosen.step}


def find_source(
    run_dir: Path, info: Dict[str, Any], artifact: Optional[str], checkpoint: Optional[str]
) -> Tuple[Source, Optional[Dict[str, Any]]]:
    """The file or directory to register, checked to exist and to resolve inside the run's directory.

    ``artifact`` is a path relative to the run directory (``checkpoints/best.ckpt``) or the name of
    an artifact the run logged (``model.npz``); ``checkpoint`` is ``latest`` or a checkpoint number.
    Returns the source and, for a checkpoint, what it is (seq, step).
    """
    if (artifact is None) == (checkpoint is None):
        raise ConfigError("give exactly one of --artifact PATH (relative to the run directory) and --checkpoint "
                          "latest|N")  # fmt: skip
    ckpt = None
    if checkpoint is not None:
        path, ckpt = _checkpoint(run_dir, checkpoint)
        name = f"checkpoint-{path.name}"
    else:
        artifact = str(artifact)
        if not artifact or Path(artifact).is_absolute() or ".." in Path(artifact).parts:
            raise ConfigError(f"--artifact {artifact!r}: give a path relative to the run directory "
                              "(e.g. artifacts/model.npz) or the name of an artifact the run logged")  # fmt: skip
        path = run_dir / artifact
        logged = (info.get("artifacts") or {}).get(artifact)
        if not os.path.lexists(path) and isinstance(logged, dict) and logged.get("path"):
            path = run_dir / str(logged["path"])
        if not os.path.lexists(path):
            names = ", ".join(sorted(info.get("artifacts") or {})) or "none"
            raise ConfigError(f"--artifact {artifact!r}: no such file in {run_dir} (the run's logged artifacts: "
                              f"{names}); nothing was registered")  # fmt: skip
        name = path.name
    if not is_inside(path, run_dir):
        raise ConfigError(f"refusing to register {path}: a symlink leads it out of the run directory {run_dir} (to "
                          f"{os.path.realpath(path)}); register a file of the run")  # fmt: skip
    real = Path(os.path.realpath(path))
    if real == Path(os.path.realpath(run_dir)):
        raise ConfigError(f"--artifact {artifact!r} is the whole run directory {run_dir}, which holds the run's own "
                          "store and records (run stores are not artifacts); give --artifact a file or subdirectory "
                          "of the run, e.g. artifacts/model.npz")  # fmt: skip
    return Source(path=real, base=Path(os.path.realpath(run_dir)), name=name), ckpt


def metric_columns(metrics: Any, summary: Dict[str, Any]) -> Dict[str, Any]:
    """``{"val/acc:max": ..., "test/acc": ...}``: the metric statistics and summary values, as ``table`` names them."""
    out: Dict[str, Any] = {}
    for key, stats in metrics.items():
        for stat in _STATS:
            out[f"{key}:{stat}"] = getattr(stats, stat)
        out[f"{key}:last_step"] = stats.last_step
    for key, value in summary.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            out.setdefault(key, value)
    return finite_json(out)


def lineage_of(sweep: Any, index: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The run ``index`` of ``sweep`` as a version records it (run, config, code, packages, metrics),
    and the run's ``info`` (its logged artifacts)."""
    manifest = sweep.manifest
    run_id = f"{manifest.id}/{index}"
    try:
        record = sweep.run(index)
    except RunNotFoundError:
        raise ConfigError(f"run {run_id} has no record (it never started); register a run that ran") from None
    except HpctrackError as err:
        raise ConfigError(f"run {run_id} cannot be read ({err}); nothing was registered") from err
    info = record.info
    prov = info.get("provenance") or {}
    git = prov.get("git") or {}
    packages = sorted(str(p) for p in prov.get("packages") or [])
    lineage = finite_json({
        "run": {"run_id": run_id, "sweep_id": manifest.id, "sweep_name": manifest.name, "job": index,
                "sweep_path": str(manifest.path), "run_dir": str(manifest.run_path(index)),
                "state": record.status.get("state"), "overrides": manifest.jobs[index].overrides},
        "config": record.params,
        "config_yaml": info.get("config_yaml"),
        "code": {"snapshot_digest": (prov.get("code_snapshot") or {}).get("digest"), "commit": git.get("commit"),
                 "branch": git.get("branch"), "dirty": git.get("dirty"), "diff_sha256": git.get("diff_sha256")},
        "packages_sha256": hashlib.sha256("\n".join(packages).encode()).hexdigest() if packages else None,
        "packages_count": len(packages),
        "metrics": metric_columns(record.metrics, record.summary),
        "run_tags": record.tags,
    })  # fmt: skip
    return lineage, info
