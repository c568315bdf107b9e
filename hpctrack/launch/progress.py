"""Live progress of a waiting launch: a bar plus jobs done / running / failed."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from .._terminal import markup
from .._types import JobState
from ..manifest import Manifest
from . import wait_for_sweep

__all__ = ["SweepProgress", "wait_with_progress"]


class SweepProgress:
    """A progress bar on stderr for ``total`` jobs, fed their states; draws nothing unless ``show``."""

    def __init__(self, name: str, total: Optional[int], *, show: bool = True) -> None:
        self.name, self.total, self.show = name, total, show
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "SweepProgress":
        if not self.show:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "done · {task.fields[pending]} pending · {task.fields[running]} running · "
                "{task.fields[failed]} failed · {task.fields[cancelled]} cancelled"
            ),
            TimeElapsedColumn(),
        )
        self._progress = Progress(*columns, console=Console(file=sys.stderr), transient=False)
        self._progress.__enter__()
        self._task = self._progress.add_task(markup(self.name), total=self.total, pending=0, running=0, failed=0,
                                             cancelled=0)  # fmt: skip
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, states: Iterable[JobState], name: Optional[str] = None) -> None:
        """Show the jobs' current states (every job of the bar, one state each)."""
        if self._progress is None:
            return
        counts = Counter(states)
        done = sum(n for state, n in counts.items() if state.is_final)
        not_failed = (JobState.COMPLETED, JobState.CANCELLED)
        failed = sum(n for state, n in counts.items() if state.is_final and state not in not_failed)
        self._progress.update(
            self._task,
            description=markup(name or self.name),
            total=sum(counts.values()),
            completed=done,
            pending=counts.get(JobState.PENDING, 0),
            running=counts.get(JobState.RUNNING, 0),
            failed=failed,
            cancelled=counts.get(JobState.CANCELLED, 0),
        )


def wait_with_progress(sweep_dir: Path, *, show: bool = True, indices: Optional[Sequence[int]] = None) -> Manifest:
    """Wait for a sweep on a backend without a queue, drawing a progress bar on stderr when ``show``.

    ``indices``: the jobs the bar counts (a sweeper's latest batch); default every job of the sweep.
    """
    if not show:
        return wait_for_sweep(sweep_dir)
    wanted = set(indices) if indices is not None else None
    with SweepProgress("sweep", None) as bar:

        def update(manifest: Manifest) -> None:
            jobs = [job for job in manifest.jobs if wanted is None or job.index in wanted]
            bar.update([job.state for job in jobs], name=manifest.name or manifest.id)

        return wait_for_sweep(sweep_dir, on_update=update)
