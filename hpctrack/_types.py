"""Small value types shared by several modules."""

from __future__ import annotations

import enum
from collections import Counter
from typing import Any, Dict, Iterable, List, Union

JSONValue = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]


class JobState(str, enum.Enum):
    """State of one job of a sweep, in SLURM's vocabulary for every backend."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    PREEMPTED = "PREEMPTED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    #: hpctrack's own: the run's record is missing or unreadable (deleted, truncated, corrupt);
    #: what it held cannot be shown. ``hpctrack verify`` says why, ``resume --include-lost`` reruns it.
    LOST = "LOST"

    @property
    def is_final(self) -> bool:
        """True once the job will not change state without a requeue."""
        return self not in (JobState.PENDING, JobState.RUNNING)

    def __str__(self) -> str:
        return self.value


class RunStatus(str, enum.Enum):
    """What a run records about itself in its store."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # ended by a signal or Ctrl-C before finishing
    REQUEUED = "requeued"  # this attempt stopped for a requeue; the next one continues the run

    def __str__(self) -> str:
        return self.value


def state_summary(states: Iterable[JobState]) -> str:
    """``6 jobs: 5 COMPLETED, 1 FAILED``, states in a fixed order."""
    counts = Counter(states)
    total = sum(counts.values())
    parts = [f"{counts[s]} {s.value}" for s in JobState if counts.get(s)]
    return f"{total} job{'s' if total != 1 else ''}: " + ", ".join(parts)
