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
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from .errors import HpctrackError
from .locking import DEFAULT_LOCK_TIMEOUT_S, atomic_write, lock
from .store import RunRecord
from .store.base import MetricStats

if TYPE_CHECKING:
    import pandas as pd

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
    with lock(path.with_name(INDEX_FILE + ".lock"), DEFAULT_LOCK_TIMEOUT_S) as guard:
        with open(path, "a", encoding="utf-8") as fh:
            guard.check()  # a holder that stalled past the TTL appends nothing
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
    return _parse_lines(data)


def usable(row: Optional[Mapping[str, Any]], submitted: Optional[float]) -> bool:
    """Whether an index line stands for the job's current submission, and the run has ended."""
    if row is None:
        return False
    status = row.get("status") or {}
    if status.get("state") not in ENDED_STATES:
        return False
    start = status.get("attempt_start", status.get("start_time"))
    return submitted is None or (start is not None and float(start) >= submitted)


def usable_rows(frame: "pd.DataFrame", submitted: "list[Optional[float]]") -> Dict[int, int]:
    """:func:`usable` over :func:`index_frame`'s columns: job -> row, for the rows that stand for their job.

    ``submitted[j]``: job j's ``submitted`` from the manifest.
    """
    import numpy as np
    import pandas as pd

    if not len(frame):
        return {}
    jobs = frame["job"].to_numpy()
    start = pd.to_numeric(frame.get(f"st{SEP}attempt_start", frame.get(f"st{SEP}start_time")), errors="coerce")
    since = np.array([submitted[j] if 0 <= j < len(submitted) and submitted[j] is not None else -np.inf
                      for j in jobs], dtype=np.float64)  # fmt: skip
    ok = frame[f"st{SEP}state"].isin(ENDED_STATES).to_numpy() & (start.to_numpy(dtype=np.float64) >= since)
    return {int(j): i for i, j in enumerate(jobs) if ok[i] and 0 <= int(j) < len(submitted)}


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
    with lock(path.with_name(INDEX_FILE + ".lock"), DEFAULT_LOCK_TIMEOUT_S) as guard:
        atomic_write(path, "".join(_line(row) for row in rows), guard=guard)
    return len(rows), problems


# -- columnar cache ----------------------------------------------------------------------------
#
# Parsing 10,000 JSON lines and building a record per run took most of a table's time. The
# cache holds the index flattened into columns (``index.cache.parquet``), remembering how many
# bytes of index.jsonl it covers; a reader parses only the lines appended since, and rewrites
# the cache when there were some. It is derived data: deleting it is always safe, and a cache
# that cannot be read or covers more than the file holds (a reindex) is rebuilt.

CACHE_FILE = "index.cache.parquet"
CACHE_VERSION = 1
SEP = "\x1f"  # between the parts of a column name: param, summary and metric keys are free text
_STATUS_COLUMNS = ("state", "attempt_start", "start_time", "end_time", "runtime_s", "last_step", "attempt",
                   "heartbeat", "heartbeat_interval_s")  # fmt: skip
_STAT_FIELDS = ("count", "last", "last_step", "min", "max", "sum", "finite", "argmin", "argmax")


def _flat(row: Mapping[str, Any]) -> Dict[str, Any]:
    status = row.get("status") or {}
    out: Dict[str, Any] = {"job": int(row["job"]), "format_version": row.get("format_version")}
    for name in _STATUS_COLUMNS:
        out[f"st{SEP}{name}"] = status.get(name)
    error = status.get("error")
    out[f"st{SEP}error"] = json.dumps(error) if error else None
    for prefix, section in (("p", "params"), ("s", "summary")):
        for key, value in (row.get(section) or {}).items():
            out[f"{prefix}{SEP}{key}"] = value
    for key, stats in (row.get("metrics") or {}).items():
        for name in _STAT_FIELDS:
            out[f"m{SEP}{key}{SEP}{name}"] = stats.get(name)
    return out


def _frame_of(rows: Iterable[Mapping[str, Any]]) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame([_flat(r) for r in rows])


def _parse_lines(data: bytes) -> Dict[int, Dict[str, Any]]:
    """The newest parsable line of each job in ``data``."""
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


def _fingerprint(data: bytes, covered: int) -> str:
    """What the cache knows of the file: a hash of the last 4 KiB it covered (a rewritten index differs)."""
    import hashlib

    return hashlib.sha1(data[max(0, covered - 4096):covered]).hexdigest()


def _to_parquet(frame: "pd.DataFrame", path: Path, covered: int, fingerprint: str) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    encoded = frame.copy()
    json_columns = []
    for column in encoded.columns:
        if encoded[column].dtype == object:
            kinds = {type(v) for v in encoded[column] if v is not None and v == v}
            if not (kinds <= {str} or kinds <= {bool}):  # mixed, lists, dicts: JSON text, decoded on read
                encoded[column] = [None if v is None else json.dumps(v) for v in encoded[column]]
                json_columns.append(column)
    table = pa.Table.from_pandas(encoded, preserve_index=False)
    meta = {"hpctrack_index_cache": json.dumps({"version": CACHE_VERSION, "covered": covered,
                                                "fingerprint": fingerprint, "json_columns": json_columns})}  # fmt: skip
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k: v.encode() for k, v in meta.items()}})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write(path, buf.getvalue())


def _from_parquet(path: Path) -> "Tuple[pd.DataFrame, int, str]":
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {})[b"hpctrack_index_cache"])
    if int(meta["version"]) != CACHE_VERSION:
        raise ValueError("cache version")
    frame = table.to_pandas()
    for column in meta["json_columns"]:
        frame[column] = [None if v is None else json.loads(v) for v in frame[column]]
    return frame, int(meta["covered"]), str(meta["fingerprint"])


def index_frame(sweep_dir: Path, *, write_cache: bool = True) -> "pd.DataFrame":
    """The index as columns, one row per job (its newest line): ``job``, ``st<SEP>state`` ...,
    ``p<SEP>KEY`` (params), ``s<SEP>KEY`` (summary), ``m<SEP>KEY<SEP>FIELD`` (metric stats)."""
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    path = sweep_dir / INDEX_FILE
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return pd.DataFrame({"job": pd.Series([], dtype="int64")})
    # Only whole lines: a writer may be half-way through its append.
    end = data.rfind(b"\n") + 1
    cache = sweep_dir / CACHE_FILE
    frame, covered = None, 0
    try:
        frame, covered, fingerprint = _from_parquet(cache)
        if covered > end or _fingerprint(data, covered) != fingerprint:
            frame, covered = None, 0  # the index was rewritten (reindex): start over
    except Exception:  # no cache, or one from another version: rebuilt below
        frame, covered = None, 0
    tail = _parse_lines(data[covered:end])
    if frame is not None and not tail:
        return frame
    new = _frame_of(tail.values()) if tail else None
    if frame is None:
        frame = new if new is not None else pd.DataFrame({"job": pd.Series([], dtype="int64")})
    elif new is not None:
        frame = pd.concat([frame[~frame["job"].isin(new["job"])], new], ignore_index=True)
    if write_cache and end:
        try:
            _to_parquet(frame, cache, end, _fingerprint(data, end))
        except Exception:  # a read-only sweep, or a value pyarrow cannot store: just no cache
            pass
    return frame
