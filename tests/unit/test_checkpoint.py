"""Checkpoints: atomic save, keep the newest K, restore; attempts of one run and their metrics."""

from __future__ import annotations

import os

import pytest

import hpctrack
from hpctrack.run import Checkpoints


def test_save_keeps_the_newest_k_and_restore_returns_the_latest(hpctrack_root, tmp_path):
    with hpctrack.start_run({}) as run:
        assert run.restore_checkpoint() is None  # a fresh start
        for epoch in range(4):
            run.log({"loss": 1.0 / (epoch + 1)}, step=epoch)
            run.save_checkpoint({"epoch": epoch, "weights": [epoch] * 3}, keep=2)
        names = sorted(p.name for p in (run.run_dir / "checkpoints").iterdir())
        assert names == ["000003", "000004"]
        latest = run._checkpoints.latest()
        assert latest.step == 3 and latest.load() == {"epoch": 3, "weights": [3, 3, 3]}
        # The metrics were flushed before the checkpoint appeared.
        assert run._store.read().metrics["loss"].count == 4
        run.flush()  # the newest checkpoint is named in the run's status from the next flush on
        assert run._store.read().status["checkpoint"]["step"] == 3


def test_checkpoint_directory_with_user_files_and_a_failed_block(hpctrack_root, tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    with hpctrack.start_run({}) as run:
        run.save_checkpoint(files=[model], step=7)
        with pytest.raises(RuntimeError):
            with run.checkpoint(step=8) as directory:
                (directory / "half.bin").write_bytes(b"x")
                raise RuntimeError("the framework crashed mid-save")
        latest = run.latest_checkpoint()
        assert latest.step == 7 and (latest.path / "model.bin").read_bytes() == b"weights"
        assert latest.load() is None  # files only
        assert not [p for p in (run.run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp")]


def test_a_killed_checkpoint_leaves_the_previous_one(tmp_path):
    ckpts = Checkpoints(tmp_path / "checkpoints")
    with ckpts.writing(step=1, attempt=1, state={"a": 1}, keep=2):
        pass
    # What a writer killed before the rename leaves: a temporary directory, never a numbered one.
    (tmp_path / "checkpoints" / ".tmp-dead").mkdir()
    (tmp_path / "checkpoints" / ".tmp-dead" / "state.pkl").write_bytes(b"torn")
    assert ckpts.latest().load() == {"a": 1}
    with ckpts.writing(step=2, attempt=2, state={"a": 2}, keep=2):
        pass
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["000001", "000002"]  # the leftover is gone


def test_reopened_run_is_the_next_attempt_and_supersedes_from_its_checkpoint(hpctrack_root, tmp_path):
    import time

    from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id
    from hpctrack.run import open_job_run

    manifest = create_sweep(hpctrack_root, Manifest(id=new_sweep_id(), created=time.time(), backend="local",
                                                    store="zarr", jobs=[JobRecord(0, [], "runs/0")]))  # fmt: skip
    run = open_job_run(manifest.path, 0)
    for step in range(6):
        run.log({"loss": float(step)}, step=step)
        if step == 2:
            run.save_checkpoint({"step": step})
    run.flush()
    run._flusher.stop()  # the process dies here without finishing: attempt 1 never records its end
    run._release_lease()  # (a dead process's writer lease is broken at once on its host)
    import atexit

    atexit.unregister(run._at_exit)  # (nor does a dead process run its exit handlers)
    hpctrack.run._current = None

    again = open_job_run(manifest.path, 0)
    assert again.attempt == 2 and again.restore_checkpoint() == {"step": 2}
    for step in range(3, 5):
        again.log({"loss": 10.0 + step})  # step omitted: continues after the checkpoint
    again.finish()
    record = again._store.read()
    assert [a["attempt"] for a in record.status["attempts"]] == [1, 2]
    assert "ended without recording its end" in record.status["attempts"][0]["outcome"]
    assert record.status["attempts"][1]["restart_step"] == 3
    history = again._store.read_history("loss")
    assert history.step.tolist() == [0, 1, 2, 3, 4]
    assert history.value.tolist() == [0.0, 1.0, 2.0, 13.0, 14.0]
    assert history.attempt.tolist() == [1, 1, 1, 2, 2]
    assert record.metrics["loss"].count == 5 and record.metrics["loss"].max == 14.0
    assert again._store.read_history("loss", raw=True).step.tolist() == [0, 1, 2, 3, 4, 5, 3, 4]


def test_a_checkpoint_names_its_files_with_size_and_sha256(hpctrack_root, tmp_path):
    import hashlib
    import json

    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 100)
    with hpctrack.start_run({}) as run:
        path = run.save_checkpoint({"epoch": 1}, files=[model], step=3)
        with run.checkpoint(step=4) as directory:
            (directory / "sub").mkdir()
            (directory / "sub" / "opt.bin").write_bytes(b"opt")
    meta = json.loads((path / "checkpoint.json").read_text())
    assert meta["format_version"] == 2 and sorted(meta["files"]) == ["model.bin", "state.pkl"]
    for name, entry in meta["files"].items():
        data = (path / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    latest = run._checkpoints.latest()
    assert sorted(latest.files) == ["sub/opt.bin"] and latest.problems() == []
    (latest.path / "sub" / "opt.bin").write_bytes(b"OPT")  # damaged since: same size, other bytes
    assert latest.problems() == [
        f"{latest.path / 'sub' / 'opt.bin'}: content differs from when it was written (sha256)"
    ]


def test_a_checkpoint_from_before_the_files_map_still_loads(tmp_path):
    import json
    import pickle

    old = tmp_path / "checkpoints" / "000001"
    old.mkdir(parents=True)
    (old / "state.pkl").write_bytes(pickle.dumps({"epoch": 7}))
    (old / "checkpoint.json").write_text(json.dumps({"step": 7, "attempt": 1, "time": 1.0, "state": True}))
    latest = Checkpoints(tmp_path / "checkpoints").latest()
    assert latest.load() == {"epoch": 7} and latest.files is None and latest.problems() == []


def test_a_checkpoint_whose_store_is_gone_is_refused_not_restored_into_a_gap(hpctrack_root, tmp_path):
    # The store was deleted after attempt 1 checkpointed at step 2; a requeued attempt (e.g. SLURM's own
    # after a time limit) must not continue at step 3 in a fresh store: steps 0-2 would be missing.
    import atexit
    import shutil
    import time

    from hpctrack.errors import StoreError
    from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id
    from hpctrack.run import open_job_run

    manifest = create_sweep(hpctrack_root, Manifest(id=new_sweep_id(), created=time.time(), backend="local",
                                                    store="hdf5", jobs=[JobRecord(0, [], "runs/0")]))  # fmt: skip
    run = open_job_run(manifest.path, 0)
    for step in range(3):
        run.log({"loss": float(step)}, step=step)
    run.save_checkpoint({"step": 2})
    run.finish()
    run_dir = manifest.run_path(0)
    for path in run_dir.iterdir():
        if path.name.startswith("run."):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    again = open_job_run(manifest.path, 0)
    try:
        with pytest.raises(StoreError, match="--include-lost") as err:
            again.restore_checkpoint()
        assert "\n" not in str(err.value) and "steps 0-2" in str(err.value)
    finally:
        again._flusher.stop()
        again._release_lease()
        atexit.unregister(again._at_exit)
        hpctrack.run._current = None
