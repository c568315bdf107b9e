"""Provenance recorded with no user code: git state, environment without secrets, `show` and `diff`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SCRIPTS, run_cli

pytestmark = pytest.mark.e2e


def _repo(tmp_path):
    """A git repository holding a copy of the sleepy test script, committed, then edited."""
    repo = tmp_path / "project"
    shutil.copytree(SCRIPTS, repo, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        ["git", "commit", "-q", "-m", "first"],
        ["git", "remote", "add", "origin", "https://alice:hunter2@example.org/alice/project.git"],
    ):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    conf = repo / "conf" / "sleepy.yaml"
    conf.write_text(conf.read_text().replace("steps: 3", "steps: 2"))  # an uncommitted change
    (repo / "notes.txt").write_text("untracked")
    return repo, commit


def test_git_state_and_environment_are_recorded_without_secrets(hpctrack_root, tmp_path, monkeypatch):
    repo, commit = _repo(tmp_path)
    monkeypatch.setenv("HPCTRACK_API_TOKEN", "s3cret-token")  # allowlisted prefix, secret-looking name
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-key")  # not allowlisted
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    proc = run_cli("launch", str(repo / "sleepy.py"), "x=1,2", "--name", "prov", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(run_cli("show", "prov/0", "--format", "json", check=True).stdout)
    git = data["provenance"]["git"]
    assert git["commit"] == commit and git["branch"] in ("master", "main") and git["dirty"] is True
    assert "-steps: 3" in git["diff"] and "+steps: 2" in git["diff"] and git["diff_cap_bytes"] == 256 * 1024
    assert git["untracked"] == ["notes.txt"]
    assert git["remote"] == "https://example.org/alice/project.git"  # credentials stripped
    text = json.dumps(data)
    assert "s3cret" not in text and "hunter2" not in text
    prov = data["provenance"]
    assert prov["environment"]["OMP_NUM_THREADS"] == "1"
    assert any(p.startswith("h5py==") for p in prov["packages"]) and prov["python"]["version"]
    assert prov["hostname"] and prov["cpu_count"] >= 1 and prov["capture_s"] < 1.0
    assert data["config_yaml"].startswith("x: 1\n") and data["job"]["overrides"] == ["x=1"]

    shown = run_cli("show", "prov/1", check=True).stdout
    assert commit in shown and "uncommitted changes" in shown and "attempts:" in shown
    diff = run_cli("diff", "prov/0", "prov/1", check=True).stdout
    assert "config:" in diff and "x: 1 -> 2" in diff
    result = json.loads(run_cli("diff", "prov/0", "prov/1", "--format", "json", check=True).stdout)
    assert result["config"] == {"x": [1, 2]} and result["code"] == {} and result["packages"] == {}
    assert run_cli("show", "prov", check=True).stdout.startswith("sweep ")  # a sweep alone: the sweep
    bad = run_cli("show", "prov/7")
    assert bad.returncode == 1 and "has jobs 0-1; no job 7" in bad.stderr


def test_a_machine_without_git_still_runs_and_says_so(hpctrack_root, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"  # PATH with python but no git
    bin_dir.mkdir()
    import sys

    (bin_dir / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bin_dir))
    proc = run_cli("launch", str(SCRIPTS / "sleepy.py"), "x=1", "--name", "nogit", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(run_cli("show", "nogit/0", "--format", "json", check=True).stdout)
    assert data["job"]["state"] == "COMPLETED"
    assert data["provenance"]["git"] == {"available": False, "reason": "no git: the git command was not found"}
    assert data["provenance"]["not_captured"]["git"].startswith("no git")


def test_rerun_at_commit_reproduces_the_numbers(hpctrack_root, tmp_path):
    from conftest import EXAMPLE

    repo = tmp_path / "digits"
    shutil.copytree(EXAMPLE.parent, repo, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-q", "-m", "digits"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    conf = repo / "conf" / "config.yaml"
    conf.write_text(conf.read_text().replace("hidden: 64", "hidden: 32"))  # uncommitted: part of the run
    proc = run_cli("launch", str(repo / "train.py"), "epochs=3", "seed=2", "--name", "orig", "--no-progress",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The code moves on after the run: a rerun of the current code gives other numbers, and says so.
    model = repo / "model.py"
    model.write_text(model.read_text() + "\n\nOPTIMIZERS = OPTIMIZERS  # touched after the run\n")
    conf.write_text(conf.read_text().replace("hidden: 32", "hidden: 16"))
    plain = run_cli("rerun", "orig/0", "--no-progress", cwd=tmp_path)
    assert plain.returncode == 0 and "warning: the current code is not the run's" in plain.stderr
    again = run_cli("rerun", "orig/0", "--at-commit", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "warning" not in again.stderr

    import hpctrack
    from hpctrack.sweep import list_sweeps

    orig, exact = hpctrack.load_sweep("orig"), hpctrack.load_sweep("rerun-orig-0")  # the newest of that name
    assert exact.history("val/acc").value.tolist() == orig.history("val/acc").value.tolist()  # the recorded code
    assert exact.run(0).summary == orig.run(0).summary and exact.run(0).params["model.hidden"] == 32
    # The plain rerun used the edited config (hidden: 16), and recorded that.
    reruns = [s for s in list_sweeps() if s.manifest.name == "rerun-orig-0"]
    assert sorted(s.run(0).params["model.hidden"] for s in reruns) == [16, 32]


@pytest.mark.parametrize("snapshot", [True, False])
def test_jobs_run_the_code_as_it_was_at_launch(hpctrack_root, tmp_path, snapshot):
    from conftest import EXAMPLE

    import hpctrack

    code = tmp_path / "digits"
    shutil.copytree(EXAMPLE.parent, code, ignore=shutil.ignore_patterns("__pycache__"))
    args = ["launch", str(code / "train.py"), "seed=0,1", "epochs=2", "epoch_sleep_s=1.5", "-j", "1", "--detach",
            "--name", "snap"] + ([] if snapshot else ["--no-code-snapshot"])  # fmt: skip
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    # Edited while job 1 waits for job 0: importing the model now fails.
    (code / "model.py").write_text("raise ImportError('edited after the launch')\n")
    sweep = hpctrack.load_sweep("snap")
    import time

    deadline = time.time() + 120
    while not all(s.state.is_final for s in sweep.status()):
        assert time.time() < deadline
        time.sleep(0.5)
    states = [s.state.value for s in sweep.status()]
    if snapshot:
        assert states == ["COMPLETED", "COMPLETED"]
        manifest = sweep.manifest
        assert manifest.code["source"] == "folder" and manifest.code["files"] >= 3
        assert (Path(manifest.code["path"]) / "model.py").read_text().startswith('"""')  # the launch-time copy
        recorded = sweep.run(1).info["provenance"]["code_snapshot"]
        assert recorded["digest"] == manifest.code["digest"]
    else:
        assert states[1] == "FAILED"  # the control: without a snapshot the edit bites (job 0 may be hit too)
        assert "edited after the launch" in sweep.status()[1].error


def test_a_root_inside_the_repository_does_not_make_every_run_dirty(hpctrack_root, tmp_path):
    repo, commit = _repo(tmp_path)
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=repo, check=True)  # clean again
    (repo / "notes.txt").unlink()
    root = repo / "runs"  # hpctrack's own files under the project: not the user's untracked work
    for name in ("first", "second"):
        proc = run_cli("launch", str(repo / "sleepy.py"), "x=1", "--name", name, "--root", str(root),
                       "--no-progress", cwd=repo)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    git = json.loads(run_cli("show", "second/0", "--format", "json", "--root", str(root), check=True).stdout)[
        "provenance"]["git"]  # fmt: skip
    assert git["commit"] == commit and git["dirty"] is False and git["untracked"] == [], git
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == ""
