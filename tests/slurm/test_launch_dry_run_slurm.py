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


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_partition_the_cluster_lacks_is_refused_before_anything_is_written(hpctrack_root, dry_run):
    """A typo in --partition is one line naming the cluster's partitions, from a dry run too; no sweep is
    left behind (sbatch's refusal came only after the sweep's directory was written)."""
    proc = run_cli("launch", "--backend", "slurm", str(SCRIPTS / "sleepy.py"), "+i=range(2)",
                   "--partition", "debgu", *(["--dry-run"] if dry_run else []))  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    partitions = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True).stdout.split()
    assert "'debgu'" in lines[0] and partitions and all(p in lines[0] for p in partitions), lines[0]
    assert not hpctrack_root.exists() or not any((hpctrack_root / "sweeps").glob("*"))


def test_launch_takes_the_resources_resume_takes(hpctrack_root):
    """--mem-gb, --cpus-per-task and --gpus-per-node, as `resume` has them, reach the arrays' resources."""
    proc = run_cli("launch", "--backend", "slurm", str(SCRIPTS / "sleepy.py"), "+i=range(2)", "--mem-gb", "1.5",
                   "--cpus-per-task", "2", "--dry-run")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    resources = next(line for line in proc.stdout.splitlines() if line.startswith("resources per task: "))
    assert "mem=1536M" in resources and "cpus_per_task=2" in resources


def test_a_dry_run_asks_slurm_whether_it_would_take_the_jobs(hpctrack_root):
    """More memory than any node has: the dry run said all was well, then the launch was refused by sbatch.
    It asks sbatch (--test-only), and says in one line what SLURM would refuse."""
    proc = run_cli("launch", "--backend", "slurm", str(SCRIPTS / "sleepy.py"), "+i=range(2)", "--mem-gb", "100000",
                   "--dry-run")  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr + proc.stdout
    assert "SLURM would refuse" in lines[0] and "not available" in lines[0], lines[0]
    assert not hpctrack_root.exists() or not any((hpctrack_root / "sweeps").glob("*"))


@pytest.mark.parametrize("k", ["0", "-3"])
def test_runs_per_task_below_one_is_refused(hpctrack_root, k):
    """runs_per_task=0 was taken for 1 without a word."""
    proc = run_cli("launch", "--backend", "slurm", str(SCRIPTS / "sleepy.py"), "+i=range(2)",
                   f"hydra.launcher.runs_per_task={k}", "--dry-run")  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and f"runs_per_task must be at least 1, got {k}" in lines[0], proc
