"""Damaged run data, through the `hpctrack` command: never masked, always named, repaired where it can be.

Each test launches a real sweep, damages it the way users and filesystems do
(a deleted store, a truncated store, a torn index line, a missing checkpoint
file) and checks what every command shows.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import SCRIPTS, run_cli

pytestmark = pytest.mark.e2e
RESUMABLE = SCRIPTS / "resumable.py"


def _status(name: str) -> dict:
    return json.loads(run_cli("status", name, "--format", "json", check=True).stdout)


def _table(name: str) -> "tuple[list, str]":
    proc = run_cli("table", name, "--format", "json", "-m", "loss:last", "-m", "final", check=True)
    return json.loads(proc.stdout), proc.stderr


def _delete_store(run_dir, store: str) -> None:
    for path in run_dir.iterdir():
        if path.name.startswith("run."):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _truncate_store(run_dir, store: str) -> None:
    # HDF5: the copy run.h5 names; Zarr: a shard of the values (its record stays readable).
    target = (run_dir / "run.h5").resolve() if store == "hdf5" else next((run_dir / "run.zarr" / "value").glob("c.*"))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("store", ["hdf5", "zarr"])
def test_damage_is_shown_named_verified_repaired_and_rerun(hpctrack_root, tmp_path, store):
    import hpctrack
    from hpctrack.run import Checkpoints

    name = f"dmg-{store}"
    proc = run_cli("launch", str(RESUMABLE), "x=1,2,3,4", "steps=3", "sleep_s=0", "--store", store, "--name", name,
                   "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = hpctrack.load_sweep(name)
    runs = sweep.path / "runs"
    from hpctrack.index import read_index

    if not all(row.get("fingerprint") for row in read_index(sweep.path).values()):
        # Runs that predate index fingerprints: reindex records them (runs write them at their end).
        assert "indexed 4 ended runs" in run_cli("reindex", name, check=True).stdout
    before, _ = _table(name)
    assert [r["final"] for r in before] == [10.0, 20.0, 30.0, 40.0]

    _truncate_store(runs / "0", store)  # job 0: a truncated store
    _delete_store(runs / "1", store)  # job 1: a deleted store
    (runs / "2" / "checkpoints" / "000003" / "state.pkl").unlink()  # job 2: a checkpoint file gone
    with open(sweep.path / "index.jsonl", "a") as fh:  # a torn index line
        fh.write('{"v": 1, "job": 3, "stat')

    # status: the lost runs are LOST with the cause, named in a note, never COMPLETED with old numbers.
    status = _status(name)
    states = [j["state"] for j in status["jobs"]]
    assert states == ["LOST", "LOST", "COMPLETED", "COMPLETED"], status
    assert "missing" in status["jobs"][1]["error"]
    assert sorted(status["lost"]) == ["0", "1"]
    human = run_cli("status", name, check=True).stdout
    assert "LOST" in human and "hpctrack verify" in human and "--include-lost" in human

    # table: state LOST, empty cells, and a note naming the runs.
    rows, note = _table(name)
    assert [r["state"] for r in rows] == states
    assert rows[1]["loss:last"] is None and rows[1]["final"] is None and rows[0]["final"] is None
    assert rows[3]["final"] == 40.0
    assert "lost" in note and "job 0" in note and "job 1" in note

    # history and plot name what they skipped.
    history = sweep.history("loss")
    assert sorted(set(history.job)) == [2, 3] and sorted(history.attrs["skipped"]) == [0, 1]
    plot = run_cli("plot", name, "loss", "-o", str(tmp_path / "loss.png"), check=True)
    assert "skipped job 0" in plot.stderr and "skipped job 1" in plot.stderr

    # verify names every damage, one line each, and exits 1.
    verified = run_cli("verify", name)
    assert verified.returncode == 1
    lines = verified.stdout.splitlines()
    assert any(f"{sweep.id}/0:" in line for line in lines), lines
    assert any(f"{sweep.id}/1:" in line and "missing" in line for line in lines), lines
    assert any(f"{sweep.id}/2:" in line and "checkpoints/000003" in line and "state.pkl" in line for line in lines)
    assert any("index.jsonl line" in line and "torn" in line for line in lines), lines

    # reindex keeps every unreadable run, marked, and prints all of them.
    out = run_cli("reindex", name, check=True).stdout
    assert "job 0" in out and "job 1" in out and "LOST" in out
    assert [j["state"] for j in _status(name)["jobs"]] == states

    # resume never reruns lost data by default; it says how.
    dry = run_cli("resume", name, "--dry-run", check=True).stdout
    assert "nothing to resume" in dry and "--include-lost" in dry

    # --repair restores what it can and says what it cannot.
    repaired = run_cli("verify", name, "--repair")
    out = repaired.stdout
    assert repaired.returncode == 1  # job 1's data is gone either way
    assert any(line.startswith("cannot repair") and f"{sweep.id}/1" in line for line in out.splitlines()), out
    assert any(line.startswith("repaired") and f"{sweep.id}/2" in line for line in out.splitlines()), out
    assert Checkpoints(runs / "2" / "checkpoints").latest().seq == 2  # the previous checkpoint is the latest
    if store == "hdf5":  # the intact spare copy comes back
        assert any(line.startswith("repaired") and f"{sweep.id}/0" in line for line in out.splitlines()), out
        assert _status(name)["jobs"][0]["state"] == "COMPLETED"
        assert _table(name)[0][0]["final"] == 10.0
    else:
        assert any(line.startswith("cannot repair") and f"{sweep.id}/0" in line for line in out.splitlines()), out

    # resume --include-lost reruns what is gone, after moving the damaged store aside.
    lost = [0, 1] if store == "zarr" else [1]
    dry = run_cli("resume", name, "--dry-run", "--include-lost", check=True).stdout
    assert f"would resume {len(lost)} job" in dry and "LOST" in dry
    proc = run_cli("resume", name, "--include-lost", "--detach")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for i in lost:
        assert any(p.name.startswith("lost-") for p in (runs / str(i)).iterdir())  # moved aside, not deleted
    deadline_status = _wait_final(name)
    assert [j["state"] for j in deadline_status["jobs"]] == ["COMPLETED"] * 4
    assert [r["final"] for r in _table(name)[0]] == [10.0, 20.0, 30.0, 40.0]
    assert run_cli("verify", name).returncode == 0


def _wait_final(name: str, timeout_s: float = 180) -> dict:
    import time

    deadline = time.time() + timeout_s
    while True:
        status = _status(name)
        if all(j["state"] not in ("PENDING", "RUNNING") for j in status["jobs"]):
            return status
        assert time.time() < deadline, status
        time.sleep(0.5)
