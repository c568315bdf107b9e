"""``load_sweep``: a launched sweep as a Python object (status, table, runs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from ._types import JobState
from .config import resolve_root
from .errors import ConfigError
from .manifest import (
    MANIFEST_FILE,
    SWEEPS_DIR,
    TRASH_DIR,
    Manifest,
    find_sweep,
    iter_sweep_dirs,
    load_manifest,
    sweep_ref,
)
from .status import JobStatus, SweepStatus, sweep_status
from .store import RunRecord, open_store

if TYPE_CHECKING:
    import pandas as pd

    from .labels import Labels
    from .pins import Pin
    from .requeue import RequeuePlan
    from .verify import Problem, RepairReport

__all__ = ["Sweep", "load_sweep", "list_sweeps", "sweep_rows"]


#: From this manifest size (about 1,500 jobs) a table reads the sweep's index in a thread while the manifest
#: is parsed; below it the thread costs more (its start, the GIL) than the overlap saves.
PREFETCH_MIN_MANIFEST_BYTES = 1 << 20


def _manifest_bytes(sweep_dir: Path) -> int:
    try:
        return os.stat(sweep_dir / MANIFEST_FILE).st_size
    except OSError:
        return 0


class Sweep:
    """A sweep on disk. Every property reads the current state; nothing is cached.

    Parameters
    ----------
    path:
        The sweep directory (``ROOT/sweeps/<id>``).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r})"

    @property
    def manifest(self) -> Manifest:
        """The manifest as it is on disk now."""
        return load_manifest(self.path)

    @property
    def id(self) -> str:
        """The sweep's id, e.g. ``20240102-130405-ab12``: the name of its directory."""
        return self.path.name

    @property
    def labels(self) -> "Labels":
        """The sweep's tags and note (:class:`hpctrack.labels.Labels`) as they are on disk now."""
        from .labels import read_labels

        return read_labels(self.path)

    def tag(self, tags: Optional[Mapping[str, str]] = None, *, remove: Sequence[str] = (), **kwargs: str) -> "Labels":
        """Set tags of the sweep (``sw.tag(project="x")`` or ``sw.tag({"stage": "ablation"})``), remove others.

        Kept in the sweep's ``labels.json``, written atomically under the manifest lock.

        Parameters
        ----------
        tags, kwargs:
            Tags to set, key -> value (text, at most 255 characters each).
        remove:
            Keys of tags to remove (absent keys are fine).

        Returns
        -------
        Labels
            The sweep's tags and note after the change.

        Raises
        ------
        ConfigError
            An empty key, a key holding ``=``, or a key or value too long; nothing is written.
        """
        from .labels import set_tags

        return set_tags(self.path, {**(tags or {}), **kwargs}, remove=remove)

    def note(self, text: Optional[str]) -> "Labels":
        """Replace the sweep's note with ``text`` (``None`` or ``""`` removes it); see :meth:`tag`."""
        from .labels import set_note

        return set_note(self.path, text)

    @property
    def pins(self) -> "List[Pin]":
        """The sweep's pinned runs (:class:`hpctrack.pins.Pin`, by run), as they are on disk now."""
        from .pins import read_pins

        return read_pins(self.path)

    def pin(self, runs: Sequence[int], reason: Optional[str] = None) -> "List[Pin]":
        """Pin ``runs`` (job indices) for ``reason``: ``hpctrack rm`` refuses the sweep while any is pinned.

        Kept in the sweep's ``pins.json``, written atomically under the manifest lock; a run holds
        one pin per reason. Returns every pin of the sweep after the change.

        Raises
        ------
        ConfigError
            A run that is not a job of the sweep, or a bad reason; nothing is written.
        """
        from .pins import DEFAULT_REASON, pin_runs

        return pin_runs(self.path, runs, reason or DEFAULT_REASON)

    def unpin(self, runs: Sequence[int], reason: Optional[str] = None) -> "List[Pin]":
        """Remove the pins of ``runs`` (only those for ``reason`` when given); see :meth:`pin`."""
        from .pins import unpin_runs

        return unpin_runs(self.path, runs, reason)

    def status(self) -> List[JobStatus]:
        """Every job with its merged state, last step, runtime and error line."""
        return self.sweep_status().jobs

    def sweep_status(self) -> SweepStatus:
        """:meth:`status` plus a note when the scheduler's view was degraded (one query per call)."""
        return sweep_status(self.manifest)

    def cancel(self, *, states: Optional[Sequence[JobState]] = None, jobs: Optional[Sequence[int]] = None) -> List[int]:
        """Cancel the jobs that have not ended, optionally only those in ``states`` or ``jobs``.

        Returns the indices of the jobs asked to stop; :attr:`cancel_notes` then
        says which of them could not be signalled from here, and why.
        """
        manifest = self.manifest
        self.cancel_notes: List[str] = []
        if jobs is not None:
            unknown = sorted(set(jobs) - {j.index for j in manifest.jobs})
            if unknown:
                raise ConfigError(f"sweep {manifest.id} has no job {unknown[0]} (jobs are 0-{len(manifest.jobs) - 1})")
        wanted = [
            s.index
            for s in self.status()
            if not s.state.is_final and (states is None or s.state in states) and (jobs is None or s.index in jobs)
        ]
        if not wanted:
            return []
        from .launch import get_backend

        self.cancel_notes = list(get_backend(manifest.backend).cancel(manifest, wanted) or [])
        return wanted

    def requeue(
        self,
        *,
        states: Optional[Sequence[JobState]] = None,
        jobs: Optional[Sequence[int]] = None,
        resources: Optional[Mapping[str, Any]] = None,
        dry_run: bool = False,
        code: str = "launch",
        include_lost: bool = False,
    ) -> "RequeuePlan":
        """Submit failed, timed-out, preempted or cancelled jobs again, into their runs.

        See :func:`hpctrack.requeue.requeue_sweep`; ``resources`` changes launcher
        options such as ``{"time": "04:00:00"}`` for the resubmitted jobs; ``code="current"``
        runs them with the code as it is now instead of the sweep's launch-time snapshot;
        ``include_lost`` reruns jobs whose run data is gone, from scratch.
        """
        from .requeue import requeue_sweep

        return requeue_sweep(self.manifest, states=states, jobs=jobs, resources=resources, dry_run=dry_run,
                             include_lost=include_lost, code=code)  # fmt: skip

    def resume(
        self,
        *,
        resources: Optional[Mapping[str, Any]] = None,
        dry_run: bool = False,
        include_lost: bool = False,
        code: str = "launch",
    ) -> "RequeuePlan":
        """Submit every job without a completed run that is not queued or running (never submitted ones too).

        Jobs whose run data is gone (``LOST``) only with ``include_lost``.
        """
        from .requeue import resume_sweep

        return resume_sweep(self.manifest, resources=resources, dry_run=dry_run, include_lost=include_lost, code=code)

    def verify(self) -> "List[Problem]":
        """Every problem of the sweep's runs and index (store, points, index, checkpoints); [] when whole.

        See :mod:`hpctrack.verify`.
        """
        from .verify import verify_sweep

        return verify_sweep(self.manifest)

    def repair(self) -> "RepairReport":
        """Restore what can be restored (HDF5 spare copy, checkpoints, index); see :mod:`hpctrack.verify`."""
        from .verify import repair_sweep

        return repair_sweep(self.manifest)

    def incomplete(self) -> Dict[int, str]:
        """Jobs of the sweep's grid without a completed run and nothing queued for them: index -> why."""
        from .requeue import incomplete_jobs

        manifest = self.manifest
        return incomplete_jobs(manifest, sweep_status(manifest).jobs)

    def table(
        self,
        *,
        metrics: Optional[Sequence[str]] = None,
        all_params: bool = False,
        group_by: Union[None, bool, Sequence[str]] = None,
        agg: Optional[Sequence[str]] = None,
        where: Optional[str] = None,
        sort: Union[None, str, Sequence[str]] = None,
        top: Optional[int] = None,
        include_incomplete: bool = False,
        seed_keys: Sequence[str] = ("seed",),
    ) -> "pd.DataFrame":
        """One row per run, or per group (``group_by``); see :func:`hpctrack.aggregate.sweep_table`.

        ``sw.table(group_by=["optimizer.lr"], metrics=["val/acc:max"])`` gives one
        row per learning rate with ``n`` and ``val/acc:max mean``/``std``/``count``
        over the seeds; ``group_by=True`` groups by every swept key but the seeds.
        """
        from .aggregate import sweep_table

        inputs = None
        if _manifest_bytes(self.path) >= PREFETCH_MIN_MANIFEST_BYTES:
            from . import _prefetch

            inputs = _prefetch.start(self.path)  # the index and run fingerprints, read while the manifest is parsed
        try:
            return sweep_table(self.manifest, metrics=metrics, all_params=all_params, group_by=group_by, agg=agg,
                               where=where, sort=[sort] if isinstance(sort, str) else sort, top=top,
                               include_incomplete=include_incomplete, seed_keys=seed_keys, inputs=inputs)  # fmt: skip
        finally:
            if inputs is not None:
                inputs.close()

    def reindex(self) -> "tuple[int, Dict[int, str]]":
        """Rebuild the sweep's summary index from its runs: (runs indexed, unreadable job -> error)."""
        from .index import rebuild_index

        return rebuild_index(self.path)

    def run(self, index: int) -> RunRecord:
        """The record of job ``index``'s run.

        Raises
        ------
        ConfigError
            The sweep has no job ``index``.
        RunNotFoundError
            The run has not started (or its store is gone).
        """
        manifest = self.manifest
        _checked_jobs(manifest, [index])
        return open_store(manifest.run_path(index), manifest.store).read()

    def history(
        self, key: str, *, jobs: Optional[Sequence[int]] = None, workers: Optional[int] = None
    ) -> "pd.DataFrame":
        """Metric ``key`` of every run that logged it, long format.

        Columns: ``run`` (run id), ``job``, ``step``, ``value``, ``time`` (wall
        clock, seconds since the epoch), ``elapsed_s`` (since the run's first
        point), ``attempt``, then the swept params. Each run's resolved history:
        after a restart, the points the new attempt replaced are left out
        (``open_store(...).read_history(key, raw=True)`` has them). Runs whose
        store cannot be read, or is gone although the run had started, are
        skipped; ``frame.attrs["skipped"]`` names them: job -> why.
        ``jobs``: job indices to read (in job order whatever their order here);
        None: every job. ``workers``: processes reading the runs (default four
        per CPU, up to 8 and at most one per 250 runs, when 400 runs or more are
        read; 1 reads in this process).

        Raises
        ------
        ConfigError
            A job index the sweep does not have.
        """
        import numpy as np
        import pandas as pd

        from .overrides import override_values

        manifest = self.manifest
        wanted = None if jobs is None else _checked_jobs(manifest, jobs)
        jobs, lengths, step, value, wall, attempt, skipped = _read_histories(manifest, key, workers=workers,
                                                                             only=wanted)  # fmt: skip
        skipped.update(_lost_without_store(manifest, set(jobs) | set(skipped), only=wanted))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        nonempty = lengths > 0
        first_time = np.zeros(len(jobs))
        if nonempty.any():
            first_time[nonempty] = np.minimum.reduceat(wall, starts[nonempty])
        columns = {
            "run": pd.Categorical.from_codes(np.repeat(np.arange(len(jobs)), lengths),
                                             [f"{manifest.id}/{j}" for j in jobs]),
            "job": np.repeat(np.asarray(jobs, dtype=np.int64), lengths),
            "step": step, "value": value, "time": wall,
            "elapsed_s": wall - np.repeat(first_time, lengths),
            "attempt": attempt,
        }  # fmt: skip
        params = [override_values(manifest.jobs[j].overrides) for j in jobs]
        for name in manifest.swept_keys:
            per_run = pd.Series([p.get(name) for p in params], dtype=object).infer_objects().to_numpy()
            columns[name] = np.repeat(per_run, lengths)
        # Series side by side: a DataFrame built from a dict copies 10 M-row columns into blocks.
        out = pd.concat([pd.Series(v, name=k, copy=False) for k, v in columns.items()], axis=1, copy=False)
        if not len(out.columns):
            out = pd.DataFrame(columns=list(columns))
        out.attrs["skipped"] = skipped
        return out


#: Below this many runs ``history`` reads in this process; above, in worker processes.
PARALLEL_HISTORY_MIN_RUNS = 400
#: Worker processes per CPU for ``history``: cold, 10,000 HDF5 stores read by 2 processes on 2 cores
#: took 41-104 s, by 6-8 processes 21-23 s (each read waits on the disk); cached, the same.
HISTORY_WORKERS_PER_CPU = 4
#: Runs per worker process at least: each process costs its start (~0.2 s of CPU to import h5py
#: and numpy), so 1,000 runs x 1,000 steps on 2 cores read in 0.7-0.8 s by 4 processes, 1.0-1.1 s
#: by 8 (cached; from a cold disk 1.15 s and 1.4 s).
HISTORY_RUNS_PER_WORKER = 250


def _checked_jobs(manifest: Manifest, jobs: Sequence[int]) -> "set[int]":
    """``jobs`` as a set, each checked to be a job index of the sweep."""
    n = len(manifest.jobs)
    for job in jobs:
        if isinstance(job, bool) or not isinstance(job, int) or not 0 <= job < n:
            raise ConfigError(f"sweep {manifest.id} has jobs 0-{n - 1}; no job {job!r}")
    return set(jobs)


def _read_histories(
    manifest: Manifest, key: str, workers: Optional[int] = None, only: "Optional[set[int]]" = None
) -> "tuple[Any, ...]":
    """Every run's resolved history of ``key`` as concatenated columns, in job order (``only``: those jobs).

    Returns (jobs, lengths, step, value, time, attempt, skipped). A sweep of many
    runs is read by ``workers`` processes (default: four per CPU, at most 8, at most one per
    :data:`HISTORY_RUNS_PER_WORKER` runs): each
    read is a file open and a few small reads, bound by the Python code around
    them when the files are cached, so processes scale where threads would not
    (h5py runs one call at a time per process); when they are not, each read waits
    on the disk, and more processes than CPUs keep more reads in flight.
    """
    import numpy as np

    from ._history_worker import history_chunk

    indices = [(job.index, job.run_dir) for job in manifest.jobs if only is None or job.index in only]
    hints = _indexed_stats(manifest.path, key)
    if workers is None:
        n = min(HISTORY_WORKERS_PER_CPU * (os.cpu_count() or 1), 8, -(-len(indices) // HISTORY_RUNS_PER_WORKER))
    else:
        n = workers
    if n <= 1 or len(indices) < PARALLEL_HISTORY_MIN_RUNS:
        parts = [history_chunk(str(manifest.path), manifest.store, indices, key, hints)]
    else:
        size = -(-len(indices) // n)
        parts = _history_in_workers(manifest, key, [indices[i : i + size] for i in range(0, len(indices), size)],
                                    hints)  # fmt: skip
    if len(parts) == 1:
        return parts[0]
    jobs = [j for part in parts for j in part[0]]
    skipped = {j: why for part in parts for j, why in part[6].items()}
    columns = [np.concatenate([part[i] for part in parts]) for i in range(1, 6)]
    return (jobs, *columns, skipped)


def _indexed_stats(sweep_dir: Path, key: str) -> Dict[int, List[Any]]:
    """Job -> ``[fingerprint, rows, segments, restarts, format_version]`` of ``key`` from its newest index line.

    What a history reader needs to read a run's rows without its stats (where they end, which
    attempt wrote them), for the runs whose line recorded a fingerprint: the reader uses it only
    while the store still has that fingerprint (:meth:`hpctrack.store.Store.read_history_indexed`).
    Parsed by pyarrow; an index pyarrow does not take whole gives no hints ({}), never an error.
    """
    import pyarrow.compute as pc

    from ._index_arrow import read_json_lines
    from .index import INDEX_FILE, INDEX_VERSION

    try:
        with open(Path(sweep_dir) / INDEX_FILE, "rb") as fh:
            data = fh.read()
    except OSError:
        return {}
    data = data[: data.rfind(b"\n") + 1]  # whole lines: a writer may be half-way through its append
    table = read_json_lines(data) if data else None
    if table is None or not {"job", "fingerprint", "metrics"} <= set(table.column_names):
        return {}
    try:
        if "v" in table.column_names and (pc.max(table["v"]).as_py() or 0) > INDEX_VERSION:
            return {}  # a newer hpctrack's lines: the stores answer
        stats = table["metrics"].combine_chunks().field(key)
        rows = pc.coalesce(stats.field("rows"), stats.field("count")).to_pylist()
        segments = stats.field("segments").to_pylist()
    except (KeyError, AttributeError, TypeError, ValueError, NotImplementedError):  # none logged it, odd shapes
        return {}
    restarts = table["restarts"].to_pylist() if "restarts" in table.column_names else [None] * len(table)
    versions = table["format_version"].to_pylist() if "format_version" in table.column_names else [None] * len(table)
    out: Dict[int, List[Any]] = {}
    for job, fingerprint, n, seg, steps, version in zip(table["job"].to_pylist(), table["fingerprint"].to_pylist(),
                                                        rows, segments, restarts, versions):  # fmt: skip
        if not isinstance(job, int):
            return {}
        if isinstance(fingerprint, str) and isinstance(n, int) and version is not None:
            out[job] = [fingerprint, n, seg if seg is not None else [[1, 0]],
                        {a: k for a, k in (steps or {}).items() if k is not None}, version]  # fmt: skip
        else:
            out.pop(job, None)  # the job's newest line gives no hint
    return out


def _history_in_workers(
    manifest: Manifest, key: str, chunks: List[Any], hints: Optional[Dict[int, List[Any]]] = None
) -> List["tuple[Any, ...]"]:
    """:func:`~hpctrack._history_worker.history_chunk` of each chunk in its own ``python -m hpctrack._history_worker`` process."""
    import json
    import subprocess
    import sys
    import tempfile

    import numpy as np

    from ._history_worker import RESULT_COLUMNS
    from .errors import HpctrackError

    with tempfile.TemporaryDirectory(prefix="hpctrack-history-") as tmp:
        procs = []
        for i, chunk in enumerate(chunks):
            spec, out = Path(tmp) / f"{i}.json", Path(tmp) / f"{i}.bin"
            mine = {str(job): hints[job] for job, _ in chunk if hints and job in hints}
            spec.write_text(json.dumps({"sweep_dir": str(manifest.path), "store": manifest.store, "key": key,
                                        "items": chunk, "hints": mine}))  # fmt: skip
            procs.append((out, subprocess.Popen([sys.executable, "-m", "hpctrack._history_worker", str(spec), str(out)],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))  # fmt: skip
        headers = []
        for out, proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                lines = err.decode(errors="replace").strip().splitlines()
                raise HpctrackError(
                    f"reading histories failed: {lines[-1] if lines else f'exit code {proc.returncode}'}"
                )
            with open(out, "rb") as fh:
                headers.append(json.loads(fh.readline()))
        # Every worker's columns read straight into one array per column (10 M points: no concatenation).
        total = sum(int(h["points"]) for h in headers)
        columns = {name: np.empty(total, dtype=dtype) for name, dtype in RESULT_COLUMNS if name != "lengths"}
        jobs: List[int] = []
        lengths = []
        skipped: Dict[int, str] = {}
        at = 0
        for (out, _), header in zip(procs, headers):
            points = int(header["points"])
            with open(out, "rb") as fh:
                fh.readline()
                lengths.append(_read_exactly(fh, np.empty(len(header["jobs"]), dtype=np.int64)))
                for name, _ in RESULT_COLUMNS[1:]:
                    _read_exactly(fh, columns[name][at : at + points])
            at += points
            jobs += header["jobs"]
            skipped.update({int(k): v for k, v in header["skipped"].items()})
        return [(jobs, np.concatenate(lengths) if lengths else np.empty(0, np.int64), columns["step"],
                 columns["value"], columns["time"], columns["attempt"], skipped)]  # fmt: skip


def _read_exactly(fh: Any, into: "Any") -> Any:
    """Fill the array ``into`` from ``fh`` (a worker's result file); a short file is an error."""
    from .errors import HpctrackError

    view = memoryview(into).cast("B")
    if fh.readinto(view) != len(view):
        raise HpctrackError(f"reading histories failed: {fh.name} ends early")
    return into


def _lost_without_store(manifest: Manifest, seen: "set[int]", only: "Optional[set[int]]" = None) -> Dict[int, str]:
    """Runs (of ``only``, or all) that had started but whose store is gone (a history skips them silently otherwise)."""
    from .index import had_started, read_index

    rows: Optional[Dict[int, Any]] = None
    lost: Dict[int, str] = {}
    for job in manifest.jobs:
        if job.index in seen or (only is not None and job.index not in only):
            continue
        store = open_store(manifest.run_path(job.index), manifest.store)
        if store.fingerprint() is not None:
            continue  # there, without this metric
        rows = read_index(manifest.path) if rows is None else rows
        if had_started(manifest, job.index, rows.get(job.index)):
            lost[job.index] = f"run store missing: {store.path} (deleted or moved?)"
    return lost


def load_sweep(ref: str = "latest", *, root: Optional[str] = None) -> Sweep:
    """The sweep ``ref``: ``latest``, an id (or unique prefix), a name, or a path.

    Raises
    ------
    SweepNotFoundError
        Nothing matches ``ref`` under the root.
    """
    return Sweep(find_sweep(resolve_root(root), ref))


def list_sweeps(root: Optional[str] = None) -> Iterator[Sweep]:
    """Every sweep under the root, newest first."""
    for path in iter_sweep_dirs(resolve_root(root)):
        yield Sweep(path)


def sweep_rows(
    root: Optional[str] = None,
    *,
    where: Optional[str] = None,
    tags: Sequence[str] = (),
    since: Optional[str] = None,
    trashed: bool = False,
) -> "tuple[List[Dict[str, Any]], List[str]]":
    """One row per sweep under the root, newest first (``hpctrack ls``), and a line per damaged sweep skipped.

    A row has ``name``, ``id``, ``created`` (local time), ``backend``, ``store``, ``script`` (file
    name), ``jobs`` (the state summary), ``n_jobs``, ``states`` (every state -> how many jobs are
    in it), ``unconfirmed`` (jobs whose state only the backend can confirm), ``tags``, ``note``
    and ``path``. A sweep in the root's trash is not listed.

    Parameters
    ----------
    where:
        A filter in the language of ``table --filter`` (:mod:`hpctrack.query`) over the sweep's
        fields: ``name``, ``id``, ``created`` (text, ``YYYY-mm-dd HH:MM:SS``), ``backend``, ``store``,
        ``script``, ``n_jobs``, ``unconfirmed``, ``note``, ``states.<STATE>`` and ``tags.<key>``.
    tags:
        ``key=value`` (the tag has that value) or ``key`` (the sweep has the tag); all must hold.
    since:
        Only sweeps created since then: ``30d``, ``12h``, ``2026-10-01`` (:func:`hpctrack._since.parse_since`).
    trashed:
        List the sweeps in the root's trash (``ROOT/trash``, :mod:`hpctrack.trash`) instead.

    Raises
    ------
    ConfigError
        ``where``, ``tags`` or ``since`` is malformed (one line, before anything is read).
    """
    import time

    from ._since import parse_since
    from ._types import state_summary
    from .errors import HpctrackError
    from .labels import Labels, read_labels
    from .status import recorded_states

    cutoff = parse_since(since) if since is not None else None
    wanted = [_tag_condition(t) for t in tags]
    rows: List[Dict[str, Any]] = []
    skipped: List[str] = []
    for path in iter_sweep_dirs(resolve_root(root), under=TRASH_DIR if trashed else SWEEPS_DIR):
        sweep = Sweep(path)
        try:  # one damaged sweep is named and skipped, never fatal to the listing
            m = sweep.manifest
        except HpctrackError as err:
            skipped.append(f"skipped {sweep.path}: {' '.join(str(err).split())}")
            continue
        if cutoff is not None and m.created < cutoff:
            continue
        try:
            labels = read_labels(sweep.path)
        except HpctrackError as err:  # the sweep is listed; only its tags are not known
            skipped.append(f"tags of {sweep.path} not shown: {' '.join(str(err).split())}")
            labels = Labels()
        if not all(_has_tag(labels.tags, key, value) for key, value in wanted):
            continue
        try:
            states, unconfirmed = recorded_states(m)
        except HpctrackError as err:
            skipped.append(f"skipped {sweep.path}: {' '.join(str(err).split())}")
            continue
        summary = state_summary(states)
        if unconfirmed:
            summary += f" ({unconfirmed} unconfirmed: `hpctrack status {sweep_ref(m)}` asks {m.backend})"
        rows.append(
            {
                "name": m.name,
                "id": m.id,
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created)),
                "backend": m.backend,
                "store": m.store,
                "script": os.path.basename(m.script) if m.script else "",
                "jobs": summary,
                "n_jobs": len(states),
                "states": {s.value: states.count(s) for s in JobState},
                "unconfirmed": unconfirmed,
                "tags": labels.tags,
                "note": labels.note,
                "path": str(m.path),
            }
        )
    if where is not None:
        rows = _filter_rows(rows, where)
    return rows, skipped


def _tag_condition(text: str) -> "tuple[str, Optional[str]]":
    key, sep, value = text.partition("=")
    if not key:
        raise ConfigError(f"--tag {text!r}: write key=value (that value) or key (any value)")
    return key, value if sep else None


def _has_tag(tags: Mapping[str, str], key: str, value: Optional[str]) -> bool:
    return key in tags and (value is None or tags[key] == value)


#: ``ls --tag`` parsing and matching, shared with ``runs --tag``.
tag_condition = _tag_condition
has_tag = _has_tag


#: The fields of an ``hpctrack ls`` row a filter can name, besides ``states.<STATE>`` and ``tags.<key>``.
SWEEP_FILTER_FIELDS = ("name", "id", "created", "backend", "store", "script", "n_jobs", "unconfirmed", "note")


def _filter_rows(rows: List[Dict[str, Any]], where: str) -> List[Dict[str, Any]]:
    """The rows where filter ``where`` holds; a ``tags.<key>`` no sweep has is a column of missing values."""
    import pandas as pd

    from .query import FilterError, parse

    flat = []
    for row in rows:
        item = {k: row[k] for k in SWEEP_FILTER_FIELDS}
        item.update({f"states.{s}": n for s, n in row["states"].items()})
        item.update({f"tags.{k}": v for k, v in row["tags"].items()})
        flat.append(item)
    columns = list(dict.fromkeys([*SWEEP_FILTER_FIELDS, *(f"states.{s.value}" for s in JobState),
                                  *(k for item in flat for k in item)]))  # fmt: skip
    try:
        expr = parse(where, columns)
    except FilterError as err:
        try:  # a tag that no sweep has (yet) is no error: it selects nothing, like a missing param
            expr = parse(where)
        except FilterError:
            raise err from None
        if not all(c in columns or c.startswith("tags.") for c in expr.columns):
            raise err from None
    if not flat:
        return []
    frame = pd.DataFrame(flat, columns=columns, dtype=object)
    frame = frame.where(frame.notna(), None)
    mask = expr.evaluate(frame).to_numpy()
    return [row for row, keep in zip(rows, mask) if keep]
