"""``hpctrack gc``: remove the launcher's per-job files once jobs have ended.

submitit leaves a pickled submission and a pickled result per job (and an
sbatch script per SLURM array). On clusters that cap inodes per user these add
up, so once a job has ended they can go. Logs (``*_log.out``/``*_log.err``),
run stores, artifacts, manifests and the sweep's ``job.pkl`` (needed to
resubmit) are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from .manifest import LOGS_DIR, Manifest
from .safefs import check_inside, unlink
from .status import sweep_status

__all__ = ["GcReport", "collect_sweep"]

_JOB_FILE_SUFFIXES = ("_submitted.pkl", "_result.pkl", "_submission.sh")


@dataclass
class GcReport:
    """What a collection removed (or would remove, on a dry run)."""

    files: List[Path] = field(default_factory=list)
    bytes: int = 0
    skipped_jobs: int = 0  # jobs not ended yet: their files are still needed

    def add(self, other: "GcReport") -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.skipped_jobs += other.skipped_jobs


def _job_folders(manifest: Manifest, index: int) -> List[Path]:
    job = manifest.jobs[index]
    folders = [manifest.run_path(index) / LOGS_DIR]  # local backend
    if job.job_id:
        folders.append(manifest.path / LOGS_DIR / job.job_id)  # SLURM: logs/<array>_<task>/
    return folders


def collect_sweep(manifest: Manifest, *, dry_run: bool = False) -> GcReport:
    """Remove submitit's pickles and scripts of the ended jobs of one sweep."""
    report = GcReport()
    statuses = sweep_status(manifest).jobs
    ended = {s.index for s in statuses if s.state.is_final}
    report.skipped_jobs = len(statuses) - len(ended)
    candidates: List[Path] = []
    base = manifest.path
    # Every folder is checked before anything is removed: a log folder planted as a symlink
    # out of the sweep refuses the whole collection, naming it.
    for index in sorted(ended):
        for folder in _job_folders(manifest, index):
            if folder.is_dir():
                check_inside(folder, base, "delete files in")
                candidates += [p for p in folder.iterdir() if p.name.endswith(_JOB_FILE_SUFFIXES)]
    logs = manifest.path / LOGS_DIR
    if logs.is_dir():
        check_inside(logs, base, "delete files in")
    if logs.is_dir() and not report.skipped_jobs:
        # Array-level sbatch scripts, and pickles of a submission sbatch refused.
        for path in logs.iterdir():
            if path.is_file() and path.suffix == ".pkl":
                candidates.append(path)
            elif path.is_dir() and "_" not in path.name:
                check_inside(path, base, "delete files in")
                candidates += [p for p in path.iterdir() if p.name.endswith(_JOB_FILE_SUFFIXES)]
    for path in candidates:
        try:
            size = path.lstat().st_size
            if not dry_run:
                unlink(path, base, missing_ok=False)
        except FileNotFoundError:
            continue
        report.files.append(path)
        report.bytes += size
    if not dry_run and logs.is_dir():
        for folder in sorted(logs.iterdir(), reverse=True):
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
    return report
