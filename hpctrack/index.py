"""The sweep's summary index: every ended run's record in one file, so tables skip the run stores.

``<sweep>/index.jsonl`` holds one JSON line per ended run (params, summary,
tags, status and per-metric stats: what :meth:`Store.read` returns, without
``info``). A run appends its line when it ends; ``hpctrack reindex`` rebuilds
the file from the run stores. Appends hold ``index.jsonl.lock`` for one write;
readers take no lock. A run's newest line wins, and a line is only used while
it describes the job's current submission and an ended run: a requeued job is
read from its store again until it ends anew.

A reader skips lines it cannot parse or that are not index lines (a writer
killed mid-append leaves at most one torn line; a hand edit may leave valid
JSON of the wrong shape), so the index is never a reason for a table to fail;
at worst a run is read from its store. :func:`read_index_lines` names them.

A line records the store's :meth:`~hpctrack.store.Store.fingerprint` when it
was written. Readers serve an ended run from its line only while the store
still has that fingerprint; otherwise they read the store (which may be gone:
the run is then lost). ``hpctrack reindex`` keeps a line for every run it
cannot read, marked ``"lost": "<reason>"``, so a run never drops out silently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ._types import RunStatus
from .errors import HpctrackError, RunNotFoundError
from .locking import DEFAULT_LOCK_TIMEOUT_S, atomic_write, lock
from .store import RunRecord
from .store.base import MetricStats, read_failure

if TYPE_CHECKING:
    from .manifest import Manifest
    from .store import Store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["INDEX_FILE", "INDEX_VERSION", "record_to_row", "row_to_record", "append_rows", "read_index",
           "read_index_lines", "parse_lines", "IndexLines", "rebuild_index", "indexed_row", "ENDED_STATES", "index_frame", "index_table", "usable_rows",
           "encode_parquet", "decode_columns", "flat_row", "SEP"]  # fmt: skip

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


def indexed_row(job: int, store: "Store") -> Tuple[RunRecord, Dict[str, Any]]:
    """Read ``store`` and make its index line, with the fingerprint of what was read.

    The fingerprint is taken around the read: an update landing in between (a
    run still writing) leaves the line without one, so readers check the store.
    """
    before = store.fingerprint()
    record = store.read()
    row = record_to_row(job, record)
    row["fingerprint"] = before if before is not None and store.fingerprint() == before else None
    return record, row


def row_to_record(row: Mapping[str, Any], path: Path) -> RunRecord:
    return RunRecord(
        path=path,
        format_version=int(row.get("format_version", 0)),
        params=dict(row.get("params") or {}),
        summary=dict(row.get("summary") or {}),
        tags=dict(row.get("tags") or {}),
        status=dict(row.get("status") or {}),
        info={},
        metrics=LazyStats(row.get("metrics") or {}),
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
        with open(path, "a+b") as fh:
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # a torn line from a killed append: never glue ours to it
                    text = "\n" + text
            guard.check()  # a holder that stalled past the TTL appends nothing
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class IndexLines:
    """The index as read: the newest valid line of each job, and the lines that are not index lines."""

    rows: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    #: (line number, what is wrong with it): torn lines (a killed append) and valid JSON of the wrong shape.
    damaged: List[Tuple[int, str]] = field(default_factory=list)

    def damage_note(self) -> Optional[str]:
        """One line naming the damaged lines and the fix, or None."""
        if not self.damaged:
            return None
        listed = "; ".join(f"line {n}: {why}" for n, why in self.damaged[:3])
        more = f" (and {len(self.damaged) - 3} more)" if len(self.damaged) > 3 else ""
        return (f"{INDEX_FILE} {listed}{more}: ignored, those runs are read from their stores; "
                "`hpctrack reindex` rewrites the index")  # fmt: skip


def read_index(sweep_dir: Path) -> Dict[int, Dict[str, Any]]:
    """The newest valid line of each job; {} without an index."""
    return read_index_lines(sweep_dir).rows


def read_index_lines(sweep_dir: Path) -> IndexLines:
    """The newest valid line of each job and the damaged lines; empty without an index."""
    path = Path(sweep_dir) / INDEX_FILE
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return IndexLines()
    return parse_lines(data)


def usable(row: Optional[Mapping[str, Any]], submitted: Optional[float]) -> bool:
    """Whether an index line stands for the job's current submission: an ended run, or one marked lost.

    A line marked ``lost`` (by ``reindex``) stands for the submission it was written for.
    """
    if row is None:
        return False
    if row.get("lost"):
        return row.get("submitted") == submitted
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
    if "lost" in frame.columns:  # lines marked lost by reindex: the general path decides
        ok &= frame["lost"].isna().to_numpy()
    return {int(j): i for i, j in enumerate(jobs) if ok[i] and 0 <= int(j) < len(submitted)}


def lost_row(
    job: int, submitted: Optional[float], reason: str, old: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """An index line saying job ``job``'s run is lost (``reason``), keeping what its old line knew."""
    base = dict(old) if old is not None and not old.get("lost") else {"v": INDEX_VERSION, "job": job}
    return {**base, "v": INDEX_VERSION, "job": job, "lost": reason, "submitted": submitted}


def had_started(manifest: "Manifest", index: int, row: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether job ``index``'s current submission is known to have written its run store.

    An index line for it, an end record (the run reached its end), or the backend having
    seen the job complete (a launched job's run writes its store before the task starts).
    """
    from . import endrecord
    from ._types import JobState

    job = manifest.jobs[index]
    if row is not None and usable(row, job.submitted):
        return True
    end = endrecord.read(manifest.run_path(index))
    if end is not None and (job.submitted is None or float(end.get("time") or 0) >= job.submitted):
        return True
    return job.state == JobState.COMPLETED


def rebuild_index(sweep_dir: Path) -> Tuple[int, Dict[int, str]]:
    """Rewrite the index from the run stores, under the index lock.

    Returns (ended runs indexed, lost job -> reason). A run that had started but whose
    store is missing or unreadable keeps a line marked ``lost`` (with what its old line
    knew); it is never dropped. A store changed since its line was written (another
    fingerprint) is checked whole (:meth:`Store.verify`), not only opened.
    """
    from .manifest import load_manifest
    from .store import open_store

    manifest = load_manifest(Path(sweep_dir))
    old = read_index(sweep_dir)
    rows = []
    lost: Dict[int, str] = {}
    for job in manifest.jobs:
        store = open_store(manifest.run_path(job.index), manifest.store)
        previous = old.get(job.index)
        reason = None
        try:
            record, row = indexed_row(job.index, store)
        except RunNotFoundError:
            if had_started(manifest, job.index, previous):
                reason = f"run store missing: {store.path} (deleted or moved?)"
        except HpctrackError as err:
            reason = f"unreadable run store {store.path.name}: {read_failure(err)}"
        else:
            changed = previous is not None and previous.get("fingerprint") not in (None, row["fingerprint"])
            problems = store.verify() if changed or (previous or {}).get("lost") else []
            if problems:
                reason = f"damaged run store {store.path.name}: {problems[0]}"
            elif record.status.get("state") in ENDED_STATES:
                rows.append(row)
        if reason is not None:
            lost[job.index] = reason
            rows.append(lost_row(job.index, job.submitted, reason, previous))
    path = Path(sweep_dir) / INDEX_FILE
    with lock(path.with_name(INDEX_FILE + ".lock"), DEFAULT_LOCK_TIMEOUT_S) as guard:
        atomic_write(path, "".join(_line(row) for row in rows), guard=guard)
    return len(rows) - len(lost), lost


# -- columnar cache ----------------------------------------------------------------------------
#
# Parsing 10,000 JSON lines and building a record per run took most of a table's time. The
# cache holds the index flattened into columns (``index.cache.parquet``), remembering how many
# bytes of index.jsonl it covers; a reader parses only the lines appended since, and rewrites
# the cache when there were some. It is derived data: deleting it is always safe, and a cache
# that cannot be read or covers more than the file holds (a reindex) is rebuilt.

CACHE_FILE = "index.cache.parquet"
CACHE_VERSION = 3  # 2: fingerprint, lost and submitted columns; damaged lines in the metadata; 3: the index file's id
SEP = "\x1f"  # between the parts of a column name: param, summary and metric keys are free text
STATUS_COLUMNS = ("state", "attempt_start", "start_time", "end_time", "runtime_s", "last_step", "attempt",
                   "heartbeat", "heartbeat_interval_s")  # fmt: skip
STAT_FIELDS = ("count", "last", "last_step", "min", "max", "sum", "finite", "argmin", "argmax")


def flat_row(row: Mapping[str, Any]) -> Dict[str, Any]:
    """An index line as the cache's columns: ``job``, ``st<SEP>NAME``, ``p<SEP>KEY``, ``s<SEP>KEY``, ``m<SEP>KEY<SEP>FIELD``."""
    status = row.get("status") or {}
    out: Dict[str, Any] = {"job": int(row["job"]), "format_version": row.get("format_version"),
                           "fingerprint": row.get("fingerprint"), "lost": row.get("lost") or None,
                           "submitted": row.get("submitted")}  # fmt: skip
    for name in STATUS_COLUMNS:
        out[f"st{SEP}{name}"] = status.get(name)
    error = status.get("error")
    out[f"st{SEP}error"] = json.dumps(error) if error else None
    for prefix, section in (("p", "params"), ("s", "summary")):
        for key, value in (row.get(section) or {}).items():
            out[f"{prefix}{SEP}{key}"] = value
    for key, stats in (row.get("metrics") or {}).items():
        for name in STAT_FIELDS:
            out[f"m{SEP}{key}{SEP}{name}"] = stats.get(name)
    return out


def _frame_of(rows: Iterable[Mapping[str, Any]]) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame([flat_row(r) for r in rows])


RUN_STATES = {s.value for s in RunStatus}
STAT_NUMBERS = ("count", "last", "last_step", "min", "max")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def row_problem(row: Any) -> Optional[str]:
    """What makes a parsed line not an index line (valid JSON of the wrong shape), or None."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if not isinstance(row.get("job"), int) or isinstance(row.get("job"), bool) or row["job"] < 0:
        return f"job {json.dumps(row.get('job'))[:30]} is not a job index"
    for name in ("params", "summary", "tags", "status", "metrics", "restarts"):
        if not isinstance(row.get(name, {}), dict):
            return f"{name} is not an object"
    status = row.get("status") or {}
    if "state" in status and status["state"] not in RUN_STATES:
        return f"status.state {json.dumps(status['state'])[:30]} is not a run state"
    for name in ("attempt_start", "start_time", "end_time", "runtime_s"):
        if status.get(name) is not None and not _is_number(status[name]):
            return f"status.{name} is not a number"
    for key, stats in (row.get("metrics") or {}).items():
        if not isinstance(stats, dict) or not all(_is_number(stats.get(f)) for f in STAT_NUMBERS):
            return f"metrics[{json.dumps(key)[:30]}] is not a stats object"
    if not all(_is_number(k) for k in (row.get("restarts") or {}).values()):
        return "restarts is not an object of steps"
    if row.get("fingerprint") is not None and not isinstance(row["fingerprint"], str):
        return "fingerprint is not a string"
    if row.get("lost") is not None and not isinstance(row["lost"], str):
        return "lost is not a string"
    return None


def parse_lines(data: bytes, first_line: int = 1) -> IndexLines:
    """The newest valid line of each job in ``data``, and the damaged lines (numbered from ``first_line``)."""
    out = IndexLines()
    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            out.damaged.append((number, "torn (not valid JSON; a writer killed mid-append)"))
            continue  # that run is read from its store
        if isinstance(row, dict) and _is_number(row.get("v")) and row["v"] > INDEX_VERSION:
            continue  # written by a newer hpctrack: its store still answers
        problem = row_problem(row)
        if problem is not None:
            out.damaged.append((number, f"not an index line ({problem})"))
            continue
        out.rows[row["job"]] = row
    return out


def _fingerprint(data: bytes, covered: int) -> str:
    """What the cache knows of the file: a hash of the last 4 KiB it covered (a rewritten index differs)."""
    import hashlib

    return hashlib.sha1(data[max(0, covered - 4096) : covered]).hexdigest()


def encode_parquet(frame: "pd.DataFrame", meta_key: bytes, meta: Dict[str, Any]) -> bytes:
    """``frame`` as Parquet bytes, ``meta`` (JSON) under ``meta_key`` in the schema's metadata.

    Object columns that are not all text or all true/false (mixed kinds, lists, dicts)
    are stored as JSON text and listed in ``meta["json_columns"]``; :func:`decode_parquet`
    turns them back. Values are data only: nothing in the file is ever executed.
    """
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoded = frame.copy()
    json_columns = []
    for column in encoded.columns:
        if encoded[column].dtype == object:
            # all text or all true/false (missing values aside), found without a Python step per value
            kind = pd.api.types.infer_dtype(encoded[column], skipna=True)
            if kind not in ("string", "boolean", "empty"):  # mixed, lists, dicts: JSON text, decoded on read
                encoded[column] = [None if v is None else json.dumps(v) for v in encoded[column]]
                json_columns.append(column)
    table = pa.Table.from_pandas(encoded, preserve_index=False)
    text = json.dumps({**meta, "json_columns": json_columns})
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), meta_key: text.encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def decode_columns(frame: "pd.DataFrame", meta: Mapping[str, Any]) -> "pd.DataFrame":
    """Turn the JSON text columns :func:`encode_parquet` made back into values (those ``frame`` holds)."""
    for column in meta.get("json_columns") or []:
        if column in frame.columns:
            frame[column] = [None if v is None else json.loads(v) for v in frame[column]]
    return frame


def _to_parquet(frame: "pd.DataFrame", path: Path, meta: Dict[str, Any]) -> None:
    # A new file replaces the old (or a link planted in its place) whole, never group- or world-writable.
    atomic_write(path, encode_parquet(frame, _META_KEY, {**meta, "version": CACHE_VERSION}))


_META_KEY = b"hpctrack_index_cache"


def _file_id(fh: Any) -> List[int]:
    """Which file ``index.jsonl`` is (device, inode): a reindex replaces it with a new one."""
    st = os.fstat(fh.fileno())
    return [st.st_dev, st.st_ino]


def _read_cache(path: Path) -> "Optional[Tuple[pa.Table, Dict[str, Any]]]":
    """The cache's table and metadata, or None: missing, unreadable (truncated), of another version,
    or not a file this user alone could have written (:func:`hpctrack.safefs.open_trusted`)."""
    import pyarrow.parquet as pq

    from .safefs import open_trusted

    fh = open_trusted(path)
    if fh is None:
        return None
    try:
        with fh:
            table = pq.ParquetFile(fh).read()  # not pq.read_table: no dataset machinery for one file
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
        if int(meta["version"]) != CACHE_VERSION:
            return None
        int(meta["covered"]), str(meta["fingerprint"]), int(meta["lines"]), list(meta["damaged"]), list(meta["file"])
    except Exception:  # not Parquet, cut short, metadata of another shape: rebuilt from the index
        return None
    return table, meta


def _covers(meta: Mapping[str, Any], file_id: List[int], data: bytes, start: int) -> bool:
    """Whether a cache with ``meta`` describes the start of this index file (``data`` read from ``start``)."""
    covered = int(meta["covered"])
    return (list(meta["file"]) == file_id and start + len(data) >= covered
            and _fingerprint(data, covered - start) == meta["fingerprint"])  # fmt: skip


def index_frame(sweep_dir: Path, *, write_cache: bool = True) -> "pd.DataFrame":
    """The index as columns, one row per job (its newest line): ``job``, ``fingerprint``, ``lost``,
    ``st<SEP>state`` ..., ``p<SEP>KEY`` (params), ``s<SEP>KEY`` (summary), ``m<SEP>KEY<SEP>FIELD``
    (metric stats). ``frame.attrs["damaged"]``: the damaged lines, ``[(line number, why), ...]``."""
    import pandas as pd

    from ._index_arrow import parse_frame

    sweep_dir = Path(sweep_dir)
    path = sweep_dir / INDEX_FILE
    empty = pd.DataFrame({"job": pd.Series([], dtype="int64")})
    cache = sweep_dir / CACHE_FILE
    cached = _read_cache(cache)
    covered = int(cached[1]["covered"]) if cached is not None else 0
    # With a cache, only the last 4 KiB it covered (its fingerprint) and the lines appended since are
    # read: an index of 100,000 runs is hundreds of MB, which a cold read feels.
    start = max(0, covered - 4096)
    try:
        with open(path, "rb") as fh:
            file_id = _file_id(fh)
            fh.seek(start)
            data = fh.read()
            if cached is not None and not _covers(cached[1], file_id, data, start):
                cached = None  # another file (a reindex), or rewritten in place: start over
                fh.seek(0)
                data, start, covered = fh.read(), 0, 0
    except FileNotFoundError:
        empty.attrs["damaged"] = []
        return empty
    frame, lines, damaged = None, 0, []
    if cached is not None:
        meta = cached[1]
        frame = decode_columns(cached[0].to_pandas(), meta)
        lines, damaged = int(meta["lines"]), [tuple(d) for d in meta["damaged"]]
    # Only whole lines: a writer may be half-way through its append.
    end = start + data.rfind(b"\n") + 1
    fast = parse_frame(data[covered - start : end - start])  # None: not only clean lines, or too few to matter
    tail = IndexLines() if fast is not None else parse_lines(data[covered - start : end - start], first_line=lines + 1)
    damaged = damaged + tail.damaged
    if frame is not None and fast is None and not tail.rows and not tail.damaged:
        frame.attrs["damaged"] = damaged
        return frame
    new = fast if fast is not None else (_frame_of(tail.rows.values()) if tail.rows else None)
    if frame is None:
        frame = new if new is not None else empty
    elif new is not None:
        frame = pd.concat([frame[~frame["job"].isin(new["job"])], new], ignore_index=True)
    if write_cache and end:
        try:
            meta = {"covered": end, "fingerprint": _fingerprint(data, end - start), "file": file_id,
                    "lines": lines + data.count(b"\n", covered - start, end - start), "damaged": damaged}  # fmt: skip
            _to_parquet(frame, cache, meta)
        except Exception:  # a read-only sweep, or a value pyarrow cannot store: just no cache
            pass
    frame.attrs["damaged"] = damaged
    return frame


def index_table(sweep_dir: Path) -> "Optional[pa.Table]":
    """:func:`index_frame`'s columns as a pyarrow Table when they need no Python step, else None.

    Answers from the index cache when it covers the whole index and holds no JSON text columns,
    or from the whole index when :func:`hpctrack._index_arrow.parse_table` takes every line.
    None (the caller takes :func:`index_frame`): lines appended since the cache, damaged lines,
    values pyarrow does not hold as they are. Writes nothing.
    """
    from ._index_arrow import parse_table

    sweep_dir = Path(sweep_dir)
    try:
        with open(sweep_dir / INDEX_FILE, "rb") as fh:
            cached = _read_cache(sweep_dir / CACHE_FILE)
            if cached is None:  # no cache, or one not to be trusted: the whole index
                data = fh.read()
                return parse_table(data) if data.endswith(b"\n") else None
            table, meta = cached
            if meta.get("json_columns") or meta.get("damaged"):
                return None
            covered = int(meta["covered"])
            start = max(0, covered - 4096)
            fh.seek(start)
            data = fh.read()
            file_id = _file_id(fh)
    except FileNotFoundError:
        return None
    # The cache serves only an index with nothing after what it covered (and not rewritten since).
    if start + len(data) != covered or not _covers(meta, file_id, data, start):
        return None
    return table.replace_schema_metadata(None)
