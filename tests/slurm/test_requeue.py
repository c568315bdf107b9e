"""Requeue on the real SLURM cluster: one sweep where a job times out, one is cancelled and one
fails, brought to every run COMPLETED with `hpctrack requeue` and the automatic requeue."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import SCRIPTS, run_cli
from slurm_helpers import wait_final, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
RESUMABLE = str(SCRIPTS / "resumable.py")
STEPS = 65  # one second each: more work than the 1-minute time limit


def _sweep(root: str, ref: str):
    import hpctrack

    return hpctrack.load_sweep(ref, root=root)


def _requeue(root: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hpctrack", "requeue", "mixed", "--root", root, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(600)  # requeues wait for SLURM's 30-second time-limit checks
def test_timeout_cancel_and_failure_all_end_completed(slurm_root, tmp_path):
    flag = tmp_path / "fail-2"
    flag.write_text("job 2 fails while this file exists")
    proc = run_cli("launch", "--backend", "slurm", "--root", slurm_root, "--time", "1", "--name", "mixed",
                   RESUMABLE, "x=0,1,2", f"steps={STEPS}", "sleep_s=1", "fail_at=2",
                   f"fail_flag={tmp_path}/fail-${{x}}", "hydra.launcher.signal_delay_s=30",
                   "hydra.launcher.max_requeues=8")  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    # Job 1 is cancelled while it runs, job 2 fails on its own; job 0 is left to its time limit.
    status = wait_until(slurm_root, "mixed", lambda s: (s["jobs"][1]["last_step"] or 0) >= 3
                        and s["jobs"][2]["state"] == "FAILED", timeout_s=180)  # fmt: skip
    assert "failing on purpose at step 2" in status["jobs"][2]["error"]
    subprocess.run(["scancel", status["jobs"][1]["job_id"]], check=True)
    wait_until(slurm_root, "mixed", lambda s: s["jobs"][1]["state"] == "CANCELLED", timeout_s=60)

    # A job that is still running is never requeued, even when asked for by index.
    dry = run_cli("requeue", "mixed", "--root", slurm_root, "--jobs", "0,1", "--dry-run", check=True).stdout
    assert "would requeue 1 job: 1 (CANCELLED)" in dry
    assert "job 0 skipped: RUNNING: still queued or running" in dry or "job 0 skipped: PENDING" in dry

    # Two requeue calls at once submit job 1 once.
    racers = [_requeue(slurm_root, "--jobs", "1") for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in racers]
    assert all(p.returncode == 0 for p in racers), outs
    assert sum("requeued 1 job" in out for out in outs) == 1, outs

    # Job 2 once its cause is gone.
    flag.unlink()
    out = run_cli("requeue", "mixed", "--root", slurm_root, "--jobs", "2", check=True).stdout
    assert "requeued 1 job of sweep" in out and "2 (FAILED)" in out

    status = wait_final(slurm_root, "mixed", timeout_s=420)
    assert [j["state"] for j in status["jobs"]] == ["COMPLETED"] * 3, status
    assert status["incomplete"] == {}

    sweep = _sweep(slurm_root, "mixed")
    manifest = sweep.manifest
    assert [len(j.history) for j in manifest.jobs] == [0, 1, 1]  # one resubmission each for jobs 1 and 2
    for index in range(3):
        history = sweep.history("loss")
        history = history[history.job == index]
        assert history.step.tolist() == list(range(STEPS)), index  # continuous, one value per step
        assert history.value.tolist() == [1.0 / (s + 1) for s in range(STEPS)]
        record = sweep.run(index)
        assert record.metrics["loss"].count == STEPS and record.summary["final"] == 10.0 * index
        attempts = record.status["attempts"]
        assert attempts[-1]["outcome"] == "completed"
        assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    # Job 0 finished only through automatic requeues of the same SLURM job: 2 attempts or more.
    attempts0 = sweep.run(0).status["attempts"]
    assert len(attempts0) >= 2 and all(a["outcome"].startswith("requeued") for a in attempts0[:-1])
    assert len({a["job_id"] for a in attempts0}) == 1
    # Job 1 was cancelled at step 3 or later (after any automatic requeues of its first job);
    # the job `hpctrack requeue` submitted restored a checkpoint of step 3 or later.
    attempts1 = sweep.run(1).status["attempts"]
    first_job = attempts1[0]["job_id"]
    cancelled = [a for a in attempts1 if a["job_id"] == first_job][-1]
    # (a scancel that lands between two automatic attempts leaves the last one "requeued")
    assert "CANCELLED" in cancelled["outcome"] or cancelled["outcome"].startswith("requeued"), attempts1
    resubmitted = [a for a in attempts1 if a["job_id"] != first_job]
    restoring = [a for a in resubmitted if "restored_from" in a]
    assert restoring and restoring[0]["restored_from"]["step"] >= 3, attempts1
    # An attempt before it (the time-limit signal landed while a loaded machine was still starting the
    # job, before the script restored anything) was requeued at once and logged nothing: no step ran twice.
    from hpctrack.store import open_store

    raw = open_store(sweep.manifest.run_path(1), manifest.store).read_history("loss", raw=True)
    for early in resubmitted[: resubmitted.index(restoring[0])]:
        assert early["outcome"].startswith("requeued"), attempts1
        assert early["attempt"] not in set(raw.attempt.tolist()), (early, attempts1)
