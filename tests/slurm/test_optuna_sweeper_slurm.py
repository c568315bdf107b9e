"""hydra-optuna-sweeper on the real SLURM cluster through ``hpctrack_slurm wait=true``.

Without ``wait`` the SLURM launcher returns once the array is queued, and the sweeper got no values
("Return value must be float-castable. Got 'None'"); waiting, each batch returns its real values.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import run_cli
from hydra_sweeper import APP, check_one_sweep_of_the_study, run_study

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def test_an_optuna_study_on_slurm_is_one_sweep_with_real_values(hpctrack_root, tmp_path):
    proc = run_study(tmp_path, "hpctrack_slurm", "hydra.launcher.wait=true", "hydra.launcher.wait_poll_s=1",
                     "hydra.launcher.timeout_min=5", "hydra.launcher.signal_delay_s=30", timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "float-castable" not in proc.stderr
    check_one_sweep_of_the_study(tmp_path)


def test_a_waiting_slurm_launch_raises_the_jobs_own_exception(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(APP), "--multirun", "hydra/launcher=hpctrack_slurm", "x=1,5", "+fail_above=3",
         "hydra.launcher.wait=true", "hydra.launcher.wait_poll_s=1", "hydra.launcher.timeout_min=5",
         "hydra.launcher.signal_delay_s=30", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "ValueError: x=5 is above 3" in proc.stderr, proc.stderr[-3000:]
    # it waited: both jobs have ended, and the one that succeeded returned its value to Hydra
    status = json.loads(run_cli("status", "quadratic", "--format", "json", check=True).stdout)
    assert [j["state"] for j in status["jobs"]] == ["COMPLETED", "FAILED"]
    assert "1/2 done" in proc.stderr or "2/2 done" in proc.stderr  # the progress display
