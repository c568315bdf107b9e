"""Store benchmark: hpctrack's run stores side by side with MLflow's SQLite and file stores.

Usage:
    pip install -e '.[bench]'                    # MLflow, for the comparison rows
    python benchmarks/store_bench.py [--quick]   # ~10 min full, ~2 min quick on 2 cores

Sections, one table each (progress goes to stderr, tables to stdout):

1. Logging throughput per process: points/s of ``run.log`` with a dict of 4
   scalars per call, amortised over the default flush policy (every flush
   included, the last one too), against ``mlflow.log_metric`` per point,
   ``mlflow.log_metrics`` (4 per call) and ``MlflowClient.log_batch`` (1000
   metrics per call).
2. Flush latency: ``run.flush()`` of a buffer of 4 metrics x 1,000 points, and
   of nothing but the heartbeat; MLflow persisting the same 4,000 points.
3. Size on disk: bytes per point and files per run after 4 metrics x 100,000
   points.
4. 64 concurrent writers: 64 processes start at once on a fresh root (MLflow:
   a fresh store), each its own run, each logs N points and ends. Errors and
   lost points are counted by reading every run back.

Every hpctrack backend in ``hpctrack.store.BACKENDS`` among ``hdf5`` and
``zarr`` is measured; one that is missing prints "not available". Nothing here
asserts on timings: the goal columns only report whether a goal is met.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

#: hpctrack backends to measure, in this order, when registered.
HP_STORES = ("hdf5", "zarr")
#: MLflow tracking stores to measure.
ML_STORES = ("sqlite", "file")
#: The 4 scalars logged per step.
KEYS = ("loss", "acc", "lr", "grad_norm")
#: Metrics per MLflow log_batch call (MLflow's own limit is 1000).
BATCH = 1000

#: Goals from the project's issue.
GOAL_RATE = 1_000_000  # points/s per process, run.log of 4 scalars, flushes included
GOAL_VS_LOG_METRIC = 1000  # x MLflow log_metric on its default store
GOAL_VS_LOG_BATCH = 50  # x MLflow's best log_batch

FLUSH_ENV = ("HPCTRACK_FLUSH_INTERVAL_S", "HPCTRACK_FLUSH_MAX_POINTS")
#: Flush policy that leaves the buffer alone (for timing flush() by itself).
NO_AUTO_FLUSH = {"HPCTRACK_FLUSH_INTERVAL_S": "3600", "HPCTRACK_FLUSH_MAX_POINTS": str(10**12)}

#: MLflow environment: no telemetry; the file store is opt-in since MLflow 3.
ML_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_ALLOW_FILE_STORE": "true"}

SIZES = {
    # name: (full, quick)
    "hp_log_points": (1_000_000, 200_000),
    "hp_log_repeats": (3, 1),
    "ml_log_metric_points": (2_000, 200),
    "ml_log_metrics_points": (2_000, 400),
    "size_steps": (100_000, 5_000),  # per metric: 4 x this many points (also MLflow log_batch in section 1)
    "flush_repeats": (50, 20),
    "ml_flush_repeats": (10, 3),
    "writers": (64, 64),
    "hp_writer_points": (20_000, 2_000),
    "ml_writers": (64, 8),
    "ml_writer_points": (2_000, 1_000),
}


# -- small helpers ----------------------------------------------------------------------------


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def fmt_rate(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def fmt_ratio(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}x" if x >= 10 else f"{x:.2f}x"


def fmt_ms(x: float) -> str:
    return f"{x * 1e3:,.2f}" if x < 1 else f"{x * 1e3:,.0f}"


def yes_no(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = (), left: int = 1
) -> None:
    from tabulate import tabulate

    align = ["left"] * left + ["right"] * (len(headers) - left)
    print(f"\n## {title}\n", flush=True)
    print(
        tabulate(
            [[str(c) for c in r] for r in rows],
            headers=list(headers),
            tablefmt="pipe",
            colalign=align,
            disable_numparse=True,
        )
    )
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    sys.stdout.flush()


@contextlib.contextmanager
def env(values: Dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (hpctrack reads its flush policy when a run starts)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def fresh_dir(base: Path, prefix: str) -> Path:
    path = base / f"{prefix}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def disk_usage(path: Path) -> Tuple[int, int, int]:
    """(bytes allocated as `du` counts them, apparent bytes of files, number of files) under ``path``."""
    if path.is_file():
        st = path.stat()
        return st.st_blocks * 512, st.st_size, 1
    allocated = apparent = files = 0
    for dirpath, _, filenames in os.walk(path):
        allocated += os.lstat(dirpath).st_blocks * 512
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            allocated += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return allocated, apparent, files


def step_values(i: int) -> Dict[str, float]:
    x = i * 1e-6
    return {"loss": 1.0 - x, "acc": x, "lr": 0.1, "grad_norm": 2.0 + x}


def percentile(data: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(data), q))


def median(data: Sequence[float]) -> float:
    return percentile(data, 50)


# -- machine facts ----------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """``fstype (device on mountpoint)`` of the mount holding ``path`` (Linux), else "unknown"."""
    real = os.path.realpath(path)
    best: Optional[Tuple[str, str, str]] = None
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                dev, mnt, fstype = line.split()[:3]
                mnt = mnt.replace("\\040", " ")
                inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
                if inside and (best is None or len(mnt) >= len(best[1])):
                    best = (dev, mnt, fstype)
    except OSError:
        return "unknown"
    return "unknown" if best is None else f"{best[2]} ({best[0]} on {best[1]})"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


def fsync_probe(directory: Path, n: int = 20) -> str:
    """Median and max time of write(4 KiB) + fsync: what every durable commit pays on this filesystem."""
    path = directory / "fsync-probe"
    times = []
    with open(path, "wb") as fh:
        for _ in range(n):
            t0 = time.perf_counter()
            fh.write(os.urandom(4096))
            fh.flush()
            os.fsync(fh.fileno())
            times.append(time.perf_counter() - t0)
    path.unlink()
    return f"write 4 KiB + fsync: median {fmt_ms(median(times))} ms, max {fmt_ms(max(times))} ms ({n} tries)"


def git_revision() -> str:
    """`` at <commit>`` of the checkout hpctrack is imported from, naming uncommitted changes to it."""
    import hpctrack

    src = Path(hpctrack.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "."], cwd=src, capture_output=True, text=True, timeout=10, check=True
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return ""
    changed = sorted(line[3:] for line in dirty if line.strip())
    more = f" + uncommitted changes to {', '.join(changed)}" if changed else ""
    return f" at {head}{more}"


def proc_line(path: str, name: str) -> Optional[str]:
    """The value of the first ``name: value`` line of a /proc file, or None."""
    with contextlib.suppress(OSError):
        with open(path) as fh:
            for line in fh:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    return None


def machine_facts(tmp_base: Path, ml_default: Optional[Tuple[str, str]]) -> List[Tuple[str, str]]:
    import sqlite3

    import hpctrack
    from hpctrack.store import BACKENDS

    cpu = proc_line("/proc/cpuinfo", "model name") or "unknown"
    mem = proc_line("/proc/meminfo", "MemTotal")
    with contextlib.suppress(ValueError, IndexError, TypeError):
        mem = f"{int(mem.split()[0]) / 2**20:.1f} GiB"  # type: ignore[union-attr]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        import h5py

        h5 = f"{h5py.__version__} (HDF5 {h5py.version.hdf5_version})"
    except ImportError:
        h5 = "not installed"
    facts = [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("host", f"{platform.node()} / {platform.platform()}"),
        ("cpu", f"{cpu}; {os.cpu_count()} cores, {usable} usable"),
        ("memory", mem),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("hpctrack", f"{hpctrack.__version__}{git_revision()}; stores registered: {', '.join(sorted(BACKENDS))}"),
        ("h5py", h5),
        ("zarr", _version("zarr")),
        ("numpy", _version("numpy")),
        ("mlflow", _version("mlflow")),
        ("sqlalchemy / sqlite", f"{_version('sqlalchemy')} / {sqlite3.sqlite_version}"),
        ("filelock", _version("filelock")),
        ("hpctrack flush policy", f"{policy_text()} (defaults; HPCTRACK_FLUSH_* cleared)"),
        ("temp dir", f"{tmp_base}: {filesystem_of(tmp_base)}"),
        ("fsync in temp dir", fsync_probe(tmp_base)),
        (
            "load average at start",
            " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown",
        ),
    ]
    if ml_default:
        facts.append(("mlflow default store", f"{ml_default[1]} -> measured as '{ml_default[0]}'"))
    return facts


# -- hpctrack, in process ---------------------------------------------------------------------


def hp_flush_policy() -> Tuple[Optional[int], Optional[float]]:
    """hpctrack's default flush policy: (points, seconds), None where this hpctrack does not say."""
    import hpctrack.run

    points = getattr(hpctrack.run, "DEFAULT_FLUSH_MAX_POINTS", None)
    seconds = getattr(hpctrack.run, "DEFAULT_FLUSH_INTERVAL_S", None)
    return (int(points) if points else None), (float(seconds) if seconds else None)


def policy_text() -> str:
    points, seconds = hp_flush_policy()
    return (f"a flush every {points:,} points" if points else "a flush when the buffer is full") + (
        f" or every {seconds:g} s" if seconds else ""
    )


def hp_available() -> Dict[str, bool]:
    from hpctrack.store import BACKENDS

    return {name: name in BACKENDS for name in HP_STORES}


def hp_log_rate(store: str, root: str, points: int) -> Dict[str, Any]:
    """Log ``points`` as 4 scalars per call under the default flush policy, then flush the rest.

    Returns seconds in total, inside ``run.flush()`` called from the logging thread (time the
    loop was blocked) and from the run's background flush thread (overlapping the loop), in the
    cyclic garbage collector of the logging thread outside flush(), the number of flushes of
    each kind, and the process's GC-tracked objects. The split comes from wrapping the run's
    public ``flush`` method on the instance (both ``run.log`` and the background thread flush
    through it); GC time from ``gc.callbacks``.
    """
    import threading

    import hpctrack

    run = hpctrack.start_run({"bench": "throughput"}, store=store, root=root)
    flush = run.flush
    main = threading.main_thread()
    acc = {"flush": 0.0, "flushes": 0, "bg_flush": 0.0, "bg_flushes": 0, "gc": 0.0, "collections": 0}
    state = {"in_flush": False, "gc_start": 0.0}

    def timed_flush() -> None:
        in_main = threading.current_thread() is main
        t = time.perf_counter()
        if in_main:
            state["in_flush"] = True
        try:
            flush()
        finally:
            kind = "" if in_main else "bg_"
            if in_main:
                state["in_flush"] = False
            acc[kind + "flush"] += time.perf_counter() - t
            acc[kind + "flushes"] += 1

    def on_gc(phase: str, info: Dict[str, Any]) -> None:
        if threading.current_thread() is not main:
            return  # a collection in the flush thread is part of the background flush
        if phase == "start":
            state["gc_start"] = time.perf_counter()
        elif not state["in_flush"]:  # a collection inside flush() counts as flush time
            acc["gc"] += time.perf_counter() - state["gc_start"]
            acc["collections"] += 1

    run.flush = timed_flush  # type: ignore[method-assign]
    gc.collect()
    objects = len(gc.get_objects())
    gc.callbacks.append(on_gc)
    log = run.log
    calls = points // len(KEYS)
    t0 = time.perf_counter()
    try:
        for i in range(calls):
            x = i * 1e-6
            log({"loss": 1.0 - x, "acc": x, "lr": 0.1, "grad_norm": 2.0 + x}, step=i)
        run.flush()  # the points still in the buffer are part of the cost
        total = time.perf_counter() - t0
    finally:
        gc.callbacks.remove(on_gc)
    run.finish()
    return {"total": total, "objects": objects, **acc}


def hp_flush_latency(
    store: str, root: Path, repeats: int, points_per_key: int = 1000
) -> Tuple[List[float], List[float]]:
    """Latencies of run.flush() with 4 x ``points_per_key`` buffered points, and with an empty buffer."""
    import hpctrack

    with env(NO_AUTO_FLUSH):
        run = hpctrack.start_run({"bench": "flush"}, store=store, root=str(root))
    full: List[float] = []
    empty: List[float] = []
    step = 0
    for _ in range(repeats):
        for _ in range(points_per_key):
            run.log(step_values(step), step=step)
            step += 1
        t0 = time.perf_counter()
        run.flush()
        full.append(time.perf_counter() - t0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        run.flush()
        empty.append(time.perf_counter() - t0)
    run.finish()
    return full, empty


def hp_size(store: str, root: Path, steps: int) -> Tuple[Path, Path]:
    """Log 4 x ``steps`` points (default flush policy); returns (run dir, sweep dir)."""
    import hpctrack

    run = hpctrack.start_run({"bench": "size"}, store=store, root=str(root))
    for i in range(steps):
        run.log(step_values(i), step=i)
    run.finish()
    return run.run_dir, run.run_dir.parent.parent


# -- MLflow, in process -----------------------------------------------------------------------


def ml_import() -> Any:
    """``mlflow``, quiet, or None when it is not installed."""
    os.environ.update(ML_ENV)
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="mlflow")
    try:
        import mlflow
    except ImportError:
        return None

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return mlflow


def ml_default_store() -> Optional[Tuple[str, str]]:
    """(kind, uri) of MLflow's default tracking store, or None without MLflow.

    Asked in a subprocess: importing MLflow here would grow this process's heap, and with it
    the garbage collector's cost in the hpctrack measurements that run in this process.
    """
    from importlib.util import find_spec

    if find_spec("mlflow") is None:
        return None
    code = (
        "from mlflow.tracking._tracking_service import utils\nprint(getattr(utils, 'DEFAULT_TRACKING_URI', './mlruns'))"
    )
    try:
        uri = (
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
                env={**os.environ, **ML_ENV},
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    except (OSError, subprocess.SubprocessError, IndexError):
        uri = "./mlruns"  # older MLflow: the file store
    return ("sqlite" if uri.startswith("sqlite") else "file"), uri


def ml_uri(kind: str, directory: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{directory / 'mlflow.db'}"
    return (directory / "mlruns").as_uri()


def ml_store_path(kind: str, directory: Path) -> Path:
    return directory / ("mlflow.db" if kind == "sqlite" else "mlruns")


def ml_sqlite_size(db: Path) -> int:
    """Apparent bytes of a SQLite database, with its -wal/-journal files."""
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-journal")) if p.exists())


def ml_new_run(uri: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(uri)  # creates / migrates the store; not timed
    return client.create_run(experiment_id="0").info.run_id


def ml_log_metric_rate(uri: str, points: int) -> float:
    """Seconds for ``points`` calls of mlflow.log_metric (one point each)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    run_id = ml_new_run(uri)
    with mlflow.start_run(run_id=run_id):
        log_metric = mlflow.log_metric
        t0 = time.perf_counter()
        for i in range(points // len(KEYS)):
            for key, value in step_values(i).items():
                log_metric(key, value, step=i)
        return time.perf_counter() - t0


def ml_log_metrics_rate(uri: str, points: int) -> float:
    """Seconds for mlflow.log_metrics of the 4 scalars per call."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    run_id = ml_new_run(uri)
    with mlflow.start_run(run_id=run_id):
        t0 = time.perf_counter()
        for i in range(points // len(KEYS)):
            mlflow.log_metrics(step_values(i), step=i)
        return time.perf_counter() - t0


def ml_batches(first_step: int, steps: int) -> Iterator[list]:
    """Metric lists of up to BATCH points covering ``steps`` steps of the 4 keys."""
    from mlflow.entities import Metric

    per_batch = BATCH // len(KEYS)
    for start in range(first_step, first_step + steps, per_batch):
        ts = int(time.time() * 1000)
        yield [
            Metric(k, v, ts, i)
            for i in range(start, min(start + per_batch, first_step + steps))
            for k, v in step_values(i).items()
        ]


def ml_log_batch_rate(uri: str, steps: int) -> Tuple[float, str]:
    """(seconds to log 4 x ``steps`` points with log_batch(1000), run id)."""
    from mlflow import MlflowClient

    run_id = ml_new_run(uri)
    client = MlflowClient(uri)
    t0 = time.perf_counter()
    for metrics in ml_batches(0, steps):
        client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id)
    return time.perf_counter() - t0, run_id


def ml_flush_latency(uri: str, repeats: int, steps: int = 1000) -> List[float]:
    """Seconds to persist 4 x ``steps`` points with log_batch (4 calls of 1000)."""
    from mlflow import MlflowClient

    run_id = ml_new_run(uri)
    client = MlflowClient(uri)
    out = []
    for r in range(repeats):
        batches = list(ml_batches(r * steps, steps))  # building the Metric objects is not timed
        t0 = time.perf_counter()
        for metrics in batches:
            client.log_batch(run_id, metrics=metrics)
        out.append(time.perf_counter() - t0)
    return out


# -- concurrent writers: worker processes -----------------------------------------------------


def measure_main(spec: Dict[str, Any]) -> int:
    """Run one hpctrack measurement in this fresh interpreter; print its result as JSON.

    ``spec["heap"] == "mlflow"`` imports MLflow first: a process with a much bigger heap, as a
    training script with its framework loaded has.
    """
    for var in FLUSH_ENV:
        os.environ.pop(var, None)
    if spec.get("heap") == "mlflow" and ml_import() is None:
        print(json.dumps({"error": "mlflow not installed"}))
        return 1
    import h5py  # noqa: F401

    import hpctrack.run  # noqa: F401

    if spec["what"] == "log_rate":
        out: Any = hp_log_rate(spec["store"], spec["root"], spec["points"])
    elif spec["what"] == "flush_latency":
        out = hp_flush_latency(spec["store"], Path(spec["root"]), spec["repeats"])
    else:
        raise ValueError(spec["what"])
    print("@@RESULT " + json.dumps(out))
    return 0


def in_subprocess(spec: Dict[str, Any], timeout_s: float = 600) -> Any:
    """``measure_main(spec)`` in a fresh interpreter: no state from earlier measurements or MLflow."""
    child_env = {k: v for k, v in os.environ.items() if k not in FLUSH_ENV}
    child_env.update(ML_ENV)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_measure", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=child_env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT "):
            return json.loads(line[len("@@RESULT ") :])
    tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"measurement {spec['what']} ({spec.get('store')}) failed: {tail}")


def error_line(err: BaseException) -> str:
    """One line naming an exception; for SQLAlchemy errors, the database's own message."""
    import re

    text = str(err)
    found = re.search(r"\((sqlite3\.\w+|psycopg2?\.\w+)\) ([^\n\[]+)", text)
    if found:  # SQLAlchemy wraps it after a generic first line ("raised as a result of ... autoflush")
        detail = f"{found.group(1)}: {found.group(2).strip()}"
    else:
        detail = (text.strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {detail}"[:240]


def worker_main(spec: Dict[str, Any]) -> int:
    """One writer process: import, report ready, wait for "go" on stdin, log, end, report."""
    kind, store, index, points = spec["kind"], spec["store"], spec["index"], spec["points"]
    result: Dict[str, Any] = {"index": index, "ok": False, "acked": 0, "error": None}
    result_path = Path(spec["result"])
    if kind == "hpctrack":
        for var in FLUSH_ENV:
            os.environ.pop(var, None)
        # Imported before "go": interpreter startup is not what is measured. start_run
        # imports filelock and Hydra lazily; a Hydra training script has both loaded anyway.
        import filelock  # noqa: F401
        import h5py  # noqa: F401

        import hpctrack
        import hpctrack.config
        import hpctrack.manifest
        import hpctrack.run
        import hpctrack.store

        with contextlib.suppress(ImportError):
            import hydra.core.hydra_config  # noqa: F401
        if store == "zarr":
            import zarr  # noqa: F401
    else:
        mlflow = ml_import()
        from mlflow import MlflowClient

    Path(spec["ready"]).touch()
    sys.stdin.readline()  # blocks until the parent says go
    result["t_go"] = time.time()
    try:
        if kind == "hpctrack":
            run = hpctrack.start_run({"writer": index}, store=store, root=spec["root"])
            result["run_dir"] = str(run.run_dir)
            for i in range(points // len(KEYS)):
                run.log(step_values(i), step=i)
                result["acked"] += len(KEYS)
            run.finish()
        else:
            mlflow.set_tracking_uri(spec["uri"])
            run = mlflow.start_run()  # on a fresh store this creates (migrates) it
            result["run_id"] = run.info.run_id
            client = MlflowClient(spec["uri"])
            for metrics in ml_batches(0, points // len(KEYS)):
                client.log_batch(run.info.run_id, metrics=metrics)
                result["acked"] += len(metrics)
            mlflow.end_run()
        result["ok"] = True
    except BaseException as err:  # count everything, including SystemExit from a library
        result["error"] = error_line(err)
        import traceback

        traceback.print_exc()  # into the worker's log
    result["t_done"] = time.time()
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, result_path)
    return 0 if result["ok"] else 1


def run_writers(
    kind: str, store: str, workdir: Path, n: int, points: int, timeout_s: float, extra: Dict[str, Any]
) -> Dict[str, Any]:
    """Start ``n`` worker processes, release them at once, wait; returns timings and their results."""
    workdir.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if k not in FLUSH_ENV}
    child_env.update(ML_ENV)
    procs: List[subprocess.Popen] = []
    logs = []
    specs = []
    t_spawn = time.perf_counter()
    try:
        for i in range(n):
            spec = {
                "kind": kind,
                "store": store,
                "index": i,
                "points": points,
                "ready": str(workdir / f"ready-{i}"),
                "result": str(workdir / f"result-{i}.json"),
                **extra,
            }
            specs.append(spec)
            log = open(workdir / f"worker-{i}.log", "wb")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps(spec)],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env,
                    cwd=workdir,
                )
            )
        # Wait until every worker has imported its libraries (or died trying).
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if all(Path(s["ready"]).exists() or p.poll() is not None for s, p in zip(specs, procs)):
                break
            time.sleep(0.05)
        startup_s = time.perf_counter() - t_spawn
        # Go: everyone starts its run at the same moment.
        t_go = time.perf_counter()
        for p in procs:
            with contextlib.suppress(OSError):
                p.stdin.write(b"go\n")
                p.stdin.close()
        ended: Dict[int, float] = {}
        timed_out: List[int] = []
        deadline = t_go + timeout_s
        while len(ended) < n:
            now = time.perf_counter()
            for i, p in enumerate(procs):
                if i not in ended and p.poll() is not None:
                    ended[i] = now
            if len(ended) < n and now > deadline:
                for i, p in enumerate(procs):
                    if i not in ended:
                        p.kill()  # only our own worker, by its Popen handle
                        p.wait()
                        timed_out.append(i)
                        ended[i] = time.perf_counter()
                break
            time.sleep(0.01)
    finally:  # also on Ctrl-C: leave no worker behind (only our own, by their Popen handles)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for log in logs:
        log.close()
    results = []
    for i, (spec, p) in enumerate(zip(specs, procs)):
        path = Path(spec["result"])
        res = json.loads(path.read_text()) if path.exists() else {"index": i, "ok": False, "acked": 0}
        res["returncode"] = p.returncode
        if i in timed_out:
            res["ok"], res["error"] = False, f"timeout: killed after {timeout_s:g} s"
        elif not path.exists():
            tail = (workdir / f"worker-{i}.log").read_text(errors="replace").strip().splitlines()[-1:]
            res["error"] = f"exit {p.returncode} without a result: {tail[0][:200] if tail else ''}"
        elif p.returncode != 0 and res.get("ok"):
            res["ok"], res["error"] = False, f"exit code {p.returncode}"
        results.append(res)
    wall = max(ended.values()) - t_go if ended else 0.0
    return {"startup_s": startup_s, "wall_s": wall, "results": results, "timeouts": len(timed_out)}


def hp_readback(root: Path, results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Read every run under ``root`` back through open_store(...).read_history(...)."""
    import numpy as np

    from hpctrack.manifest import iter_sweep_dirs, load_manifest
    from hpctrack.store import open_store

    by_dir: Dict[str, int] = {}
    problems: List[str] = []
    runs = unreadable = bad_steps = 0
    for sweep_dir in iter_sweep_dirs(root):
        try:
            manifest = load_manifest(sweep_dir)
        except Exception as err:
            problems.append(f"manifest {sweep_dir.name}: {type(err).__name__}: {err}")
            unreadable += 1
            continue
        for index in range(len(manifest.jobs)):
            run_dir = manifest.run_path(index)
            runs += 1
            try:
                s = open_store(run_dir, manifest.store)
                s.read()
                count = 0
                for key in KEYS:
                    h = s.read_history(key)
                    count += len(h)
                    if not np.array_equal(h.step, np.arange(len(h))):
                        bad_steps += 1
                by_dir[str(run_dir)] = count
            except Exception as err:
                unreadable += 1
                problems.append(f"{run_dir}: {type(err).__name__}: {err}")
    return _loss_summary(
        results,
        lambda r: by_dir.get(r.get("run_dir", ""), 0),
        sum(by_dir.values()),
        runs,
        unreadable,
        bad_steps,
        problems,
        opens=unreadable == 0,
    )


def ml_readback(uri: str, results: List[Dict[str, Any]], skip_runs: int = 0) -> Dict[str, Any]:
    """Open the store afterwards and read every run's history back through MLflow."""
    from mlflow import MlflowClient

    problems: List[str] = []
    by_run: Dict[str, int] = {}
    runs = unreadable = bad_steps = 0
    try:
        client = MlflowClient(uri)
        found = client.search_runs(experiment_ids=["0"], max_results=10_000)
        opens = True
    except Exception as err:
        problems.append(f"store does not open: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
        return _loss_summary(results, lambda r: 0, 0, 0, 0, 0, problems, opens=False)
    ours = {r.get("run_id") for r in results}
    for run in found:
        if run.info.run_id not in ours and skip_runs > 0:  # the run that created the store beforehand
            skip_runs -= 1
            continue
        runs += 1
        try:
            count = 0
            for key in KEYS:
                hist = client.get_metric_history(run.info.run_id, key)
                count += len(hist)
                steps = sorted(m.step for m in hist)
                if steps != list(range(len(steps))):
                    bad_steps += 1
            by_run[run.info.run_id] = count
        except Exception as err:
            unreadable += 1
            problems.append(f"run {run.info.run_id}: {type(err).__name__}: {str(err)[:200]}")
    return _loss_summary(
        results,
        lambda r: by_run.get(r.get("run_id", ""), 0),
        sum(by_run.values()),
        runs,
        unreadable,
        bad_steps,
        problems,
        opens=opens,
    )


def _loss_summary(
    results: List[Dict[str, Any]],
    read_of: Callable[[Dict[str, Any]], int],
    total_read: int,
    runs: int,
    unreadable: int,
    bad_steps: int,
    problems: List[str],
    *,
    opens: bool,
) -> Dict[str, Any]:
    # Lost: points whose log call returned in a writer but that are not in its run on read-back.
    lost = sum(max(0, r.get("acked", 0) - read_of(r)) for r in results)
    return {
        "read": total_read,
        "runs": runs,
        "unreadable": unreadable,
        "bad_steps": bad_steps,
        "lost": lost,
        "acked": sum(r.get("acked", 0) for r in results),
        "problems": problems,
        "opens": opens,
    }


# -- sections ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, base: Path, ml_default: Optional[Tuple[str, str]]) -> None:
        self.args = args
        self.base = base
        self.quick = args.quick
        self.hp = hp_available()
        self.ml_stores = [k for k in ML_STORES if k in args.ml_stores.split(",")]
        # MLflow is imported into this process only when its rows run (see ml_default_store).
        self.mlflow = ml_default is not None
        self.ml_default = ml_default[0] if ml_default else "sqlite"
        # Section 1 fills these; section 3 measures the stores the log_batch rows wrote.
        self.ml_batch_runs: Dict[str, Tuple[Path, str, int, float]] = {}

    def size(self, name: str) -> int:
        override = getattr(self.args, name, None)
        if override is not None:
            return override
        full, quick = SIZES[name]
        return quick if self.quick else full

    def hp_stores(self) -> List[str]:
        return [s for s in HP_STORES if self.hp[s]]

    def missing_rows(self, width: int, label: str = "not available") -> List[List[str]]:
        return [[f"hpctrack {s}", label] + ["-"] * (width - 2) for s in HP_STORES if not self.hp[s]]

    def ml_batch_run(self, kind: str, tag: str) -> Tuple[Path, str, int, float]:
        """Log 4 x size_steps points with log_batch into a fresh store, once for sections 1 and 3.

        Returns (store directory, run id, size of the empty SQLite DB, seconds).
        """
        if kind not in self.ml_batch_runs:
            steps = self.size("size_steps")
            d = fresh_dir(self.base, f"ml-{kind}-batch")
            uri = ml_uri(kind, d)
            empty = 0
            if kind == "sqlite":
                ml_new_run(uri)  # create the DB first, so its empty size can be subtracted
                empty = ml_sqlite_size(ml_store_path(kind, d))
            progress(f"{tag} mlflow {kind}: log_batch({BATCH}) x {4 * steps:,}")
            seconds, run_id = ml_log_batch_rate(uri, steps)
            self.ml_batch_runs[kind] = (d, run_id, empty, seconds)
        return self.ml_batch_runs[kind]

    # 1 ------------------------------------------------------------------------------------
    def hp_log_row(self, store: str, points: int, reps: int, heap: str) -> Dict[str, Any]:
        """Median of ``reps`` hp_log_rate runs, each in a fresh interpreter on a fresh root."""
        runs = []
        for r in range(reps):
            progress(
                f"[1] hpctrack {store}: run.log x {points:,} points ({r + 1}/{reps}"
                + (", MLflow imported)" if heap == "mlflow" else ")")
            )
            runs.append(
                in_subprocess(
                    {
                        "what": "log_rate",
                        "store": store,
                        "points": points,
                        "heap": heap,
                        "root": str(fresh_dir(self.base, f"tp-{store}")),
                    }
                )
            )
        runs.sort(key=lambda r: r["total"])
        med = runs[len(runs) // 2]
        # The split is only meaningful if run.log's own flushes went through the wrapper
        # (the final flush() always does).
        n_flushes = med["flushes"] + med["bg_flushes"]
        split_ok = n_flushes > 1  # run.log and the background thread both flush through the wrapper
        return {
            "store": store,
            "heap": heap,
            "reps": reps,
            "rate": points / med["total"],
            "rates": [points / r["total"] for r in runs],
            "flushes": med["flushes"],
            "bg_flushes": med["bg_flushes"],
            "bg_flush": med["bg_flush"] / med["total"],
            "objects": med["objects"],
            "split_ok": split_ok,
            "flush": med["flush"] / med["total"],
            "gc": med["gc"] / med["total"],
            "outside": points / (med["total"] - med["flush"]) if split_ok else None,
        }

    # 1 ------------------------------------------------------------------------------------
    def throughput(self) -> None:
        points, reps = self.size("hp_log_points"), self.size("hp_log_repeats")
        hp_rows = []
        for store in self.hp_stores():
            hp_rows.append(self.hp_log_row(store, points, reps, heap="lean"))
            if self.mlflow and not self.quick:
                hp_rows.append(self.hp_log_row(store, points, 1, heap="mlflow"))

        ml: Dict[Tuple[str, str], Tuple[int, float]] = {}
        if self.mlflow and ml_import() is not None:
            steps = self.size("size_steps")
            for kind in self.ml_stores:
                d = fresh_dir(self.base, f"ml-{kind}")
                uri = ml_uri(kind, d)
                n = self.size("ml_log_metric_points")
                progress(f"[1] mlflow {kind}: log_metric x {n:,}")
                ml[(kind, "log_metric")] = (n, n / ml_log_metric_rate(uri, n))
                n = self.size("ml_log_metrics_points")
                progress(f"[1] mlflow {kind}: log_metrics x {n:,}")
                ml[(kind, "log_metrics")] = (n, n / ml_log_metrics_rate(uri, n))
                seconds = self.ml_batch_run(kind, "[1]")[3]
                ml[(kind, "log_batch")] = (4 * steps, 4 * steps / seconds)

        base_metric = ml.get((self.ml_default, "log_metric"), (0, None))[1]
        best_batch_kind = max(
            (k for k in self.ml_stores if (k, "log_batch") in ml), key=lambda k: ml[(k, "log_batch")][1], default=None
        )
        best_batch = ml[(best_batch_kind, "log_batch")][1] if best_batch_kind else None
        headers = [
            "writer",
            "call",
            "points",
            "points/s",
            "blocked in flush() / GC",
            "points/s outside flush()",
            "vs MLflow log_metric",
            "vs best log_batch",
            f">= {GOAL_RATE / 1e6:g}M/s",
            f">= {GOAL_VS_LOG_METRIC}x log_metric",
            f">= {GOAL_VS_LOG_BATCH}x log_batch",
        ]
        rows: List[List[str]] = []
        for row in hp_rows:
            rate = row["rate"]
            r_metric = rate / base_metric if base_metric else None
            r_batch = rate / best_batch if best_batch else None
            call = "run.log(4 scalars)" + (", MLflow imported too" if row["heap"] == "mlflow" else "")
            shares = (
                f"{row['flush']:.0%} / {row['gc']:.0%} ({row['flushes']} + {row['bg_flushes']} "
                f"in background, {row['bg_flush']:.0%})"
                if row["split_ok"]
                else "n/a"
            )
            rows.append(
                [
                    f"hpctrack {row['store']}",
                    call,
                    f"{points:,}" + (f" (median of {row['reps']})" if row["reps"] > 1 else ""),
                    fmt_rate(rate),
                    shares,
                    fmt_rate(row["outside"]),
                    fmt_ratio(r_metric),
                    fmt_ratio(r_batch),
                    yes_no(rate >= GOAL_RATE),
                    yes_no(None if r_metric is None else r_metric >= GOAL_VS_LOG_METRIC),
                    yes_no(None if r_batch is None else r_batch >= GOAL_VS_LOG_BATCH),
                ]
            )
        rows += self.missing_rows(len(headers))
        if not self.mlflow:
            rows.append(["mlflow", "not installed: pip install -e '.[bench]'"] + ["-"] * (len(headers) - 2))
        for kind in self.ml_stores:
            for call, label in (
                ("log_metric", "mlflow.log_metric (1 point)"),
                ("log_metrics", "mlflow.log_metrics (4 scalars)"),
                ("log_batch", f"MlflowClient.log_batch ({BATCH} points)"),
            ):
                if (kind, call) in ml:
                    n, rate = ml[(kind, call)]
                    name = f"mlflow {kind}" + (" (default)" if kind == self.ml_default else "")
                    rows.append([name, label, f"{n:,}", fmt_rate(rate)] + [""] * (len(headers) - 4))
        lean = [r for r in hp_rows if r["heap"] == "lean"]
        spread = ", ".join(f"{r['store']}: {fmt_rate(min(r['rates']))}..{fmt_rate(max(r['rates']))}" for r in lean)
        heaps = "; ".join(
            f"{r['store']}" + (" with MLflow" if r["heap"] == "mlflow" else "") + f": {r['objects']:,}" for r in hp_rows
        )
        notes = [
            "points = metric values; run.log logs 4 per call, a fresh dict per call built inside the timed loop. "
            "Each hpctrack run is a fresh interpreter with hpctrack and its store library loaded; "
            "the 'MLflow imported too' rows load MLflow first, standing in for the bigger heap of a real "
            "training process" + (f" (GC-tracked objects at the start: {heaps})" if heaps else "") + ".",
            f"default flush policy ({policy_text()}); the final flush() is timed too. "
            "blocked in flush() / GC: shares of the total the logging thread spent inside run.flush() (the "
            "store writes it waited for: the final one, and any run.log made when the background thread fell "
            "behind) and in Python's cyclic garbage collector outside flush(); in brackets the number of those "
            "flushes + the number done by the run's background thread while the loop went on, and the share "
            "of the total those took (they compete with the loop for the GIL and the 2 cores); points/s "
            "outside flush(): the run.log calls by themselves (GC and background contention included)."
            + (f" hpctrack points/s is the median of {reps} runs ({spread})." if reps > 1 and lean else ""),
            f"vs MLflow log_metric: against its default store ({self.ml_default}); vs best log_batch: against "
            f"the faster of its stores ({best_batch_kind or '-'}).",
            "MLflow rows exclude creating the store and the run (for SQLite: schema migration, ~2 s); "
            "their SQLite commits are fsync-bound, so their rates follow the disk's fsync latency.",
        ]
        print_table("1. Logging throughput, one process", headers, rows, notes, left=2)

    # 2 ------------------------------------------------------------------------------------
    def flush_latency(self) -> None:
        reps = self.size("flush_repeats")
        headers = ["writer", "operation", "repeats", "median ms", "p95 ms", "max ms"]
        rows: List[List[str]] = []
        for store in self.hp_stores():
            progress(f"[2] hpctrack {store}: {reps} flushes")
            full, empty = in_subprocess(
                {
                    "what": "flush_latency",
                    "store": store,
                    "repeats": reps,
                    "root": str(fresh_dir(self.base, f"fl-{store}")),
                }
            )
            for label, data in (
                ("run.flush(), 4 metrics x 1,000 points", full),
                ("run.flush(), heartbeat only", empty),
            ):
                rows.append(
                    [
                        f"hpctrack {store}",
                        label,
                        str(reps),
                        fmt_ms(median(data)),
                        fmt_ms(percentile(data, 95)),
                        fmt_ms(max(data)),
                    ]
                )
        rows += self.missing_rows(len(headers))
        if self.mlflow and ml_import() is not None:
            mreps = self.size("ml_flush_repeats")
            for kind in self.ml_stores:
                progress(f"[2] mlflow {kind}: {mreps} x 4,000 points with log_batch")
                data = ml_flush_latency(ml_uri(kind, fresh_dir(self.base, f"mlfl-{kind}")), mreps)
                rows.append(
                    [
                        f"mlflow {kind}",
                        f"4 x log_batch({BATCH}) = the same 4,000 points",
                        str(mreps),
                        fmt_ms(median(data)),
                        fmt_ms(percentile(data, 95)),
                        fmt_ms(max(data)),
                    ]
                )
        notes = [
            "hpctrack: automatic flushes disabled for this run, so each flush() holds exactly the points "
            "logged since the previous one; the store grows by 4,000 points per repeat.",
            "a heartbeat-only flush still opens the store and rewrites the status section.",
        ]
        print_table("2. Flush latency", headers, rows, notes, left=2)

    # 3 ------------------------------------------------------------------------------------
    def size_on_disk(self) -> None:
        steps = self.size("size_steps")
        n = 4 * steps
        headers = [
            "writer",
            "points",
            "bytes/point (du)",
            "bytes/point (apparent)",
            "files in run dir",
            "files per run incl. sweep dir",
            "run dir du",
        ]
        rows: List[List[str]] = []
        for store in self.hp_stores():
            progress(f"[3] hpctrack {store}: 4 x {steps:,} points")
            run_dir, sweep_dir = hp_size(store, fresh_dir(self.base, f"sz-{store}"), steps)
            alloc, apparent, files = disk_usage(run_dir)
            _, _, sweep_files = disk_usage(sweep_dir)
            rows.append(
                [
                    f"hpctrack {store}",
                    f"{n:,}",
                    f"{alloc / n:.1f}",
                    f"{apparent / n:.1f}",
                    str(files),
                    str(sweep_files),
                    f"{alloc / 2**20:.2f} MiB",
                ]
            )
        rows += self.missing_rows(len(headers))
        for kind in self.ml_stores if self.mlflow and ml_import() is not None else ():
            d, run_id, empty, _ = self.ml_batch_run(kind, "[3]")
            if kind == "sqlite":
                db = ml_store_path(kind, d)
                grown = ml_sqlite_size(db) - empty
                alloc = Path(db).stat().st_blocks * 512
                rows.append(
                    [
                        "mlflow sqlite (log_batch)",
                        f"{n:,}",
                        f"{grown / n:.1f}",
                        f"{grown / n:.1f}",
                        "0 (rows in the shared mlflow.db)",
                        "0",
                        f"{alloc / 2**20:.2f} MiB (whole DB)",
                    ]
                )
            else:
                run_dir = ml_store_path(kind, d) / "0" / run_id
                alloc, apparent, files = disk_usage(run_dir)
                rows.append(
                    [
                        "mlflow file (log_batch)",
                        f"{n:,}",
                        f"{alloc / n:.1f}",
                        f"{apparent / n:.1f}",
                        str(files),
                        str(files),
                        f"{alloc / 2**20:.2f} MiB",
                    ]
                )
        notes = [
            f"a point is one (step, value, time) of one metric; 4 metrics x {steps:,} steps, values varying per step.",
            "mlflow sqlite: growth of the database file over a fresh, migrated, empty one (the run's share).",
            "files per run incl. sweep dir: hpctrack also keeps sweep.json and its lock per (one-run) sweep.",
        ]
        print_table("3. Size on disk", headers, rows, notes)

    # 4 ------------------------------------------------------------------------------------
    def writers(self) -> None:
        timeout = self.args.timeout
        headers = [
            "writer",
            "procs",
            "points/proc",
            "startup s",
            "wall s",
            "points/s (all)",
            "errors",
            "read back / expected",
            "lost",
            "store opens after",
            "0 errors, 0 lost",
        ]
        rows: List[List[str]] = []
        notes: List[str] = []
        n, points = self.size("writers"), self.size("hp_writer_points")
        for store in self.hp_stores() if n > 0 else ():  # --writers 0: MLflow rows only
            progress(f"[4] hpctrack {store}: {n} processes x {points:,} points")
            root = self.base / f"conc-{store}-{uuid.uuid4().hex[:8]}" / "root"  # does not exist yet
            res = run_writers("hpctrack", store, root.parent / "work", n, points, timeout, {"root": str(root)})
            back = hp_readback(root, res["results"])
            rows.append(self._writer_row(f"hpctrack {store}", n, points, res, back, goal=True))
            notes += self._writer_notes(f"hpctrack {store}", res, back)
        rows += self.missing_rows(len(headers))
        n, points = self.size("ml_writers"), self.size("ml_writer_points")
        if self.mlflow and n > 0 and ml_import() is not None:
            variants = [(kind, False) for kind in self.ml_stores]
            if self.args.ml_precreated and "sqlite" in self.ml_stores:
                variants.insert(1, ("sqlite", True))
            for kind, precreate in variants:
                label = f"mlflow {kind}" + (" (default)" if kind == self.ml_default else "")
                if precreate:
                    label = f"mlflow {kind}, DB created beforehand"
                progress(f"[4] {label}: {n} processes x {points:,} points (log_batch)")
                d = self.base / f"conc-ml-{kind}-{uuid.uuid4().hex[:8]}"
                d.mkdir()
                uri = ml_uri(kind, d)  # the store itself does not exist yet ...
                if precreate:
                    ml_new_run(uri)  # ... unless created (schema migrated) once, before the writers start
                res = run_writers("mlflow", kind, d / "work", n, points, timeout, {"uri": uri})
                progress(f"[4] {label}: reading back")
                back = ml_readback(uri, res["results"], skip_runs=1 if precreate else 0)
                rows.append(self._writer_row(label, n, points, res, back, goal=False))
                notes += self._writer_notes(label, res, back)
        notes.insert(
            0,
            "startup: spawning the processes until all imported their libraries (not part of wall); "
            "wall: from the common 'go' until the last process exited: creating the run, logging, "
            "ending the run and interpreter exit, with all processes sharing the machine's cores.",
        )
        notes.insert(
            1,
            "lost: points whose log call returned but which are not in the run on read-back; "
            "errors: processes with an exception, a non-zero exit or a timeout "
            f"(killed after {timeout:g} s).",
        )
        print_table("4. Concurrent writers on a fresh root / store", headers, rows, notes)

    @staticmethod
    def _writer_row(
        label: str, n: int, points: int, res: Dict[str, Any], back: Dict[str, Any], goal: bool
    ) -> List[str]:
        errors = sum(1 for r in res["results"] if not r.get("ok"))
        expected = n * points
        wall = res["wall_s"]
        met = errors == 0 and back["lost"] == 0 and back["read"] == expected and back["bad_steps"] == 0
        opens = "yes" if back["opens"] else "NO"
        if back["opens"]:
            opens += f" ({back['runs'] - back['unreadable']} of {back['runs']} runs read)"
        return [
            label,
            str(n),
            f"{points:,}",
            f"{res['startup_s']:.1f}",
            f"{wall:.1f}",
            fmt_rate(back["read"] / wall if wall else None),
            str(errors),
            f"{back['read']:,} / {expected:,}",
            f"{back['lost']:,}",
            opens,
            yes_no(met) if goal else "-",
        ]

    @staticmethod
    def _writer_notes(label: str, res: Dict[str, Any], back: Dict[str, Any]) -> List[str]:
        out = []
        took = [r["t_done"] - r["t_go"] for r in res["results"] if "t_done" in r and "t_go" in r]
        if took:
            out.append(f"{label}: per process, 'go' to result: median {median(took):.1f} s, max {max(took):.1f} s")
        errors = collections.Counter(r["error"] for r in res["results"] if not r.get("ok"))
        for err, count in errors.most_common(4):
            out.append(f"{label}: {count} x {err}")
        if len(errors) > 4:
            out.append(f"{label}: ... and {len(errors) - 4} other kinds of error")
        if back["bad_steps"]:
            out.append(f"{label}: {back['bad_steps']} metric histories with missing or repeated steps")
        for p in back["problems"][:3]:
            out.append(f"{label}: read-back: {p}")
        return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short run (~2 min): fewer points and MLflow writers")
    parser.add_argument("--sections", default="1,2,3,4", help="comma-separated sections to run (default: all)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to create the temporary directory "
        "(default: the system temp dir; point it at the shared filesystem to measure that)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per writer process in section 4")
    parser.add_argument(
        "--ml-stores", default=",".join(ML_STORES), help="MLflow stores to compare against (default: sqlite,file)"
    )
    parser.add_argument(
        "--ml-precreated",
        action="store_true",
        help="section 4: add an MLflow SQLite row whose DB is created (migrated) once before the "
        "writers start, to separate migration races from write contention (~3 min more)",
    )
    for name in SIZES:
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=int,
            default=None,
            help=f"override (full {SIZES[name][0]:,}, quick {SIZES[name][1]:,})",
        )
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        sys.exit(worker_main(json.loads(args._worker)))
    if args._measure:
        sys.exit(measure_main(json.loads(args._measure)))

    for var in FLUSH_ENV:  # the default flush policy is what is measured
        if os.environ.pop(var, None) is not None:
            print(f"note: ignoring {var} from the environment", file=sys.stderr)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    parent = args.dir.absolute() if args.dir else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="hpctrack-bench-", dir=parent))
    t0 = time.perf_counter()
    try:
        print(f"# hpctrack store benchmark{' (--quick)' if args.quick else ''}\n")
        ml_default = ml_default_store()
        for key, value in machine_facts(base, ml_default):
            print(f"- {key}: {value}")
        sys.stdout.flush()
        bench = Bench(args, base, ml_default)
        for name, section in (
            ("1", bench.throughput),
            ("2", bench.flush_latency),
            ("3", bench.size_on_disk),
            ("4", bench.writers),
        ):
            if name in sections:
                section()
        load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
        print(f"\n(total benchmark time {time.perf_counter() - t0:.0f} s; load average at the end: {load})")
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
