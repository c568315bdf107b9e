"""Run one job of a sweep in this process: ``python -m hpctrack.launch.job SWEEP_DIR INDEX``.

For schedulers that start a command per job (see
:func:`hpctrack.launch.job_command`). Its own module, so that
running it does not import :mod:`hpctrack.launch._entrypoint` twice (once
as ``__main__``, once as itself). Exits 0 when the job's function returned,
1 when it raised (its run records why).
"""

from __future__ import annotations

import sys
from typing import List, Optional

from ._entrypoint import run_job

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m hpctrack.launch.job SWEEP_DIR INDEX", file=sys.stderr)
        return 2
    try:
        run_job(args[0], int(args[1]))
    except Exception:
        import traceback

        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
