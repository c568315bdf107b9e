"""What a launch would submit, said without submitting or writing anything (``launch --dry-run``)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from .registry import backend_class

__all__ = ["launch_plan"]

#: Jobs listed at each end of the sweep; the ones between are counted.
SHOWN_JOBS = 3


def launch_plan(backend: str, options: Dict[str, Any], jobs: Sequence[Sequence[str]], nums: Sequence[int]) -> List[str]:
    """The lines of a dry run: the number of jobs, the first and last few jobs' overrides, and how the
    backend would take them (arrays and their sizes, resources).

    Parameters
    ----------
    backend:
        The backend's name in the registry.
    options:
        The backend's options (the launcher config's, :func:`hpctrack.launch.backend_options`).
    jobs:
        Each job's overrides, real values (masked here).
    nums:
        Hydra's job number of each job.

    Raises
    ------
    ConfigError
        The backend refuses the options, or cannot submit from here (``preflight``).
    """
    from .._terminal import printable
    from ..secrets import mask_overrides
    from . import get_backend

    instance = get_backend(backend, **options)
    instance.preflight()
    n = len(jobs)
    label = backend_class(backend).label or backend
    lines = [f"dry run: {n} job{'s' if n != 1 else ''} would be submitted to {label} (nothing submitted or written)"]
    shown = list(range(n)) if n <= 2 * SHOWN_JOBS else [*range(SHOWN_JOBS), -1, *range(n - SHOWN_JOBS, n)]
    for i in shown:
        if i < 0:
            lines.append(f"    ... {n - 2 * SHOWN_JOBS} more")
            continue
        lines.append(printable(f"    #{nums[i]} : {' '.join(mask_overrides(list(jobs[i])))}"))
    lines.extend(instance.plan(n))
    return lines
