"""Sweep manifests: atomic, lock-safe updates and sweep lookup."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from hpctrack.errors import ConfigError, FormatVersionError, SweepNotFoundError
from hpctrack.manifest import (
    JobRecord,
    Manifest,
    create_sweep,
    find_sweep,
    iter_sweep_dirs,
    load_manifest,
    new_sweep_id,
    update_manifest,
)


def _make(root: Path, sweep_id: str, name: str | None = None, created: float | None = None, jobs: int = 2) -> Manifest:
    return create_sweep(
        root,
        Manifest(
            id=sweep_id,
            created=created if created is not None else time.time(),
            backend="local",
            store="hdf5",
            name=name,
            jobs=[JobRecord(index=i, overrides=[f"seed={i}"], run_dir=f"runs/{i}") for i in range(jobs)],
        ),
    )


def test_round_trip_and_run_dirs(tmp_path):
    m = _make(tmp_path, "20260101-000000-aaaa", name="n")
    loaded = load_manifest(m.path)
    assert loaded == m
    assert loaded.run_path(1) == m.path / "runs" / "1" and loaded.run_path(1).is_dir()
    assert json.loads((m.path / "sweep.json").read_text())["format_version"] == 2  # 2: studies (launch --optimize)


def test_create_refuses_an_existing_sweep(tmp_path):
    _make(tmp_path, "20260101-000000-aaaa")
    with pytest.raises(ConfigError, match="already exists"):
        _make(tmp_path, "20260101-000000-aaaa")


def test_newer_format_is_refused(tmp_path):
    m = _make(tmp_path, "20260101-000000-aaaa")
    data = json.loads((m.path / "sweep.json").read_text())
    data["format_version"] = 99
    (m.path / "sweep.json").write_text(json.dumps(data))
    with pytest.raises(FormatVersionError, match="pip install -U hpctrack"):
        load_manifest(m.path)


def test_find_sweep_by_latest_id_prefix_name_and_path(tmp_path):
    old = _make(tmp_path, "20260101-000000-aaaa", name="exp", created=1.0)
    mid = _make(tmp_path, "20260102-000000-bbbb", name="exp", created=2.0)
    # same second as `new`, created earlier: the tie is broken by creation time
    _make(tmp_path, "20260103-000000-ffff", created=3.0)
    new = _make(tmp_path, "20260103-000000-cccc", created=4.0)
    assert find_sweep(tmp_path, "latest") == new.path
    assert find_sweep(tmp_path, "exp") == mid.path  # newest of that name
    assert find_sweep(tmp_path, "20260101") == old.path
    assert find_sweep(tmp_path, str(old.path)) == old.path
    assert [p.name for p in iter_sweep_dirs(tmp_path)][0] == "20260103-000000-ffff"
    with pytest.raises(SweepNotFoundError, match="2 ids start with it"):
        find_sweep(tmp_path, "20260103")
    with pytest.raises(SweepNotFoundError, match="no sweep 'nope'"):
        find_sweep(tmp_path, "nope")


def test_latest_on_an_empty_root_says_what_to_do(tmp_path):
    with pytest.raises(SweepNotFoundError, match="HPCTRACK_ROOT"):
        find_sweep(tmp_path, "latest")


def test_sweep_ids_sort_by_time():
    assert new_sweep_id(1_000_000) < new_sweep_id(2_000_000)


def _bump(sweep_dir: str, times: int) -> None:
    for _ in range(times):

        def change(m: Manifest) -> None:
            m.launcher["count"] = m.launcher.get("count", 0) + 1

        update_manifest(Path(sweep_dir), change)


def test_concurrent_updates_from_processes_lose_nothing(tmp_path):
    m = _make(tmp_path, "20260101-000000-aaaa")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(str(m.path), 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert load_manifest(m.path).launcher["count"] == 100
    leftovers = [p.name for p in m.path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_drawn_id_that_clashes_is_drawn_again(tmp_path, monkeypatch):
    from hpctrack import manifest as manifest_module

    taken = _make(tmp_path, "20260101-000000-aaaa")
    ids = iter(["20260101-000000-aaaa", "20260101-000000-bbbb"])
    monkeypatch.setattr(manifest_module, "new_sweep_id", lambda now=None: next(ids))
    fresh = manifest_module.create_new_sweep(
        tmp_path, Manifest(id=manifest_module.new_sweep_id(), created=time.time(), backend="direct", store="hdf5")
    )
    assert fresh.id == "20260101-000000-bbbb" and load_manifest(taken.path).id == taken.id


def _job_json(i):
    return {"index": i, "overrides": [f"x={i}"], "run_dir": f"runs/{i}", "state": "COMPLETED", "job_id": f"7_{i}",
            "submitted": 1.0, "ended": 2.0, "exit_code": None, "error": None, "cancelled": None, "stdout": None,
            "stderr": None, "history": [], "resources": {}, "code": {}, "process": {},
            "scheduler": {"job_id": f"7_{i}", "state": "COMPLETED"}}  # fmt: skip


@pytest.mark.parametrize("damage", [
    None,
    ("index", 7), ("index", True), ("index", "3"), ("state", "BOGUS"), ("state", 3), ("run_dir", "/abs"),
    ("run_dir", "runs/../../x"), ("run_dir", "runs/a..b"), ("run_dir", 5), ("submitted", True), ("submitted", "1"),
    ("exit_code", 1.5), ("history", {}), ("scheduler", []), ("overrides", "x=1"), ("unknown_key", object),
    ("error", 3), ("job_id", 12), ("ended", None),
    "not a dict", "no run_dir",
])  # fmt: skip
def test_the_bulk_check_of_many_jobs_finds_what_the_job_by_job_walk_finds(damage, monkeypatch):
    import hpctrack.manifest as manifest_module
    from hpctrack.manifest import manifest_problem

    jobs = [_job_json(i) for i in range(3000)]
    if isinstance(damage, tuple):
        jobs[2900][damage[0]] = damage[1] if damage[1] is not object else "kept"
    elif damage == "not a dict":
        jobs[2900] = ["x"]
    elif damage == "no run_dir":
        del jobs[2900]["run_dir"]
    data = {"format_version": 2, "id": "s", "created": 1.0, "backend": "slurm", "store": "hdf5", "jobs": jobs}
    bulk = manifest_problem(data)
    monkeypatch.setattr(manifest_module, "_jobs_look_whole", lambda jobs: False)  # the walk alone
    assert bulk == manifest_problem(data)
    assert (bulk is None) == (damage in (None, ("unknown_key", object), ("ended", None), ("run_dir", "runs/a..b")))
