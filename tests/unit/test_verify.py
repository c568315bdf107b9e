"""`Store.verify`/`Store.repair` and the sweep checks of `hpctrack.verify`, on damage done here."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil

import pytest
from synthetic import index_runs, make_sweep, write_run

from hpctrack.index import INDEX_FILE, read_index
from hpctrack.store import open_store
from hpctrack.verify import repair_sweep, verify_sweep


def _truncate(path, keep=0.3):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("backend", ["hdf5", "zarr"])
def test_healthy_store_verifies_clean(tmp_path, backend):
    manifest = make_sweep(tmp_path, 1, store=backend)
    write_run(manifest, 0, steps=50)
    assert open_store(manifest.run_path(0), backend).verify() == []


def test_hdf5_truncated_current_copy_is_restored_from_the_spare(tmp_path):
    manifest = make_sweep(tmp_path, 1)
    write_run(manifest, 0, steps=50)
    store = open_store(manifest.run_path(0), "hdf5")
    before = store.read()
    current = store.path.resolve()
    _truncate(current)
    problems = store.verify()
    assert problems and "unreadable" in problems[0] and "spare" in " ".join(problems)
    done, cannot = store.repair()
    assert cannot == [] and len(done) == 1 and "spare copy" in done[0]
    assert store.verify() == []
    after = store.read()
    assert after.metrics == before.metrics and after.summary == before.summary
    assert store.read_history("loss").value.tolist() == [1.0 / (s + 1) for s in range(50)]
    # The damaged copy is kept aside, never deleted; generations only grow.
    assert any(p.name.startswith(current.name + ".damaged") for p in current.parent.iterdir())
    assert int(os.readlink(store.path).split(".")[1]) > int(current.name.split(".")[1])
    write_run(manifest, 0, steps=3)  # a writer carries on from the restored store
    assert store.verify() == []


def test_hdf5_deleted_link_is_restored_from_the_newest_intact_copy(tmp_path):
    manifest = make_sweep(tmp_path, 1)
    write_run(manifest, 0, steps=10)
    store = open_store(manifest.run_path(0), "hdf5")
    store.path.unlink()  # `rm run.h5`: the link goes, both copies stay
    assert "run.h5 is missing" in store.verify()[0]
    done, cannot = store.repair()
    assert done and not cannot and store.read().metrics["loss"].count == 10


def test_hdf5_with_no_intact_copy_says_what_cannot_be_repaired(tmp_path):
    manifest = make_sweep(tmp_path, 1)
    write_run(manifest, 0, steps=10)
    store = open_store(manifest.run_path(0), "hdf5")
    for copy in manifest.run_path(0).glob("run.*.h5"):
        _truncate(copy)
    done, cannot = store.repair()
    assert done == [] and cannot and "no intact copy" in cannot[0]
    assert not any(p.name.endswith(".damaged") for p in manifest.run_path(0).iterdir())  # nothing moved


def test_zarr_truncated_shard_is_named_and_cannot_be_repaired(tmp_path):
    manifest = make_sweep(tmp_path, 1, store="zarr")
    write_run(manifest, 0, steps=50)
    store = open_store(manifest.run_path(0), "zarr")
    shard = next((store.path / "value").glob("c.*"))
    _truncate(shard, 0.5)
    problems = store.verify()
    assert problems and "'loss'" in problems[0]
    done, cannot = store.repair()
    assert done == [] and cannot and "no spare copy" in " ".join(cannot)
    assert shard.exists()  # nothing deleted


def test_zarr_truncated_record_is_unreadable(tmp_path):
    manifest = make_sweep(tmp_path, 1, store="zarr")
    write_run(manifest, 0, steps=5)
    store = open_store(manifest.run_path(0), "zarr")
    _truncate(store.path / "zarr.json", 0.5)
    assert "unreadable" in store.verify()[0]


def _checkpoint(run_dir, seq, *, files_map, state=True, extra=b"weights"):
    directory = run_dir / "checkpoints" / f"{seq:06d}"
    directory.mkdir(parents=True)
    meta = {"step": seq, "attempt": 1, "time": 1.0, "state": state}
    if state:
        (directory / "state.pkl").write_bytes(pickle.dumps({"step": seq}))
    (directory / "model.pt").write_bytes(extra)
    if files_map:  # the checkpoint format that lists every file with its size and sha256
        meta["format_version"] = 2
        meta["files"] = {
            p.name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in directory.iterdir()
        }
    (directory / "checkpoint.json").write_text(json.dumps(meta))
    return directory


@pytest.mark.parametrize("files_map", [True, False])
def test_damaged_checkpoint_is_named_and_moved_aside(tmp_path, files_map):
    from hpctrack.run import Checkpoints

    manifest = make_sweep(tmp_path, 1)
    write_run(manifest, 0)
    index_runs(manifest, [0])
    run_dir = manifest.run_path(0)
    _checkpoint(run_dir, 1, files_map=files_map)
    newest = _checkpoint(run_dir, 2, files_map=files_map)
    assert verify_sweep(manifest) == []
    (newest / "state.pkl").unlink()
    problems = verify_sweep(manifest)
    assert [p.job for p in problems] == [0] and "checkpoints/000002" in problems[0].what
    assert "state.pkl" in problems[0].what
    report = repair_sweep(manifest)
    assert report.cannot == [] and any("checkpoints/000002" in line for line in report.done)
    assert verify_sweep(manifest) == []
    assert Checkpoints(run_dir / "checkpoints").latest().seq == 1
    assert any(p.name.startswith("damaged-000002") for p in (run_dir / "checkpoints").iterdir())


def test_checkpoint_file_changed_or_missing_is_caught_by_its_map(tmp_path):
    manifest = make_sweep(tmp_path, 1)
    write_run(manifest, 0)
    index_runs(manifest, [0])
    newest = _checkpoint(manifest.run_path(0), 1, files_map=True)
    (newest / "model.pt").write_bytes(b"weightz")  # same size, other bytes
    assert "model.pt" in verify_sweep(manifest)[0].what
    (newest / "model.pt").unlink()
    assert "model.pt" in verify_sweep(manifest)[0].what


def test_torn_and_wrongly_typed_index_lines_are_named_and_rebuilt(tmp_path):
    manifest = make_sweep(tmp_path, 2)
    for i in range(2):
        write_run(manifest, i)
    index_runs(manifest, range(2))
    with open(manifest.path / INDEX_FILE, "a") as fh:
        fh.write(json.dumps({"v": 1, "job": 1, "status": {"state": "BOGUS"}, "metrics": "x"}) + "\n")
        fh.write('{"v": 1, "job": 0, "stat')
    problems = verify_sweep(manifest)
    assert [p.job for p in problems] == [None, None]
    assert "line 3" in problems[0].what and "line 4" in problems[1].what and "torn" in problems[1].what
    report = repair_sweep(manifest)
    assert report.cannot == [] and verify_sweep(manifest) == []
    assert sorted(read_index(manifest.path)) == [0, 1]


def test_index_that_disagrees_with_its_store_is_named(tmp_path):
    manifest = make_sweep(tmp_path, 1)
    write_run(manifest, 0)
    index_runs(manifest, [0])
    write_run(manifest, 0, steps=9)  # the store changed after its line was written
    problems = verify_sweep(manifest)
    assert len(problems) == 1 and "index" in problems[0].what
    repair_sweep(manifest)
    assert verify_sweep(manifest) == []


@pytest.mark.parametrize("backend", ["hdf5", "zarr"])
def test_deleted_store_is_named_and_kept_in_the_index_as_lost(tmp_path, backend):
    from hpctrack.index import rebuild_index

    manifest = make_sweep(tmp_path, 2, store=backend)
    for i in range(2):
        write_run(manifest, i)
    index_runs(manifest, range(2))
    for path in manifest.run_path(1).glob("run*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    problems = verify_sweep(manifest)
    assert [p.job for p in problems] == [1] and "missing" in problems[0].what
    count, lost = rebuild_index(manifest.path)
    assert count == 1 and list(lost) == [1] and "missing" in lost[1]
    assert read_index(manifest.path)[1]["lost"] == lost[1]
    report = repair_sweep(manifest)
    assert report.done == [] and len(report.cannot) == 1 and "--include-lost" in report.cannot[0]
