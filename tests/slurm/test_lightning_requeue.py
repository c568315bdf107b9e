"""Lightning's own SLURM auto-requeue (`SLURMEnvironment(auto_requeue=True)`, the signal routed to it with
`--signal`) requeues a job that runs into its time limit: the same run, attempt 2, resumed from
Lightning's HPC checkpoint, a continuous history with every step once."""

from __future__ import annotations

import pytest
from conftest import SCRIPTS, run_cli
from slurm_helpers import wait_final

import hpctrack
from hpctrack.store import open_store

pytest.importorskip("lightning")
pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
SCRIPT = str(SCRIPTS / "lightning_train.py")


@pytest.mark.timeout(480)  # the first attempt waits for SLURM's time-limit check to signal it
def test_lightning_requeues_its_job_into_the_same_run(slurm_root):
    # 16 steps of 6 s in the first attempt: longer than the 2-minute limit. SLURM sends SIGUSR1 (Lightning's
    # requeue signal) 50 s before it, or up to its time-check period (30 s) earlier: well after the script
    # started. Lightning saves its HPC checkpoint and requeues the job itself.
    proc = run_cli("launch", "--backend", "slurm", "--root", slurm_root, "--time", "2", "--name", "lit-requeue",
                   SCRIPT, "slurm_requeue=true", "sleep_first_attempt_s=6", "hydra.launcher.signal_delay_s=30",
                   "+hydra.launcher.additional_parameters.signal=USR1@50")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status = wait_final(slurm_root, "lit-requeue", timeout_s=420)
    assert [j["state"] for j in status["jobs"]] == ["COMPLETED"], status

    sweep = hpctrack.load_sweep("lit-requeue", root=slurm_root)
    record = sweep.run(0)
    attempts = record.status["attempts"]
    # Attempt 2 (a quick one: its steps do not sleep) may be signalled again, and requeued again.
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1)) and len(attempts) >= 2, attempts
    assert all(a["outcome"] == "requeued: Lightning's SLURM auto-requeue" for a in attempts[:-1]), attempts
    assert attempts[-1]["outcome"] == "completed"
    assert len({a["job_id"] for a in attempts}) == 1  # the same SLURM job, requeued
    run_dir = sweep.path / "runs" / "0"
    assert attempts[1]["resumed_from"] == "hpc_ckpt_1.ckpt" and (run_dir / "hpc_ckpt_1.ckpt").is_file()
    assert 0 < attempts[1]["restart_step"] < 16  # it continued where the first attempt stopped

    # Continuous: every step once in the resolved history; each later attempt logged from its restart on.
    restart = attempts[1]["restart_step"]
    # Every step at most once, the first attempt's up to the restart and the later ones' from it on, with
    # no gap but the known limit (README): when SLURM's signal lands while a step is in progress (its
    # batch processed, its metrics not yet logged), Lightning's HPC checkpoint counts that step as done
    # and the resumed fit numbers on after it: that one step has no point.
    history = sweep.history("train/loss").step.tolist()
    raw = open_store(run_dir, sweep.manifest.store).read_history("train/loss", raw=True)
    first = sorted(int(s) for s, a in zip(raw.step, raw.attempt) if a == 1 and s < restart)
    later = [int(s) for s, a in zip(raw.step, raw.attempt) if a > 1]
    assert first == list(range(len(first))) and restart - len(first) in (0, 1), (first, restart)
    assert later == list(range(restart, restart + len(later))) and later[-1] in (15, 16), later
    assert history == first + later and len(set(history)) == len(history)
    assert len(first) + len(later) >= 15  # 16 steps; one without a point at most
