"""`hpctrack launch --exec` on the real SLURM cluster: the shipped heat_sim example as a job array,
recording through its metrics file, `hpctrack summary`, `artifact` and `log`; a job whose program
fails ends FAILED with its exit code and stderr."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_cli
from slurm_helpers import wait_final

import hpctrack

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
EXAMPLE = REPO / "examples" / "heat_sim"
COMMAND = "sh $HPCTRACK_CODE_DIR/heat.sh --dt ${dt} --n ${n} --steps ${steps} --alpha ${alpha} && hpctrack log done=1"


@pytest.mark.timeout(300)
def test_the_heat_example_sweeps_on_slurm(slurm_root):
    proc = run_cli("launch", "--exec", COMMAND, "--config", "heat.yaml", "dt=0.001,0.004", "n=20",
                   "--metrics-file", "metrics.csv", "--backend", "slurm", "--root", slurm_root, "--name",
                   "heat-slurm", cwd=EXAMPLE)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "queued as SLURM job array" in proc.stdout

    status = wait_final(slurm_root, "heat-slurm", timeout_s=240)
    jobs = status["jobs"]
    assert [j["state"] for j in jobs] == ["COMPLETED", "FAILED"], jobs
    assert "exit code 3" in jobs[1]["error"] and "unstable at step 3" in jobs[1]["error"]

    sweep = hpctrack.load_sweep("heat-slurm", root=slurm_root)
    stable = sweep.run(0)
    assert stable.info["slurm"]["job_id"]  # it ran as a SLURM job
    assert stable.metrics["energy"].count == 200 and stable.metrics["energy"].last_step == 199  # metrics.csv
    assert stable.metrics["done"].count == 1  # hpctrack log
    assert stable.summary["outcome"] == "stable" and stable.summary["r"] == 0.4  # hpctrack summary
    assert "profile.txt" in stable.info["artifacts"]  # hpctrack artifact
    assert stable.params["dt"] == 0.001 and stable.params["steps"] == 200
    unstable = sweep.run(1)
    assert unstable.metrics["energy"].last_step == 3 and unstable.info["exec"]["exit_code"] == 3

    table = json.loads(run_cli("table", "heat-slurm", "--root", slurm_root, "--include-incomplete", "-m",
                               "energy:last", "--format", "json", check=True).stdout)  # fmt: skip
    assert [(row["dt"], row["state"]) for row in table] == [(0.001, "COMPLETED"), (0.004, "FAILED")]
