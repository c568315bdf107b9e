"""Small value types shared by several modules."""

from __future__ import annotations

import enum
import math
from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

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
    #: hpctrack's own: a study's trial that its pruner stopped early (``hpctrack launch --optimize --prune``);
    #: final, never resubmitted by ``resume`` or a default ``requeue``.
    PRUNED = "PRUNED"

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


def exit_code_for(states: Iterable[JobState]) -> int:
    """The exit code of a command that waited for jobs to end: 0 when every one COMPLETED, else 1."""
    return 0 if all(s == JobState.COMPLETED for s in states) else 1


def attempts_runtime_s(attempts: Iterable[Mapping[str, Any]]) -> float:
    """Seconds a run's attempts ran, summed over those with a start and an end (the queue between is not counted)."""
    return sum(float(a["end"]) - float(a["start"]) for a in attempts
               if a.get("end") is not None and a.get("start") is not None)  # fmt: skip


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, so it dumps as strict JSON.

    JSON has no NaN or Infinity; Python's ``json`` writes them as bare words other
    parsers refuse. hpctrack's JSON outputs use null for them (documented).
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return finite_json(value.item())
        except (TypeError, ValueError):
            return value
    return value


def signal_name(number: int) -> Optional[str]:
    """``12`` -> ``"SIGUSR2"``; None for 0 or a number this platform does not name."""
    import signal

    if number <= 0:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None
