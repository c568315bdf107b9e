"""One run of a side-by-side packed task: ``python -m hpctrack.launch.slurm._packed SWEEP_DIR INDEX [FACTS]``.

``FACTS`` is the file in which the task left what it read once for all its runs
(:func:`hpctrack.provenance.shared_facts`). Its own module, so that running it does not import
:mod:`hpctrack.launch.slurm._task` twice (once as ``__main__``, once as itself).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, Dict, Optional

from ...provenance import shared_capture
from .._entrypoint import run_job
from ._task import requeue_this_packed_run


def _task_facts(path: str) -> Optional[Dict[str, Any]]:
    """The facts the task that started this process read for its runs; None (read them here) if not that."""
    try:
        if os.stat(path).st_uid != os.getuid():
            return None
        with open(path, encoding="utf-8") as fh:
            facts = json.load(fh)
    except (OSError, ValueError):
        return None
    # Written by this process's parent, the task: not a file an earlier attempt of the task left.
    return facts if isinstance(facts, dict) and facts.get("pid") == os.getppid() else None


def main(argv: list) -> None:
    if hasattr(signal, "SIGUSR2"):
        # The task passes SLURM's time-limit signal on (SlurmTask.checkpoint): requeue this run.
        signal.signal(signal.SIGUSR2, requeue_this_packed_run)
    with shared_capture(_task_facts(argv[2]) if len(argv) > 2 else None):
        run_job(argv[0], int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
