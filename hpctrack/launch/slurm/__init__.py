"""The ``slurm`` backend: a sweep becomes one SLURM job array, submitted through submitit.

Everything about SLURM lives in this folder: submission, state queries
(``sacct``/``squeue``) and cancel (:mod:`.backend`), and what runs inside each
array task (:mod:`._task`: the task, its requeue hook and the job's SLURM
identity; :mod:`._packed`: one side-by-side packed run).
"""

from __future__ import annotations

from ._task import SlurmTask
from .backend import (SLURM_STATES, SlurmBackend, SlurmLauncherConf, max_array_size, parse_sacct, parse_squeue,
                      parse_time_min)  # fmt: skip

__all__ = ["SlurmBackend", "SlurmLauncherConf", "SlurmTask", "SLURM_STATES", "parse_sacct", "parse_squeue",
           "max_array_size", "parse_time_min"]  # fmt: skip
