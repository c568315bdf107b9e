"""What `status` makes of a job: the scheduler's recorded answers merged with the run's own record.

Scheduler answers are recorded ``sacct`` output fed through the real query path
(``hpctrack.launch.slurm.backend._run`` returns it); runs are real stores written here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from synthetic import dead_pid, index_runs, make_sweep, reload, sleeper, write_run

from hpctrack import endrecord
from hpctrack._types import JobState
from hpctrack.launch.slurm import backend as slurm
from hpctrack.requeue import resume_sweep
from hpctrack.status import sweep_status


@pytest.fixture
def sacct(monkeypatch):
    """Make `sacct` answer with recorded output (what SLURM printed for the finding)."""
    answers = {}

    def run(cmd, timeout_s=60):
        if cmd[0] == "sacct":
            return 0, answers["text"], ""
        raise AssertionError(f"unexpected scheduler call {cmd}")

    monkeypatch.setattr(slurm, "_run", run)
    return answers


def test_completed_run_is_completed_whatever_the_final_job_state_says(hpctrack_root, sacct):
    # A job requeued 3 times; its 4th attempt completed all 40 points and its summary. sacct: the job
    # TIMEOUT (its batch step COMPLETED), with the BeginTime reason left from its requeues.
    manifest = make_sweep(hpctrack_root, 2, backend="slurm", state=JobState.PENDING, job_ids=["41_0", "41_1"])
    attempts = [{"attempt": a, "start": 150.0 + a, "outcome": "requeued: time limit"} for a in (1, 2, 3)]
    write_run(manifest, 0, steps=40, attempt=4, attempts=attempts + [{"attempt": 4, "outcome": "completed"}])
    sacct["text"] = "41_0|TIMEOUT|0:0|node1|BeginTime\n41_1|PENDING|0:0|None assigned|BeginTime\n"
    jobs = sweep_status(manifest, persist=False).jobs
    assert jobs[0].state == JobState.COMPLETED and jobs[0].error is None
    # A scheduler reason is never an error: the pending job says what it waits for, as a note.
    assert jobs[1].state == JobState.PENDING and jobs[1].error is None and "BeginTime" in jobs[1].note
    plan = resume_sweep(manifest, dry_run=True)
    assert 0 not in plan.selected  # never resubmitted


def test_reason_of_an_ended_job_is_not_its_error(hpctrack_root, sacct):
    manifest = make_sweep(hpctrack_root, 1, backend="slurm", state=JobState.PENDING, job_ids=["41_0"])
    write_run(manifest, 0, state="running", pid=dead_pid())
    sacct["text"] = "41_0|TIMEOUT|0:0|node1|BeginTime\n"
    (job,) = sweep_status(manifest, persist=False).jobs
    assert job.state == JobState.TIMEOUT and "BeginTime" not in (job.error or "")


@pytest.mark.parametrize("exit_code, name", [("0:12", "SIGUSR2"), ("0:9", "SIGKILL"), ("0:15", "SIGTERM")])
def test_job_killed_by_a_signal_shows_which(hpctrack_root, sacct, exit_code, name):
    # The signal arrived before the handler was installed: the job died FAILED, no run recorded.
    manifest = make_sweep(hpctrack_root, 2, backend="slurm", state=JobState.PENDING, job_ids=["41_0", "41_1"])
    write_run(manifest, 1, state="running", pid=dead_pid())
    sacct["text"] = f"41_0|FAILED|{exit_code}|node1|None\n41_1|FAILED|{exit_code}|node1|None\n"
    jobs = sweep_status(manifest, persist=False).jobs
    assert [j.state for j in jobs] == [JobState.FAILED, JobState.FAILED]
    assert all(name in j.error for j in jobs), [j.error for j in jobs]


def test_signal_of_exit_code():
    from hpctrack.status import signal_of_exit_code

    assert signal_of_exit_code("0:12") == "SIGUSR2"
    assert signal_of_exit_code("1:0") is None and signal_of_exit_code(None) is None
    assert signal_of_exit_code("garbage") is None


def test_signal_recorded_by_the_attempt_is_shown(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 1, state=JobState.FAILED, runner={"host": socket.gethostname(),
                                                                            "pid": dead_pid()})  # fmt: skip
    write_run(
        manifest, 0, state="running", pid=dead_pid(), attempts=[{"attempt": 1, "start": 150.0, "signal": "SIGTERM"}]
    )
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.FAILED and "SIGTERM" in job.error


def test_end_record_speaks_for_a_run_whose_store_says_running(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 1, state=JobState.FAILED, runner={"host": socket.gethostname(),
                                                                            "pid": dead_pid()})  # fmt: skip
    write_run(manifest, 0, state="running", pid=dead_pid())
    endrecord.reserve(manifest.run_path(0))
    endrecord.record(manifest.run_path(0), attempt=1, state="failed", error="DiskFullError: no space left on /x")
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.FAILED and job.error == "DiskFullError: no space left on /x"


def test_signal_in_the_end_record_is_shown(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 1, state=JobState.FAILED, runner={"host": socket.gethostname(),
                                                                            "pid": dead_pid()})  # fmt: skip
    write_run(manifest, 0, state="running", pid=dead_pid())
    endrecord.reserve(manifest.run_path(0))
    endrecord.record(manifest.run_path(0), attempt=1, state="interrupted", extra={"signal": "SIGTERM"})
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.CANCELLED and job.error == "cancelled (SIGTERM)"


def test_end_record_speaks_for_a_run_without_a_store(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 1, state=JobState.FAILED)
    endrecord.reserve(manifest.run_path(0))
    endrecord.record(manifest.run_path(0), attempt=1, state="failed", error="DiskFullError: no space left on /x")
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.FAILED and "no space left on /x" in job.error


# -- a job that is still alive is never FAILED (finding: kill -9 of the local runner) -------------


def test_live_job_of_a_dead_runner_is_running_and_not_resumed(hpctrack_root):
    job = sleeper()
    try:
        manifest = make_sweep(
            hpctrack_root,
            2,
            state=JobState.RUNNING,
            runner={"host": socket.gethostname(), "pid": dead_pid(), "started": 1.0},
        )
        write_run(manifest, 0, state="running", pid=job.pid)
        write_run(manifest, 1, state="running", pid=dead_pid())
        jobs = sweep_status(manifest).jobs
        assert jobs[0].state == JobState.RUNNING and jobs[0].error is None
        assert jobs[1].state == JobState.FAILED  # its process is gone
        assert resume_sweep(manifest, dry_run=True).selected == [1]
    finally:
        job.kill()
        job.wait()


def test_job_holding_its_writer_lease_is_running(hpctrack_root):
    manifest = make_sweep(
        hpctrack_root,
        1,
        state=JobState.RUNNING,
        runner={"host": socket.gethostname(), "pid": dead_pid(), "started": 1.0},
    )
    # The recorded pid is gone, but another process (say, after an exec) holds the run's writer lease.
    write_run(manifest, 0, state="running", pid=dead_pid())
    code = (
        "import sys, time\nfrom hpctrack.locking import WriterLease\n"
        "WriterLease(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(manifest.run_path(0))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        (job,) = sweep_status(manifest).jobs
        assert job.state == JobState.RUNNING
        assert resume_sweep(manifest, dry_run=True).selected == []
    finally:
        holder.kill()
        holder.wait()
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.FAILED  # the holder is gone too


@pytest.mark.parametrize("recorded", ["runner", "job_id"])
def test_direct_run_killed_before_its_first_store_write_is_not_running_forever(hpctrack_root, recorded):
    pid = dead_pid()
    runner = {"host": socket.gethostname(), "pid": pid, "started": 1.0} if recorded == "runner" else None
    manifest = make_sweep(hpctrack_root, 1, backend="direct", state=JobState.RUNNING, runner=runner, job_ids=[str(pid)])
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.FAILED and "before" in job.error
    alive = sleeper()
    try:
        other = make_sweep(
            hpctrack_root,
            1,
            backend="direct",
            state=JobState.RUNNING,
            job_ids=[str(alive.pid)],
            sweep_id="20260101-000001-bbbb",
            runner={"host": socket.gethostname(), "pid": alive.pid} if recorded == "runner" else None,
        )
        assert sweep_status(other).jobs[0].state == JobState.RUNNING
    finally:
        alive.kill()
        alive.wait()


# -- stalled jobs: progress, not the heartbeat -----------------------------------------------------


@pytest.fixture
def live_job():
    job = sleeper()
    yield job
    job.kill()
    job.wait()


def test_job_without_progress_is_stalled(hpctrack_root, live_job, monkeypatch):
    monkeypatch.setenv("HPCTRACK_STALL_AFTER_S", "60")
    now = time.time()
    manifest = make_sweep(hpctrack_root, 2, state=JobState.RUNNING)
    # Job 0 logged step 2 100 s ago, usually every 0.5 s; its flush thread still beats.
    write_run(
        manifest,
        0,
        steps=3,
        state="running",
        pid=live_job.pid,
        heartbeat=now,
        last_log_time=now - 100,
        step_interval_s=0.5,
    )
    # Job 1 is slow but steady: a step every 20 s, the last one 100 s ago is within 10 x 20 s.
    write_run(
        manifest,
        1,
        steps=3,
        state="running",
        pid=live_job.pid,
        heartbeat=now,
        last_log_time=now - 100,
        step_interval_s=20.0,
    )
    jobs = sweep_status(manifest, now=now).jobs
    assert jobs[0].state == JobState.RUNNING and jobs[0].stalled and not jobs[0].possibly_hung
    assert "last step 2" in jobs[0].note and "100 s ago" in jobs[0].note
    assert jobs[0].to_json()["stalled"] is True and jobs[0].to_json()["last_log_age_s"] == pytest.approx(100)
    assert not jobs[1].stalled and jobs[1].note is None
    # The factor is configurable: 3 x 20 s is less than 100 s.
    monkeypatch.setenv("HPCTRACK_STALL_FACTOR", "3")
    assert sweep_status(manifest, now=now).jobs[1].stalled


def test_job_without_a_step_interval_uses_the_absolute_threshold(hpctrack_root, live_job, monkeypatch):
    monkeypatch.setenv("HPCTRACK_STALL_AFTER_S", "30")
    now = time.time()
    manifest = make_sweep(hpctrack_root, 1, state=JobState.RUNNING)
    write_run(
        manifest,
        0,
        steps=1,
        state="running",
        pid=live_job.pid,
        heartbeat=now,
        last_log_time=now - 20,
        step_interval_s=None,
    )
    assert not sweep_status(manifest, now=now).jobs[0].stalled
    assert sweep_status(manifest, now=now + 20).jobs[0].stalled


def test_stall_and_hung_are_told_apart(hpctrack_root, live_job, monkeypatch):
    monkeypatch.setenv("HPCTRACK_STALL_AFTER_S", "60")
    now = time.time()
    manifest = make_sweep(hpctrack_root, 1, state=JobState.RUNNING)
    # No flush at all for 10 minutes: the process stopped entirely, the old "(hung?)".
    write_run(
        manifest,
        0,
        steps=3,
        state="running",
        pid=live_job.pid,
        heartbeat=now - 600,
        last_log_time=now - 600,
        step_interval_s=0.5,
    )
    (job,) = sweep_status(manifest, now=now).jobs
    assert job.possibly_hung and job.error.endswith("possibly hung")


# -- lost stores --------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["hdf5", "zarr"])
def test_deleted_store_of_an_indexed_run_is_lost(hpctrack_root, store):
    import shutil

    manifest = make_sweep(hpctrack_root, 2, store=store)
    for i in range(2):
        write_run(manifest, i)
    index_runs(manifest, range(2))
    run = manifest.run_path(1)
    for path in run.iterdir():
        if path.name.startswith("run."):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    jobs = sweep_status(manifest).jobs
    assert jobs[0].state == JobState.COMPLETED
    assert jobs[1].state == JobState.LOST and "missing" in jobs[1].error and jobs[1].record is None


def test_index_line_without_a_fingerprint_still_checks_the_store_exists(hpctrack_root):
    from hpctrack.index import append_rows, record_to_row
    from hpctrack.store import open_store

    manifest = make_sweep(hpctrack_root, 1)
    write_run(manifest, 0)
    append_rows(manifest.path, [record_to_row(0, open_store(manifest.run_path(0), "hdf5").read())])  # older line
    assert sweep_status(manifest).jobs[0].state == JobState.COMPLETED
    for path in manifest.run_path(0).glob("run*.h5"):
        path.unlink()
    assert sweep_status(manifest).jobs[0].state == JobState.LOST


def test_completed_job_without_any_store_is_lost(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 1, state=JobState.COMPLETED)  # the runner saw it complete
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.LOST and "missing" in job.error
    assert reload(manifest).jobs[0].state == JobState.COMPLETED  # status never rewrites what it cannot know


def test_unreadable_store_is_lost_and_not_resumed_by_default(hpctrack_root):
    manifest = make_sweep(
        hpctrack_root, 1, state=JobState.COMPLETED, runner={"host": socket.gethostname(), "pid": dead_pid()}
    )
    write_run(manifest, 0)
    target = manifest.run_path(0) / "run.h5"
    real = target.resolve()
    real.write_bytes(real.read_bytes()[:500])
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.LOST and "unreadable" in job.error
    assert resume_sweep(manifest, dry_run=True).selected == []
    assert resume_sweep(manifest, dry_run=True, include_lost=True).selected == [0]
    # The run itself found its store damaged and failed (its end record says so): FAILED, with why.
    endrecord.reserve(manifest.run_path(0))
    endrecord.record(manifest.run_path(0), attempt=1, state="failed", error="StoreReplacedError: run.h5 truncated")
    (job,) = sweep_status(manifest).jobs
    assert job.state == JobState.FAILED
    assert job.error.startswith("StoreReplacedError: run.h5 truncated") and "unreadable" in job.error


# -- wording -------------------------------------------------------------------------------------


def test_cancelled_jobs_share_one_wording(hpctrack_root):
    manifest = make_sweep(
        hpctrack_root, 3, state=JobState.CANCELLED, runner={"host": socket.gethostname(), "pid": dead_pid()}
    )
    from hpctrack.manifest import update_manifest

    def change(m):
        m.jobs[0].error, m.jobs[1].error, m.jobs[2].error = "cancelled", "cancelled", "cancelled before it started"

    update_manifest(manifest.path, change)
    write_run(
        reload(manifest),
        0,
        state="interrupted",
        error={"type": "KeyboardInterrupt", "message": "KeyboardInterrupt", "traceback": ""},
    )
    write_run(
        reload(manifest),
        1,
        state="interrupted",
        error={"type": "", "message": "terminated by SIGTERM", "traceback": ""},
    )
    jobs = sweep_status(reload(manifest)).jobs
    assert [j.state for j in jobs] == [JobState.CANCELLED] * 3
    assert [j.error for j in jobs] == ["cancelled (SIGINT)", "cancelled (SIGTERM)", "cancelled before it started"]


def test_a_reader_who_may_not_lock_the_manifest_still_gets_the_status(tmp_path, monkeypatch):
    # A group member reading a shared SLURM sweep cannot create sweep.json.lock: the final states
    # learned from the scheduler are not written back, and the status is still shown.
    import hpctrack.status as status_module
    from hpctrack._types import JobState
    from hpctrack.status import JobStatus

    manifest = make_sweep(tmp_path, 1, backend="slurm", state=JobState.RUNNING, job_ids=["7_0"])

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(manifest.path / "sweep.json.lock"))

    monkeypatch.setattr(status_module, "update_manifest", denied)
    done = JobStatus(index=0, state=JobState.COMPLETED, job_id="7_0", overrides=[], run_dir=manifest.run_path(0))
    status_module._persist_final(manifest, [done])  # no exception: nothing written, nothing lost


def test_a_job_killed_with_kill_9_on_slurm_says_it_ended_without_recording_its_end(hpctrack_root, sacct):
    # What sacct printed after `kill -9` of the training process: the job FAILED with exit code 9,
    # no signal in its ExitCode (the step has it); the run's store still says running.
    manifest = make_sweep(hpctrack_root, 1, backend="slurm", state=JobState.PENDING, job_ids=["610_0"])
    write_run(manifest, 0, state="running", pid=dead_pid())
    sacct["text"] = "610_0|FAILED|9:0|node1|NonZeroExitCode\n"
    (job,) = sweep_status(manifest, persist=False).jobs
    assert job.state == JobState.FAILED
    assert job.error and "without recording its end" in job.error and "exit code 9" in job.error, job.error


def test_a_pending_job_of_a_killed_local_runner_says_it_never_started_not_just_cancelled(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 1, backend="local", state=JobState.PENDING, job_ids=[None],
                          runner={"host": socket.gethostname(), "pid": dead_pid(), "started": 100.0})  # fmt: skip
    (job,) = sweep_status(manifest, persist=False).jobs
    assert job.state == JobState.CANCELLED and "never started" in job.error and "runner stopped" in job.error
