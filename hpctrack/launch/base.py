"""The ``Backend`` interface: hand a sweep's jobs to something that runs them."""

from __future__ import annotations

import abc
from typing import ClassVar, Dict, Optional, Sequence

from .._types import JobState
from ..manifest import Manifest

__all__ = ["Backend"]


class Backend(abc.ABC):
    """Runs the jobs of a sweep whose manifest and job function are already on disk.

    ``submit`` returns as soon as the jobs are handed over: it never waits for
    them to run. Job ids and states are recorded in the manifest.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        """Start (or queue) the jobs ``indices`` of ``manifest``; return at once."""

    @abc.abstractmethod
    def states(self, manifest: Manifest) -> Dict[int, JobState]:
        """The backend's view of every job's state, from one query for the whole sweep."""

    @abc.abstractmethod
    def cancel(self, manifest: Manifest, indices: Optional[Sequence[int]] = None) -> None:
        """Cancel the given jobs (default: every job that has not ended)."""
