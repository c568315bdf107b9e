"""What runs inside each job process: open the job's run, then call the job function.

The job function (for Hydra sweeps: the composed config plus the task
function) is pickled once per sweep into ``job.pkl``; the entry point itself is
importable, so submitit pickles only ``run_job`` and two plain arguments.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

JOB_FN_FILE = "job.pkl"


def run_job(sweep_dir: str, index: int) -> Any:
    """Run job ``index`` of the sweep in ``sweep_dir`` and record its outcome in its run."""
    from ..manifest import load_manifest
    from .._types import RunStatus
    from ..run import _status_for, open_job_run

    manifest = load_manifest(Path(sweep_dir))
    if manifest.script:
        # The script's own modules (e.g. a sibling `model.py`) must import as they do
        # when the script runs plainly.
        script_dir = os.path.dirname(manifest.script)
        if script_dir not in sys.path:
            sys.path.insert(0, script_dir)
    run = open_job_run(Path(sweep_dir), index)
    try:
        import cloudpickle

        with open(Path(sweep_dir) / JOB_FN_FILE, "rb") as fh:
            job_fn = cloudpickle.load(fh)
        result = job_fn(index)
    except BaseException as exc:
        run.finish(_status_for(exc), error=exc)
        raise
    run.finish(RunStatus.COMPLETED)
    return result
