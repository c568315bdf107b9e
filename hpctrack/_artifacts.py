"""Copying a file or directory into a run's ``artifacts/`` folder.

Shared by :meth:`hpctrack.Run.log_artifact` and ``hpctrack artifact`` (which copies from
inside a job, then tells the run's writer through its relay): the same checks, the same
record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Tuple, Union

__all__ = ["ARTIFACTS_DIR", "artifact_target", "copy_artifact"]

ARTIFACTS_DIR = "artifacts"


def artifact_target(run_dir: Path, source: Union[str, "os.PathLike[str]"], name: Union[str, None]) -> Tuple[Path, str]:
    """Where ``source`` goes in the run (``artifacts/<name>``) and under which name.

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist.
    ValueError
        ``name`` is absolute or leads out of ``artifacts/``.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"log_artifact: {source} does not exist")
    name = name or source.name
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"log_artifact: name {name!r} must be a relative path inside the run's artifacts/")
    return Path(run_dir) / ARTIFACTS_DIR / name, name


def copy_artifact(run_dir: Path, source: Union[str, "os.PathLike[str]"], name: str) -> Tuple[Path, Dict[str, Any]]:
    """Copy ``source`` to ``run_dir/artifacts/<name>``; returns the copy's path and its record.

    The record is what the run keeps under ``info["artifacts"][name]``: ``path``,
    ``kind`` (file or dir), ``size`` and, for a file, ``sha256``. A link planted in
    ``artifacts/`` (or ``artifacts/`` itself a link) is refused, never written through.
    """
    from .safefs import check_inside, copy_file, copy_tree, sha256_file

    source = Path(source)
    target = Path(run_dir) / ARTIFACTS_DIR / name
    check_inside(target.parent, run_dir, "write the artifact")
    target.parent.mkdir(parents=True, exist_ok=True)
    check_inside(target.parent, run_dir, "write the artifact")
    if source.is_dir():
        copy_tree(source, target, run_dir)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        entry: Dict[str, Any] = {"kind": "dir", "size": size}
    else:
        copy_file(source, target, run_dir)
        entry = {"kind": "file", "size": target.stat().st_size, "sha256": sha256_file(target)}
    return target, {"path": f"{ARTIFACTS_DIR}/{name}", **entry}
