"""``hpctrack launch --backend slurm --dry-run``: the arrays the sweep would make, and nothing queued."""

from __future__ import annotations

import math
import subprocess
import uuid

import pytest
from conftest import SCRIPTS, run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def _my_jobs() -> str:
    return subprocess.run(["squeue", "--me", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout


def test_a_slurm_dry_run_shows_the_arrays_and_queues_nothing(hpctrack_root):
    from hpctrack.launch.slurm.backend import max_array_size

    name = f"dry-{uuid.uuid4().hex[:8]}"
    proc = run_cli("launch", "--backend", "slurm", str(SCRIPTS / "sleepy.py"), "+i=range(1000)", "--name", name,
                   "hydra.launcher.runs_per_task=50", "--time", "10", "--dry-run")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    limit = max_array_size()
    sizes = [min(limit, 20 - start) for start in range(0, 20, limit)]
    lines = proc.stdout.splitlines()
    assert lines[0] == "dry run: 1000 jobs would be submitted to SLURM (nothing submitted or written)"
    plan = next(line for line in lines if line.startswith("SLURM: "))
    assert plan.startswith(f"SLURM: {math.ceil(20 / limit)} job array{'s' if len(sizes) > 1 else ''} of "
                           f"{', '.join(map(str, sizes[:8]))}")  # fmt: skip
    assert f"(MaxArraySize {limit}, 50 runs per task, serial), 20 array tasks in all" in plan
    resources = next(line for line in lines if line.startswith("resources per task: "))
    assert "time=10" in resources
    assert not hpctrack_root.exists() or not any((hpctrack_root / "sweeps").glob("*"))
    assert f"hpctrack-{name}" not in _my_jobs()  # nothing of this launch was queued
