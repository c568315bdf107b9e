"""The job function :class:`hpctrack.testing.BackendTests` runs; no pytest here, as jobs import it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import FrozenSet


@dataclass(frozen=True)
class ConformanceJob:
    """Log ``steps`` values of ``x`` (one every ``sleep_s``); jobs in ``fail_first`` fail their first attempt."""

    steps: int = 3
    sleep_s: float = 0.0
    fail_first: FrozenSet[int] = field(default_factory=frozenset)

    def __call__(self, index: int) -> int:
        from hpctrack.run import current_run

        run = current_run()
        if run is None:
            raise RuntimeError("the entry point opened no run for this job")
        for step in range(self.steps):
            run.log({"x": float(index * 100 + step)}, step=step)
            if self.sleep_s:
                time.sleep(self.sleep_s)
        if index in self.fail_first and run.attempt == 1:
            raise RuntimeError(f"planned failure of job {index} on its first attempt")
        return index
