"""What ``status`` shows of a study: its trials by outcome, the best so far, and its driver.

Read from the sweep alone (job states, runs, the manifest's ``study``): no Optuna needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .._types import JobState
from ..manifest import Manifest
from ..overrides import override_values
from .control import DriverState, driver_state
from .objective import Objective

__all__ = ["StudySummary", "study_summary"]


@dataclass
class StudySummary:
    """A study at a glance.

    Attributes
    ----------
    objective : Objective
        What trials are scored by, and the direction.
    trials : int
        Trials the study runs in all.
    done, running, pruned, failed, cancelled : int
        Trials completed with an objective value, pending or running, pruned, failed (a completed run
        without the objective counts here), and cancelled (asked again with the same parameters when
        the driver resumes).
    no_objective : int
        Trials whose run completed without a finite objective (the key was never logged?).
    best : dict or None
        The best completed trial so far: ``job``, ``trial``, ``value``, ``params``.
    driver : DriverState
        Whether the driver runs.
    """

    objective: Objective
    trials: int
    done: int = 0
    running: int = 0
    pruned: int = 0
    failed: int = 0
    cancelled: int = 0
    no_objective: int = 0
    best: Optional[Dict[str, Any]] = None
    driver: DriverState = field(default_factory=lambda: DriverState("dead"))

    def lines(self, ref: str) -> List[str]:
        """Two or three lines for a person."""
        out = [f"study: {self.objective.selector}, {self.objective.direction} · {self.trials} trials: {self.done} done, "
               f"{self.running} running, {self.pruned} pruned, {self.failed} failed"
               + (f", {self.cancelled} cancelled" if self.cancelled else "") + f" · driver {self.driver.state}"
               + (f" ({self.driver.where})" if self.driver.where else "")]  # fmt: skip
        if self.best is not None:
            params = " ".join(f"{k}={v}" for k, v in self.best["params"].items())
            trial = f"trial {self.best['trial']}, " if self.best.get("trial") is not None else ""
            out.append(f"best so far: {self.best['value']:.6g} ({trial}job {self.best['job']}): {params}")
        if self.no_objective:
            out.append(f"{self.no_objective} trial{'s' if self.no_objective != 1 else ''} completed without a finite "
                       f"{self.objective.selector} (failed): check that the run logs it "
                       f"(`hpctrack table {ref}` lists what the runs logged)")  # fmt: skip
        if self.driver.state == "dead":
            out.append(f"the driver is not running and the study has not ended (its log: study/driver*.log in the "
                       f"sweep directory): `hpctrack resume {ref}` starts it again")  # fmt: skip
        elif self.driver.state == "failed" and self.driver.error:
            out.append(f"the driver failed: {self.driver.error}; `hpctrack resume {ref}` starts it again")
        return out

    def to_json(self) -> Dict[str, Any]:
        """``hpctrack status --format json``'s ``study``."""
        return {"objective": self.objective.selector, "direction": self.objective.direction, "trials": self.trials,
                "done": self.done, "running": self.running, "pruned": self.pruned, "failed": self.failed,
                "cancelled": self.cancelled, "no_objective": self.no_objective,
                "best": self.best, "driver": self.driver.state, "driver_where": self.driver.where,
                "driver_error": self.driver.error}  # fmt: skip


def study_summary(manifest: Manifest, statuses: Sequence[Any]) -> Optional[StudySummary]:
    """The study of the sweep from its jobs' statuses (:func:`hpctrack.status.sweep_status`); None without one."""
    study = manifest.study
    if not study:
        return None
    objective = Objective.from_json(study["objective"])
    summary = StudySummary(objective=objective, trials=int(study.get("trials") or 0), driver=driver_state(manifest))
    trial_of_job = study.get("trial_of_job") or {}
    keys = [str(p["key"]).lstrip("+~") for p in study.get("space") or []]
    for status in statuses:
        if status.state == JobState.COMPLETED:
            value = objective.value(status.record) if status.record is not None else None
            if value is None:
                summary.failed += 1
                summary.no_objective += 1
                continue
            summary.done += 1
            if summary.best is None or objective.better(value, summary.best["value"]):
                params = override_values(manifest.jobs[status.index].overrides)
                summary.best = {"job": status.index, "trial": trial_of_job.get(str(status.index)), "value": value,
                                "params": {k: params.get(k) for k in keys}}  # fmt: skip
        elif status.state == JobState.PRUNED:
            summary.pruned += 1
        elif status.state == JobState.CANCELLED:
            summary.cancelled += 1
        elif status.state.is_final:
            summary.failed += 1
        else:
            summary.running += 1
    return summary
