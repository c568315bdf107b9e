"""Reads part of a sweep's histories for ``Sweep.history``: ``python -m hpctrack._history_worker SPEC OUT``.

A plain subprocess rather than multiprocessing: spawn/forkserver would re-import the
caller's ``__main__`` (a user's script without a main guard would run again), and fork
copies threads' locks (zarr's event loop) into a child that cannot use them.
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    import numpy as np

    from .sweep import _history_chunk

    spec_path, out_path = (argv if argv is not None else sys.argv[1:])[:2]
    with open(spec_path) as fh:
        spec = json.load(fh)
    jobs, lengths, step, value, wall, attempt, skipped = _history_chunk(
        spec["sweep_dir"], spec["store"], [tuple(item) for item in spec["items"]], spec["key"])
    with open(out_path, "wb") as fh:
        np.savez(fh, jobs=np.asarray(jobs, dtype=np.int64), lengths=lengths, step=step, value=value, time=wall,
                 attempt=attempt, skipped=np.asarray(json.dumps({str(k): v for k, v in skipped.items()})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
