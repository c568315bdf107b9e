"""``python -m hpctrack.optimize SWEEP_DIR``: the study's driver process.

Runs the user's script exactly as ``hpctrack launch`` does, in multirun mode with
the sweeper ``hpctrack_optimize`` (which drives the study) and the sweep's
launcher, with the arguments recorded at launch in ``study/driver.json``.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path
from typing import List, Optional


def _clean_scheduler_env() -> None:
    """A driver running as a SLURM job submits jobs of its own: they must not inherit its allocation."""
    for name in list(os.environ):
        if name.startswith(("SLURM_", "SBATCH_", "SRUN_", "SUBMITIT_")):
            del os.environ[name]


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hpctrack.optimize SWEEP_DIR", file=sys.stderr)
        return 2
    from ..manifest import load_manifest
    from ..safefs import job_umask
    from ..settings import scheduler_job_id
    from .control import read_driver_file
    from .driver import SCHEDULER_JOB

    sweep_dir = Path(args[0]).absolute()
    spec = read_driver_file(sweep_dir)
    # The journal, the driver's logs and what its launcher writes: never writable by others.
    job_umask(load_manifest(sweep_dir).launcher.get("share_group"))
    SCHEDULER_JOB["id"] = scheduler_job_id()  # recorded by the driver, before the scheduler's variables go
    _clean_scheduler_env()
    script = str(spec["script"])
    os.chdir(spec.get("cwd") or os.getcwd())
    os.environ["HYDRA_FULL_ERROR"] = "1"
    os.environ["HPCTRACK_COMMAND"] = json.dumps(spec.get("command") or [])
    sys.argv = [script, *spec["argv"]]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
