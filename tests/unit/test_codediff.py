"""Code compared file by file: snapshots, the code on disk against a snapshot, and code rebuilt from git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hpctrack.codediff import compare_files, diff_code
from hpctrack.provenance import git_info
from hpctrack.snapshot import code_changes, code_digest, make_snapshot, snapshot_files

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def _tree(root: Path, files: dict) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def test_added_removed_changed_binary_and_a_missing_last_newline(tmp_path):
    a = _tree(tmp_path / "a", {"same.py": "x = 1\n", "gone.py": "old\n", "edit.py": "a\nb\nc", "blob.bin": b"\0\1"})
    b = _tree(tmp_path / "b", {"same.py": "x = 1\n", "new.py": "n1\nn2\n", "edit.py": "a\nB\nc", "blob.bin": b"\0\2"})
    changes = {c.path: c for c in compare_files(snapshot_files(a), snapshot_files(b))}
    assert sorted((p, c.change) for p, c in changes.items()) == [
        ("blob.bin", "changed"),
        ("edit.py", "changed"),
        ("gone.py", "removed"),
        ("new.py", "added"),
    ]
    assert (changes["new.py"].added_lines, changes["new.py"].removed_lines) == (2, 0)
    assert "--- /dev/null\n+++ b/new.py\n" in changes["new.py"].text
    assert (changes["gone.py"].added_lines, changes["gone.py"].removed_lines) == (0, 1)
    edit = changes["edit.py"]
    assert (edit.added_lines, edit.removed_lines) == (1, 1)
    assert "-b\n+B\n" in edit.text and edit.text.endswith("\\ No newline at end of file\n")
    assert changes["blob.bin"].added_lines is None and "Binary" in changes["blob.bin"].text
    names_only = compare_files(snapshot_files(a), snapshot_files(b), lines=False)
    assert [c.text for c in names_only] == [""] * 4


def test_byte_code_written_into_a_snapshot_is_not_code(tmp_path):
    a = _tree(tmp_path / "a", {"m.py": "x\n"})
    b = _tree(tmp_path / "b", {"m.py": "x\n", "__pycache__/m.cpython-311.pyc": b"\0", "pkg/n.pyc": b"\0"})
    assert compare_files(snapshot_files(a), snapshot_files(b)) == []


def test_the_code_on_disk_against_its_snapshot(tmp_path):
    code = _tree(tmp_path / "proj", {"train.py": "print(1)\n", "helper.py": "h = 1\n"})
    snapshot = make_snapshot(str(code / "train.py"), tmp_path / "root")
    assert code_digest(str(code / "train.py")) == snapshot["digest"]
    assert code_changes(snapshot, str(code / "train.py")) == []
    (code / "train.py").write_text("print(2)\n")
    (code / "extra.py").write_text("e = 1\n")
    assert code_changes(snapshot, str(code / "train.py")) == ["extra.py added", "train.py changed"]
    assert code_digest(str(code / "train.py")) != snapshot["digest"]
    assert code_changes({**snapshot, "path": str(tmp_path / "nowhere")}, str(code / "train.py")) is None
    assert code_changes(snapshot, str(code / "missing.py")) is None


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def test_runs_without_snapshots_are_rebuilt_from_their_git_commit_and_diff(tmp_path):
    repo = _tree(tmp_path / "repo", {"train.py": "a = 1\n", "lib/util.py": "u = 1\n"})
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    first = git_info(str(repo / "train.py"))
    (repo / "lib" / "util.py").write_text("u = 2\n")  # uncommitted
    second = git_info(str(repo / "train.py"))
    out = diff_code({"git": first}, {"git": second})
    assert out["comparable"] and [(f["path"], f["change"]) for f in out["files"]] == [("lib/util.py", "changed")]
    assert "-u = 1\n+u = 2\n" in out["files"][0]["text"]
    assert "no code snapshot" in out["notes"]["a"] and "no code snapshot" in out["notes"]["b"]
    assert diff_code({"git": second}, {"git": second})["files"] == []  # the same commit and diff: same code
    gone = diff_code({"git": first}, {"git": {**second, "root": str(tmp_path / "moved")}})
    assert not gone["comparable"] and "is gone" in gone["notes"]["b"]
    unknown = diff_code({"git": first}, {"git": {"available": False, "reason": "no git"}})
    assert not unknown["comparable"] and "no code snapshot and no git repository" in unknown["notes"]["b"]


def test_a_snapshot_against_code_rebuilt_from_git(tmp_path):
    repo = _tree(tmp_path / "repo", {"train.py": "a = 1\n"})
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    snapshot = make_snapshot(str(repo / "train.py"), tmp_path / "root")
    (repo / "train.py").write_text("a = 2\n")
    live = git_info(str(repo / "train.py"))
    out = diff_code({"code_snapshot": snapshot, "git": snapshot["git"]}, {"git": live})
    assert out["a"] == f"snapshot {snapshot['digest']}" and out["b"].startswith("git ")
    assert [(f["path"], f["added_lines"], f["removed_lines"]) for f in out["files"]] == [("train.py", 1, 1)]


def test_outside_git_hydras_output_directories_are_not_code(tmp_path):
    """Wherever hydra.sweep.dir put them, a job's or a sweep's output directory is not copied."""
    code = _tree(tmp_path / "app", {
        "train.py": "print(1)\n", "conf/config.yaml": "x: 1\n",
        "rel_sd/multirun.yaml": "a: 1\n", "rel_sd/0/.hydra/config.yaml": "x: 1\n", "rel_sd/0/train.log": "",
        "elsewhere/3/.hpctrack_run": "{}\n", "elsewhere/3/weights.txt": "w\n",
    })  # fmt: skip
    snapshot = make_snapshot(str(code / "train.py"), tmp_path / "root")
    assert sorted(snapshot_files(Path(snapshot["path"]))) == ["conf/config.yaml", "train.py"]
