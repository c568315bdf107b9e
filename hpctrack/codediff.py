"""The code of two runs compared file by file (``hpctrack diff``), in git or not.

A run's code is the code snapshot its last attempt ran (``ROOT/code/<digest>/``). A run
launched without one (``--no-code-snapshot``) is rebuilt from its recorded git identity:
its commit (``git archive``) with its recorded uncommitted diff applied, in a temporary
directory that is removed afterwards. Untracked files are part of neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

__all__ = ["FileChange", "RunCode", "compare_files", "run_code", "diff_code"]

#: Files larger than this are compared, but not diffed line by line.
MAX_DIFF_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class FileChange:
    """One file that differs between two versions of the code."""

    path: str  # relative to the code's root
    change: str  # "added", "removed" or "changed"
    added_lines: Optional[int] = None  # None: binary, too large, or not counted
    removed_lines: Optional[int] = None
    text: str = ""  # the unified diff; a one-line remark for a binary or too large file

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _lines(path: Path) -> Optional[List[str]]:
    """The file's text lines, or None for a binary or too large file."""
    if path.stat().st_size > MAX_DIFF_BYTES:
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return a.read_bytes() == b.read_bytes()


def _change(rel: str, change: str, a: Optional[Path], b: Optional[Path], lines: bool) -> FileChange:
    if not lines:
        return FileChange(rel, change)
    old = _lines(a) if a is not None else []
    new = _lines(b) if b is not None else []
    if old is None or new is None:
        return FileChange(rel, change, text=f"Binary or large files a/{rel} and b/{rel} differ\n")
    diff = list(difflib.unified_diff(old, new, "/dev/null" if a is None else f"a/{rel}",
                                     "/dev/null" if b is None else f"b/{rel}"))  # fmt: skip
    body = diff[2:]
    added = sum(1 for line in body if line.startswith("+"))
    removed = sum(1 for line in body if line.startswith("-"))
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff)
    return FileChange(rel, change, added, removed, text)


def compare_files(a: Mapping[str, Path], b: Mapping[str, Path], *, lines: bool = True) -> List[FileChange]:
    """The files that differ between two versions of the code, in path order.

    Parameters
    ----------
    a, b:
        Each version's files: path relative to its root -> file on disk.
    lines:
        Count the changed lines and make each file's unified diff (otherwise only which
        files differ, and how).
    """
    out = []
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            out.append(_change(rel, "removed", a[rel], None, lines))
        elif rel not in a:
            out.append(_change(rel, "added", None, b[rel], lines))
        elif not _same(a[rel], b[rel]):
            out.append(_change(rel, "changed", a[rel], b[rel], lines))
    return out


@dataclass
class RunCode:
    """A run's code, as far as it was recorded."""

    label: str  # "snapshot <digest>", or "git <commit> (+ its uncommitted diff)"
    files: Optional[Dict[str, Path]]  # None: the code cannot be rebuilt
    key: Optional[str] = None  # equal keys: the same code (snapshot digest, or commit + diff hash)
    note: Optional[str] = None  # where the code came from when not from a snapshot, or why it is unknown


def _from_git(git: Mapping[str, Any], dest: Path) -> Optional[str]:
    """Rebuild the recorded commit plus the recorded uncommitted diff in ``dest``; why not, or None."""
    repo, commit = git.get("root"), git.get("commit")
    if not repo or not Path(repo).is_dir():
        return f"its repository {repo} is gone"
    proc = subprocess.run(["git", "archive", "--format=tar", str(commit)], cwd=repo, capture_output=True)
    if proc.returncode != 0:
        return f"commit {str(commit)[:12]} is not in {repo}"
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python before 3.10.12
            tar.extractall(dest)
    if git.get("diff"):
        # A repository of its own, so that `git apply` never looks at an enclosing one.
        subprocess.run(["git", "init", "-q"], cwd=dest, capture_output=True, check=True)
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=dest, input=git["diff"].encode(),
                              capture_output=True)  # fmt: skip
        if proc.returncode != 0:
            return f"its recorded diff does not apply at {str(commit)[:12]}"
    return None


@contextlib.contextmanager
def run_code(provenance: Mapping[str, Any], *, files: bool = True) -> Iterator[RunCode]:
    """The code of the run whose provenance this is (a rebuilt one lives until the block ends).

    ``files=False``: only what the code is (label, key, note), nothing read or rebuilt.
    """
    from .snapshot import snapshot_files

    if not provenance:
        yield RunCode("unknown code", None, note="it recorded nothing about its code (it has not started)")
        return
    snapshot = provenance.get("code_snapshot") or {}
    git = provenance.get("git") or {}
    gone = None
    if snapshot.get("digest"):
        path = Path(snapshot.get("path") or "")
        if snapshot.get("path") and path.is_dir():
            yield RunCode(f"snapshot {snapshot['digest']}", snapshot_files(path) if files else None,
                          key=f"snapshot:{snapshot['digest']}")  # fmt: skip
            return
        gone = f"its code snapshot {path} is gone"
    if not git.get("available") or not git.get("commit"):
        why = gone or "it has no code snapshot and no git repository"
        yield RunCode("unknown code", None, note=why)
        return
    label = f"git {str(git['commit'])[:12]}" + (" + uncommitted diff" if git.get("diff") else "")
    how = (gone + ": " if gone else "no code snapshot: ") + "compared by its recorded git commit and diff"
    if git.get("diff_truncated"):
        how += " (cut at its size cap: later changes are missing)"
    if git.get("untracked_count"):
        how += f"; its {git['untracked_count']} untracked files are not compared"
    key = f"git:{git['commit']}:{git.get('diff_sha256')}"
    if not files:
        yield RunCode(label, None, key=key, note=how)
        return
    with tempfile.TemporaryDirectory(prefix="hpctrack-code-") as tmp:
        problem = _from_git(git, Path(tmp))
        if problem:
            yield RunCode(label, None, key=key, note=f"{how}, but {problem}")
            return
        yield RunCode(label, snapshot_files(Path(tmp)), key=key, note=how)


def diff_code(provenance_a: Mapping[str, Any], provenance_b: Mapping[str, Any], *, lines: bool = True
              ) -> Dict[str, Any]:  # fmt: skip
    """Two runs' code compared file by file.

    Returns
    -------
    dict
        ``a``, ``b``: what each run's code is (``snapshot <digest>``, ``git <commit> ...``);
        ``comparable``: whether both could be rebuilt; ``notes``: per run, where its code
        came from when not from its snapshot, or why it could not be rebuilt; ``files``:
        :class:`FileChange` of every file that differs, as JSON.
    """
    with run_code(provenance_a, files=False) as a, run_code(provenance_b, files=False) as b:
        if a.key is not None and a.key == b.key:  # the same code: nothing to read
            notes = {side: code.note for side, code in (("a", a), ("b", b)) if code.note}
            return {"a": a.label, "b": b.label, "notes": notes, "files": [], "comparable": True}
    with run_code(provenance_a) as a, run_code(provenance_b) as b:
        notes = {side: code.note for side, code in (("a", a), ("b", b)) if code.note}
        out: Dict[str, Any] = {"a": a.label, "b": b.label, "notes": notes, "files": []}
        if a.files is None or b.files is None:
            out["comparable"] = False
        else:
            out["comparable"] = True
            out["files"] = [c.to_json() for c in compare_files(a.files, b.files, lines=lines)]
    return out
