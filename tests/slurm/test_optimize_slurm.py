"""``hpctrack launch --optimize --backend slurm``: the study's driver is a SLURM job of its own.

``launch`` returns once the driver's job is queued; the driver submits the trials as jobs of
one sweep. The driver's job is killed outright mid-study (as a node failure would), and
``hpctrack resume`` submits a new driver that finishes the study with exactly its trials.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SCRIPTS, run_cli, wait_for
from slurm_helpers import status_json

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]



def slurm_job(job_id: str) -> dict:
    """sacct's record of one job: name, state."""
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobName,State"], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()  # fmt: skip
    # the newest record: a cluster set up again reuses job ids, and sacct lists the older jobs too
    name, state = out[-1].split("|") if out else ("", "")
    return {"name": name, "state": state}


def test_study_driver_is_a_job_and_survives_its_death(slurm_root):
    proc = run_cli("launch", "--backend", "slurm", "--root", slurm_root, str(SCRIPTS / "quadratic.py"),
                   "x=interval(-2,2)", "y=choice(-0.2,1.5)", "steps=4", "sleep_s=0.3", "--optimize", "loss:last:min",
                   "--trials", "6", "--parallel", "2", "--name", "slurm-study", cwd=SCRIPTS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "6 trials, 2 at a time, driven by SLURM job" in proc.stdout
    status = status_json(slurm_root, "slurm-study")
    sweep_dir = Path(status["path"])
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    first = str(manifest["study"]["driver"]["job_id"])
    # launch submitted the driver and returned: no trial was submitted by the launching process
    assert manifest["jobs"] == []
    queued = subprocess.run(["squeue", "-h", "-j", first, "-o", "%j"], capture_output=True, text=True).stdout.split()
    finished = [] if queued else [slurm_job(first)["name"]]  # it may have started and ended already: accounting
    assert (queued or finished) == [f"hpctrack-study-{manifest['id']}"]

    # Mid-study the driver dies outright (SIGKILL to its process on the node: no chance to record anything,
    # as in a node failure); the cluster is this one node, so its pid is taken from the manifest.
    wait_for("2 trials submitted", lambda: len(status_json(slurm_root, "slurm-study")["jobs"]) >= 2, 300, 1)
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert manifest["study"]["driver"]["host"] == socket.gethostname()
    os.kill(int(manifest["study"]["driver"]["pid"]), signal.SIGKILL)
    wait_for("driver dead", lambda: status_json(slurm_root, "slurm-study")["study"]["driver"] == "dead", 300, 1)
    resumed = run_cli("resume", "slurm-study", "--root", slurm_root, check=True)
    assert "driver started again (SLURM job" in resumed.stdout
    wait_for("study finished", lambda: status_json(slurm_root, "slurm-study")["study"]["driver"] == "finished",
             timeout_s=600)  # fmt: skip

    status = status_json(slurm_root, "slurm-study")
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    second = str(manifest["study"]["driver"]["job_id"])
    assert second != first
    # the driver records "finished" as its last act: its SLURM job ends a moment later
    wait_for("driver job completed", lambda: slurm_job(second)["state"] == "COMPLETED", 120, 1)
    assert [j["state"] for j in status["jobs"]] == ["COMPLETED"] * 6
    # trials ran as SLURM jobs: array tasks when submitted together, a plain job when one was submitted alone
    # (submitit submits a single job without an array), as after the driver's restart
    assert all(j["job_id"] and j["job_id"].split("_")[0].isdigit() for j in status["jobs"])
    assert any("_" in j["job_id"] for j in status["jobs"])
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "study" / "journal.log")))
    trials = optuna.load_study(study_name=sweep_dir.name, storage=storage).get_trials()
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.user_attrs["job"] for t in trials) == list(range(6))
    table = json.loads(run_cli("table", "slurm-study", "--root", slurm_root, "--format", "json", check=True).stdout)
    assert sorted(row["trial"] for row in table) == list(range(6))
    assert status["study"]["best"]["value"] == pytest.approx(min(row["objective"] for row in table))


def test_a_driver_slurm_refuses_leaves_no_sweep_behind(hpctrack_root):
    proc = run_cli("launch", "quadratic.py", "x=interval(-2,2)", "--optimize", "loss:min", "--trials", "2",
                   "--backend", "slurm", "--partition", "nosuch", "--name", "badpart", cwd=SCRIPTS)  # fmt: skip
    assert proc.returncode == 1
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert "no partition 'nosuch' on this cluster" in line  # said before the study's sweep is written
    assert json.loads(run_cli("ls", "--format", "json", check=True).stdout) == []
