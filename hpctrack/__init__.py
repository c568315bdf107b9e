"""hpctrack: experiment tracking for HPC clusters, with no server.

Hydra sweeps run locally or on SLURM; every job records params, metrics,
artifacts and status in its own store on the shared filesystem; sweeps become
pandas tables. ``import hpctrack`` stays light (no h5py, zarr, submitit, hydra
or pandas) so it costs nothing on a login node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    from .sweep import Sweep, load_sweep

_LAZY = {
    "start_run": "run",
    "current_run": "run",
    "Run": "run",
    "Checkpoint": "checkpoint",
    "load_sweep": "sweep",
    "Sweep": "sweep",
}


def __getattr__(name: str) -> Any:
    # Deferred so that `import hpctrack` does not pull in the store and its dependencies.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'hpctrack' has no attribute {name!r}")
