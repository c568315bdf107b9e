"""Which code a job runs: requeue/resume `--code launch|current`, the code of every attempt, `diff` file by file,
and a `rerun --at-commit` worktree that stays clean."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e

TRAIN = '''"""A job with a bug: it crashes at step 1 when x < 3."""
import time

import hydra

import hpctrack
from helper import scale


@hydra.main(config_path="conf", config_name="cfg", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        for step in range(cfg.steps):
            if cfg.x < 3 and step == 1:  # the bug
                raise RuntimeError(f"bug at step {step}")
            run.log({"loss": scale(cfg.x) / (step + 1)}, step=step)
            time.sleep(cfg.sleep_s)


if __name__ == "__main__":
    main()
'''
BUG = "            if cfg.x < 3 and step == 1:  # the bug\n"
FIX = "            if False:  # fixed\n"
HELPER = "def scale(x):\n    return float(x)\n"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})  # fmt: skip
    return proc.stdout


def _project(tmp_path: Path, in_git: bool) -> Path:
    """The user's project: train.py (with the bug), a sibling module, a config; in a git repository or not."""
    project = tmp_path / ("repo" if in_git else "plain")
    (project / "conf").mkdir(parents=True)
    (project / "train.py").write_text(TRAIN)
    (project / "helper.py").write_text(HELPER)
    (project / "conf" / "cfg.yaml").write_text("x: 0\nsteps: 3\nsleep_s: 0.0\n")
    if in_git:
        (project / ".gitignore").write_text("__pycache__/\n")
        _git(project, "init", "-q")
        _git(project, "add", ".")
        _git(project, "commit", "-q", "-m", "first")
    return project


def _status(ref: str) -> dict:
    return json.loads(run_cli("status", ref, "--format", "json", check=True).stdout)


def _show(ref: str) -> dict:
    return json.loads(run_cli("show", ref, "--format", "json", check=True).stdout)


def _warnings(stderr: str) -> list:
    return [line for line in stderr.splitlines() if "--code current" in line]


@pytest.mark.parametrize("in_git", [False, True], ids=["outside-git", "in-git"])
def test_a_requeue_picks_up_a_fix_only_with_code_current(hpctrack_root, tmp_path, in_git):
    import hpctrack

    project = _project(tmp_path, in_git)
    proc = run_cli("launch", str(project / "train.py"), "x=1,2,3", "--name", "crash", "-j", "2", "--no-progress",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [j["state"] for j in _status("crash")["jobs"]] == ["FAILED", "FAILED", "COMPLETED"]
    launched = hpctrack.load_sweep("crash").manifest.code["digest"]

    # The user fixes the bug in the script itself.
    (project / "train.py").write_text(TRAIN.replace(BUG, FIX))
    if in_git:
        _git(project, "commit", "-q", "-am", "fix the bug")

    # By default the sweep stays reproducible: the launch-time code runs again, and the command says so once.
    dry = run_cli("resume", "crash", "--dry-run", check=True)
    assert len(_warnings(dry.stderr)) == 1 and "train.py" in _warnings(dry.stderr)[0], dry.stderr
    proc = run_cli("requeue", "crash")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    warning = _warnings(proc.stderr)
    assert len(warning) == 1 and "train.py" in warning[0], proc.stderr
    jobs = _status("crash")["jobs"]
    assert [j["state"] for j in jobs] == ["FAILED", "FAILED", "COMPLETED"]
    assert "bug at step 1" in jobs[0]["error"] and jobs[0]["attempt"] == 2
    assert [a["code"] for a in _show("crash/0")["attempts"]] == [launched, launched]

    # --code current: a new snapshot for the resubmitted jobs only; they run the fix and complete.
    dry = run_cli("requeue", "crash", "--code", "current", "--dry-run", check=True)
    assert not _warnings(dry.stderr) and "would requeue 2 jobs: 0 (FAILED), 1 (FAILED)" in dry.stdout
    proc = run_cli("requeue", "crash", "--code", "current")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not _warnings(proc.stderr), proc.stderr
    assert [j["state"] for j in _status("crash")["jobs"]] == ["COMPLETED"] * 3
    manifest = hpctrack.load_sweep("crash").manifest
    fixed = manifest.jobs[0].code["digest"]
    assert fixed != launched and manifest.jobs[1].code["digest"] == fixed
    assert manifest.jobs[2].code == {} and manifest.code["digest"] == launched  # the others keep the sweep's
    assert [a["code"] for a in _show("crash/0")["attempts"]] == [launched, launched, fixed]
    assert [a["code"] for a in _show("crash/2")["attempts"]] == [launched]
    shown = run_cli("show", "crash/0", check=True).stdout
    attempt_lines = [line for line in shown.splitlines() if line.strip().startswith(("1:", "2:", "3:"))]
    assert len(attempt_lines) == 3 and f"code {fixed}" in attempt_lines[2] and f"code {launched}" in attempt_lines[0]

    # Tables tell the runs apart: a code column and a note, whatever the output format.
    assert run_cli("rerun", "crash/1", "--no-progress", cwd=tmp_path).returncode == 0  # the current code
    table = run_cli("table", "crash", check=True)
    assert "code" in table.stdout.splitlines()[0] and f"{launched[:8]} -> {fixed[:8]}" in table.stdout
    assert "ran different code" in table.stderr, table.stderr
    rows = json.loads(run_cli("table", "crash", "--format", "json", check=True).stdout)
    assert [r["code"] for r in rows] == [f"{launched[:8]} -> {fixed[:8]}"] * 2 + [launched[:8]]
    grouped = run_cli("table", "crash", "--grouped", check=True)
    assert "code" in grouped.stdout.splitlines()[0] and "ran different code" in grouped.stderr
    compared = run_cli("compare", "crash", "rerun-crash-1", "-m", "loss:last", check=True)
    assert "crash: " in compared.stderr and "ran different code" in compared.stderr, compared.stderr
    same = run_cli("table", "rerun-crash-1", check=True)
    assert "code" not in same.stdout.splitlines()[0] and "different code" not in same.stderr


def test_diff_names_the_files_that_changed_between_two_snapshots(hpctrack_root, tmp_path):
    """The issue's case: a crash of a script outside git, the fix, a rerun; diff said "no difference"."""
    project = _project(tmp_path, in_git=False)
    proc = run_cli("launch", str(project / "train.py"), "x=1", "--name", "crash", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (project / "train.py").write_text(TRAIN.replace(BUG, FIX))
    (project / "notes.md").write_text("fixed the bug\n")
    rerun = run_cli("rerun", "crash/0", "--no-progress", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    diff = run_cli("diff", "crash/0", "rerun-crash-0/0", check=True).stdout
    assert "no difference" not in diff, diff
    assert "2 files differ" in diff and "added  notes.md  (+1 -0)" in diff, diff
    assert "changed  train.py  (+1 -1)" in diff and "helper.py" not in diff and "if False" not in diff, diff
    full = run_cli("diff", "crash/0", "rerun-crash-0/0", "--code", check=True).stdout
    assert "-" + BUG.rstrip("\n") in full and "+" + FIX.rstrip("\n") in full and "--- a/train.py" in full, full
    data = json.loads(run_cli("diff", "crash/0", "rerun-crash-0/0", "--format", "json", check=True).stdout)
    changed = {f["path"]: f for f in data["code_files"]["files"]}
    assert list(changed) == ["notes.md", "train.py"] and changed["train.py"]["change"] == "changed"
    assert (changed["train.py"]["added_lines"], changed["train.py"]["removed_lines"]) == (1, 1)
    assert changed["notes.md"]["text"].startswith("--- /dev/null\n+++ b/notes.md\n")
    # The rerun said beforehand that it was not running the run's code, outside git too.
    assert "notes.md added, train.py changed since the run's code snapshot" in rerun.stderr, rerun.stderr


def test_code_current_refuses_a_bad_value_before_anything_is_submitted(hpctrack_root, tmp_path):
    import hpctrack

    project = _project(tmp_path, in_git=False)
    assert run_cli("launch", str(project / "train.py"), "x=1", "--name", "bad", "--no-progress",
                   cwd=tmp_path).returncode == 1  # fmt: skip
    proc = run_cli("requeue", "bad", "--code", "newest")
    assert proc.returncode == 2 and "newest" in proc.stderr
    with pytest.raises(hpctrack.errors.ConfigError, match="code must be 'launch' or 'current'"):
        hpctrack.load_sweep("bad").requeue(code="newest")
    (project / "train.py").unlink()
    proc = run_cli("requeue", "bad", "--code", "current")
    assert proc.returncode == 1 and "no longer exists" in proc.stderr, proc.stderr
    assert hpctrack.load_sweep("bad").manifest.jobs[0].history == []  # nothing was claimed or submitted


def test_diff_without_snapshots_compares_the_recorded_git_code(hpctrack_root, tmp_path):
    project = _project(tmp_path, in_git=True)
    (project / "train.py").write_text(TRAIN.replace(BUG, FIX))  # uncommitted: part of both runs' code
    for name in ("one", "two"):
        proc = run_cli("launch", str(project / "train.py"), "x=3", "--name", name, "--no-progress",
                       "--no-code-snapshot", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (project / "helper.py").write_text(HELPER.replace("float(x)", "2.0 * float(x)"))
    diff = run_cli("diff", "one/0", "two/0", check=True).stdout
    assert "no code snapshot" in diff and "git" in diff, diff
    assert "changed  helper.py  (+1 -1)" in diff and "train.py" not in diff, diff
    full = run_cli("diff", "one/0", "two/0", "--code", check=True).stdout
    assert "-    return float(x)" in full and "+    return 2.0 * float(x)" in full, full
    # Requeued, such a sweep runs its script as pickled at launch with the rest as it is now: said in one line.
    dry = run_cli("requeue", "one", "--state", "COMPLETED", "--dry-run", check=True)
    assert len(_warnings(dry.stderr)) == 1 and "launched without a code snapshot" in dry.stderr, dry.stderr

    # A run without a snapshot and outside git: nothing to compare the code with, and it says so.
    plain = _project(tmp_path / "other", in_git=False)
    assert run_cli("launch", str(plain / "train.py"), "x=3", "--name", "plain", "--no-progress",
                   "--no-code-snapshot", cwd=tmp_path).returncode == 0  # fmt: skip
    diff = run_cli("diff", "one/0", "plain/0", check=True).stdout
    assert "cannot compare the code" in diff and "no difference" not in diff, diff


def test_rerun_at_commit_leaves_its_worktree_clean(hpctrack_root, tmp_path):
    project = _project(tmp_path, in_git=True)
    proc = run_cli("launch", str(project / "train.py"), "x=3", "--name", "orig", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _show("orig/0")["provenance"]["git"]["dirty"] is False
    for _ in range(2):  # made once, then reused
        again = run_cli("rerun", "orig/0", "--at-commit", "--no-progress", cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        worktrees = [p for p in (hpctrack_root / "worktrees").iterdir() if p.is_dir()]
        assert len(worktrees) == 1
        assert _git(worktrees[0], "status", "--porcelain", "--untracked-files=all") == ""
        git = _show("rerun-orig-0/0")["provenance"]["git"]
        assert git["dirty"] is False and git["untracked"] == [] and git["commit"] == _show("orig/0")["provenance"][
            "git"]["commit"]  # fmt: skip
    diff = run_cli("diff", "orig/0", "rerun-orig-0/0", check=True).stdout
    assert "snapshot" not in diff and "code files" not in diff and "dirty" not in diff, diff  # the same code


def test_jobs_read_the_config_files_of_their_snapshot(hpctrack_root, tmp_path):
    import time

    import hpctrack

    project = _project(tmp_path, in_git=False)
    proc = run_cli("launch", str(project / "train.py"), "x=3,4", "sleep_s=1.0", "--name", "conf", "-j", "1",
                   "--detach", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Edited while job 1 waits for job 0: the jobs still compose the launch-time config.
    config = project / "conf" / "cfg.yaml"
    config.write_text(config.read_text().replace("steps: 3", "steps: 5"))
    sweep = hpctrack.load_sweep("conf")
    deadline = time.time() + 180
    while not all(s.state.is_final for s in sweep.status()):
        assert time.time() < deadline, "the sweep did not end"
        time.sleep(0.5)
    assert [s.state.value for s in sweep.status()] == ["COMPLETED", "COMPLETED"]
    assert [sweep.run(i).params["steps"] for i in (0, 1)] == [3, 3]
    # --code current: the config as it is now, like the rest of the code.
    proc = run_cli("requeue", "conf", "--state", "COMPLETED", "--jobs", "1", "--code", "current")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = sweep.run(1)
    assert record.params["steps"] == 5 and record.status["last_step"] == 4 and record.status["attempt"] == 2
