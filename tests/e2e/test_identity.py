"""Every process a job starts knows the job's run and attempt from its environment (HPCTRACK_RUN_DIR,
HPCTRACK_RUN_ID, HPCTRACK_ATTEMPT), on the local backend and in a plain run, and a resumed attempt says 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import SCRIPTS, run_cli

import hpctrack
from hpctrack.errors import ConfigError
from hpctrack.identity import identity_from_env

pytestmark = pytest.mark.e2e
SCRIPT = SCRIPTS / "identity.py"


def _seen(sweep, job: int, attempt: int) -> dict:
    return json.loads((sweep.path / "runs" / str(job) / f"identity.{attempt}.json").read_text())


def test_a_jobs_child_processes_know_its_run_and_a_resumed_attempt_its_number(hpctrack_root, tmp_path):
    proc = run_cli("launch", str(SCRIPT), "fail_first=false,true", "--name", "who", "--no-progress", cwd=tmp_path)
    assert proc.returncode != 0  # job 1 fails its first attempt
    sweep = hpctrack.load_sweep("who")
    for job in (0, 1):
        seen = _seen(sweep, job, 1)
        run_dir = str((sweep.path / "runs" / str(job)).resolve())
        told = {
            k: v for k, v in seen["child"].items() if k in ("HPCTRACK_RUN_DIR", "HPCTRACK_RUN_ID", "HPCTRACK_ATTEMPT")
        }
        assert told == {"HPCTRACK_RUN_DIR": run_dir, "HPCTRACK_RUN_ID": f"{sweep.id}/{job}",
                                 "HPCTRACK_ATTEMPT": "1"}, seen  # fmt: skip
        assert seen["run_id"] == f"{sweep.id}/{job}"
    resumed = run_cli("resume", "who", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _seen(sweep, 1, 2)["child"]["HPCTRACK_ATTEMPT"] == "2"
    assert _seen(sweep, 1, 2)["child"]["HPCTRACK_RUN_ID"] == f"{sweep.id}/1"


def test_a_plain_runs_child_processes_know_its_run(hpctrack_root, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    sweep = hpctrack.load_sweep("latest")
    seen = json.loads((tmp_path / "identity.1.json").read_text())  # a plain run works where it is started
    assert seen["child"]["HPCTRACK_RUN_ID"] == f"{sweep.id}/0"
    assert seen["child"]["HPCTRACK_RUN_DIR"] == str((sweep.path / "runs" / "0").resolve())


@pytest.mark.parametrize(
    "env, message",
    [
        ({"HPCTRACK_RUN_DIR": "/r/sweeps/s/runs/0", "HPCTRACK_RUN_ID": "s/0"}, "HPCTRACK_ATTEMPT is not set"),
        (
            {"HPCTRACK_RUN_DIR": "r/sweeps/s/runs/0", "HPCTRACK_RUN_ID": "s/0", "HPCTRACK_ATTEMPT": "1"},
            "not an absolute",
        ),
        (
            {"HPCTRACK_RUN_DIR": "/r/sweeps/s/runs/0", "HPCTRACK_RUN_ID": "s/0", "HPCTRACK_ATTEMPT": "0"},
            "attempt number",
        ),
        (
            {"HPCTRACK_RUN_DIR": "/r/sweeps/s/runs/0", "HPCTRACK_RUN_ID": "t/0", "HPCTRACK_ATTEMPT": "1"},
            "does not name",
        ),
    ],
)
def test_a_half_told_identity_is_a_one_line_error(env, message):
    with pytest.raises(ConfigError, match=message):
        identity_from_env(env)


def test_no_identity_outside_a_job():
    assert identity_from_env({"HPCTRACK_ROOT": "/x"}) is None
    found = identity_from_env(
        {"HPCTRACK_RUN_DIR": "/r/sweeps/s/runs/3", "HPCTRACK_RUN_ID": "s/3", "HPCTRACK_ATTEMPT": "2"}
    )
    assert found is not None and found.job_index == 3 and found.attempt == 2 and str(found.sweep_dir) == "/r/sweeps/s"
