"""A job's files and store, end to end through `hpctrack launch`: each job keeps its own files, and
a store damaged under a running job fails that job, keeps what it held, and never spreads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SCRIPTS, run_cli

import hpctrack
from hpctrack import endrecord
from hpctrack._recovery import read_recovery, recovery_path
from hpctrack.locking import lock
from hpctrack.store import open_store

pytestmark = pytest.mark.e2e


def test_every_job_runs_in_its_own_directory_and_keeps_its_own_files(hpctrack_root, tmp_path):
    proc = run_cli(
        "launch", "--parallel", "4", "--name", "own", str(SCRIPTS / "own_files.py"), "x=0,1,2,3", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 jobs: 4 COMPLETED" in proc.stdout
    sweep = hpctrack.load_sweep("own")
    for job in sweep.manifest.jobs:
        x = int(job.overrides[0].split("=")[1])
        run_dir = sweep.manifest.run_path(job.index)
        assert (run_dir / "artifacts" / "weights.txt").read_text() == f"job x={x}\n", job.index
        record = sweep.run(job.index)
        assert record.summary["in_run_dir"] is True
        # Hydra's view of the launch directory is unchanged
        assert record.summary["launch_dir"] == str(tmp_path)
        assert record.summary["absolute"] == str(tmp_path / "data.csv")
    assert not (tmp_path / "weights.txt").exists()

    # hydra.job.chdir=false, said explicitly, keeps the launch directory
    proc = run_cli(
        "launch",
        "--name",
        "shared",
        str(SCRIPTS / "own_files.py"),
        "x=7",
        "sleep_s=0",
        "hydra.job.chdir=false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "weights.txt").read_text() == "job x=7\n"
    assert hpctrack.load_sweep("shared").run(0).summary["in_run_dir"] is False


def test_a_plain_run_says_where_it_was_recorded(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "sleepy.py"), "steps=2", f"hydra.run.dir={tmp_path}/out"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    sweep = hpctrack.load_sweep("latest")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("hpctrack: ")]
    assert lines == [f"hpctrack: recording run {sweep.manifest.id}/0 in {sweep.manifest.run_path(0)}"]


# -- a store damaged under a running job ------------------------------------------------------------


def _wait_for_points(run_dir: Path, store: str, at_least: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            record = open_store(run_dir, store).read()
            if record.metrics.get("loss") is not None and record.metrics["loss"].count >= at_least:
                return
        except hpctrack.HpctrackError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the job never stored {at_least} points")


def _wait_ended(ref: str, timeout_s: float = 120) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        manifest = hpctrack.load_sweep(ref).manifest
        if manifest.jobs[0].state.is_final:
            return json.loads(run_cli("status", ref, "--format", "json", check=True).stdout)
        time.sleep(0.3)
    raise AssertionError("the job never ended")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damage(store_path: Path, how: str) -> dict:
    """Damage the store as a user or another program would, under the run's lock (between two
    flushes of the writer); returns what the intact parts looked like."""
    kept: dict = {}
    with lock(store_path.with_name(store_path.name + ".lock")):
        if store_path.suffix == ".h5":
            current = store_path.parent / os.readlink(store_path)
            spares = [p for p in store_path.parent.glob("run.*.h5") if p.name != current.name]
            kept = {p.name: _sha(p) for p in spares}
            if how == "truncate":
                os.truncate(store_path, store_path.stat().st_size // 2)  # through the link, as `truncate` does
            else:
                store_path.unlink()
        elif how == "truncate-shard":
            shard = next((store_path / "step").glob("c.*"))
            os.truncate(shard, shard.stat().st_size // 2)
        elif how == "truncate-record":
            os.truncate(store_path / "zarr.json", 10)
        else:
            shutil.rmtree(store_path)
    return kept


@pytest.mark.parametrize(
    "store,how",
    [
        ("hdf5", "truncate"),
        ("hdf5", "delete"),
        ("zarr", "truncate-shard"),
        ("zarr", "truncate-record"),
        ("zarr", "delete"),
    ],
)
def test_a_store_damaged_under_a_running_job_fails_it_and_nothing_spreads(hpctrack_root, tmp_path, store, how):
    name = f"damaged-{store}-{how}"
    proc = run_cli(
        "launch",
        "--detach",
        "--name",
        name,
        "--store",
        store,
        str(SCRIPTS / "sleepy.py"),
        "steps=60",
        "sleep_s=0.1",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = hpctrack.load_sweep(name).manifest
    run_dir = manifest.run_path(0)
    store_path = open_store(run_dir, store).path
    _wait_for_points(run_dir, store, 5)
    kept = _damage(store_path, how)

    status = _wait_ended(name)
    job = status["jobs"][0]
    assert job["state"] == "FAILED", job
    end = endrecord.read(run_dir)
    assert end["state"] == "failed" and "changed under its writer" in end["error"], end
    assert "\n" not in end["error"]
    # What the run held when it stopped writing is kept beside it.
    recovery = read_recovery(recovery_path(run_dir, 1))
    assert "changed under its writer" in recovery["header"]["reason"]
    assert recovery["sections"]["params"]["steps"] == 60
    held = recovery["metrics"].get("loss", {"step": []})["step"]
    assert held == sorted(held) and (not held or held[-1] < 60)
    # Nothing was spread: the HDF5 spare copy is exactly as it was, and whole.
    for spare, digest in kept.items():
        assert _sha(run_dir / spare) == digest, spare
        import h5py

        with h5py.File(run_dir / spare, "r", locking=False) as f:
            stored = json.loads(f["stats"].asstr()[()])["metrics"]["loss"]["count"]
        assert stored >= 5
        assert not held or held[0] >= stored  # the held points are the ones after it
    if how == "delete":
        assert not store_path.exists()  # no new, empty store in its place
