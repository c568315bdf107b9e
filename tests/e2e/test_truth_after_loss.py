"""What the commands say after a run's data was lost or a job was killed: never "running" for an attempt
that ended, never "not started" for a run that ran, never a resume into a gap, never zeros for lost points.
Real sweeps, real kills, real deletions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest
from conftest import SCRIPTS, run_cli

pytestmark = pytest.mark.e2e
RESUMABLE = SCRIPTS / "resumable.py"


def _status(name: str) -> dict:
    return json.loads(run_cli("status", name, "--format", "json", check=True).stdout)


def _wait(predicate, what: str, timeout_s: float = 180):
    deadline = time.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _final(name: str) -> dict:
    return _wait(lambda: (lambda s: s if all(j["state"] not in ("PENDING", "RUNNING") for j in s["jobs"]) else None)(
        _status(name)), "the jobs' end")  # fmt: skip


def _remove_store(run_dir) -> None:
    for path in run_dir.iterdir():
        if path.name.startswith("run."):
            try:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            except FileNotFoundError:  # the running job's lock file (run.h5.lock), released since it was listed
                pass


def test_a_store_removed_under_its_job_is_named_and_never_resumed_into_a_gap(hpctrack_root, tmp_path):
    import hpctrack

    proc = run_cli("launch", str(RESUMABLE), "x=1", "steps=60", "sleep_s=0.1", "--name", "gone", "--detach",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _wait(lambda: (_status("gone")["jobs"][0]["last_step"] or 0) >= 5, "a few steps")
    run_dir = hpctrack.load_sweep("gone").path / "runs" / "0"
    _remove_store(run_dir)
    job = _final("gone")["jobs"][0]
    assert job["state"] == "FAILED" and job["data_lost"], job

    shown = run_cli("show", "gone/0", check=True).stdout
    assert "has not started" not in shown, shown
    assert "store" in shown and "recovery-1.jsonl" in shown, shown

    dry = run_cli("resume", "gone", "--dry-run", check=True).stdout
    assert "nothing to resume" in dry and "--include-lost" in dry, dry
    proc = run_cli("resume", "gone", "--include-lost", "--detach")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [j["state"] for j in _final("gone")["jobs"]] == ["COMPLETED"]
    history = hpctrack.load_sweep("gone").history("loss")
    assert history.step.tolist() == list(range(60))  # from the start again: no gap, no duplicate
    assert any(p.name.startswith("lost-") and (p / "recovery-1.jsonl").exists() for p in run_dir.iterdir())
    assert run_cli("verify", "gone").returncode == 0


def test_a_killed_attempt_is_not_shown_running_and_its_newest_checkpoint_is_named(hpctrack_root, tmp_path):
    import hpctrack
    from hpctrack.run import Checkpoints

    proc = run_cli("launch", str(RESUMABLE), "x=1", "steps=400", "sleep_s=0.05", "--name", "k9", "--detach",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _wait(lambda: (_status("k9")["jobs"][0]["last_step"] or 0) >= 3, "a few steps")
    sweep = hpctrack.load_sweep("k9")
    os.kill(int(sweep.run(0).status["attempts"][-1]["pid"]), signal.SIGKILL)  # the training process itself
    assert _final("k9")["jobs"][0]["state"] == "FAILED"
    shown = json.loads(run_cli("show", "k9/0", "--format", "json", check=True).stdout)
    outcome = shown["attempts"][-1]["outcome"]
    assert outcome and outcome != "running" and "ended without recording its end" in outcome, shown["attempts"]
    newest = Checkpoints(sweep.path / "runs" / "0" / "checkpoints").latest()
    assert shown["checkpoint"]["step"] == newest.step and shown["checkpoint"]["path"].endswith(newest.path.name)
    text = run_cli("show", "k9/0", check=True).stdout
    assert ", running" not in text, text
    # its runtime as `status` and `table` give it (to its last heartbeat), not "-": its end was never recorded
    runtime = _status("k9")["jobs"][0]["runtime_s"]
    assert runtime is not None and runtime > 0
    assert shown["status"]["runtime_s"] == runtime and shown["status"]["end_time"] is None


def test_a_zarr_run_missing_points_is_skipped_by_history_and_plot_and_ls_does_not_say_completed(
    hpctrack_root, tmp_path
):
    import hpctrack

    proc = run_cli("launch", str(RESUMABLE), "x=1,2", "steps=5", "sleep_s=0", "--store", "zarr", "--name", "zc",
                   "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = hpctrack.load_sweep("zc")
    (sweep.path / "runs" / "0" / "run.zarr" / "value" / "c.0").unlink()  # job 0's values are gone
    _remove_store(sweep.path / "runs" / "1")  # job 1's store is gone
    history = sweep.history("loss")
    assert sorted(history.attrs["skipped"]) == [0, 1] and history.empty, history
    plot = run_cli("plot", "zc", "loss", "-o", str(tmp_path / "loss.png"))
    assert plot.returncode == 1 and "unreadable: job 0, job 1" in plot.stderr, plot.stderr  # nothing left to plot
    listed = json.loads(run_cli("ls", "--format", "json", check=True).stdout)
    assert "COMPLETED" not in listed[0]["jobs"], listed
    assert [j["state"] for j in _status("zc")["jobs"]] == ["LOST", "LOST"]


def test_a_job_whose_controller_was_killed_stops_its_training_and_says_so(hpctrack_root, tmp_path):
    """The local job is its controller (the job id `status` shows): when that process is gone, its training
    must not run on as an orphan that no `hpctrack cancel` reaches (a cancel that lands while the controller
    starts its task left one, which then completed a "cancelled" job)."""
    import hpctrack
    from hpctrack._process import pid_alive

    proc = run_cli("launch", str(RESUMABLE), "x=1", "steps=300", "sleep_s=0.1", "--name", "orphan", "--detach",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _wait(lambda: (_status("orphan")["jobs"][0]["last_step"] or 0) >= 3, "a few steps")
    sweep = hpctrack.load_sweep("orphan")
    training = int(sweep.run(0).status["attempts"][-1]["pid"])
    controller = int(sweep.manifest.jobs[0].job_id)
    assert controller != training  # submitit's controller runs the training in a child process
    os.kill(controller, signal.SIGKILL)
    _wait(lambda: not pid_alive(training), "the training to stop with its controller", timeout_s=30)
    job = _final("orphan")["jobs"][0]
    assert job["state"] == "CANCELLED" and job["error"], job
    steps = hpctrack.load_sweep("orphan").history("loss").step.tolist()
    assert 3 <= len(steps) < 300 and steps == list(range(len(steps)))
    # and it continues where it stopped
    assert "requeued 1 job" in run_cli("requeue", "orphan", "--no-progress", cwd=tmp_path, check=True).stdout
    assert [j["state"] for j in _final("orphan")["jobs"]] == ["COMPLETED"]
    assert hpctrack.load_sweep("orphan").history("loss").step.tolist() == list(range(300))
