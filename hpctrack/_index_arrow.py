"""Index lines parsed into columns by pyarrow's JSON reader (C++, no Python object per value).

``index.jsonl`` of a thousand runs took ~80 ms to parse line by line (``json.loads``, the
shape check of every line, a dict of flattened columns per run); the reader below builds the
same columns as :func:`hpctrack.index.flat_row` over the newest line of each job in a few.
It only answers when every line is a well-formed index line whose values pyarrow can hold
without changing them: anything else (a torn line, ``NaN``, a value of another kind than the
same key's in other lines, a list-valued param, a line from a newer hpctrack) returns None,
and the caller parses line by line, which names the damaged lines.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["parse_frame", "parse_table", "read_json_lines"]

#: Below this many bytes the line-by-line parse is as fast (and there is nothing to gain).
MIN_BYTES = 16_384


def _numeric(t: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)


def _scalar(t: "pa.DataType") -> bool:
    """Types that come back from pandas as the same values ``json.loads`` gives."""
    import pyarrow as pa

    return _numeric(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)


def _struct_fields(table: "pa.Table", name: str) -> Optional[Dict[str, "pa.ChunkedArray"]]:
    """The children of struct column ``name`` ({} when absent or all null), None when it is no struct."""
    import pyarrow as pa

    if name not in table.column_names:
        return {}
    column = table[name]
    if pa.types.is_null(column.type):
        return {}
    if not pa.types.is_struct(column.type):
        return None
    children = column.flatten()  # a child is null where its parent is
    return {column.type.field(i).name: children[i] for i in range(column.type.num_fields)}


def parse_frame(data: bytes) -> "Optional[pd.DataFrame]":
    """``data`` (whole index lines) as :func:`hpctrack.index._frame_of` would make it, or None.

    None: the lines need the line-by-line parse (see the module docstring).
    """
    import json

    import numpy as np
    import pyarrow.compute as pc

    from .index import SEP, flat_row

    if len(data) < MIN_BYTES:
        return None
    parsed = _parse(data)
    if parsed is None:
        return None
    columns, error, take = parsed
    frame = columns.to_pandas()
    if error is not None and error.null_count < len(error):
        # The error's own JSON text, as the line holds it: from those few lines, parsed as the slow path does.
        lines = [raw for raw in data.split(b"\n") if raw.strip()]
        if len(lines) != len(error):
            return None
        texts = frame[f"st{SEP}error"].to_numpy(dtype=object, copy=True)
        for i in np.nonzero(pc.is_valid(error).to_numpy(zero_copy_only=False)[take])[0]:
            texts[i] = flat_row(json.loads(lines[take[i]]))[f"st{SEP}error"]
        frame[f"st{SEP}error"] = texts
    return frame


def parse_table(data: bytes) -> "Optional[pa.Table]":
    """:func:`parse_frame`'s columns as a pyarrow Table (no pandas step), or None.

    None also when a line has a ``status.error`` (its text needs the line's own JSON): the
    caller then takes the line-by-line path. Any size: the caller keeps its rows in pyarrow.
    """
    parsed = _parse(data)
    if parsed is None or (parsed[1] is not None and parsed[1].null_count < len(parsed[1])):
        return None
    return parsed[0]


#: Above this many bytes the lines are parsed in blocks of this size on every core (a 226 MB index of
#: 100,000 runs: 3.7 s as one block, 1.1 s in blocks on 2 cores).
BLOCK_BYTES = 16 << 20


def read_json_lines(data: bytes) -> "Optional[pa.Table]":
    """``data`` read by pyarrow's JSON reader, in parallel blocks when large; None when it refuses it.

    Each block infers its own types: a key whose values look different in two blocks (null in one,
    text in the other) may be refused in blocks though one block takes it, so a refusal in blocks
    is tried again as one block before the caller takes the line-by-line path.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    sizes = [BLOCK_BYTES, len(data) + 1] if len(data) > BLOCK_BYTES else [len(data) + 1]
    for size in sizes:
        try:
            return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=size, use_threads=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            continue
    return None


def _parse(data: bytes) -> "Optional[Tuple[pa.Table, Optional[pa.ChunkedArray], Any]]":
    """The columns of the newest line of each job, the raw ``status.error`` column, the rows taken."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from .index import INDEX_VERSION, RUN_STATES, SEP, STAT_FIELDS, STAT_NUMBERS, STATUS_COLUMNS

    table = read_json_lines(data)
    if table is None:
        return None  # torn line, NaN, a key whose values change kind, not an object per line
    names = table.column_names
    if "job" not in names or not pa.types.is_integer(table["job"].type) or table["job"].null_count:
        return None
    jobs = table["job"].to_numpy()
    if len(jobs) == 0 or (jobs < 0).any():
        return None
    if "v" in names:  # a line of a newer hpctrack is skipped by the line-by-line parse
        if not _numeric(table["v"].type) or (pc.max(table["v"]).as_py() or 0) > INDEX_VERSION:
            return None
    for name in ("fingerprint", "lost"):
        if name in names and not (pa.types.is_string(table[name].type) or pa.types.is_null(table[name].type)):
            return None
    if "submitted" in names and not _numeric(table["submitted"].type):
        return None
    if "format_version" in names and not _numeric(table["format_version"].type):
        return None
    sections = {s: _struct_fields(table, s) for s in ("params", "summary", "tags", "status", "metrics", "restarts")}
    if any(v is None for v in sections.values()):
        return None
    status, params, summary, metrics = sections["status"], sections["params"], sections["summary"], sections["metrics"]
    assert status is not None and params is not None and summary is not None and metrics is not None
    if not all(_numeric(a.type) for a in (sections["restarts"] or {}).values()):
        return None
    if not all(_scalar(a.type) for a in [*params.values(), *summary.values()]):
        return None  # lists, objects: json.loads values the line-by-line parse keeps as they are
    if "state" in status:
        state = status["state"]
        if not pa.types.is_string(state.type) and not pa.types.is_null(state.type):
            return None
        # A status without a state is fine, a null one is not: arrow tells neither apart from the other.
        present = pc.is_valid(table["status"])
        if pc.any(pc.and_(present, pc.is_null(state))).as_py():
            return None
        if not set(pc.unique(state.drop_null()).to_pylist()) <= RUN_STATES:
            return None
    if not all(
        _numeric(status[n].type) for n in ("attempt_start", "start_time", "end_time", "runtime_s") if n in status
    ):
        return None
    if any(pa.types.is_boolean(status[n].type) for n in STATUS_COLUMNS if n in status):
        return None
    for stats in metrics.values():
        if not pa.types.is_struct(stats.type):
            return None
        fields = {stats.type.field(i).name: i for i in range(stats.type.num_fields)}
        children = stats.flatten()
        valid = pc.is_valid(stats)
        for name in STAT_NUMBERS:  # every stats object has these, as numbers
            if name not in fields or not _numeric(children[fields[name]].type):
                return None
            if pc.any(pc.and_(valid, pc.is_null(children[fields[name]]))).as_py():
                return None
    # The newest line of each job, in the order the jobs first appear (as the dict of lines keeps them).
    _, first = np.unique(jobs, return_index=True)
    _, last_rev = np.unique(jobs[::-1], return_index=True)
    take = (len(jobs) - 1 - last_rev)[np.argsort(first)]
    names_out: List[str] = []
    arrays: List[Any] = []

    def put(name: str, column: "Optional[pa.ChunkedArray]") -> None:
        names_out.append(name)
        arrays.append(pa.nulls(len(jobs)) if column is None else column)

    put("job", table["job"])
    for name in ("format_version", "fingerprint", "lost", "submitted"):
        put(name, table[name] if name in names else None)
    for name in STATUS_COLUMNS:
        put(f"st{SEP}{name}", status.get(name))
    put(f"st{SEP}error", None)
    for prefix, section in (("p", params), ("s", summary)):
        for key, column in section.items():
            put(f"{prefix}{SEP}{key}", column)
    for key, stats in metrics.items():
        fields = {stats.type.field(i).name: i for i in range(stats.type.num_fields)}
        children = stats.flatten()
        for name in STAT_FIELDS:
            put(f"m{SEP}{key}{SEP}{name}", children[fields[name]] if name in fields else None)
    columns = pa.Table.from_arrays(arrays, names=names_out)
    if len(take) != len(jobs) or (take != np.arange(len(jobs))).any():
        columns = columns.take(pa.array(take))
    return columns, status.get("error"), take
