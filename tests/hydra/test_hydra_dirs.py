"""Hydra's directories under hpctrack's launcher: each job's own, linked with its run both ways."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import SCRIPTS, error_lines, run_cli
from hydra_sweeper import APP


def test_two_jobs_that_would_share_an_output_dir_are_refused_before_anything_runs(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(APP), "--multirun", "hydra/launcher=hpctrack_local", "x=1,2",
         f"hydra.sweep.dir={tmp_path / 'out'}", "hydra.sweep.subdir=same"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "jobs 0 and 1 would share the Hydra output directory" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr  # hpctrack's error, said in one line under Hydra too
    assert "hydra.sweep.subdir=${hydra.job.num}" in proc.stderr
    assert not (hpctrack_root / "sweeps").exists() or not any((hpctrack_root / "sweeps").iterdir())
    # through hpctrack launch: one line, nothing launched
    proc = run_cli("launch", str(APP), "x=1,2", "hydra.sweep.subdir=same", cwd=tmp_path)
    assert proc.returncode != 0
    assert len(error_lines(proc.stderr)) == 1 and "would share the Hydra output directory" in proc.stderr
    assert json.loads(run_cli("ls", "--format", "json", check=True).stdout) == []


def test_the_run_and_its_hydra_output_dir_name_each_other(hpctrack_root, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("launch", "--name", "first", str(APP), "x=1,2", f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = run_cli("show", "first/1", check=True).stdout
    assert f"hydra dir:  {out / '1'}" in shown
    record = json.loads(run_cli("show", "first/1", "--format", "json", check=True).stdout)
    assert record["hydra"]["output_dir"] == str(out / "1") and record["hydra"]["chdir"] is True
    assert json.loads((out / "1" / ".hpctrack_run").read_text())["run_id"] == record["run_id"]
    assert (out / "1" / ".hydra" / "overrides.yaml").is_file()  # Hydra's own record of the job
    assert (hpctrack_root / "sweeps" / record["sweep"]["id"] / "runs" / "1").is_dir()  # the run stays in the root

    # A later sweep in the same directory (Hydra re-uses it): the first run says so
    proc = run_cli("launch", "--name", "second", str(APP), "x=3,4", f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    second = json.loads(run_cli("show", "second/1", "--format", "json", check=True).stdout)["run_id"]
    assert f"(now {second}'s)" in run_cli("show", "first/1", check=True).stdout


def test_hpctrack_launch_keeps_each_jobs_hydra_outputs_in_its_run_dir(hpctrack_root, tmp_path):
    proc = run_cli("launch", "--name", "inside", str(APP), "x=1,2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(run_cli("show", "inside/0", "--format", "json", check=True).stdout)
    assert record["hydra"]["output_dir"] == record["run_dir"]
    assert "hydra dir" not in run_cli("show", "inside/0", check=True).stdout  # the same as dir:
    assert not (tmp_path / "multirun").exists()


def test_a_requeue_of_a_sweep_from_before_keeps_its_jobs_in_their_run_dirs(hpctrack_root, tmp_path):
    """Job functions pickled before Hydra's directories were Hydra's ran every job in its run dir."""
    from hpctrack.formats import dump_job, load_job
    from hpctrack.safefs import PRIVATE_FILE_MODE, write_file

    script = SCRIPTS / "own_files.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--multirun", "hydra/launcher=hpctrack_local", "x=1", "sleep_s=0",
         f"hydra.sweep.dir={tmp_path / 'mr'}", "hydra.launcher.progress=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = json.loads(run_cli("status", "own_files", "--format", "json", check=True).stdout)["path"]
    assert (
        json.loads(run_cli("show", "own_files/0", "--format", "json", check=True).stdout)["summary"]["in_run_dir"]
        is False
    )  # fmt: skip  (Hydra's default since 1.2: the launch directory)
    job_fn = load_job(Path(sweep) / "job.pkl")
    del job_fn.__dict__["job_nums"]  # as pickled by the earlier version
    write_file(Path(sweep) / "job.pkl", dump_job(job_fn), sweep, mode=PRIVATE_FILE_MODE)
    run_cli("requeue", "own_files", "--state", "COMPLETED", "--no-progress", cwd=tmp_path, check=True)
    record = json.loads(run_cli("show", "own_files/0", "--format", "json", check=True).stdout)
    assert record["summary"]["in_run_dir"] is True and record["status"]["attempt"] == 2


def test_a_subdir_of_the_users_own_under_hpctrack_launch_never_lands_in_a_run_dir(hpctrack_root, tmp_path):
    proc = run_cli("launch", "--name", "own", str(APP), "x=1,0", "hydra.sweep.subdir=${x}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for index, x in ((0, 1), (1, 0)):
        record = json.loads(run_cli("show", f"own/{index}", "--format", "json", check=True).stdout)
        sweep = Path(record["sweep"]["path"])
        assert record["hydra"]["output_dir"] == str(sweep / "hydra" / str(x))  # beside the runs
        link = json.loads((sweep / "hydra" / str(x) / ".hpctrack_run").read_text())
        assert link["run_id"] == record["run_id"]
        assert not (Path(record["run_dir"]) / ".hpctrack_run").exists()  # no run dir holds another's outputs
    assert sorted(p.name for p in (sweep / "runs").iterdir() if p.is_dir()) == ["0", "1"]


def test_the_parallel_limit_holds_for_the_sweep_across_batches(hpctrack_root, tmp_path):
    """Hydra's basic sweeper in batches of 2, handed over without waiting: still one job at a time."""
    proc = subprocess.run(
        [sys.executable, str(APP), "--multirun", "hydra/launcher=hpctrack_local", "x=1,2,3,4", "+sleep_s=1",
         "hydra.sweeper.max_batch_size=2", "hydra.launcher.parallel=1", "hydra.launcher.detach=true",
         f"hydra.sweep.dir={tmp_path / 'mr'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    deadline = time.time() + 120
    while True:
        status = json.loads(run_cli("status", "quadratic", "--format", "json", check=True).stdout)
        if all(j["state"] == "COMPLETED" for j in status["jobs"]) or time.time() > deadline:
            break
        time.sleep(1)
    assert status["summary"] == "4 jobs: 4 COMPLETED", status["summary"]
    spans = []
    for index in range(4):
        st = json.loads(run_cli("show", f"quadratic/{index}", "--format", "json", check=True).stdout)["status"]
        spans.append((st["start_time"], st["end_time"]))
    spans.sort()
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans


def test_hpctracks_errors_under_a_plain_hydra_multirun_are_one_line(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(APP), "--multirun", "hydra/launcher=hpctrack_local", "x=1", "hydra.launcher.parallel=0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "hpctrack: parallel must be at least 1, got 0" in proc.stderr


def test_a_failing_job_shows_its_own_traceback_to_hydra(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(APP), "--multirun", "hydra/launcher=hpctrack_local", "x=1,5", "+fail_above=3",
         "hydra.launcher.progress=false", f"hydra.sweep.dir={tmp_path / 'mr'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "ValueError: x=5 is above 3" in proc.stderr
    # where the app raised, not only Hydra's frames
    assert f'File "{APP}", line' in proc.stderr and "in main" in proc.stderr, proc.stderr[-3000:]


def test_hints_name_the_sweep_by_id_when_its_name_finds_a_newer_one(hpctrack_root, tmp_path):
    first = run_cli("launch", str(APP), "x=1,5", "+fail_above=3", cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # a job failed
    older = json.loads(run_cli("status", "quadratic", "--format", "json", check=True).stdout)["sweep"]
    assert "`hpctrack resume quadratic` submits them" in run_cli("status", older, check=True).stdout
    run_cli("launch", str(APP), "x=2", cwd=tmp_path, check=True)  # a newer sweep of the same app
    assert f"`hpctrack resume {older}` submits them" in run_cli("status", older, check=True).stdout
