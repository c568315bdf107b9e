"""A rank of a launched job that Lightning's DDP launcher started: ``python -m hpctrack.integrations._lightning_rank SWEEP_DIR INDEX [OVERRIDES]``.

:class:`~hpctrack.integrations.lightning.HpctrackLogger` points Lightning's re-execution of the
job's main module here (see ``_rank_command`` there). This runs job ``INDEX`` of the sweep as
``python -m hpctrack.launch.job`` does: the job's config, code snapshot and run; ``LOCAL_RANK``,
which Lightning sets, makes the run one that writes nothing. The Hydra overrides Lightning
appends (``hydra.run.dir=...``, ``hydra.job.name=...``) are meant for a ``@hydra.main`` script
started by hand; a launched job's config is the sweep's, so they are left out.
"""

from __future__ import annotations

import sys


def main() -> int:
    from ..launch.job import main as run_one_job

    return run_one_job(sys.argv[1:3])


if __name__ == "__main__":
    sys.exit(main())
