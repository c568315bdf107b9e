"""The ``Backend`` interface: hand a sweep's jobs to something that runs them."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Sequence, Tuple

from .._types import JobState
from ..manifest import Manifest

__all__ = ["Backend", "JobInfo"]


@dataclass(frozen=True)
class JobInfo:
    """What the backend knows about one job right now."""

    state: Optional[JobState]  # None: the job has ended but the backend can't say how
    node: Optional[str] = None
    reason: Optional[str] = None  # e.g. SLURM's pending reason
    exit_code: Optional[str] = None
    scheduler_state: Optional[str] = None  # the scheduler's own word (REQUEUED, COMPLETING, ...)
    ended: bool = False
    error: Optional[str] = None  # why the backend ended the job itself (not a scheduler's pending reason)


class Backend(abc.ABC):
    """Runs the jobs of a sweep whose manifest and job function are already on disk.

    ``submit`` returns as soon as the jobs are handed over: it never waits for
    them to run. Job ids are recorded in the manifest.
    """

    name: ClassVar[str]

    def preflight(self) -> None:
        """Raise ConfigError when this backend can't submit from here; called before anything is written."""

    @abc.abstractmethod
    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        """Start (or queue) the jobs ``indices`` of ``manifest``; return at once."""

    @abc.abstractmethod
    def query(self, manifest: Manifest) -> Tuple[Dict[int, JobInfo], Optional[str]]:
        """The backend's view of the sweep's jobs, from one query for the whole sweep.

        Returns the jobs it knows about by index, and a note for the user when
        the view is degraded (e.g. SLURM accounting unavailable), else None.
        """

    @abc.abstractmethod
    def cancel(self, manifest: Manifest, indices: Optional[Sequence[int]] = None) -> Optional[List[str]]:
        """Cancel the given jobs (default: every job of the sweep that has not ended).

        May return one line per job it could not signal from here, saying why
        (it runs on another host, or has already gone).
        """
