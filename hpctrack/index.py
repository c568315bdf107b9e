"""The sweep's summary index: every ended run's record in one file, so tables skip the run stores.

``<sweep>/index.jsonl`` holds one JSON line per ended run (params, summary,
tags, status and per-metric stats: what :meth:`Store.read` returns, without
``info``). A run appends its line when it ends; ``hpctrack reindex`` rebuilds
the file from the run stores. Appends hold ``index.jsonl.lock`` for one write;
readers take no lock. A run's newest line wins, and a line is only used while
it describes the job's current submission and an ended run: a requeued job is
read from its store again until it ends anew.

A reader skips lines it cannot parse (a writer killed mid-append leaves at
most one torn line), so the index is never a reason for a table to fail; at
worst a run is read from its store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from .errors import HpctrackError
from .locking import DEFAULT_LOCK_TIMEOUT_S, atomic_write, lock
from .store import RunRecord
from .store.base import MetricStats

__all__ = ["INDEX_FILE", "INDEX_VERSION", "record_to_row", "row_to_record", "append_rows", "read_index",
           "rebuild_index", "ENDED_STATES"]  # fmt: skip

INDEX_FILE = "index.jsonl"
INDEX_VERSION = 1
#: Run states (the run's own ``status.state``) an index line may describe.
ENDED_STATES = ("completed", "failed", "interrupted")


def record_to_row(job: int, record: RunRecord) -> Dict[str, Any]:
    """One index line for job ``job``'s run record."""
    return {
        "v": INDEX_VERSION,
        "job": job,
        "format_version": record.format_version,
        "params": record.params,
        "summary": record.summary,
        "tags": record.tags,
        "status": record.status,
        "metrics": {key: stats.to_json() for key, stats in record.metrics.items()},
        "restarts": {str(a): k for a, k in record.restarts.items()},
    }


def row_to_record(row: Mapping[str, Any], path: Path) -> RunRecord:
    return RunRecord(
        path=path,
        format_version=int(row.get("format_version", 0)),
        params=dict(row.get("params") or {}),
        summary=dict(row.get("summary") or {}),
        tags=dict(row.get("tags") or {}),
        status=dict(row.get("status") or {}),
        info={},
        metrics=LazyStats(row.get("metrics") or {}),  # type: ignore[arg-type]
        restarts={int(a): int(k) for a, k in (row.get("restarts") or {}).items()},
    )


class LazyStats(Mapping[str, MetricStats]):
    """Metric stats built on first access: a table of 10,000 runs reads a few of each run's metrics."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw
        self._built: Dict[str, MetricStats] = {}

    def __getitem__(self, key: str) -> MetricStats:
        stats = self._built.get(key)
        if stats is None:
            stats = self._built[key] = MetricStats.from_json(self._raw[key])
        return stats

    def raw(self, key: str) -> Optional[Mapping[str, Any]]:
        """The stored stats object of ``key`` (``count``, ``last``, ...), or None."""
        return self._raw.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, allow_nan=True, separators=(",", ":"), default=str) + "\n"


def append_rows(sweep_dir: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append index lines under the index lock: one write, fsynced."""
    text = "".join(_line(row) for row in rows)
    if not text:
        return
    path = Path(sweep_dir) / INDEX_FILE
    with lock(path.with_name(INDEX_FILE + ".lock"), DEFAULT_LOCK_TIMEOUT_S):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def read_index(sweep_dir: Path) -> Dict[int, Dict[str, Any]]:
    """The newest parsable line of each job; {} without an index."""
    path = Path(sweep_dir) / INDEX_FILE
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return {}
    rows: Dict[int, Dict[str, Any]] = {}
    for raw in data.split(b"\n"):
        if not raw:
            continue
        try:
            row = json.loads(raw)
            if int(row.get("v", 0)) > INDEX_VERSION:
                continue  # written by a newer hpctrack: its store still answers
            rows[int(row["job"])] = row
        except (ValueError, KeyError, TypeError):
            continue  # a torn line (killed writer) or garbage: that run is read from its store
    return rows


def usable(row: Optional[Mapping[str, Any]], submitted: Optional[float]) -> bool:
    """Whether an index line stands for the job's current submission, and the run has ended."""
    if row is None:
        return False
    status = row.get("status") or {}
    if status.get("state") not in ENDED_STATES:
        return False
    start = status.get("attempt_start", status.get("start_time"))
    return submitted is None or (start is not None and float(start) >= submitted)


def rebuild_index(sweep_dir: Path) -> Tuple[int, Dict[int, str]]:
    """Rewrite the index from the run stores; returns (lines written, unreadable job -> error)."""
    from .manifest import load_manifest
    from .store import open_store

    manifest = load_manifest(Path(sweep_dir))
    rows = []
    problems: Dict[int, str] = {}
    for job in manifest.jobs:
        try:
            record = open_store(manifest.run_path(job.index), manifest.store).read()
        except HpctrackError as err:
            if "has not started" not in str(err):
                problems[job.index] = str(err)
            continue
        if record.status.get("state") in ENDED_STATES:
            rows.append(record_to_row(job.index, record))
    path = Path(sweep_dir) / INDEX_FILE
    with lock(path.with_name(INDEX_FILE + ".lock"), DEFAULT_LOCK_TIMEOUT_S):
        atomic_write(path, "".join(_line(row) for row in rows))
    return len(rows), problems
