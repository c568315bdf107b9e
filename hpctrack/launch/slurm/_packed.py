"""One run of a side-by-side packed task: ``python -m hpctrack.launch.slurm._packed SWEEP_DIR INDEX``.

Its own module, so that running it does not import :mod:`hpctrack.launch.slurm._task` twice
(once as ``__main__``, once as itself).
"""

from __future__ import annotations

import signal
import sys

from .._entrypoint import run_job
from ._task import requeue_this_packed_run


def main(argv: list) -> None:
    if hasattr(signal, "SIGUSR2"):
        # The task passes SLURM's time-limit signal on (SlurmTask.checkpoint): requeue this run.
        signal.signal(signal.SIGUSR2, requeue_this_packed_run)
    run_job(argv[0], int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
