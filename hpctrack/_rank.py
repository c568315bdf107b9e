"""Which rank of a job of several tasks this process is, from the environment alone.

Its own module so that the commands a job's program calls (``hpctrack log``) learn it
without importing the run side (numpy, the stores).
"""

from __future__ import annotations

import os

__all__ = ["global_rank"]


def global_rank() -> int:
    """This process's global rank in a job of several tasks; 0 when it is the only one.

    torchrun and most launchers set ``RANK``; SLURM sets ``SLURM_PROCID`` for
    each task of a step of ``SLURM_NTASKS`` (or ``SLURM_STEP_NUM_TASKS``) > 1;
    a launcher that sets only ``LOCAL_RANK`` runs on one node.
    """
    env = os.environ
    for name in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if env.get(name, "").strip().isdigit():
            return int(env[name])
    tasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or ""
    if tasks.strip().isdigit() and int(tasks) > 1 and env.get("SLURM_PROCID", "").strip().isdigit():
        return int(env["SLURM_PROCID"])
    if env.get("LOCAL_RANK", "").strip().isdigit():
        return int(env["LOCAL_RANK"])
    return 0
