"""What the dashboard's lists read: sweeps under the root (with a metric's best value), a sweep's
metric keys, and the change stamp the page polls. Manifests and sweep indexes only: never a run
store is opened (the stamp ``stat``-s those of running runs).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ..errors import RunNotFoundError, SweepNotFoundError
from ..manifest import SWEEPS_DIR, Manifest, iter_sweep_dirs, load_manifest

if TYPE_CHECKING:
    import pandas as pd

    from ..sweep import Sweep

__all__ = ["find_sweep_under", "list_sweeps", "sweep_overview", "change_stamp", "watched_files", "Watched",
           "stat_text", "commit_file_name", "index_metrics", "best_value"]  # fmt: skip


def find_sweep_under(root: Path, ref: str) -> "Sweep":
    """The sweep ``ref`` names (id, unique prefix, name, ``latest``), only if it is a sweep of ``root``.

    A path (``..``, a directory elsewhere) is never taken: the dashboard reads the root it serves.

    Raises
    ------
    SweepNotFoundError
        Nothing under ``root/sweeps`` matches.
    """
    from ..sweep import load_sweep

    sweep = load_sweep(ref, root=str(root))
    if os.path.realpath(sweep.path.parent) != os.path.realpath(root / SWEEPS_DIR):
        raise SweepNotFoundError(f"no sweep {ref!r} under {root} (the dashboard reads the sweeps of its root only)")
    return sweep


def index_metrics(frame: "pd.DataFrame") -> List[str]:
    """The metric keys of an :func:`hpctrack.index.index_frame` (sorted)."""
    from ..index import SEP

    return sorted({c.split(SEP)[1] for c in frame.columns if c.startswith(f"m{SEP}") and c.endswith(f"{SEP}count")})


def best_value(manifest: Manifest, frame: "pd.DataFrame", metric: str, mode: str) -> Optional[Dict[str, Any]]:
    """The best value of ``metric`` over the runs the index stands for, and its run; None without one.

    ``metric`` is a metric key (each run's ``max`` for ``mode="max"``, its ``min`` for ``"min"``),
    ``KEY:last|min|max`` (that stat of each run), or a summary key.
    """
    import numpy as np
    import pandas as pd

    from ..index import SEP, usable_rows

    key, _, stat = metric.rpartition(":")
    if stat not in ("last", "min", "max"):
        key, stat = metric, mode
    column = f"m{SEP}{key}{SEP}{stat}"
    if column not in frame.columns:
        column = f"s{SEP}{metric}"
        if column not in frame.columns:
            return None
    rows = usable_rows(frame, [job.submitted for job in manifest.jobs])
    if not rows:
        return None
    positions = np.fromiter(rows.values(), dtype=np.int64)
    values = pd.to_numeric(frame[column].iloc[positions], errors="coerce").to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return None
    at = int(np.nanargmax(np.where(finite, values, np.nan)) if mode == "max"
             else np.nanargmin(np.where(finite, values, np.nan)))  # fmt: skip
    job = int(frame["job"].iloc[positions[at]])
    return {"value": float(values[at]), "run": f"{manifest.id}/{job}"}


def _swept_values(manifest: Manifest) -> Dict[str, List[Any]]:
    """Each swept key's values over the jobs, in a stable order."""
    from ..overrides import override_values

    seen: Dict[str, Dict[str, Any]] = {k: {} for k in manifest.swept_keys}
    for job in manifest.jobs:
        values = override_values(job.overrides)
        for key in manifest.swept_keys:
            if key in values:
                seen[key].setdefault(repr(values[key]), values[key])
    return {k: sorted(v.values(), key=lambda x: (type(x).__name__, str(x))) for k, v in seen.items()}


def _matches(row: Dict[str, Any], params: Dict[str, List[Any]], terms: Sequence[str]) -> bool:
    text = " ".join([str(row.get("name") or ""), row["id"], str(row.get("note") or ""),
                     *(f"{k}={v}" for k, v in row.get("tags", {}).items()),
                     *(f"{k}={v}" for k, values in params.items() for v in values)]).lower()  # fmt: skip
    return all(term in text for term in terms)


def list_sweeps(root: Path, *, q: Optional[str] = None, metric: Optional[str] = None,
                mode: Optional[str] = None) -> Dict[str, Any]:  # fmt: skip
    """``api/sweeps``: the ``hpctrack ls`` rows, newest first, with swept values, best value and metric keys.

    Parameters
    ----------
    root:
        The storage root.
    q:
        Words that must all appear (case-insensitively) in the sweep's name, id, note, tags or
        swept keys and values.
    metric, mode:
        A metric (see :func:`best_value`) and ``max`` or ``min`` (default: by the metric's name,
        as tables pick the best group): each row gets ``best``.
    """
    from ..aggregate import lower_is_better
    from ..index import index_frame
    from ..sweep import sweep_rows

    rows, skipped = sweep_rows(str(root))
    terms = (q or "").lower().split()
    direction = mode or ("min" if metric and lower_is_better(metric) else "max")
    out, metrics = [], set()
    for row in rows:
        try:
            manifest = load_manifest(Path(row["path"]))
        except Exception as err:  # damaged since sweep_rows read it: said, never fatal to the list
            skipped.append(f"skipped {row['path']}: {' '.join(str(err).split())}")
            continue
        params = _swept_values(manifest)
        if terms and not _matches(row, params, terms):
            continue
        frame = index_frame(manifest.path)
        metrics.update(index_metrics(frame))
        row = {**row, "params": params}
        if metric:
            row["best"] = best_value(manifest, frame, metric, direction)
        out.append(row)
    return {"sweeps": out, "skipped": skipped, "metrics": sorted(metrics),
            **({"mode": direction} if metric else {})}  # fmt: skip


#: Runs that have not ended whose stores :func:`sweep_overview` reads for metric keys the index lacks yet.
LIVE_METRIC_RUNS = 8


def _live_metrics(manifest: Manifest, ended: Sequence[int]) -> List[str]:
    """Metric keys of the first :data:`LIVE_METRIC_RUNS` runs that have started but not ended (their stores' records).

    Before a run ends, the index knows none of its metrics; the runs of a sweep mostly log the
    same keys, so a few stores tell them without reading thousands.
    """
    from ..store import open_store

    done, read = set(ended), 0
    keys: "set[str]" = set()
    for i in range(len(manifest.jobs)):
        if read >= LIVE_METRIC_RUNS:
            break
        if i in done:
            continue
        store = open_store(manifest.run_path(i), manifest.store)
        if not store.exists():
            continue
        read += 1
        try:
            keys.update(store.read().metrics)
        except Exception:  # being written, damaged, busy: the next one tells, or the index once it ended
            continue
    return sorted(keys)


def sweep_overview(sweep: "Sweep") -> Dict[str, Any]:
    """``api/sweeps/<ref>``: ``hpctrack show SWEEP`` plus its swept keys, metric keys and default seed keys.

    The metric keys are those of the sweep's index (ended runs) and those logged by a few of its
    running runs (:func:`_live_metrics`), so a running sweep's curves can be chosen before a run ends.
    """
    from ..aggregate import DEFAULT_SEED_KEYS
    from ..index import SEP, index_frame, usable_rows
    from ..runinfo import describe_sweep

    data = describe_sweep(sweep)
    manifest = sweep.manifest
    frame = index_frame(sweep.path)
    ended = usable_rows(frame, [job.submitted for job in manifest.jobs])
    metrics = sorted(set(index_metrics(frame)) | set(_live_metrics(manifest, list(ended))))
    summary = sorted({c.split(SEP, 1)[1] for c in frame.columns if c.startswith(f"s{SEP}")})
    return {**data, "swept_keys": list(manifest.swept_keys), "params": _swept_values(manifest),
            "metrics": metrics, "summary_keys": summary, "seed_keys": list(DEFAULT_SEED_KEYS)}  # fmt: skip


def stat_text(path: "os.PathLike[str] | str") -> str:
    """``inode:size:mtime_ns`` of ``path`` (followed through symlinks), ``-`` when it cannot be ``stat``-ed."""
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def commit_file_name(store: str) -> str:
    """The file of a run directory that every commit of its store replaces: its ``stat`` tells that the run wrote.

    HDF5: ``run.h5``, the symlink naming the current copy (``stat`` follows it to the copy, which
    each commit changes); Zarr: ``run.zarr/zarr.json``, the commit record each commit replaces.
    """
    from ..store import BACKENDS, ZarrStore

    cls = BACKENDS.get(store)
    if cls is None:  # a store this hpctrack does not know: the run directory is all there is to watch
        return "."
    return f"run{cls.suffix}/zarr.json" if cls is ZarrStore else f"run{cls.suffix}"


@dataclass(frozen=True)
class Watched:
    """What a sweep's stamp ``stat``-s, worked out from its manifest and index (see :func:`watched_files`).

    Attributes
    ----------
    key:
        :func:`hpctrack.catalog.sweep_key` of the sweep when this was worked out.
    live:
        The commit file (:func:`commit_file_name`) of each run that has not ended.
    runs:
        Per job: its run's commit file and its stdout and stderr logs (None: not recorded yet).
    """

    key: str
    live: List[str]
    runs: List[Tuple[str, Optional[str], Optional[str]]]


#: How many sweeps :func:`watched_files` remembers (a dashboard shows a few at a time).
WATCHED_SWEEPS = 64
_watched: "OrderedDict[str, Watched]" = OrderedDict()
_watched_lock = threading.Lock()


def watched_files(sweep: "Sweep", key: str) -> Watched:
    """The files the stamp of ``sweep`` ``stat``-s: the stores of its runs that have not ended, and each job's.

    A run has ended when a line of the sweep's index stands for its job's current submission
    (:func:`hpctrack.index.usable_rows`); every other job's run may still write (or has not
    started: its file is missing, one cheap failed ``stat``). This is worked out from the
    manifest and the index only when ``key`` (:func:`hpctrack.catalog.sweep_key`, their
    ``stat``) changed, so a poll between two changes costs the ``stat`` calls alone, however
    large the manifest.
    """
    from ..index import index_frame, usable_rows

    name = str(sweep.path)
    with _watched_lock:
        cached = _watched.get(name)
        if cached is not None and cached.key == key:
            _watched.move_to_end(name)
            return cached
    manifest = sweep.manifest
    ended = usable_rows(index_frame(sweep.path), [job.submitted for job in manifest.jobs])
    commit, join = commit_file_name(manifest.store), os.path.join  # strings: 10,000 Paths cost 0.1 s
    runs = [(join(name, job.run_dir, commit), job.stdout, job.stderr) for job in manifest.jobs]
    found = Watched(key=key, live=[run[0] for i, run in enumerate(runs) if i not in ended], runs=runs)
    with _watched_lock:
        _watched[name] = found
        _watched.move_to_end(name)
        while len(_watched) > WATCHED_SWEEPS:
            _watched.popitem(last=False)
    return found


def change_stamp(root: Path, sweep: "Optional[Sweep]" = None, job: Optional[int] = None) -> str:
    """An opaque text that changes when what the page shows may have changed; ``stat`` calls only.

    Without ``sweep``: the sweeps directory (a sweep added or removed) and the manifest, index
    and labels of every sweep (a job's state, a run that ended, a tag).

    With ``sweep``: its manifest, index, labels and pins, and the store of every run that has not
    ended (:func:`watched_files`): a running run's new steps and heartbeat change it at each
    flush. Stores are ``stat``-ed, never opened.

    With ``sweep`` and ``job``: that sweep's files, and that run's store and the job's stdout and
    stderr logs, whether it runs or not (the run page).

    Raises
    ------
    RunNotFoundError
        ``job`` is not a job of ``sweep``.
    """
    from ..catalog import sweep_key
    from ..pins import PINS_FILE

    if sweep is None:
        parts = [stat_text(root / SWEEPS_DIR)]
        parts += [f"{d.name}={sweep_key(d)}" for d in iter_sweep_dirs(root)]
    else:
        key = sweep_key(sweep.path)
        watched = watched_files(sweep, key)
        parts = [key, stat_text(sweep.path / PINS_FILE)]
        if job is None:
            parts += [stat_text(path) for path in watched.live]
        else:
            if not 0 <= job < len(watched.runs):
                raise RunNotFoundError(f"sweep {sweep.id} has jobs 0-{len(watched.runs) - 1}; no job {job}")
            store, stdout, stderr = watched.runs[job]
            parts += [f"job {job}", stat_text(store), *(stat_text(log) if log else "-" for log in (stdout, stderr))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
