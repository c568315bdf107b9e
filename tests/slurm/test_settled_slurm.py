"""A sweep SLURM has settled is not sent to it again: `status` and `table` show the same without `sacct`.

Real sweeps on the test cluster end; `hpctrack status` learns their final states once; then
`status` and `table` run as subprocesses whose `sacct` and `squeue` fail loudly and log each
call. They must not call them, and must show the same states and wording as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SCRIPTS, run_cli
from slurm_helpers import wait_final, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
SLEEPY = str(SCRIPTS / "sleepy.py")


def launch(root: str, *args: str) -> None:
    proc = run_cli("launch", "--backend", "slurm", "--root", root, SLEEPY, *args)
    assert proc.returncode == 0, proc.stderr


def _scheduler_down(tmp_path: Path) -> tuple:
    """A PATH whose `sacct` and `squeue` fail (accounting and controller unreachable) and log each call."""
    shim = tmp_path / "down"
    shim.mkdir(exist_ok=True)
    log = tmp_path / "scheduler-calls.log"
    for name in ("sacct", "squeue"):
        (shim / name).write_text(f'#!/bin/sh\necho "{name} $@" >> {log}\n'
                                 f"echo '{name}: error: Unable to contact slurm controller' >&2\nexit 1\n")  # fmt: skip
        (shim / name).chmod(0o755)
    return {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}, log


def _cli(env: dict, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "hpctrack", *args], capture_output=True, text=True, timeout=240,
                          env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _views(env: dict, root: str, ref: str) -> dict:
    status = json.loads(_cli(env, "status", ref, "--format", "json", "--root", root))
    for job in status["jobs"]:
        job.pop("runtime_s", None)  # not a state: an ended run's runtime is its own record's anyway
    table = json.loads(_cli(env, "table", ref, "--format", "json", "--root", root))
    text = _cli(env, "status", ref, "--root", root)
    return {"status": status, "table": table, "text": text}


@pytest.mark.parametrize("ended", ["mixed", "too-long"])
def test_an_ended_sweep_shows_the_same_without_the_scheduler(slurm_root, tmp_path, ended):
    if ended == "mixed":
        launch(slurm_root, "--name", "settled", "fail_at=null,1", "steps=3")
        ref = "settled"
    else:  # max_requeues=0: runs into its 1-minute limit and ends as TIMEOUT
        launch(slurm_root, "--name", "settled-timeout", "--time", "1", "steps=100000", "sleep_s=0.5",
               "hydra.launcher.max_requeues=0", "hydra.launcher.signal_delay_s=30")  # fmt: skip
        ref = "settled-timeout"
    wait_final(slurm_root, ref, timeout_s=300)
    # The runs record their end before SLURM's accounting has caught up with the job (under load, sacct can
    # still say PENDING with no node); the sweep is settled once SLURM has said where and how each job ended.
    wait_until(slurm_root, ref, lambda s: all(j["node"] for j in s["jobs"]), timeout_s=120)
    before = _views(dict(os.environ), slurm_root, ref)  # with the scheduler
    states = [j["state"] for j in before["status"]["jobs"]]
    assert states == (["COMPLETED", "FAILED"] if ended == "mixed" else ["TIMEOUT"])
    env, log = _scheduler_down(tmp_path)
    after = _views(env, slurm_root, ref)
    assert not log.exists(), f"the scheduler was asked: {log.read_text()}"
    assert after["status"] == before["status"]
    assert after["table"] == before["table"]
    assert after["text"] == before["text"]


def test_a_sweep_with_a_job_still_running_still_asks(slurm_root, tmp_path):
    launch(slurm_root, "--name", "half-done", "x=1,2", "steps=3", "sleep_s=0.2")
    wait_final(slurm_root, "half-done")
    # Settled once SLURM has said where each job ended, as above (its accounting can lag the runs' records).
    wait_until(slurm_root, "half-done", lambda s: all(j["node"] for j in s["jobs"]), timeout_s=120)
    # Another sweep has a job SLURM has not settled: it is asked about; the ended one is not.
    launch(slurm_root, "--name", "one-running", "x=1", "steps=100000", "sleep_s=0.5")
    wait_until(slurm_root, "one-running", lambda s: s["jobs"][0]["state"] == "RUNNING")
    env, log = _scheduler_down(tmp_path)
    status = json.loads(_cli(env, "status", "one-running", "--format", "json", "--root", slurm_root))
    assert log.read_text().splitlines()[0].startswith("sacct ")
    assert "sacct unavailable" in status["note"]
    run_cli("cancel", "one-running", "--root", slurm_root, check=True)
    settled = json.loads(_cli(env, "status", "half-done", "--format", "json", "--root", slurm_root))
    assert settled["summary"] == "2 jobs: 2 COMPLETED" and settled["note"] is None
