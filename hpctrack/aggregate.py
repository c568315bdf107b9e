"""A sweep as a results table (pandas), and the table's export formats.

The table reads each run's record (sections and per-metric running stats),
never its full metric histories.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._types import JobState, finite_json
from .errors import ConfigError, HpctrackError
from .index import LazyStats
from .manifest import RUNS_DIR, Manifest, sweep_ref
from .overrides import override_values
from .status import JobStatus, _persist_final, backend_view, ended_state, error_line, read_run, sweep_status

if TYPE_CHECKING:
    import pandas as pd

    from ._prefetch import TableInputs

__all__ = ["METRIC_STATS", "DEFAULT_STATS", "AGGREGATIONS", "DEFAULT_AGGREGATIONS", "DEFAULT_SEED_KEYS",
           "MetricSelector", "parse_selector", "parse_metric", "sweep_table", "group_table", "lower_is_better",
           "t_critical_975", "export_table", "FORMATS"]  # fmt: skip

#: Per-metric statistics a column can show, read from the run's running stats (``at=STEP`` reads the history).
METRIC_STATS = ("last", "min", "max", "mean", "argmin", "argmax", "count", "last_step")
DEFAULT_STATS = ("last", "min", "max")
FORMATS = ("csv", "json", "parquet", "markdown")
#: Aggregations over the runs of a group (``--agg``).
AGGREGATIONS = ("mean", "std", "sem", "min", "max", "count", "ci95")
DEFAULT_AGGREGATIONS = ("mean", "std", "count")
#: Swept keys left out of the default group-by: they are repetitions, not settings.
DEFAULT_SEED_KEYS = ("seed",)
#: Metric names that read "lower is better" (for marking the best group and the default sort).
_LOWER_IS_BETTER = ("loss", "err", "error", "perplexity", "ppl", "mse", "mae", "rmse", "wer", "cer", "regret")
# Two-sided 95 % critical values of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)  # fmt: skip


def t_critical_975(df: int) -> float:
    """The 97.5th percentile of Student's t with ``df`` degrees of freedom (table, then 1.96 + 2.4/df)."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


@dataclass(frozen=True)
class MetricSelector:
    """``val/acc:max`` -> key ``val/acc``, stat ``max``; ``loss:at=100`` -> stat ``at``, step 100."""

    key: str
    stat: Optional[str]  # None: the default stats (last, min, max), or the summary value
    at: Optional[int] = None

    @property
    def column(self) -> str:
        if self.stat == "at":
            return f"{self.key}:at={self.at}"
        return f"{self.key}:{self.stat}" if self.stat and self.stat != "summary" else self.key


def parse_selector(selector: str) -> MetricSelector:
    """``KEY``, ``KEY:STAT`` (STAT in :data:`METRIC_STATS`) or ``KEY:at=STEP``."""
    key, sep, stat = selector.rpartition(":")
    if not sep:
        return MetricSelector(selector, None)
    if not key:
        raise ConfigError(f"metric selector {selector!r} has no metric name; write KEY or KEY:STAT")
    if stat.startswith("at="):
        try:
            return MetricSelector(key, "at", int(stat[3:]))
        except ValueError:
            raise ConfigError(f"bad step in {selector!r}: write KEY:at=STEP with an integer STEP") from None
    if stat not in METRIC_STATS:
        raise ConfigError(f"unknown metric statistic {stat!r} in {selector!r}; use one of: "
                          f"{', '.join(METRIC_STATS)}, at=STEP")  # fmt: skip
    return MetricSelector(key, stat)


def parse_metric(selector: str) -> Tuple[str, Optional[str]]:
    """``"val/acc:max"`` -> ``("val/acc", "max")``; ``"val/acc"`` -> ``("val/acc", None)``."""
    sel = parse_selector(selector)
    return sel.key, sel.stat


def lower_is_better(column: str) -> bool:
    """Whether smaller values of a table column are better (losses, errors), by its metric name."""
    key, _, stat = column.partition(":")
    if stat in ("count", "last_step", "argmin", "argmax"):
        return False
    name = key.lower()
    return any(word in name for word in _LOWER_IS_BETTER)


def _selectors(
    logged: Dict[str, None], summary: Dict[str, None], selectors: Optional[Sequence[str]]
) -> List[MetricSelector]:
    if not selectors:
        return [MetricSelector(key, stat) for key in logged for stat in DEFAULT_STATS]
    columns: List[MetricSelector] = []
    for text in selectors:
        sel = parse_selector(text)
        if sel.stat is None and sel.key in summary and sel.key not in logged:
            columns.append(MetricSelector(sel.key, "summary"))
            continue
        if logged and sel.key not in logged:
            known = list(logged) + [k for k in summary if k not in logged]
            raise ConfigError(f"no run of this sweep logged metric {sel.key!r}; logged: {', '.join(known)}")
        if sel.stat is None:
            columns.extend(MetricSelector(sel.key, s) for s in DEFAULT_STATS)
        else:
            columns.append(sel)
    return columns


def _value(manifest: Manifest, st: JobStatus, sel: MetricSelector) -> Any:
    record = st.record
    if record is None:
        return math.nan
    if sel.stat == "summary":
        return record.summary.get(sel.key)
    metrics = record.metrics
    raw = metrics.raw(sel.key) if isinstance(metrics, LazyStats) else None
    if raw is not None and sel.stat in ("last", "min", "max", "count", "last_step"):
        return raw[sel.stat]  # straight from the index line: no MetricStats per run and metric
    stats = metrics.get(sel.key)
    if stats is None:
        return math.nan
    if sel.stat in ("last", "min", "max", "count", "last_step"):
        return getattr(stats, sel.stat)
    if sel.stat in ("mean", "argmin", "argmax") and (stats.mean if sel.stat == "mean" else getattr(stats, sel.stat)) \
            is not None:  # fmt: skip
        value = stats.mean if sel.stat == "mean" else getattr(stats, sel.stat)
        return math.nan if value is None else value
    # at=STEP, or a store written before mean/argmin/argmax were kept: read the history.
    import numpy as np

    from .store import open_store

    try:
        history = open_store(manifest.run_path(st.index), manifest.store).read_history(sel.key)
    except (KeyError, HpctrackError):
        return math.nan
    values, steps = history.value, history.step
    if sel.stat == "at":
        hit = np.nonzero(steps == sel.at)[0]
        return float(values[hit[-1]]) if len(hit) else math.nan
    ok = ~np.isnan(values)
    if not ok.any():
        return math.nan
    if sel.stat == "mean":
        return float(values[ok].mean())
    pick = np.argmin if sel.stat == "argmin" else np.argmax
    return int(steps[ok][int(pick(values[ok]))])


def sweep_table(
    manifest: Manifest,
    *,
    metrics: Optional[Sequence[str]] = None,
    all_params: bool = False,
    group_by: Union[None, bool, Sequence[str]] = None,
    agg: Optional[Sequence[str]] = None,
    where: Optional[str] = None,
    sort: Optional[Sequence[str]] = None,
    top: Optional[int] = None,
    include_incomplete: bool = False,
    seed_keys: Sequence[str] = DEFAULT_SEED_KEYS,
    inputs: "Optional[TableInputs]" = None,
) -> "pd.DataFrame":
    """The sweep as a table: one row per run, or per group of runs with aggregates.

    Parameters
    ----------
    manifest:
        The sweep.
    metrics:
        Selectors: ``KEY`` (last, min, max; or a summary value), ``KEY:STAT``
        with STAT in :data:`METRIC_STATS`, or ``KEY:at=STEP``. Default: every
        logged metric.
    all_params:
        Every param of the resolved config, not only the keys the sweep varies.
    group_by:
        Param keys to group runs by; ``True`` for every swept key except
        ``seed_keys``. Each group gets ``n`` and, per metric column, the
        aggregations ``agg`` (default mean, std, count) as ``COLUMN mean`` ...
    where:
        A filter on params, metric columns and ``state`` applied to the runs,
        e.g. ``"optimizer.lr < 0.1 and state == 'COMPLETED'"``, in the filter
        language of :mod:`hpctrack.query` (column names may be written bare).
    sort:
        Columns to sort by, ``-COLUMN`` for descending.
    top:
        Keep the first N rows (after sorting).
    include_incomplete:
        Aggregate runs that did not complete too. By default they are left
        out of groups, and ``frame.attrs["note"]`` says how many and why.
    inputs:
        The sweep's index and run fingerprints as :func:`hpctrack._prefetch.start` began
        reading them before the manifest was loaded (:meth:`hpctrack.Sweep.table` does); None:
        read here.

    With ``metrics``, the table has exactly those columns; without, every
    logged metric's default stats and every summary value.

    The frame's ``attrs`` hold ``note`` (runs left out, lost runs, a damaged
    index), ``lost`` (job -> why its run data is gone: state ``LOST``, empty
    cells) and, when grouped, ``group_by``, ``best`` (row position of the best
    group) and ``best_by`` (``{"column": ..., "direction": "highest"|"lowest"}``).
    """

    frame, notes = _run_frame(manifest, metrics, all_params, inputs)
    selectors = frame.attrs.pop("selectors")
    summary_keys = frame.attrs.pop("summary_keys")
    lost = frame.attrs.pop("lost")
    if where:
        frame = _filter(frame, where)
    frame, code_note = _code_column(frame)
    notes += [code_note] if code_note else []
    value_columns = [sel.column for sel in selectors] + list(summary_keys) + \
        (["objective"] if "objective" in frame.columns and manifest.study else [])  # fmt: skip
    if group_by is not None and group_by is not False:
        unknown = [k for k in seed_keys if k not in manifest.swept_keys]
        if group_by is True and unknown and tuple(seed_keys) != DEFAULT_SEED_KEYS:
            raise ConfigError(f"seed key {unknown[0]!r} is not a swept param of the sweep; swept: "
                              f"{', '.join(manifest.swept_keys) or 'none'} (--seed-keys)")  # fmt: skip
        keys = [k for k in manifest.swept_keys if k not in seed_keys] if group_by is True else list(group_by)
        frame, note = group_table(frame, keys, value_columns, agg or DEFAULT_AGGREGATIONS, include_incomplete)
        notes += [note] if note else []
    if sort:
        frame = _sort(frame, sort)
    elif "group_by" in frame.attrs and value_columns:
        first = next((c for c in frame.columns if c.endswith(" mean")), None)
        if first is not None:  # best group first
            frame = frame.sort_values(first, ascending=lower_is_better(first[: -len(" mean")]),
                                      na_position="last", kind="stable").reset_index(drop=True)  # fmt: skip
    if top is not None:
        frame = frame.head(top).reset_index(drop=True)
    if "group_by" in frame.attrs:
        frame.attrs["best"] = _best(frame)
        first = next((c for c in frame.columns if str(c).endswith(" mean")), None)
        if first is not None and frame.attrs["best"] is not None:
            metric = str(first)[: -len(" mean")]
            frame.attrs["best_by"] = {"column": metric, "direction": "lowest" if lower_is_better(metric)
                                      else "highest"}  # fmt: skip
    frame.attrs["note"] = "; ".join(notes) or None
    frame.attrs["code_note"] = code_note
    frame.attrs["lost"] = lost
    return frame


def _code_cells(manifest: Manifest, row_of: Mapping[int, int], others: Mapping[int, JobStatus]
                ) -> Optional[List[str]]:  # fmt: skip
    """Per run, the code snapshots its attempts ran (``"d1 -> d2"``); None when every run ran the sweep's.

    The manifest tells cheaply whether any job was ever given other code than the sweep's
    (``requeue --code current`` records it); only then are the runs' attempt records read.
    """
    sweep_code = manifest.code.get("digest")
    if not any(job.code or any(h.get("code") not in (None, sweep_code) for h in job.history) for job in manifest.jobs):
        return None
    from .index import read_index

    rows = read_index(manifest.path) if row_of else {}
    cells = []
    for job in manifest.jobs:
        if job.index in row_of:
            attempts = ((rows.get(job.index) or {}).get("status") or {}).get("attempts")
        else:
            st = others.get(job.index)
            attempts = st.record.status.get("attempts") if st is not None and st.record is not None else None
        ran: List[str] = []
        for attempt in attempts or []:
            digest = (attempt.get("code") if isinstance(attempt, dict) else None) or "none"
            if not ran or ran[-1] != digest[:8]:
                ran.append(digest[:8])
        cells.append(CODE_SEP.join(ran))
    return cells


#: Between the snapshots a run's attempts ran, in a ``code`` cell.
CODE_SEP = " -> "


def _code_column(frame: "pd.DataFrame") -> "Tuple[pd.DataFrame, Optional[str]]":
    """Keep the ``code`` column only when the table's runs ran more than one snapshot, and say so in a note."""
    if "code" not in frame.columns:
        return frame, None
    digests = {d for cell in frame["code"] for d in str(cell).split(CODE_SEP) if cell}
    if len(digests) <= 1:
        return frame.drop(columns=["code"]), None
    jobs: Dict[str, List[int]] = {}
    for job, cell in zip(frame["job"], frame["code"]):
        jobs.setdefault(cell or "not started", []).append(int(job))
    listing = "; ".join(
        f"{cell}: job{'s' if len(js) != 1 else ''} "
        + ",".join(map(str, js[:10]))
        + (f" and {len(js) - 10} more" if len(js) > 10 else "")
        for cell, js in jobs.items()
    )
    return frame, (f"the runs ran different code (column code: each run's snapshots, attempt by attempt): {listing}; "
                   "`hpctrack diff RUN_A RUN_B --code` shows what changed")  # fmt: skip


#: Selector stats the index's columns hold (``at=STEP`` reads histories).
_COLUMN_STATS = ("last", "min", "max", "count", "last_step", "mean", "argmin", "argmax")


#: From this many indexed runs on, ``table`` checks their stores' fingerprints from several threads.
PARALLEL_STAT_MIN_RUNS = 2000
STAT_THREADS = 16


def _fingerprints(
    manifest: Manifest, early: "Optional[Callable[[], Optional[Dict[str, Optional[str]]]]]" = None
) -> "Callable[[Sequence[int]], List[Optional[str]]]":
    """The current fingerprints of jobs' stores, asked for by job: ``prints(jobs)``.

    A sweep of :data:`PARALLEL_STAT_MIN_RUNS` runs or more has every store's fingerprint taken
    from :data:`STAT_THREADS` threads starting now, while the caller reads the index: cold, the
    ``stat`` calls of 100,000 stores take seconds of the kernel's time, which the threads spend
    while pyarrow parses the index on the other core (both release the GIL). A fingerprint taken
    before the index is read is as good as one taken after: a store changed in between is either
    indexed anew (its line's fingerprint then differs, and the store is read) or shown as it was
    when the table looked at it, as a change a moment after the table would be.
    Smaller sweeps take the fingerprints of the jobs asked for, then.

    ``early``: fingerprints taken before the manifest was read, by entry of ``runs/``
    (:meth:`hpctrack._prefetch.TableInputs.early_prints`); the jobs they lack are checked here.
    """
    from .store import store_class

    cls = store_class(manifest.store)
    # Paths relative to the sweep directory, resolved from one open directory by the store class: no
    # store object per run (those cost more than the stats themselves at 10,000 runs).
    sweep_dir, name = os.fspath(manifest.path), f"run{cls.suffix}"
    jobs = manifest.jobs

    def paths(indices: "Sequence[int]") -> List[str]:
        return [f"{jobs[i].run_dir}{os.sep}{name}" for i in indices]  # run_dir is relative (manifest_problem)

    if early is not None:
        prefix = RUNS_DIR + os.sep

        def from_early(indices: "Sequence[int]") -> List[Optional[str]]:
            known = early() or {}
            names = [jobs[i].run_dir[len(prefix) :] if jobs[i].run_dir.startswith(prefix) else None for i in indices]
            out = [known.get(n) if n is not None and n in known else None for n in names]
            rest = [k for k, n in enumerate(names) if n is None or n not in known]
            for k, value in zip(rest, cls.fingerprints_of(sweep_dir, paths([indices[k] for k in rest]))):
                out[k] = value
            return out

        return from_early
    if len(jobs) < PARALLEL_STAT_MIN_RUNS:
        return lambda indices: cls.fingerprints_of(sweep_dir, paths(indices))
    from concurrent.futures import ThreadPoolExecutor

    size = -(-len(jobs) // (4 * STAT_THREADS))  # a few calls per thread: not one future per run
    pool = ThreadPoolExecutor(STAT_THREADS)
    parts = [pool.submit(cls.fingerprints_of, sweep_dir, paths(range(i, min(i + size, len(jobs)))))
             for i in range(0, len(jobs), size)]  # fmt: skip
    pool.shutdown(wait=False)
    every: List[Optional[str]] = []

    def prints(indices: "Sequence[int]") -> List[Optional[str]]:
        if not every:
            every.extend(p for part in parts for p in part.result())
        return [every[i] for i in indices]

    return prints


def _unchanged(
    cols: "pd.DataFrame", row_of: Dict[int, int], prints: "Callable[[Sequence[int]], List[Optional[str]]]"
) -> Dict[int, int]:
    """The indexed runs whose store still has the fingerprint their line recorded (``prints``: :func:`_fingerprints`).

    A line without one (an older run) stands while the store exists. The others
    (store deleted, truncated, replaced, written since) are read from their stores.
    """
    recorded = cols["fingerprint"].to_numpy(dtype=object) if "fingerprint" in cols.columns else None
    jobs = list(row_of)
    out = {}
    for job, now in zip(jobs, prints(jobs)):
        i = row_of[job]
        indexed = recorded[i] if recorded is not None else None
        if now is not None and (indexed is None or indexed != indexed or indexed == now):
            out[job] = i
    return out


def _light_rows(cols: "pd.DataFrame", jobs: "Sequence[int]") -> Dict[int, Dict[str, Any]]:
    """What status needs of the index lines of ``jobs`` (their state, submission, fingerprint, lost mark)."""
    from .index import SEP

    if not len(cols) or not jobs:
        return {}
    by_job = {int(j): i for i, j in enumerate(cols["job"].to_numpy())}

    def value(column: str, i: int) -> Any:
        if column not in cols.columns:
            return None
        v = cols[column].iat[i]
        return None if v is None or (isinstance(v, float) and v != v) else v

    out = {}
    for job in jobs:
        i = by_job.get(job)
        if i is None:
            continue
        status = {name: value(f"st{SEP}{name}", i) for name in ("state", "attempt_start", "start_time")}
        out[job] = {"job": job, "status": {k: v for k, v in status.items() if v is not None},
                    "fingerprint": value("fingerprint", i), "lost": value("lost", i),
                    "submitted": value("submitted", i)}  # fmt: skip
    return out


def _run_frame(
    manifest: Manifest, metrics: Optional[Sequence[str]], all_params: bool, inputs: "Optional[TableInputs]" = None
) -> "Tuple[pd.DataFrame, List[str]]":
    """One row per run: job, params, state, runtime, metric columns, summary values; and notes.

    Ended runs come from the sweep index's columns (``hpctrack.index.index_frame``)
    while their stores are unchanged: no run store is opened and no record built
    for them; the others (running, resubmitted, missing from the index, changed
    or lost) from their stores.
    """
    import numpy as np
    import pandas as pd

    from .index import INDEX_FILE, SEP, index_frame, usable_rows

    if inputs is not None and Path(inputs.sweep_dir) == Path(manifest.path):  # begun before the manifest was read
        prints = _fingerprints(manifest, lambda: inputs.early_prints(manifest.store))
        cols = inputs.index.result()
    else:
        prints = _fingerprints(manifest)  # started first: cold, they overlap with reading the index
        cols = index_frame(manifest.path)
    jobs = manifest.jobs
    row_of = _unchanged(cols, usable_rows(cols, [job.submitted for job in jobs]), prints)
    infos, _ = view = backend_view(manifest)
    # Ended runs in the index: their job state from the backend's view and the run's own state,
    # without a record or a JobStatus each (what made a table of 10,000 runs slow).
    n = len(jobs)
    states: List[Optional[str]] = [None] * n
    runtimes: List[Any] = [None] * n
    errors: List[Optional[str]] = [None] * n
    if row_of:
        run_state = cols[f"st{SEP}state"].to_numpy(dtype=object)
        runtime = pd.to_numeric(cols.get(f"st{SEP}runtime_s"), errors="coerce").to_numpy(dtype=np.float64)
        error = cols[f"st{SEP}error"].to_numpy(dtype=object) if f"st{SEP}error" in cols.columns else None
        for job, i in list(row_of.items()):
            if runtime[i] != runtime[i]:  # an older run without runtime_s: the general path below
                del row_of[job]
                continue
            own = error_line({"error": json.loads(error[i])}) if error is not None and error[i] else None
            state, errors[job] = ended_state(jobs[job], infos.get(job), run_state[i], own)
            states[job], runtimes[job] = state.value, float(runtime[i])
    # records={}: the index's other lines do not stand for their runs (that is why those jobs are here):
    # read their stores, with what the lines say (a lost mark, a fingerprint) as evidence.
    rest = sorted(set(range(n)) - set(row_of))
    others = {st.index: st for st in sweep_status(manifest, only=set(rest), view=view, records={},
                                                  index_rows=_light_rows(cols, rest)).jobs}  # fmt: skip
    from .launch.registry import backend_class

    # Final states learned from the scheduler go to the manifest, as status does.
    if not backend_class(manifest.backend).records_final_states:
        learned = [JobStatus(index=j, state=JobState(states[j]), job_id=jobs[j].job_id, overrides=jobs[j].overrides,
                             run_dir=manifest.path, error=errors[j]) for j in row_of
                   if jobs[j].state.value != states[j] and jobs[j].job_id]  # fmt: skip
        if learned:
            _persist_final(manifest, learned)
    for index, st in others.items():
        states[index], runtimes[index], errors[index] = st.state.value, st.runtime_s, st.error

    # Which metrics and summary keys exist: the index's columns plus the runs read from stores.
    logged: Dict[str, None] = {}
    summary: Dict[str, None] = {}
    param_names: Dict[str, None] = {}
    for column in cols.columns:
        kind, _, rest = column.partition(SEP)
        if kind == "m":
            logged[rest.rsplit(SEP, 1)[0]] = None
        elif kind == "s":
            summary[rest] = None
        elif kind == "p":
            param_names[rest] = None
    for st in others.values():
        if st.record is not None:
            logged.update(dict.fromkeys(st.record.metrics))
            summary.update(dict.fromkeys(st.record.summary))
            param_names.update(dict.fromkeys(st.record.params))
    logged = dict.fromkeys(sorted(logged))
    selectors = _selectors(logged, summary, metrics)
    param_keys: Dict[str, None] = dict.fromkeys(manifest.swept_keys)
    if all_params:
        param_keys.update(param_names)
    # Only what was asked for: summary values come along when no metric was named.
    summary_keys = {} if metrics else dict.fromkeys(sorted(summary))

    pos = np.array([row_of.get(j, -1) for j in range(n)], dtype=np.int64)
    have = pos >= 0

    def status(i: int) -> JobStatus:
        """Job ``i``'s JobStatus: the merged one, or (an indexed run) one made for a fallback read."""
        st = others.get(i)
        if st is None:
            st = JobStatus(index=i, state=JobState(states[i]), job_id=jobs[i].job_id, overrides=jobs[i].overrides,
                           run_dir=manifest.run_path(i), error=errors[i])  # fmt: skip
        return st

    def from_index(column: str) -> "np.ndarray":
        out = np.full(n, None, dtype=object)
        if column in cols.columns and have.any():
            out[have] = cols[column].to_numpy(dtype=object)[pos[have]]
        return out

    data: Dict[str, Any] = {"job": np.arange(n, dtype=np.int64)}
    for key in param_keys:
        values = from_index(f"p{SEP}{key}")
        for i in map(int, np.nonzero(~have | pd.isna(values))[0]):  # runs read from stores, or a key the run lacks
            record = others[i].record if i in others else None
            if record is not None and key in record.params:
                values[i] = record.params[key]
            if values[i] is None or values[i] != values[i]:
                values[i] = override_values(jobs[i].overrides).get(key)
        data[key] = values
    data["state"] = states
    data["runtime_s"] = np.array([math.nan if r is None else r for r in runtimes], dtype=np.float64)
    lost = {st.index: st.error or "run data gone" for st in others.values() if st.state == JobState.LOST}

    def selector_values(sel: MetricSelector) -> "np.ndarray":
        if sel.stat == "summary":
            values = from_index(f"s{SEP}{sel.key}")
        elif sel.stat in _COLUMN_STATS:
            base = f"m{SEP}{sel.key}{SEP}"
            if sel.stat == "mean":
                total, finite = from_index(base + "sum"), from_index(base + "finite")
                values = np.array([t / f if t is not None and f else (math.nan if f == 0 else None)
                                   for t, f in zip(total, finite)], dtype=object)  # fmt: skip
            else:
                values = from_index(base + sel.stat)
        else:
            values = np.full(n, None, dtype=object)
        need = ~have
        if sel.stat in ("mean", "argmin", "argmax") or sel.stat not in _COLUMN_STATS + ("summary",):
            need = need | pd.isna(values)  # an older store's stats lack them, or at=STEP: read the run
        for i in map(int, np.nonzero(need)[0]):
            st = status(i)
            record = read_run(manifest, st.index)[0] if have[i] else st.record
            values[i] = _value(manifest, JobStatus(index=st.index, state=st.state, job_id=st.job_id,
                                                   overrides=st.overrides, run_dir=st.run_dir, record=record),
                               sel)  # fmt: skip
        values[pd.isna(values)] = math.nan  # in place: a list of 100,000 values cost a copy per column
        return values

    for sel in selectors:
        data[sel.column] = selector_values(sel)
    study_columns = _study_columns(manifest, states, summary, logged, selector_values)
    for key in summary_keys:
        values = from_index(f"s{SEP}{key}")
        for i in map(int, np.nonzero(~have)[0]):
            record = others[i].record if i in others else None
            values[i] = record.summary.get(key) if record is not None else None
        data[key] = values
    code = _code_cells(manifest, row_of, others)
    if code is not None:
        data["code"] = code
    data.update(study_columns)
    columns = ["job", *(["trial"] if study_columns else []), *param_keys, "state",
               *(["objective"] if study_columns else []), "runtime_s", *(["code"] if code is not None else []),
               *(sel.column for sel in selectors), *summary_keys]  # fmt: skip
    # Every column's type inferred at once (each as Series.infer_objects would), then lists and dicts as
    # text in the columns still of objects (only those can hold them).
    frame = pd.DataFrame(data, columns=columns).infer_objects()
    for column in [c for c in frame.columns if frame[c].dtype == object]:
        frame[column] = frame[column].map(lambda v: str(v) if isinstance(v, (list, dict)) else v).infer_objects()
    frame.attrs["selectors"] = selectors
    frame.attrs["summary_keys"] = list(summary_keys)
    frame.attrs["lost"] = lost
    notes = []
    if lost:
        ref = sweep_ref(manifest)
        notes.append(
            f"lost, no values shown: {'; '.join(f'job {j} ({why})' for j, why in sorted(lost.items()))}; "
            f"`hpctrack verify {ref}` says more, `hpctrack resume {ref} --include-lost` reruns them"
        )
    damaged = cols.attrs.get("damaged") or []
    if damaged:
        notes.append(
            f"{INDEX_FILE} "
            + "; ".join(f"line {n}: {why}" for n, why in damaged[:3])
            + ": ignored, those runs were read from their stores; `hpctrack reindex` rewrites the index"
        )
    return frame, notes


def _study_columns(manifest: Manifest, states: Sequence[Optional[str]], summary: Mapping[str, None],
                   logged: Mapping[str, None], values_of: Callable[[MetricSelector], Any]
                   ) -> Dict[str, List[Any]]:  # fmt: skip
    """A study's ``trial`` (Optuna's trial number) and ``objective`` (what the study was told) columns; {} else.

    The objective is shown for completed trials only: a pruned or failed trial was not scored.
    """
    study = manifest.study
    if not study:
        return {}
    objective = study.get("objective") or {}
    key, stat = str(objective.get("key")), objective.get("stat")
    if stat is None and key in summary:
        values = values_of(MetricSelector(key, "summary"))
        if key in logged:  # runs without the summary value are scored by the metric's last value
            last = values_of(MetricSelector(key, "last"))
            values = [b if a is None or a != a else a for a, b in zip(values, last)]
    else:
        values = values_of(MetricSelector(key, stat or "last"))
    done = JobState.COMPLETED.value
    trial_of_job = study.get("trial_of_job") or {}
    return {"trial": [trial_of_job.get(str(i)) for i in range(len(states))],
            "objective": [v if state == done else math.nan for v, state in zip(values, states)]}  # fmt: skip


def group_table(
    runs: "pd.DataFrame",
    keys: Sequence[str],
    value_columns: Sequence[str],
    aggregations: Sequence[str],
    include_incomplete: bool = False,
) -> "Tuple[pd.DataFrame, Optional[str]]":
    """One row per combination of ``keys``: ``n`` and each aggregation of each value column."""
    import numpy as np
    import pandas as pd

    unknown = [k for k in keys if k not in runs.columns]
    if unknown:
        params = [c for c in runs.columns
                  if c not in ("job", "trial", "state", "runtime_s", "code") and c not in value_columns]  # fmt: skip
        raise ConfigError(f"cannot group by {unknown[0]!r}: not a param of this table "
                          f"(params: {', '.join(params) or 'none'}; --all-params adds every config key)")  # fmt: skip
    bad = [a for a in aggregations if a not in AGGREGATIONS]
    if bad:
        raise ConfigError(f"unknown aggregation {bad[0]!r}; choose from: {', '.join(AGGREGATIONS)}")
    note = None
    if not include_incomplete:
        left_out = runs[runs["state"] != "COMPLETED"]
        if len(left_out):
            counts = left_out["state"].value_counts()
            why = ", ".join(f"{n} {state}" for state, n in counts.items())
            note = (f"left out {len(left_out)} run{'s' if len(left_out) != 1 else ''} that did not complete "
                    f"({why}); include them with --include-incomplete")  # fmt: skip
        runs = runs[runs["state"] == "COMPLETED"]
    numeric = [c for c in value_columns if c in runs.columns and pd.api.types.is_numeric_dtype(runs[c])]
    out_rows = []
    grouped = runs.groupby(list(keys), dropna=False, sort=True) if keys else [((), runs)]
    for group_key, part in grouped:
        values = group_key if isinstance(group_key, tuple) else (group_key,)
        row: Dict[str, Any] = dict(zip(keys, values))
        row["n"] = len(part)
        if "code" in part.columns:  # the group's runs did not all run the same code: which they ran
            row["code"] = "; ".join(sorted({str(c) for c in part["code"] if c}))
        for column in numeric:
            data = part[column].to_numpy(dtype=np.float64)
            data = data[~np.isnan(data)]
            n = len(data)
            std = float(data.std(ddof=1)) if n > 1 else math.nan
            stats = {
                "mean": float(data.mean()) if n else math.nan,
                "std": std,
                "sem": std / math.sqrt(n) if n > 1 else math.nan,
                "min": float(data.min()) if n else math.nan,
                "max": float(data.max()) if n else math.nan,
                "count": n,
                "ci95": t_critical_975(n - 1) * std / math.sqrt(n) if n > 1 else math.nan,
            }
            for name in aggregations:
                row[f"{column} {name}"] = stats[name]
        out_rows.append(row)
    columns = [*keys, "n", *(["code"] if "code" in runs.columns else []),
               *(f"{c} {a}" for c in numeric for a in aggregations)]  # fmt: skip
    frame = pd.DataFrame(out_rows, columns=columns)
    frame.attrs["group_by"] = list(keys)
    frame.attrs["aggregations"] = list(aggregations)
    frame.attrs["metrics"] = numeric
    return frame, note


def _best(frame: "pd.DataFrame") -> Optional[int]:
    """Row position of the best group on the first metric's mean (direction from its name)."""
    first = next((c for c in frame.columns if c.endswith(" mean")), None)
    if first is None or frame.empty or frame[first].isna().all():
        return None
    column = frame[first]
    return int(column.idxmin() if lower_is_better(first[: -len(" mean")]) else column.idxmax())


def _filter(frame: "pd.DataFrame", where: str) -> "pd.DataFrame":
    """The runs matching filter ``where`` (:mod:`hpctrack.query`: a filter is data, never code)."""
    from .query import FilterError, filter_frame

    try:
        return filter_frame(frame, where)
    except FilterError as err:
        shown = where if len(where) <= 120 else where[:100] + f"... ({len(where)} characters)"
        raise FilterError(f"bad --filter {shown!r}: {err}") from None


def _sort(frame: "pd.DataFrame", sort: Sequence[str]) -> "pd.DataFrame":
    columns, ascending = [], []
    for spec in sort:
        desc = spec.startswith("-")
        name = spec[1:] if desc or spec.startswith("+") else spec
        if name not in frame.columns:
            grouped = [c for c in frame.columns if str(c).startswith(name + " ")]
            if not grouped:
                raise ConfigError(f"cannot sort by {name!r}: no such column; columns: "
                                  f"{', '.join(map(str, frame.columns))}")  # fmt: skip
            name = next((c for c in grouped if c.endswith(" mean")), grouped[0])  # a grouped metric: its mean
        columns.append(name)
        ascending.append(not desc)
    attrs = dict(frame.attrs)
    out = frame.sort_values(columns, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)
    out.attrs.update(attrs)
    return out


#: Sort a frame by columns (``-COLUMN``: descending), as ``table --sort`` does.
sort_frame = _sort


def _plain(value: Any) -> Any:
    # numpy scalars that pandas leaves in object columns
    return value.item() if hasattr(value, "item") else str(value)


def export_table(frame: "pd.DataFrame", fmt: str, path: Optional[Path] = None) -> Optional[str]:
    """Render ``frame`` as csv, json (one object per run), parquet or markdown.

    Returns the text when ``path`` is None; parquet, being binary, needs ``path``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "parquet":
        if path is None:
            raise ConfigError("parquet is binary: give an output file with -o FILE")
        _write_output(Path(path), lambda p: frame.to_parquet(p, index=False))
        return None
    if fmt == "csv":
        text = frame.to_csv(index=False)
    elif fmt == "json":
        # Strict JSON: NaN and +-inf become null (JSON has no such numbers).
        records = finite_json(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))
        text = json.dumps(records, indent=1, default=_plain, allow_nan=False) + "\n"
    else:  # for people: names and text cells with their control characters shown, not obeyed
        text = _printable_frame(frame).to_markdown(index=False, floatfmt=".4g") + "\n"
    if path is not None:
        _write_output(Path(path), text)
        return None
    return text


def _printable_frame(frame: "pd.DataFrame") -> "pd.DataFrame":
    """``frame`` with column names and text cells escaped for a person's eyes (numbers unchanged)."""
    from ._terminal import printable

    out = frame.copy()
    out.columns = [printable(c) for c in frame.columns]
    for position in range(out.shape[1]):
        if out.iloc[:, position].dtype == object:
            out.isetitem(position, out.iloc[:, position].map(lambda v: printable(v) if isinstance(v, str) else v))
    return out


def _write_output(path: Path, data: Any) -> None:
    """Write an export, or a one-line ConfigError naming the file and the fix."""
    try:
        if isinstance(data, str):
            path.write_text(data)
        else:
            data(path)
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror or err}; give -o a file in a writable directory "
                          "that exists") from err  # fmt: skip
