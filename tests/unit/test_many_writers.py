"""64 jobs of one sweep writing at once, read while they write: no error, no lost point."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hpctrack._types import JobState
from hpctrack.aggregate import sweep_table
from hpctrack.launch import SweepRequest, submit_sweep, wait_for_sweep
from hpctrack.manifest import load_manifest
from hpctrack.status import sweep_status
from hpctrack.store import BACKENDS, open_store

N_JOBS = 64
STEPS = 300
METRICS = ("loss", "acc", "lr", "grad/norm")


@pytest.mark.parametrize("store", sorted(BACKENDS))
def test_64_concurrent_writers_lose_nothing(hpctrack_root, monkeypatch, store):
    monkeypatch.setenv("HPCTRACK_FLUSH_MAX_POINTS", "100")  # ~12 flushes per job, all at once
    steps, metrics = STEPS, METRICS

    def _job(index: int) -> None:  # nested: pickled by value, the job needs no test module
        from hpctrack import current_run

        run = current_run()
        for step in range(steps):
            run.log({key: index * 1000.0 + step + k / 10 for k, key in enumerate(metrics)}, step=step)
        run.summary["index"] = index

    manifest = submit_sweep(
        SweepRequest(jobs=[[f"i={i}"] for i in range(N_JOBS)], store=store, backend_options={"parallel": N_JOBS}), _job
    )
    errors: list = []
    reads = 0
    done = threading.Event()

    def reader() -> None:  # status and table while the writers write
        nonlocal reads
        while not done.is_set():
            try:
                m = load_manifest(manifest.path)
                sweep_status(m, persist=False)
                sweep_table(m)
                reads += 1
            except Exception as err:  # pragma: no cover - the assertion below reports it
                errors.append(repr(err))
            time.sleep(0.05)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        manifest = wait_for_sweep(manifest.path, poll_s=0.5)
    finally:
        done.set()
        thread.join()
    assert errors == [] and reads > 0
    statuses = sweep_status(manifest).jobs
    assert [s.state for s in statuses] == [JobState.COMPLETED] * N_JOBS, [s.error for s in statuses if s.error]
    for job in manifest.jobs:
        st = open_store(manifest.run_path(job.index), store)
        assert st.read().summary == {"index": job.index}
        for k, key in enumerate(METRICS):
            h = st.read_history(key)
            assert h.step.tolist() == list(range(STEPS))
            np.testing.assert_array_equal(h.value, job.index * 1000.0 + np.arange(STEPS) + k / 10)
