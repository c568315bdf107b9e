"""hpctrack: experiment tracking for HPC clusters, with no server.

Hydra sweeps run locally or on SLURM; every job records params, metrics,
artifacts and status in its own store on the shared filesystem; sweeps become
pandas tables. ``import hpctrack`` stays light (no h5py, zarr, submitit, hydra
or pandas) so it costs nothing on a login node.

In a training script:

- ``start_run(cfg)``: the :class:`Run` of this job (a context manager), or a one-run
  sweep of its own under a plain ``python train.py``.
- ``current_run()``: the run started in this process, if any.
- ``Run``: ``run.log({...}, step=...)``, ``run.summary``, ``run.tags``,
  ``run.save_checkpoint(...)`` / ``run.latest_checkpoint()`` (a :class:`Checkpoint`),
  ``run.dir``, ``run.run_id``, ``run.attempt``.

Reading results:

- ``load_sweep("latest")``: a :class:`Sweep`, with ``status()``, ``table()`` and ``history(key)``.
- ``runs(where, sweeps=, since=, tags=, metrics=)``: the matching runs of every sweep of the root.

Also: ``JobState`` and ``RunStatus`` (the state words), and the errors, all
subclasses of ``HpctrackError``. Backends and conformance suites live in
``hpctrack.store``, ``hpctrack.launch`` and ``hpctrack.testing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List

from ._types import JobState, RunStatus
from .errors import (
    ConfigError,
    FormatVersionError,
    HpctrackError,
    LockTimeout,
    RunNotFoundError,
    StoreError,
    SubmissionError,
    SweepNotFoundError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "start_run",
    "current_run",
    "load_sweep",
    "Run",
    "Checkpoint",
    "Sweep",
    "runs",
    "JobState",
    "RunStatus",
    "HpctrackError",
    "ConfigError",
    "SubmissionError",
    "StoreError",
    "LockTimeout",
    "RunNotFoundError",
    "SweepNotFoundError",
    "FormatVersionError",
]

if TYPE_CHECKING:
    from .checkpoint import Checkpoint
    from .run import Run, current_run, start_run
    from .search import runs
    from .sweep import Sweep, load_sweep

_LAZY = {
    "start_run": "run",
    "current_run": "run",
    "Run": "run",
    "Checkpoint": "checkpoint",
    "load_sweep": "sweep",
    "Sweep": "sweep",
    "runs": "search",
}


def __getattr__(name: str) -> Any:
    # Deferred so that `import hpctrack` does not pull in the store and its dependencies.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'hpctrack' has no attribute {name!r}")


def __dir__() -> List[str]:
    # The lazy names too, so that dir() and help() list them (help imports them, dir does not).
    return sorted(set(globals()) | set(_LAZY))
