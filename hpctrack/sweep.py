"""``load_sweep``: a launched sweep as a Python object (status, table, runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional, Sequence

from .config import resolve_root
from .manifest import Manifest, find_sweep, iter_sweep_dirs, load_manifest
from .status import JobStatus, job_statuses
from .store import MetricHistory, RunRecord, open_store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Sweep", "load_sweep", "list_sweeps"]


class Sweep:
    """A sweep on disk. Every property reads the current state; nothing is cached.

    Parameters
    ----------
    path:
        The sweep directory (``ROOT/sweeps/<id>``).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r})"

    @property
    def manifest(self) -> Manifest:
        """The manifest as it is on disk now."""
        return load_manifest(self.path)

    @property
    def id(self) -> str:
        return self.path.name

    def status(self) -> List[JobStatus]:
        """Every job with its merged state, last step, runtime and error line."""
        return job_statuses(self.manifest)

    def table(self, *, metrics: Optional[Sequence[str]] = None, all_params: bool = False) -> "pd.DataFrame":
        """One row per run; see :func:`hpctrack.aggregate.sweep_table`."""
        from .aggregate import sweep_table

        return sweep_table(self.manifest, metrics=metrics, all_params=all_params)

    def run(self, index: int) -> RunRecord:
        """The record of job ``index``'s run."""
        manifest = self.manifest
        return open_store(manifest.run_path(index), manifest.store).read()

    def history(self, key: str) -> "pd.DataFrame":
        """Metric ``key`` of every run that logged it, long format: job, step, value, time."""
        import pandas as pd

        manifest = self.manifest
        frames = []
        for job in manifest.jobs:
            try:
                h: MetricHistory = open_store(manifest.run_path(job.index), manifest.store).read_history(key)
            except (KeyError, FileNotFoundError):
                continue
            frames.append(pd.DataFrame({"job": job.index, "step": h.step, "value": h.value, "time": h.time}))
        if not frames:
            return pd.DataFrame(columns=["job", "step", "value", "time"])
        return pd.concat(frames, ignore_index=True)


def load_sweep(ref: str = "latest", *, root: Optional[str] = None) -> Sweep:
    """The sweep ``ref``: ``latest``, an id (or unique prefix), a name, or a path.

    Raises
    ------
    SweepNotFoundError
        Nothing matches ``ref`` under the root.
    """
    return Sweep(find_sweep(resolve_root(root), ref))


def list_sweeps(root: Optional[str] = None) -> Iterator[Sweep]:
    """Every sweep under the root, newest first."""
    for path in iter_sweep_dirs(resolve_root(root)):
        yield Sweep(path)
