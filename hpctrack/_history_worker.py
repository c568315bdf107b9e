"""Reads part of a sweep's histories for ``Sweep.history``: ``python -m hpctrack._history_worker SPEC OUT``.

A plain subprocess rather than multiprocessing: spawn/forkserver would re-import the
caller's ``__main__`` (a user's script without a main guard would run again), and fork
copies threads' locks (zarr's event loop) into a child that cannot use them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .store import MetricHistory, open_store

#: The columns of a worker's result file after its header line, in order: name, dtype.
RESULT_COLUMNS = (("lengths", "i8"), ("step", "i8"), ("value", "f8"), ("time", "f8"), ("attempt", "i4"))


def history_chunk(
    sweep_dir: str, store: str, indices: List["tuple[int, str]"], key: str, hints: Optional[Dict[int, Any]] = None
) -> "tuple[Any, ...]":
    """Histories of ``key`` of some runs of a sweep (runs that never logged it are left out).

    ``hints``: job -> ``[fingerprint, rows, segments, restarts, format_version]`` from the job's index line
    (:meth:`hpctrack.store.Store.read_history_indexed`), used while the store still has that fingerprint.
    """
    import numpy as np

    from .errors import HpctrackError

    jobs: List[int] = []
    histories: List[MetricHistory] = []
    skipped: Dict[int, str] = {}
    for index, run_dir in indices:
        try:
            run = open_store(Path(sweep_dir) / run_dir, store)
            hint = hints.get(index) if hints else None
            history = run.read_history_indexed(key, *hint) if hint is not None else None
            if history is None:
                history = run.read_history(key)
        except (KeyError, FileNotFoundError):
            continue
        except HpctrackError as err:
            if "has not started" not in str(err):
                skipped[index] = str(err)
            continue
        jobs.append(index)
        histories.append(history)
    lengths = np.array([len(h) for h in histories], dtype=np.int64)

    def cat(parts: List[Any], dtype: str) -> Any:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype=dtype)

    return (jobs, lengths, cat([h.step for h in histories], "i8"), cat([h.value for h in histories], "f8"),
            cat([h.time for h in histories], "f8"),
            cat([h.attempt if h.attempt is not None else np.ones(len(h), np.int32) for h in histories], "i4"),
            skipped)  # fmt: skip


def main(argv: Optional[List[str]] = None) -> int:
    import numpy as np

    spec_path, out_path = (argv if argv is not None else sys.argv[1:])[:2]
    with open(spec_path) as fh:
        spec = json.load(fh)
    jobs, lengths, step, value, wall, attempt, skipped = history_chunk(
        spec["sweep_dir"], spec["store"], [tuple(item) for item in spec["items"]], spec["key"],
        {int(job): hint for job, hint in (spec.get("hints") or {}).items()},
    )  # fmt: skip
    # A JSON header line, then the columns' raw bytes (RESULT_COLUMNS): the reader fills its own arrays
    # from them without a copy or a zip member's checksum per column.
    header = {"jobs": [int(j) for j in jobs], "points": int(len(step)),
              "skipped": {str(k): v for k, v in skipped.items()}}  # fmt: skip
    with open(out_path, "wb") as fh:
        fh.write(json.dumps(header).encode() + b"\n")
        for (_, dtype), column in zip(RESULT_COLUMNS, (lengths, step, value, wall, attempt)):
            fh.write(np.ascontiguousarray(column, dtype=dtype).data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
