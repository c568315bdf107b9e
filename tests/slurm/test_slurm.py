"""Sweeps on the real SLURM test cluster (slurmctld + slurmd + slurmdbd from slurm/up.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SCRIPTS, error_lines, run_cli
from slurm_helpers import status_json, wait_final, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
SLEEPY = str(SCRIPTS / "sleepy.py")


def launch(root: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli("launch", "--backend", "slurm", "--root", root, SLEEPY, *args)


@pytest.fixture(scope="module")
def timeout_sweep(slurm_root: str) -> str:
    """Submitted first: SLURM checks time limits every 30 s, so this one takes 60-90 s.

    Automatic requeue off (``max_requeues=0``): the job runs into its limit and ends as TIMEOUT.
    The time-limit signal comes 30 s before the limit, well after the job installed its handler
    (with a delay as long as the limit, it came at once and killed the job before that: FAILED).
    """
    proc = launch(slurm_root, "--name", "too-long", "--time", "1", "steps=100000", "sleep_s=0.5",
                  "hydra.launcher.max_requeues=0", "hydra.launcher.signal_delay_s=30")
    assert proc.returncode == 0, proc.stderr
    return "too-long"


def test_ten_jobs_are_one_array_with_parallelism_two(slurm_root, timeout_sweep):
    proc = launch(slurm_root, "--name", "ten", "--parallel", "2", "x=range(10)", "steps=3", "sleep_s=0.3")
    returned = time.time()
    assert proc.returncode == 0, proc.stderr
    assert "queued as SLURM job array" in proc.stdout
    status = status_json(slurm_root, "ten")
    arrays = {j["job_id"].split("_")[0] for j in status["jobs"]}
    assert len(arrays) == 1 and sorted(int(j["job_id"].split("_")[1]) for j in status["jobs"]) == list(range(10))
    (array,) = arrays
    shown = subprocess.run(["scontrol", "show", "job", array], capture_output=True, text=True).stdout
    assert "ArrayTaskThrottle=2" in shown
    status = wait_final(slurm_root, "ten")
    assert status["summary"] == "10 jobs: 10 COMPLETED"
    assert _last_end(slurm_root, "ten") > returned  # it returned once queued, before the jobs were done
    rows = json.loads(run_cli("table", "ten", "--format", "json", "--root", slurm_root, check=True).stdout)
    assert [r["x"] for r in rows] == list(range(10))
    assert [r["final"] for r in rows] == [10.0 * x for x in range(10)]
    assert all(r["loss:last"] == pytest.approx(1 / 3) and r["state"] == "COMPLETED" for r in rows)
    # each run records its SLURM identity
    info = _run_info(slurm_root, "ten", 3)["slurm"]
    assert info["array_job_id"] == array and info["array_task_id"] == "3"
    assert info["partition"] == "debug" and info["nodelist"] and Path(info["stdout"]).is_file()
    assert info["requested"]["array_parallelism"] == 2


def _last_end(root: str, ref: str) -> float:
    """When the sweep's last run ended (the runs' own records)."""
    import hpctrack

    sweep = hpctrack.load_sweep(ref, root=root)
    return max(float(sweep.run(j.index).status["end_time"]) for j in sweep.manifest.jobs)


def _run_info(root: str, ref: str, index: int) -> dict:
    code = ("import hpctrack, json, sys; "
            f"print(json.dumps(hpctrack.load_sweep({ref!r}, root={root!r}).run({index}).info))")
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def test_failed_job_shows_failed_with_its_error_line(slurm_root):
    assert launch(slurm_root, "--name", "fails", "fail_at=null,1", "steps=3").returncode == 0
    jobs = {j["overrides"][0]: j for j in wait_final(slurm_root, "fails")["jobs"]}
    assert jobs["fail_at=1"]["state"] == "FAILED"
    assert jobs["fail_at=1"]["error"] == "RuntimeError: failing on purpose at step 1"
    assert jobs["fail_at=null"]["state"] == "COMPLETED"
    human = run_cli("status", "fails", "--root", slurm_root, check=True).stdout
    assert "failing on purpose at step 1" in human and "1 COMPLETED, 1 FAILED" in human
    # gc removes submitit's pickles and the array's sbatch script, keeps the logs
    sweep_dir = Path(status_json(slurm_root, "fails")["path"])
    assert run_cli("gc", "fails", "--root", slurm_root, check=True).stdout.startswith("removed 5 files")
    left = sorted(p.name for p in (sweep_dir / "logs").rglob("*") if p.is_file())
    assert left and all(name.endswith(("_log.out", "_log.err")) for name in left)
    assert status_json(slurm_root, "fails")["summary"] == "2 jobs: 1 COMPLETED, 1 FAILED"


def test_cancel_pending_then_all(slurm_root):
    assert launch(slurm_root, "--name", "cancel-me", "--parallel", "1", "x=1,2,3", "steps=100000",
                  "sleep_s=0.5").returncode == 0
    wait_until(slurm_root, "cancel-me", lambda s: s["jobs"][0]["state"] == "RUNNING" and s["jobs"][0]["last_step"])
    out = run_cli("cancel", "cancel-me", "--state", "PENDING", "--root", slurm_root, check=True).stdout
    assert out.strip() == "cancelled 2 jobs: 1,2"
    status = wait_until(slurm_root, "cancel-me",
                        lambda s: [j["state"] for j in s["jobs"]][1:] == ["CANCELLED", "CANCELLED"])
    assert status["jobs"][0]["state"] == "RUNNING"
    run_cli("cancel", "cancel-me", "--root", slurm_root, check=True)
    status = wait_final(slurm_root, "cancel-me", timeout_s=120)
    assert [j["state"] for j in status["jobs"]] == ["CANCELLED"] * 3
    assert run_cli("cancel", "cancel-me", "--root", slurm_root, check=True).stdout.strip() == "nothing to cancel"


def test_a_refused_submission_is_one_clear_line_and_nothing_is_submitted(slurm_root):
    # More memory than the node has: sbatch refuses the arrays (a partition it lacks is refused before, by hpctrack)
    proc = launch(slurm_root, "--name", "badpart", "--mem-gb", "100000", "x=1,2")
    assert proc.returncode == 1
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("Error: sbatch refused the sweep: Memory specification can not be satisfied")
    assert errors[0].endswith("(nothing was submitted)")
    assert "Traceback" not in proc.stderr
    status = status_json(slurm_root, "badpart")
    assert status["note"].startswith("submission failed: sbatch refused")
    assert all(j["state"] == "CANCELLED" and j["job_id"] is None for j in status["jobs"])
    assert status["incomplete"] == {"0": "CANCELLED", "1": "CANCELLED"}

    # The refused launch is resumed with memory the node has: the same two runs, as one array.
    out = run_cli("resume", "badpart", "--mem-gb", "0.25", "--root", slurm_root, check=True).stdout
    assert "resumed 2 jobs of sweep" in out and "mem_gb=0.25" in out
    status = wait_final(slurm_root, "badpart")
    assert [j["state"] for j in status["jobs"]] == ["COMPLETED", "COMPLETED"] and status["incomplete"] == {}
    assert len({j["job_id"].split("_")[0] for j in status["jobs"]}) == 1
    assert "nothing to resume" in run_cli("resume", "badpart", "--root", slurm_root, check=True).stdout


def test_bad_time_format_is_refused_before_submission(slurm_root):
    proc = launch(slurm_root, "--time", "soon", "x=1")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == ["Error: bad time 'soon': use MM, HH:MM:SS or D-HH:MM:SS (SLURM's --time format)"]


def test_sweep_larger_than_max_array_size_is_split(slurm_root):
    limit = int(subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
                .stdout.split("MaxArraySize", 1)[1].split("=", 1)[1].split()[0])
    n = limit + 4
    assert launch(slurm_root, "--name", "split", f"x=range({n})", "steps=1").returncode == 0
    status = wait_final(slurm_root, "split", timeout_s=300)
    assert status["summary"] == f"{n} jobs: {n} COMPLETED"
    arrays = sorted({j["job_id"].split("_")[0] for j in status["jobs"]}, key=int)
    assert len(arrays) == 2
    assert [j["job_id"] for j in status["jobs"]][limit] == f"{arrays[1]}_0"


@pytest.mark.parametrize("pack", ["serial", "parallel"])
def test_runs_per_task_packs_runs_into_array_tasks(slurm_root, pack):
    name = f"packed-{pack}"
    proc = launch(slurm_root, "--name", name, "x=range(7)", "steps=2", "hydra.launcher.runs_per_task=3",
                  f"hydra.launcher.pack={pack}", "hydra.launcher.cpus_per_task=2")
    assert proc.returncode == 0, proc.stderr
    status = wait_final(slurm_root, name)
    assert status["summary"] == "7 jobs: 7 COMPLETED"
    tasks = [j["job_id"] for j in status["jobs"]]
    assert len(set(tasks)) == 3 and tasks[0] == tasks[2] != tasks[3]
    rows = json.loads(run_cli("table", name, "--format", "json", "--root", slurm_root, check=True).stdout)
    assert [r["final"] for r in rows] == [10.0 * x for x in range(7)]


def test_hydra_plugin_path_returns_once_queued(slurm_root, tmp_path):
    proc = subprocess.run([sys.executable, SLEEPY, "-m", "hydra/launcher=hpctrack_slurm", "hydra.launcher.name=plug",
                           f"hydra.launcher.root={slurm_root}", "x=5,6", "steps=2", "sleep_s=1",
                           f"hydra.sweep.dir={tmp_path / 'mr'}"], capture_output=True, text=True, timeout=120)
    returned = time.time()
    assert proc.returncode == 0, proc.stderr
    assert wait_final(slurm_root, "plug")["summary"] == "2 jobs: 2 COMPLETED"
    assert _last_end(slurm_root, "plug") > returned  # it returned once queued, before the jobs were done


def test_status_asks_sacct_once_and_falls_back_to_squeue(slurm_root, tmp_path, monkeypatch):
    assert launch(slurm_root, "--name", "probe", "x=range(4)", "steps=2").returncode == 0
    real = subprocess.run(["bash", "-c", "command -v sacct"], capture_output=True, text=True).stdout.strip()
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "calls.log"
    # A pass-through wrapper: it records each call, then runs the real sacct.
    (shim / "sacct").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    (shim / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    status_json(slurm_root, "probe")  # nothing learned yet: one call for the whole sweep
    assert len(log.read_text().splitlines()) == 1
    wait_final(slurm_root, "probe")
    # The runs' own end records may show them ended before SLURM's accounting does (it lags under
    # load): statuses ask until SLURM gives its final word for every job; from then on it is not asked.
    deadline = time.time() + 120
    while True:
        calls = len(log.read_text().splitlines())
        status_json(slurm_root, "probe")
        if len(log.read_text().splitlines()) == calls or time.time() > deadline:
            break
        time.sleep(1)
    for _ in range(2):
        status = status_json(slurm_root, "probe")
        assert status["summary"] == "4 jobs: 4 COMPLETED" and status["note"] is None
    assert len(log.read_text().splitlines()) == calls
    # Accounting down: status says so and still knows the states from squeue and the runs.
    (shim / "sacct").write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    assert launch(slurm_root, "--name", "noacct", "x=1,2", "steps=100000", "sleep_s=0.5").returncode == 0
    status = wait_until(slurm_root, "noacct", lambda s: any(j["state"] == "RUNNING" for j in s["jobs"]))
    assert "sacct unavailable" in status["note"] and "squeue" in status["note"]
    run_cli("cancel", "noacct", "--root", slurm_root, check=True)


def test_watch_refreshes_until_every_job_has_ended(slurm_root):
    assert launch(slurm_root, "--name", "watched", "x=1,2", "steps=3", "sleep_s=0.5").returncode == 0
    proc = subprocess.run([sys.executable, "-m", "hpctrack", "status", "watched", "--watch", "--interval", "1",
                           "--root", slurm_root], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0
    assert "2 jobs: 2 COMPLETED" in proc.stdout


def test_job_over_its_time_limit_shows_timeout(slurm_root, timeout_sweep):
    status = wait_final(slurm_root, timeout_sweep, timeout_s=300)
    (job,) = status["jobs"]
    assert job["state"] == "TIMEOUT"
    assert job["last_step"] and job["last_step"] > 10  # its metrics were flushed before the kill


def test_a_cancelled_job_stops_at_once_and_never_records_itself_completed(slurm_root):
    """SLURM's SIGTERM alone is bypassed by submitit: the job trained on until KillWait and could end COMPLETED."""
    assert launch(slurm_root, "--name", "stop-now", "x=1", "steps=16", "sleep_s=0.5").returncode == 0
    wait_until(slurm_root, "stop-now", lambda s: s["jobs"][0]["state"] == "RUNNING" and s["jobs"][0]["last_step"])
    run_cli("cancel", "stop-now", "--root", slurm_root, check=True)
    status = wait_final(slurm_root, "stop-now", timeout_s=120)
    (job,) = status["jobs"]
    assert job["state"] == "CANCELLED", job
    assert job["last_step"] < 15  # stopped between two steps, not at KillWait's end (8 s of steps, KillWait 5 s)
    record = json.loads(run_cli("show", "stop-now/0", "--format", "json", "--root", slurm_root, check=True).stdout)
    assert record["status"]["state"] != "completed"
