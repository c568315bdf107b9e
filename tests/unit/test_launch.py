"""submit_sweep with the local backend: real job processes, a concurrency cap, cancel, kill."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hpctrack._process import pid_alive
from hpctrack._types import JobState
from hpctrack.errors import ConfigError
from hpctrack.launch import SweepRequest, submit_sweep, swept_keys, wait_for_sweep
from hpctrack.launch.local import LocalBackend
from hpctrack.manifest import load_manifest
from hpctrack.status import job_statuses


def _request(n: int, parallel: int, **kw) -> SweepRequest:
    return SweepRequest(jobs=[[f"seed={i}"] for i in range(n)], backend_options={"parallel": parallel}, **kw)


def test_swept_keys_are_the_keys_that_vary():
    jobs = [["a=1", "b=2", "c=x"], ["a=1", "b=3", "c=x"], ["a=1", "b=2", "c=x", "+d=1"]]
    assert swept_keys(jobs) == ["b", "d"]
    assert swept_keys([["a=1"]]) == []


@pytest.mark.parametrize("parallel", [1, 2])
def test_parallel_caps_jobs_running_at_once(hpctrack_root, tmp_path, parallel):
    meeting = tmp_path / "meeting"
    meeting.mkdir()

    def job(index: int) -> int:
        # Order of events, not timing: each job counts the jobs running as it starts, then waits (bounded)
        # for the rest of its batch to start, which can only happen if `parallel` jobs run at once.
        import time

        (meeting / f"running-{index}").touch()
        (meeting / f"started-{index}").touch()
        (meeting / f"seen-{index}").write_text(str(len(list(meeting.glob("running-*")))))
        batch = min(4, (index // parallel + 1) * parallel)
        deadline = time.time() + 120
        while len(list(meeting.glob("started-*"))) < batch and time.time() < deadline:
            time.sleep(0.05)
        (meeting / f"met-{index}").write_text(str(len(list(meeting.glob("started-*"))) >= batch))
        (meeting / f"running-{index}").unlink()
        return index * 10

    manifest = submit_sweep(_request(4, parallel), job)
    manifest = wait_for_sweep(manifest.path)
    assert [j.state for j in manifest.jobs] == [JobState.COMPLETED] * 4
    assert max(int((meeting / f"seen-{i}").read_text()) for i in range(4)) == parallel  # never more at once
    assert all((meeting / f"met-{i}").read_text() == "True" for i in range(4))  # and that many did run together
    logs = [Path(j.stdout) for j in manifest.jobs]
    assert all(p.exists() and p.parent.parent == manifest.run_path(j.index) for p, j in zip(logs, manifest.jobs))
    assert len({p for p in logs}) == 4  # each job its own log files


def test_detached_submit_returns_before_jobs_end_and_failures_are_recorded(hpctrack_root):
    def job(index: int) -> None:
        import time

        time.sleep(1.0)
        if index == 1:
            raise ValueError(f"bad job {index}")

    manifest = submit_sweep(_request(3, 3, name="det"), job)
    assert not all(j.state.is_final for j in manifest.jobs)  # returned before the jobs ended
    manifest = wait_for_sweep(manifest.path)
    assert [j.state for j in manifest.jobs] == [JobState.COMPLETED, JobState.FAILED, JobState.COMPLETED]
    statuses = job_statuses(manifest)
    assert statuses[1].error == "ValueError: bad job 1"
    assert "in job\nValueError: bad job 1" in statuses[1].record.status["error"]["traceback"]


def test_cancel_stops_running_and_pending_jobs(hpctrack_root):
    def job(index: int) -> None:
        import time

        time.sleep(120)

    manifest = submit_sweep(_request(3, 1), job)
    deadline = time.time() + 60
    while time.time() < deadline:
        statuses = job_statuses(load_manifest(manifest.path))
        record = statuses[0].record
        # The store exists before the run's first full write: wait for the record that names the process.
        if statuses[0].state == JobState.RUNNING and record is not None and record.info.get("pid"):
            break
        time.sleep(0.2)
    job_pid = statuses[0].record.info["pid"]
    LocalBackend().cancel(load_manifest(manifest.path))
    manifest = wait_for_sweep(manifest.path)
    assert [j.state for j in manifest.jobs] == [JobState.CANCELLED] * 3
    deadline = time.time() + 10
    while pid_alive(job_pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not pid_alive(job_pid)
    assert job_statuses(manifest)[0].record.status["state"] in ("interrupted", "running")


def test_sigkilled_job_is_failed_and_the_sweep_goes_on(hpctrack_root):
    def job(index: int) -> None:
        import time

        from hpctrack import current_run

        current_run().log({"x": 1.0})
        current_run().flush()
        time.sleep(60 if index == 0 else 0.1)

    manifest = submit_sweep(_request(2, 2), job)
    deadline = time.time() + 60
    record = None
    while time.time() < deadline:
        record = job_statuses(load_manifest(manifest.path))[0].record
        if record is not None and "x" in record.metrics:
            break
        time.sleep(0.2)
    os.kill(record.info["pid"], signal.SIGKILL)
    manifest = wait_for_sweep(manifest.path)
    assert [j.state for j in manifest.jobs] == [JobState.FAILED, JobState.COMPLETED]
    status = job_statuses(manifest)[0]
    assert "without a result" in status.error
    assert status.record.metrics["x"].count == 1


def test_bad_input_writes_nothing(hpctrack_root):
    with pytest.raises(ConfigError, match="unknown store"):
        submit_sweep(_request(1, 1, store="nope"), print)
    with pytest.raises(ConfigError, match="unknown backend"):
        submit_sweep(_request(1, 1, backend="pbs"), print)
    with pytest.raises(ConfigError, match="no jobs"):
        submit_sweep(SweepRequest(jobs=[]), print)
    assert not hpctrack_root.exists() or not any(hpctrack_root.rglob("sweep.json"))


def test_parallel_values_that_cannot_run_are_refused_by_the_backends():
    from hpctrack.errors import ConfigError
    from hpctrack.launch import get_backend

    for backend, options in (("local", {"parallel": 0}), ("local", {"parallel": -1}), ("local", {"timeout_min": 0}),
                             ("slurm", {"array_parallelism": 0})):  # fmt: skip
        with pytest.raises(ConfigError, match="must be"):
            get_backend(backend, **options)
