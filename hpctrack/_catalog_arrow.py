"""A sweep's catalog rows built in pyarrow: the cold read of ``hpctrack runs`` over many sweeps.

A cold query reads every sweep of the root. Per sweep, parsing ``sweep.json`` with
``json.loads`` (a Python object per value of every job) and shaping the rows with pandas cost
~15 ms of CPU, nearly all of it holding the GIL: ~15 s over a thousand sweeps. Here the
manifest's few facts the catalog needs and the index's rows are read by pyarrow's C++ readers
(which release the GIL, so two threads overlap) and the rows stay a pyarrow Table until one
merge over all sweeps.

Only the common case is served: a manifest pyarrow parses to the same values as ``json.loads``
whose jobs carry nothing unusual (no ``pruned`` mark), an index read whole by
:func:`hpctrack.index.index_table`, and every job either served by its index line or still
live. Anything else returns None, and :func:`hpctrack.catalog.build_sweep` reads the sweep
(checking it as every command does).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ManifestFacts", "manifest_facts", "served_table"]


@dataclass
class ManifestFacts:
    """What the catalog needs of a manifest: its top-level fields and, per job, its submission time."""

    top: Dict[str, Any]
    submitted: List[Optional[float]]
    all_final: bool


def manifest_facts(sweep_dir: Path) -> Optional[ManifestFacts]:
    """The facts of ``sweep_dir/sweep.json`` read by pyarrow, or None (read it with ``json.loads``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from ._types import JobState
    from .manifest import FORMAT_VERSION, MANIFEST_FILE, manifest_problem

    try:
        data = (Path(sweep_dir) / MANIFEST_FILE).read_bytes()
        table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=len(data) + 1),
                             parse_options=pj.ParseOptions(newlines_in_values=True))  # fmt: skip
    except (OSError, pa.ArrowException, ValueError):
        return None  # missing, damaged, values that change kind: the json.loads path says what is wrong
    if table.num_rows != 1 or "jobs" not in table.column_names or "created" not in table.column_names:
        return None
    if not all(_json_kind(t) for t in table.schema.types):
        return None  # e.g. a text that looks like a date, which the reader makes a timestamp
    # One object: its top-level fields come back as json.loads gives them (a struct's keys are its own).
    top = {name: table[name][0].as_py() for name in table.column_names if name != "jobs"}
    if manifest_problem(top) is not None or not isinstance(top.get("format_version", 0), (int, float)):
        return None
    if int(top.get("format_version", 0)) > FORMAT_VERSION:
        return None
    column = table["jobs"].combine_chunks()
    if not pa.types.is_list(column.type) or column.null_count:
        return None
    jobs = column.flatten()
    if len(jobs) == 0:
        return ManifestFacts(top, [], True)
    if not pa.types.is_struct(jobs.type):
        return None
    names = [jobs.type.field(i).name for i in range(jobs.type.num_fields)]
    fields = dict(zip(names, jobs.flatten()))
    if "pruned" in fields and fields["pruned"].null_count < len(jobs):
        return None  # a pruned mark (optimize): the whole manifest
    if "state" in fields:
        state = fields["state"]
        # A null state and a missing one look alike here, and json.loads tells them apart: the slow path.
        if not pa.types.is_string(state.type) or state.null_count:
            return None
        states = set(pc.unique(state).to_pylist())
    else:
        states = {JobState.PENDING.value}
    known = {s.value: s for s in JobState}
    if not states <= known.keys():
        return None
    submitted: List[Optional[float]] = [None] * len(jobs)
    if "submitted" in fields:
        values = fields["submitted"]
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_null(values.type)):
            return None
        submitted = values.to_pylist()
    return ManifestFacts(top, submitted, all(known[s].is_final for s in states))


def _json_kind(t: "pa.DataType") -> bool:
    """Whether pyarrow gives values of type ``t`` back as ``json.loads`` gives them (no timestamp)."""
    import pyarrow as pa

    if pa.types.is_list(t):
        return _json_kind(t.value_type)
    if pa.types.is_struct(t):
        return all(_json_kind(t.field(i).type) for i in range(t.num_fields))
    return pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_int64(t) or pa.types.is_float64(t) \
        or pa.types.is_string(t)  # fmt: skip


def served_table(sweep_id: str, index: "pa.Table", submitted: List[Optional[float]]) -> "Optional[pa.Table]":
    """The catalog rows of the jobs whose index line stands for their current submission, or None.

    As :func:`hpctrack.index.usable_rows` and :func:`hpctrack.catalog._served_rows` make them
    (``sweep``, ``job``, ``state``, ``runtime_s``, the ``p/s/m`` columns). None: lines marked
    lost, or status columns of an unexpected kind (the general path decides).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from .catalog import KEEP_PREFIXES
    from .index import ENDED_STATES, SEP
    from .status import RUN_TO_JOB

    names = index.column_names
    if "lost" in names and index["lost"].null_count < index.num_rows:
        return None  # lines reindex marked lost: the general path decides
    start_name = f"st{SEP}attempt_start" if f"st{SEP}attempt_start" in names else f"st{SEP}start_time"
    state_name, runtime_name = f"st{SEP}state", f"st{SEP}runtime_s"
    if start_name not in names or state_name not in names:
        return None
    numeric = [index[n].type for n in (start_name, runtime_name) if n in names]
    if not all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t) for t in numeric):
        return None
    if not (pa.types.is_string(index[state_name].type) or pa.types.is_null(index[state_name].type)):
        return None
    jobs = index["job"].to_numpy()
    inside = (jobs >= 0) & (jobs < len(submitted))
    since = np.full(len(jobs), -np.inf)
    since_of = np.array([-np.inf if s is None else float(s) for s in submitted], dtype=np.float64)
    since[inside] = since_of[jobs[inside]]
    start = index[start_name].cast(pa.float64()).to_numpy(zero_copy_only=False)
    state = index[state_name]
    ended = pc.is_in(state, value_set=pa.array(ENDED_STATES, type=pa.string())) if pa.types.is_string(state.type) \
        else pa.array(np.zeros(len(jobs), dtype=bool))  # fmt: skip
    with np.errstate(invalid="ignore"):
        ok = np.asarray(ended.to_numpy(zero_copy_only=False), dtype=bool) & (start >= since) & inside
    rows = pa.array(np.nonzero(ok)[0])
    kept = index.take(rows)
    run_states = list(RUN_TO_JOB)
    job_states = pa.array([RUN_TO_JOB[s].value for s in run_states], type=pa.string())
    states = pc.take(job_states, pc.index_in(kept[state_name], value_set=pa.array(run_states, type=pa.string())))
    runtime = kept[runtime_name].cast(pa.float64()) if runtime_name in names else pa.nulls(len(kept), pa.float64())
    columns: Dict[str, Any] = {"sweep": pa.array([sweep_id] * len(kept), type=pa.string()),
                               "job": kept["job"].cast(pa.int64()), "state": states, "runtime_s": runtime}  # fmt: skip
    for name in names:
        if name.startswith(KEEP_PREFIXES):
            columns[name] = kept[name]
    return pa.table(columns)
