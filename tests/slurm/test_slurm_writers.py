"""Who writes a run on the real SLURM cluster: one rank of a multi-task job, packed runs requeued at
the time limit; and a time limit the job's signal cannot fit in is refused before submission."""

from __future__ import annotations

import subprocess
import time

import pytest

import hpctrack
from conftest import SCRIPTS, error_lines, run_cli
from slurm_helpers import wait_final

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
RESUMABLE = str(SCRIPTS / "resumable.py")
DDP = str(SCRIPTS / "ddp.py")


def _sweep(root: str, ref: str):
    return hpctrack.load_sweep(ref, root=root)


def test_a_signal_delay_not_below_the_time_limit_is_refused_before_submission(slurm_root):
    proc = run_cli("launch", "--backend", "slurm", "--root", slurm_root, "--name", "no-room", "--time", "1",
                   str(SCRIPTS / "sleepy.py"), "x=1")
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert "signal_delay_s=120 is not smaller than the time limit (1 min = 60 s)" in line
    assert "hydra.launcher.signal_delay_s=" in line  # the fix
    # Nothing written, so nothing submitted (a submission needs the sweep's manifest first). The queue
    # itself is not compared: other tests submit jobs meanwhile.
    with pytest.raises(hpctrack.SweepNotFoundError):
        _sweep(slurm_root, "no-room")


@pytest.mark.timeout(600)
def test_a_two_task_torch_distributed_job_stores_every_step_once(slurm_root):
    proc = run_cli("launch", "--backend", "slurm", "--root", slurm_root, "--name", "ddp", DDP, "steps=50",
                   "hydra.launcher.tasks_per_node=2", "hydra.launcher.signal_delay_s=30")
    assert proc.returncode == 0, proc.stderr
    status = wait_final(slurm_root, "ddp", timeout_s=420)
    assert status["summary"] == "1 job: 1 COMPLETED", status
    sweep = _sweep(slurm_root, "ddp")
    record = sweep.run(0)
    assert record.metrics["sum"].count == 50  # 50 steps, not 100: one rank wrote
    history = sweep.history("sum")
    assert history["step"].tolist() == list(range(50))
    assert set(history["value"]) == {3.0}  # 1 + 2: both ranks took part in every step
    assert set(sweep.history("rank")["value"]) == {0.0}  # written by rank 0
    assert record.summary == {"world_size": 2, "rank0": True}
    assert [a["attempt"] for a in record.status["attempts"]] == [1]


@pytest.mark.timeout(900)  # requeues wait for SLURM's 30-second time-limit checks
def test_packed_runs_side_by_side_are_requeued_at_the_time_limit(slurm_root):
    steps = 65  # one second each: more work than the 1-minute time limit
    proc = run_cli("launch", "--backend", "slurm", "--root", slurm_root, "--time", "1", "--name", "packed-requeue",
                   RESUMABLE, "x=0,1", f"steps={steps}", "sleep_s=1", "fail_flag=null",
                   "hydra.launcher.runs_per_task=2", "hydra.launcher.pack=parallel",
                   "hydra.launcher.cpus_per_task=2", "hydra.launcher.signal_delay_s=30",
                   "hydra.launcher.max_requeues=8")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # The runs' own records first: while SLURM requeues the task, sacct may show it CANCELLED for a moment.
    deadline = time.time() + 780
    while time.time() < deadline:
        try:
            states = [_sweep(slurm_root, "packed-requeue").run(i).status.get("state") for i in range(2)]
        except hpctrack.HpctrackError:
            states = []
        if states == ["completed", "completed"]:
            break
        time.sleep(3)
    status = wait_final(slurm_root, "packed-requeue", timeout_s=120)
    assert [j["state"] for j in status["jobs"]] == ["COMPLETED", "COMPLETED"], status
    sweep = _sweep(slurm_root, "packed-requeue")
    for index in range(2):
        history = sweep.history("loss")
        history = history[history.job == index]
        assert history.step.tolist() == list(range(steps)), index  # continuous, one value per step
        attempts = sweep.run(index).status["attempts"]
        # Each packed run closed its own attempt at the signal: flushed, checkpointed, requeued.
        assert len(attempts) >= 2, attempts
        assert all(a["outcome"].startswith("requeued") for a in attempts[:-1]), attempts
        assert all(a.get("signal") == "SIGUSR2" for a in attempts[:-1]), attempts
        assert attempts[-1]["outcome"] == "completed"
        assert len({a["job_id"] for a in attempts}) == 1  # requeued by SLURM: the same job
