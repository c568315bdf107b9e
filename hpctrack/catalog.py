"""The runs catalog: every sweep's runs as columns, the cache that serves ``hpctrack runs``.

It lives in ``ROOT/catalog/u<uid>/`` (one per user: in a shared root each user caches the
sweeps they can read, and never reads a file another user could have written):

- ``sweeps/<sha1 of the sweep id>.parquet``: one sweep's runs (a *part*);
- ``runs.parquet``: many sweeps' runs in one file (the *merged* file), so a query over a
  thousand sweeps opens one file, not a thousand.

Each file's Parquet metadata (key ``hpctrack_catalog``) holds the catalog ``version`` and, per
sweep, a :class:`SweepEntry`: its ``key`` (size, mtime and inode of ``sweep.json``,
``index.jsonl`` and ``labels.json`` when it was read), name, creation time, tags, note and the
jobs read live. A sweep is served from the catalog while its key is unchanged; otherwise (a run
ended and was indexed, a requeue, a tag) it is read again, and a sweep moved to the trash or
deleted simply is no longer listed. The catalog is derived data: deleting it is always safe.

Rows come from the sweep's index (``index.jsonl``, through :func:`hpctrack.index.index_frame`):
an ended run whose line stands for its job's current submission, or a ``LOST`` mark. The other
runs are read from their stores as ``table`` reads them (:func:`hpctrack.status.sweep_status`):
once, and kept, when every job of the sweep has ended; at each query while a job may still run
(the entry's ``live`` jobs). A run's store changed after its line was written (rare: ``verify``
finds it) is shown as indexed until ``hpctrack reindex`` rewrites the line.

A file is only read when it is a regular file (never a symlink) owned by this user and not
writable by group or others, in a catalog directory of the same kind inside the root; anything
else (a planted link, another user's file, garbage) is ignored and rewritten. Files are written
whole (temporary file, ``os.replace``, :func:`hpctrack.safefs.write_file`) under a lock
(:mod:`hpctrack.locking`); readers take no lock. Parquet holds data only: nothing read from the
catalog is executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ._types import JobState
from .errors import HpctrackError
from .index import INDEX_FILE, SEP, decode_columns, encode_parquet, flat_row, index_frame, record_to_row, usable_rows
from .labels import LABELS_FILE, Labels, read_labels
from .manifest import FORMAT_VERSION, MANIFEST_FILE, Manifest, manifest_problem, read_manifest_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CATALOG_DIR", "CATALOG_VERSION", "SweepEntry", "Catalog", "sweep_key", "build_sweep", "read_sweep",
           "live_rows"]  # fmt: skip

CATALOG_DIR = "catalog"
#: Version of the catalog files this hpctrack writes; files of another version are rebuilt.
CATALOG_VERSION = 1
PARTS_DIR = "sweeps"
MERGED_FILE = "runs.parquet"
_META_KEY = b"hpctrack_catalog"
#: Columns every catalog frame has besides ``p/s/m<SEP>...``: the sweep, the job, its state, runtime.
BASE_COLUMNS = ("sweep", "job", "state", "runtime_s")
#: The value columns a catalog keeps: params, summary values and metric stats.
KEEP_PREFIXES = (f"p{SEP}", f"s{SEP}", f"m{SEP}")
_UNSAFE_MODE = stat.S_IWGRP | stat.S_IWOTH
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_STATES = {s.value: s for s in JobState}


@dataclass
class SweepEntry:
    """What the catalog knows of one sweep besides its rows."""

    id: str
    key: str
    name: Optional[str] = None
    created: float = 0.0
    tags: Dict[str, str] = field(default_factory=dict)
    note: Optional[str] = None
    swept_keys: List[str] = field(default_factory=list)
    #: Jobs not served by the index while some job may still run: read from their stores at each query.
    live: List[int] = field(default_factory=list)
    #: Why the tags could not be read (``labels.json`` damaged), or None.
    problem: Optional[str] = None

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "SweepEntry":
        return cls(id=str(data["id"]), key=str(data["key"]), name=data.get("name"), created=float(data["created"]),
                   tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()}, note=data.get("note"),
                   swept_keys=[str(k) for k in data.get("swept_keys") or []],
                   live=[int(j) for j in data.get("live") or []], problem=data.get("problem"))  # fmt: skip


def sweep_key(sweep_dir: Path) -> str:
    """What the sweep's files are now: inode, size and mtime of its manifest, index and labels."""
    parts = []
    for name in (MANIFEST_FILE, INDEX_FILE, LABELS_FILE):
        try:
            st = os.stat(Path(sweep_dir) / name)
        except OSError:
            parts.append("-")
            continue
        parts.append(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _empty(columns: Sequence[str] = BASE_COLUMNS) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def _kept(flat: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in flat.items() if k.startswith(KEEP_PREFIXES)}


def live_rows(manifest: Manifest, jobs: Sequence[int]) -> "pd.DataFrame":
    """The runs of ``jobs`` read as ``table`` reads the runs the index does not serve: from their stores,
    their state merged with the backend's (one query for the sweep)."""
    import pandas as pd

    from .overrides import override_values
    from .status import sweep_status

    wanted = set(jobs)
    if not wanted:
        return _empty()
    rows = []
    for st in sweep_status(manifest, only=wanted).jobs:
        if st.index not in wanted:
            continue
        if st.record is not None:
            row = _kept(flat_row(record_to_row(st.index, st.record)))
        else:  # not started, or its data is gone: the params its overrides set
            row = {f"p{SEP}{k}": v for k, v in override_values(manifest.jobs[st.index].overrides).items()}
        row.update(sweep=manifest.path.name, job=st.index, state=st.state.value, runtime_s=st.runtime_s)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class _Jobs:
    """What the catalog needs of a manifest's jobs: one entry per job."""

    submitted: List[Optional[float]]
    pruned: List[bool]
    all_final: bool


def _light_jobs(data: Any) -> Optional[_Jobs]:
    """The jobs' facts from a parsed manifest, checking only what they rely on; None: load it whole.

    A sweep of 1,000 jobs spent ~30 ms in :meth:`Manifest.from_json` (the check of every key of
    every job, then a record per job); a query over 1,000 such sweeps read nothing else as long.
    The whole manifest is still loaded (and checked) when this says None or a job needs reading.
    """
    if not isinstance(data, dict) or not isinstance(data.get("jobs", []), list) or "created" not in data:
        return None
    jobs = data.get("jobs", [])
    if manifest_problem({k: v for k, v in data.items() if k != "jobs"}) is not None:
        return None
    if int(data.get("format_version", 0)) > FORMAT_VERSION or not all(type(j) is dict for j in jobs):
        return None
    try:
        states = set(j.get("state", "PENDING") for j in jobs)
        if not states <= _STATES.keys():
            return None
    except TypeError:  # an unhashable state
        return None
    submitted = [j.get("submitted") for j in jobs]
    pruned = [j.get("pruned") for j in jobs]
    if not {type(v) for v in submitted} <= {int, float, type(None)} or not {type(v) for v in pruned} <= {
        dict,
        type(None),
    }:
        return None
    return _Jobs(submitted=submitted, pruned=[bool(p) for p in pruned],
                 all_final=all(_STATES[s].is_final for s in states))  # fmt: skip


def _served_rows(sweep_id: str, cols: "pd.DataFrame", row_of: Dict[int, int], pruned: List[bool]) -> "pd.DataFrame":
    """The catalog rows of the jobs the index serves (``row_of``: job -> row of ``cols``), made in one go.

    Column by column with numpy: building the frame by inserting and copying cost more than
    parsing the sweep's index.
    """
    import numpy as np
    import pandas as pd

    from .status import RUN_TO_JOB

    rows = np.fromiter(row_of.values(), dtype=np.int64, count=len(row_of))
    whole = len(rows) == len(cols) and bool((rows == np.arange(len(rows))).all())
    jobs = np.fromiter(row_of.keys(), dtype=np.int64, count=len(row_of))

    def values(column: str) -> Any:
        array = cols[column].to_numpy()
        return array if whole else array[rows]

    states = pd.Series(values(f"st{SEP}state")).map({k: v.value for k, v in RUN_TO_JOB.items()}).to_numpy(dtype=object)
    stopped = np.asarray(pruned, dtype=bool)[jobs] if len(pruned) else np.zeros(len(jobs), dtype=bool)
    states[stopped & (states != JobState.LOST.value)] = JobState.PRUNED.value
    runtime = values(f"st{SEP}runtime_s") if f"st{SEP}runtime_s" in cols.columns else np.full(len(rows), np.nan)
    data: Dict[str, Any] = {"sweep": np.full(len(rows), sweep_id, dtype=object), "job": jobs, "state": states,
                            "runtime_s": pd.to_numeric(pd.Series(runtime), errors="coerce").to_numpy()}  # fmt: skip
    for column in cols.columns:
        if column.startswith(KEEP_PREFIXES):
            array = values(column)
            # no value at all: float NaN, which joins with other sweeps' columns at no cost per value
            data[column] = np.full(len(rows), np.nan) if array.dtype == object and pd.isna(array).all() else array
    return pd.DataFrame(data)


def build_sweep(sweep_dir: Path) -> "Tuple[SweepEntry, pd.DataFrame]":
    """Read one sweep into its catalog entry and rows (its live jobs' rows are not among them).

    Raises
    ------
    HpctrackError
        The manifest cannot be read (the caller names the sweep and skips it).
    """
    import numpy as np
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    key = sweep_key(sweep_dir)  # before reading: a change while reading makes the next query read again
    data = read_manifest_json(sweep_dir)
    facts = _light_jobs(data)
    manifest = None
    if facts is None:  # anything unusual: the whole manifest, checked (a damaged one raises here)
        manifest = Manifest.from_json(data, sweep_dir)
        facts = _Jobs([j.submitted for j in manifest.jobs], [bool(j.pruned) for j in manifest.jobs],
                      all(j.state.is_final for j in manifest.jobs))  # fmt: skip
    problem = None
    try:
        labels = read_labels(sweep_dir)
    except HpctrackError as err:
        labels, problem = Labels(), " ".join(str(err).split())
    cols = index_frame(sweep_dir, write_cache=False)
    n_jobs = len(facts.submitted)
    row_of = usable_rows(cols, facts.submitted)
    parts = []
    if row_of:
        parts.append(_served_rows(sweep_dir.name, cols, row_of, facts.pruned))
    lost = []
    if "lost" in cols.columns:  # lines reindex marked lost, for the job's current submission
        for i in np.nonzero(cols["lost"].notna().to_numpy())[0]:
            job = int(cols["job"].iat[i])
            recorded = cols["submitted"].iat[i] if "submitted" in cols.columns else None
            recorded = None if recorded is None or recorded != recorded else float(recorded)
            if 0 <= job < n_jobs and job not in row_of and recorded == facts.submitted[job]:
                lost.append({"sweep": sweep_dir.name, "job": job, "state": JobState.LOST.value, "runtime_s": None})
    if lost:
        parts.append(pd.DataFrame(lost))
    rest = sorted(set(range(n_jobs)) - set(row_of) - {row["job"] for row in lost})
    live: List[int] = []
    if rest and facts.all_final:  # every job ended: read once, kept
        parts.append(live_rows(manifest or Manifest.from_json(data, sweep_dir), rest))
    else:
        live = rest
    if live and manifest is None:
        Manifest.from_json(data, sweep_dir)  # read at each query: as checked as every other command's
    frame = _concat(parts) if len(parts) > 1 else parts[0] if parts else _empty()
    entry = SweepEntry(id=sweep_dir.name, key=key, name=data.get("name"), created=float(data["created"]),
                       tags=dict(labels.tags), note=labels.note, swept_keys=[str(k) for k in data.get("swept_keys", [])],
                       live=live, problem=problem)  # fmt: skip
    return entry, frame


def _concat(parts: "List[Any]") -> Any:
    """The parts' rows as one frame, every column of every part in order.

    A part's columns with no value (the params of jobs that never ran) are left out of the
    concatenation and come back as missing values: each column's type is the type of its values,
    as pandas decides it today without its warning about deciding it otherwise later.
    """
    import pandas as pd

    columns = list(dict.fromkeys(c for part in parts for c in part.columns))
    filled = [part.dropna(axis=1, how="all") for part in parts if len(part)]
    frame = pd.concat(filled, ignore_index=True) if filled else parts[0].iloc[0:0]
    return frame.reindex(columns=columns)


def read_sweep(sweep_dir: Path) -> "Tuple[SweepEntry, Any]":
    """:func:`build_sweep`, its rows as a pyarrow Table when the sweep allows the quick read.

    The rows are a ``pyarrow.Table`` when :mod:`hpctrack._catalog_arrow` reads the sweep (the
    common case: see there), else the ``pandas.DataFrame`` of :func:`build_sweep`.

    Raises
    ------
    HpctrackError
        As :func:`build_sweep`.
    """
    from ._catalog_arrow import manifest_facts, served_table
    from .index import index_table

    sweep_dir = Path(sweep_dir)
    key = sweep_key(sweep_dir)  # before reading: a change while reading makes the next query read again
    facts = manifest_facts(sweep_dir)
    index = index_table(sweep_dir) if facts is not None else None
    table = served_table(sweep_dir.name, index, facts.submitted) if facts is not None and index is not None else None
    if facts is None or table is None:
        return build_sweep(sweep_dir)
    rest = sorted(set(range(len(facts.submitted))) - set(table["job"].to_pylist()))
    if rest and facts.all_final:  # runs to read from their stores, once: the general path
        return build_sweep(sweep_dir)
    if rest:  # read at each query: as checked as every other command's
        Manifest.from_json(read_manifest_json(sweep_dir), sweep_dir)
    problem = None
    try:
        labels = read_labels(sweep_dir)
    except HpctrackError as err:
        labels, problem = Labels(), " ".join(str(err).split())
    top = facts.top
    entry = SweepEntry(id=sweep_dir.name, key=key, name=top.get("name"), created=float(top["created"]),
                       tags=dict(labels.tags), note=labels.note, swept_keys=[str(k) for k in top.get("swept_keys") or []],
                       live=rest, problem=problem)  # fmt: skip
    return entry, table


# -- files -----------------------------------------------------------------------------------------


def _trusted_dir(path: Path, root: Path) -> Optional[str]:
    """Why ``path`` may not hold catalog files (a link, not ours, writable by others, outside the root), or None."""
    from .safefs import is_inside

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        return err.strerror or str(err)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "not a directory (a symlink?)"
    if st.st_uid != os.getuid():
        return "owned by another user"
    if st.st_mode & _UNSAFE_MODE:
        return "writable by group or others"
    if not is_inside(path, root):
        return "outside the root"
    return None


def _open_trusted(path: Path) -> Optional[Any]:
    """``path`` opened for reading when it is a regular file of ours that only we can write; else None."""
    from .safefs import open_trusted

    return open_trusted(path)


@dataclass
class CatalogFile:
    """A catalog file opened for reading: its entries (sweep id -> entry) and its Parquet reader."""

    entries: Dict[str, SweepEntry]
    meta: Dict[str, Any]
    reader: Any

    def read(self, columns: Sequence[str], sweeps: Optional[Sequence[str]] = None) -> "pd.DataFrame":
        """Those of ``columns`` the file has, for the rows of ``sweeps`` (None: all)."""
        import pyarrow.compute as pc

        names = set(self.reader.schema_arrow.names)
        table = self.reader.read(columns=[c for c in dict.fromkeys([*BASE_COLUMNS, *columns]) if c in names])
        if sweeps is not None and len(sweeps) < len(self.entries):
            table = table.filter(pc.is_in(table["sweep"], value_set=_string_array(sweeps)))
        return decode_columns(table.to_pandas(), self.meta)

    def close(self) -> None:
        self.reader.close()


def _string_array(values: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.array(list(values), type=pa.string())


def _load(path: Path) -> Optional[CatalogFile]:
    """The catalog file at ``path``, or None when it is missing, untrusted, damaged or of another version."""
    fh = _open_trusted(path)
    if fh is None:
        return None
    try:
        import pyarrow.parquet as pq

        reader = pq.ParquetFile(fh)
        meta = json.loads((reader.schema_arrow.metadata or {})[_META_KEY])
        if meta.get("version") != CATALOG_VERSION or "sweep" not in reader.schema_arrow.names:
            raise ValueError("another catalog version")
        entries = {str(k): SweepEntry.from_json(v) for k, v in meta["entries"].items()}
        return CatalogFile(entries, meta, reader)
    except Exception:  # garbage, a truncated file, another layout: ignored, rewritten
        fh.close()
        return None


class Catalog:
    """The catalog directory of this user under ``root``; ``usable`` is False when it may not be used.

    Parameters
    ----------
    root:
        The storage root.
    """

    #: Rewrite the merged file once more than this many sweeps (or this share of them) are served elsewhere.
    MERGE_AFTER = 16
    MERGE_SHARE = 0.05

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.top = self.root / CATALOG_DIR
        self.path = self.top / f"u{os.getuid()}"
        self.note: Optional[str] = None
        why = _trusted_parents(self.root, self.top) or _trusted_dir(self.path, self.root) or \
            _trusted_dir(self.path / PARTS_DIR, self.root)  # fmt: skip
        self.usable = why is None
        if why is not None:
            self.note = f"catalog {self.path} not used ({why}): answered from the sweeps; remove it to get it rebuilt"

    def part_path(self, sweep_id: str) -> Path:
        return (
            self.path / PARTS_DIR / (hashlib.sha1(sweep_id.encode("utf-8", "surrogatepass")).hexdigest() + ".parquet")
        )

    def merged(self) -> Optional[CatalogFile]:
        return _load(self.path / MERGED_FILE) if self.usable else None

    def part(self, sweep_id: str) -> Optional[CatalogFile]:
        return _load(self.part_path(sweep_id)) if self.usable else None

    def write(self, target: Path, entries: Sequence[SweepEntry], frame: "pd.DataFrame") -> bool:
        """Write one catalog file (best effort: a full disk or a read-only root leaves no cache, no error)."""
        if not self.usable:
            return False
        meta = {"version": CATALOG_VERSION, "entries": {e.id: asdict(e) for e in entries}}
        try:
            data = encode_parquet(frame.reset_index(drop=True), _META_KEY, meta)
        except Exception:  # a value pyarrow cannot store: the answer stands, only uncached
            return False
        return self._write_bytes(target, data)

    def write_table(self, target: Path, entries: Sequence[SweepEntry], table: Any) -> bool:
        """:meth:`write` for rows already in a pyarrow Table of plain columns (no JSON text column)."""
        import io

        import pyarrow.parquet as pq

        if not self.usable:
            return False
        text = json.dumps({"version": CATALOG_VERSION, "entries": {e.id: asdict(e) for e in entries},
                           "json_columns": []})  # fmt: skip
        try:
            buf = io.BytesIO()
            pq.write_table(table.replace_schema_metadata({_META_KEY: text.encode()}), buf)
        except Exception:  # a value pyarrow cannot store: the answer stands, only uncached
            return False
        return self._write_bytes(target, buf.getvalue())

    def _write_bytes(self, target: Path, data: bytes) -> bool:
        from .locking import lock
        from .safefs import unlink, write_file

        try:
            self.top.mkdir(exist_ok=True)  # shared by the root's users: as their umask makes it
            for folder in (self.path, self.path / PARTS_DIR):
                folder.mkdir(exist_ok=True, mode=0o755)  # ours only: never writable by others
            if _trusted_dir(self.path, self.root) or _trusted_dir(self.path / PARTS_DIR, self.root):
                return False
            with lock(target.with_name(target.name + ".lock"), timeout_s=5.0) as guard:
                if os.path.islink(target):  # a planted link: removed (never followed), then the file written
                    unlink(target, self.root)
                guard.check()
                write_file(target, data, self.root, mode=0o644)
            return True
        except (HpctrackError, OSError, ValueError, TypeError, OverflowError):
            return False

    def part_files(self) -> "set[str]":
        """The names in the parts directory (files of any kind: :meth:`part` checks each it opens)."""
        try:
            return set(os.listdir(self.path / PARTS_DIR)) if self.usable else set()
        except OSError:
            return set()

    def remove_part(self, sweep_id: str) -> None:
        from .safefs import unlink

        try:
            unlink(self.part_path(sweep_id), self.root)
        except (HpctrackError, OSError):
            pass


def _trusted_parents(root: Path, top: Path) -> Optional[str]:
    """``ROOT/catalog`` may be shared by the root's users, but must be a real directory inside the root."""
    from .safefs import is_inside

    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return None
    except OSError as err:
        return err.strerror or str(err)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return f"{top} is not a directory (a symlink?)"
    if not is_inside(top, root):
        return f"{top} leads out of the root"
    return None
