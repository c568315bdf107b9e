"""Resume and requeue on the local backend, through the `hpctrack` command, with real kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import EXAMPLE, SCRIPTS, run_cli

pytestmark = pytest.mark.e2e
RESUMABLE = SCRIPTS / "resumable.py"


def _status(ref: str = "latest") -> dict:
    return json.loads(run_cli("status", ref, "--format", "json", check=True).stdout)


def _wait(predicate, timeout_s: float = 120, what: str = "condition"):
    deadline = time.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _history(ref: str, key: str, job: int):
    import hpctrack

    frame = hpctrack.load_sweep(ref).history(key)
    return frame[frame.job == job]


def test_kill_9_then_resume_gives_the_uninterrupted_numbers(hpctrack_root, tmp_path):
    common = ["epochs=8", "optimizer.lr=0.1", "seed=3"]
    # The reference: the same config, never interrupted.
    ref = run_cli("launch", str(EXAMPLE), *common, "--name", "ref", "--no-progress", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    # The victim: slowed down so it can be killed half-way.
    proc = run_cli("launch", str(EXAMPLE), *common, "epoch_sleep_s=0.6", "--name", "victim", "--detach",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    import hpctrack

    sweep = hpctrack.load_sweep("victim")

    def mid_run():
        from hpctrack.checkpoint import Checkpoints

        try:
            record = sweep.run(0)
        except Exception:
            return None
        # Epoch 3 logged and its checkpoint saved: the kill may land anywhere after that.
        latest = Checkpoints(sweep.path / "runs" / "0" / "checkpoints").latest()
        return record if record.status.get("last_step", -1) >= 3 and latest and latest.step >= 3 else None

    record = _wait(mid_run, what="epoch 3 of the victim")
    os.kill(int(record.info["pid"]), signal.SIGKILL)  # the job's own process, at a random instruction
    job = _wait(lambda: (s := _status("victim")["jobs"][0])["state"] != "RUNNING" and s, what="the kill noticed")
    assert job["state"] == "FAILED"
    assert "0 (FAILED)" in run_cli("status", "victim", check=True).stdout  # the gap is listed

    dry = run_cli("resume", "victim", "--dry-run", check=True)
    assert "would resume 1 job: 0 (FAILED)" in dry.stdout
    proc = run_cli("resume", "victim")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _status("victim")["jobs"][0]["state"] == "COMPLETED"
    assert "nothing to resume" in run_cli("resume", "victim", check=True).stdout  # never a completed config

    record = sweep.run(0)
    attempts = record.status["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert "ended without recording its end" in attempts[0]["outcome"] and attempts[1]["outcome"] == "completed"
    assert attempts[1]["restored_from"]["step"] >= 3
    for key in ("val/acc", "train/loss", "val/loss"):
        got, want = _history("victim", key, 0), _history("ref", key, 0)
        assert got.step.tolist() == list(range(8)), key  # one value per step, no gap
        assert got.value.tolist() == want.value.tolist(), key  # the same numbers as never interrupted
    assert record.summary["test/acc"] == hpctrack.load_sweep("ref").run(0).summary["test/acc"]
    assert sorted(p.name for p in (sweep.path / "runs").iterdir()) == ["0"]  # same run, not a new one


def test_requeue_failed_job_after_the_cause_is_gone(hpctrack_root, tmp_path):
    flag = tmp_path / "fail-1"
    flag.write_text("the cause")
    proc = run_cli("launch", str(RESUMABLE), "x=0,1", "steps=6", f"fail_flag={tmp_path}/fail-${{x}}",
                   "--name", "rq", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1
    jobs = _status("rq")["jobs"]
    assert [j["state"] for j in jobs] == ["COMPLETED", "FAILED"]
    assert "failing on purpose at step 2" in jobs[1]["error"]

    # Still failing: requeue runs it again (attempt 2) and it fails again, cleanly.
    assert run_cli("requeue", "rq", "--jobs", "1").returncode == 1
    skipped = run_cli("requeue", "rq", "--jobs", "0,1", "--dry-run", check=True).stdout
    assert "job 0 skipped: COMPLETED: not selected" in skipped and "would requeue 1 job: 1 (FAILED)" in skipped
    flag.unlink()
    proc = run_cli("requeue", "rq", "--jobs", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "requeued 1 job of sweep" in proc.stdout
    assert [j["state"] for j in _status("rq")["jobs"]] == ["COMPLETED", "COMPLETED"]

    import hpctrack

    record = hpctrack.load_sweep("rq").run(1)
    assert [a["outcome"] for a in record.status["attempts"]] == ["failed", "failed", "completed"]
    loss = _history("rq", "loss", 1)
    assert loss.step.tolist() == list(range(6)) and loss.attempt.tolist() == [1, 1, 3, 3, 3, 3]
    assert record.metrics["loss"].count == 6


def test_concurrent_requeue_calls_submit_each_job_once(hpctrack_root, tmp_path):
    flag = tmp_path / "fail-0"
    flag.write_text("x")
    proc = run_cli("launch", str(RESUMABLE), "x=0", "steps=3", f"fail_flag={tmp_path}/fail-${{x}}",
                   "--name", "race", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1
    flag.unlink()
    cmd = [sys.executable, "-m", "hpctrack", "requeue", "race", "--detach"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    said = [out for out, _ in outputs]
    assert sum("requeued 1 job" in out for out in said) == 1, said
    assert sum("nothing to requeue" in out or "requeued meanwhile" in out for out in said) == 3, said
    _wait(lambda: _status("race")["jobs"][0]["state"] == "COMPLETED", what="the requeued job")
    import hpctrack

    sweep = hpctrack.load_sweep("race")
    assert len(sweep.manifest.jobs[0].history) == 1  # one resubmission
    assert [a["attempt"] for a in sweep.run(0).status["attempts"]] == [1, 2]
