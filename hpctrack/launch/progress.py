"""Live progress of a waiting launch: a bar plus jobs done / running / failed."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from .._terminal import markup
from .._types import JobState
from ..manifest import Manifest
from . import wait_for_sweep

__all__ = ["wait_with_progress"]


def wait_with_progress(sweep_dir: Path, *, show: bool = True) -> Manifest:
    """Wait for a sweep on a backend without a queue, drawing a progress bar on stderr when ``show``."""
    if not show:
        return wait_for_sweep(sweep_dir)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("done · {task.fields[running]} running · {task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("sweep", total=None, running=0, failed=0)

        def update(manifest: Manifest) -> None:
            counts = Counter(job.state for job in manifest.jobs)
            done = sum(n for state, n in counts.items() if state.is_final)
            failed = sum(n for state, n in counts.items() if state.is_final and state != JobState.COMPLETED)
            progress.update(
                task,
                description=markup(manifest.name or manifest.id),
                total=len(manifest.jobs),
                completed=done,
                running=counts.get(JobState.RUNNING, 0),
                failed=failed,
            )

        return wait_for_sweep(sweep_dir, on_update=update)
