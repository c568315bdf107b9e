"""Sweeps written directly (manifest + run stores), for tests of what readers make of them.

The inputs a reader sees are produced here with the library's own writers
(``create_sweep``, ``Store.write``), never by patching the readers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from hpctrack._types import JobState
from hpctrack.manifest import JobRecord, Manifest, create_sweep, load_manifest
from hpctrack.store import MetricBatch, open_store

SWEEP_ID = "20260101-000000-aaaa"


def make_sweep(
    root: Path,
    n: int = 1,
    *,
    backend: str = "local",
    store: str = "hdf5",
    state: JobState = JobState.COMPLETED,
    job_ids: Optional[List[Optional[str]]] = None,
    submitted: float = 100.0,
    runner: Optional[Dict[str, Any]] = None,
    sweep_id: str = SWEEP_ID,
    name: Optional[str] = None,
    launcher: Optional[Dict[str, Any]] = None,
) -> Manifest:
    """A sweep of ``n`` jobs ``x=0..n-1`` in ``root``, every job in ``state``, no run written yet."""
    ids = job_ids if job_ids is not None else [str(1000 + i) for i in range(n)]
    return create_sweep(root, Manifest(
        id=sweep_id, created=time.time(), backend=backend, store=store, name=name, swept_keys=["x"],
        runner=runner or {}, launcher=launcher or {},
        jobs=[JobRecord(index=i, overrides=[f"x={i}"], run_dir=f"runs/{i}", state=state, job_id=ids[i],
                        submitted=submitted) for i in range(n)],
    ))  # fmt: skip


def write_run(
    manifest: Manifest,
    index: int,
    *,
    steps: int = 5,
    state: str = "completed",
    pid: Optional[int] = None,
    host: Optional[str] = None,
    summary: Optional[Dict[str, Any]] = None,
    **status: Any,
) -> None:
    """Write job ``index``'s run store: ``steps`` points of ``loss`` and a status section."""
    store = open_store(manifest.run_path(index), manifest.store)
    batch = MetricBatch()
    for step in range(steps):
        batch.add("loss", step, 1.0 / (step + 1), 1000.0 + step)
    now = time.time()
    section = {"state": state, "start_time": 150.0, "attempt_start": 150.0, "heartbeat": now,
               "heartbeat_interval_s": 5.0, "last_step": steps - 1, "attempt": 1,
               "attempts": [{"attempt": 1, "start": 150.0, "host": host or socket.gethostname(),
                             "pid": pid or os.getpid()}]}  # fmt: skip
    if state != "running":
        section.update(end_time=200.0, runtime_s=50.0)
    section.update(status)
    store.write(metrics=batch if steps else None, sections={
        "params": {"x": index}, "summary": summary if summary is not None else {"final": 10.0 * index},
        "status": section, "info": {"host": host or socket.gethostname(), "pid": pid or os.getpid()},
    })  # fmt: skip


def index_runs(manifest: Manifest, indices: Iterable[int]) -> None:
    """Append the index lines the runs would append when they end (with their store's fingerprint)."""
    from hpctrack.index import append_rows, record_to_row

    rows = []
    for i in indices:
        store = open_store(manifest.run_path(i), manifest.store)
        rows.append({**record_to_row(i, store.read()), "fingerprint": store.fingerprint()})
    append_rows(manifest.path, rows)


def ended_sweep(root: Path, n: int = 3, **sweep: Any) -> Manifest:
    """A sweep of ``n`` jobs (``make_sweep``'s options) whose runs all completed and are indexed."""
    manifest = make_sweep(root, n, **sweep)
    for i in range(n):
        write_run(manifest, i)
    index_runs(manifest, range(n))
    return manifest


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def sleeper(seconds: float = 120) -> subprocess.Popen:
    """A live process to stand for a job's process."""
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def reload(manifest: Manifest) -> Manifest:
    return load_manifest(manifest.path)
