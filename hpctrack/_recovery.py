"""A run's recovery file: what the run still held in memory when it stopped writing its store.

When a run finds its store removed, truncated or replaced under it (or loses
its writer lease), it stops writing to the store and, as it ends, keeps what
the store never received in ``runs/<i>/recovery-<attempt>.jsonl`` next to it.
The format is documented in ``docs/store-format.md``: one JSON object per
line, a header first, then the sections, then one line per metric key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional

from .store import MetricBatch

__all__ = ["RECOVERY_VERSION", "recovery_path", "write_recovery", "read_recovery"]

RECOVERY_VERSION = 1


def recovery_path(run_dir: Path, attempt: int) -> Path:
    return Path(run_dir) / f"recovery-{attempt}.jsonl"


def _lines(
    *,
    run_id: str,
    attempt: int,
    reason: str,
    store: Path,
    sections: Mapping[str, Mapping[str, Any]],
    batch: MetricBatch,
) -> Iterator[Dict[str, Any]]:
    yield {"format_version": RECOVERY_VERSION, "run_id": run_id, "attempt": attempt, "time": time.time(),
           "reason": reason, "store": str(store), "points": len(batch)}  # fmt: skip
    for name, values in sections.items():
        if values:
            yield {"section": name, "values": dict(values)}
    for key, (steps, values, times) in batch.points.items():
        yield {"metric": key, "attempt": batch.attempt, "step": [int(s) for s in steps],
               "value": [float(v) for v in values], "time": [float(t) for t in times]}  # fmt: skip


def write_recovery(
    run_dir: Path,
    *,
    run_id: str,
    attempt: int,
    reason: str,
    store: Path,
    sections: Mapping[str, Mapping[str, Any]],
    batch: MetricBatch,
) -> Path:
    """Write the recovery file of ``attempt`` (replacing an earlier one of the same attempt).

    Raises
    ------
    OSError
        It could not be written (a full disk, a removed run directory that cannot be made again).
    """
    from .locking import atomic_write
    from .safefs import check_inside
    from .store.base import json_default

    path = recovery_path(run_dir, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    # atomic_write replaces a link planted at ``path``, never writes through it; the run
    # directory itself must not be a link out of its sweep (``runs/<i>`` in ``sweeps/<id>``).
    check_inside(path.parent, Path(run_dir).parent.parent, "write the recovery file in")
    text = "".join(json.dumps(line, allow_nan=True, default=json_default, separators=(",", ":")) + "\n"
                   for line in _lines(run_id=run_id, attempt=attempt, reason=reason, store=store,
                                      sections=sections, batch=batch))  # fmt: skip
    atomic_write(path, text)
    return path


def read_recovery(path: Path) -> Dict[str, Any]:
    """A recovery file as ``{"header": {...}, "sections": {name: values}, "metrics": {key: {...}}}``."""
    out: Dict[str, Any] = {"header": None, "sections": {}, "metrics": {}}
    header: Optional[Dict[str, Any]] = None
    for raw in Path(path).read_text().splitlines():
        line = json.loads(raw)
        if header is None:
            header = out["header"] = line
        elif "section" in line:
            out["sections"][line["section"]] = line["values"]
        elif "metric" in line:
            out["metrics"][line["metric"]] = {k: line[k] for k in ("attempt", "step", "value", "time")}
    return out
