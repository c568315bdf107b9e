"""Code snapshots: the jobs of a sweep run the code as it was when the sweep was launched.

At submission the git-tracked files of the script's repository (their working-tree
contents, uncommitted edits included), or the script's folder outside git, are copied
once into ``ROOT/code/<digest>/``; the digest is over every file's path and content, so
sweeps launched from the same code share one copy. Jobs import from the copy, so editing
the code while they wait in the queue changes nothing they run. Outside git, files that may
hold credentials (:data:`SECRET_PATTERNS`) and those a ``.hpctrackignore`` lists are not
copied; the manifest's ``code`` names them under ``skipped``. ``requeue --code current``
takes a new snapshot for the jobs it resubmits (``JobRecord.code``); every attempt records
the digest of the snapshot it ran.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import ConfigError
from .safefs import check_inside, copy_file, strip_write_by_others
from .safefs import rmtree as safe_rmtree

__all__ = ["make_snapshot", "code_digest", "snapshot_files", "code_changes", "CODE_DIR",
           "MAX_SNAPSHOT_BYTES", "SECRET_PATTERNS", "IGNORE_FILE"]  # fmt: skip

CODE_DIR = "code"
#: A snapshot bigger than this is refused (set ``code_snapshot: false`` for such repositories).
MAX_SNAPSHOT_BYTES = 200 * 1024 * 1024
_SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", "outputs",
              "multirun"}  # fmt: skip
#: Outside git, a directory holding one of these is Hydra's output (a job's, or a sweep's), never code.
_HYDRA_OUTPUT_MARKS = (".hydra", ".hpctrack_run", "multirun.yaml")
#: Outside git, files that may hold credentials are never copied (gitignore-style patterns).
SECRET_PATTERNS = (".env*", "*.pem", "*.key", "id_*", ".git/", ".ssh/", "credentials*")
#: Outside git, a file of the script's folder listing more patterns (gitignore syntax) not to copy.
IGNORE_FILE = ".hpctrackignore"
#: Skipped files named at most in the manifest (all are counted).
SKIPPED_CAP = 100


def _ignore_spec(root: Path) -> Any:
    """The patterns of files not to copy from ``root``: :data:`SECRET_PATTERNS` and ``root/.hpctrackignore``."""
    import pathspec

    lines = list(SECRET_PATTERNS)
    try:
        lines += (root / IGNORE_FILE).read_text().splitlines()
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {root / IGNORE_FILE}: {err}; fix or remove it") from None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _files(script: str) -> Tuple[Path, List[str], Dict[str, Any]]:
    """(root, files relative to it, git identity) of what to snapshot for ``script``."""
    from .provenance import git_info

    git = git_info(script)
    if git.get("available"):
        root = Path(git["root"])
        proc = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=root, capture_output=True, timeout=30)
        listed = [f for f in proc.stdout.decode("utf-8", errors="surrogateescape").split("\0") if f]
        tracked = [f for f in listed if (root / f).is_file()]  # deleted but not committed: not in the working tree
        ident = {"commit": git.get("commit"), "diff_sha256": git.get("diff_sha256"), "dirty": git.get("dirty"),
                 "source": "git", "git": git}  # fmt: skip
        return root, tracked, ident
    root = Path(script).resolve()
    root = root if root.is_dir() else root.parent  # a folder is its own code (an --exec sweep's launch directory)
    spec = _ignore_spec(root)
    files: List[str] = []
    skipped: List[str] = []
    for folder, dirs, names in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        prefix = "" if rel_folder == "." else rel_folder + "/"
        kept_dirs = []
        for d in dirs:
            if d in _SKIP_DIRS and d != ".git":
                continue
            if any(os.path.lexists(os.path.join(folder, d, mark)) for mark in _HYDRA_OUTPUT_MARKS):
                continue  # a Hydra output or sweep directory (wherever hydra.sweep.dir put it): jobs' files
            if spec.match_file(f"{prefix}{d}/"):
                skipped.append(f"{prefix}{d}/")
            else:
                kept_dirs.append(d)
        dirs[:] = kept_dirs
        for n in names:
            if n.endswith(".pyc"):
                continue
            (skipped if spec.match_file(prefix + n) else files).append(prefix + n)
    ident = {"source": "folder", "reason": git.get("reason")}
    if skipped:
        ident["skipped"], ident["skipped_count"] = sorted(skipped)[:SKIPPED_CAP], len(skipped)
    return root, sorted(files), ident


def _digest(root: Path, files: List[str], too_big: str) -> Tuple[str, int]:
    """(digest, bytes) of ``files`` under ``root``: over every file's path and content."""
    digest = hashlib.sha256()
    total = 0
    for rel in sorted(files):
        path = root / rel
        total += path.stat().st_size
        if total > MAX_SNAPSHOT_BYTES:
            raise ConfigError(f"the code to snapshot under {root} is over {MAX_SNAPSHOT_BYTES >> 20} MB; {too_big}")
        digest.update(rel.encode("utf-8", errors="surrogateescape") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20], total


_TOO_BIG = "set hydra.launcher.code_snapshot=false (or --no-code-snapshot)"


def snapshot_listing(script: str) -> Tuple[Path, List[str], str]:
    """(root, files relative to it, where they come from: ``git`` or ``folder``) of the snapshot ``script`` would get.

    What :func:`make_snapshot` copies, without copying: a launch checks that the files a
    command names are in it before any job runs.
    """
    root, files, ident = _files(script)
    return root, files, str(ident.get("source"))


def make_snapshot(script: str, hpctrack_root: Path, *, too_big: str = _TOO_BIG) -> Dict[str, Any]:
    """Copy the code of ``script`` into ``ROOT/code/<digest>/`` (once); returns what the manifest records.

    Parameters
    ----------
    script:
        The script whose code to copy: its git repository's tracked files, or its folder outside git.
        A folder (an ``--exec`` sweep's launch directory) stands for itself.
    hpctrack_root:
        The storage root.
    too_big:
        What to do instead, said when the code is over :data:`MAX_SNAPSHOT_BYTES`.

    Raises
    ------
    ConfigError
        The code is over :data:`MAX_SNAPSHOT_BYTES`.
    """
    root, files, ident = _files(script)
    name, total = _digest(root, files, too_big)
    base = Path(hpctrack_root)
    target = base / CODE_DIR / name
    # Jobs run this code: code/ planted as a link out of the root would let its owner choose it.
    (base / CODE_DIR).mkdir(parents=True, exist_ok=True)
    check_inside(base / CODE_DIR, base, "write the code snapshot in")
    if not target.is_dir():
        tmp = target.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
        tmp.mkdir(parents=True)
        try:
            for rel in files:
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                # Never group- or world-writable, whatever the umask or the source's mode: jobs execute it.
                copy_file(root / rel, dest, tmp)
            strip_write_by_others(Path(folder) for folder, _, _ in os.walk(tmp))
            try:
                os.rename(tmp, target)  # whole or not at all; a concurrent launch may have won
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            if tmp.exists():
                with contextlib.suppress(OSError):
                    safe_rmtree(tmp, base / CODE_DIR)
    script_rel = os.path.relpath(Path(script).resolve(), root.resolve())
    return {"path": str(target), "digest": name, "root": str(root), "script": script_rel, "files": len(files),
            "bytes": total, **ident}  # fmt: skip


def code_digest(script: str, *, too_big: str = _TOO_BIG) -> str:
    """The digest :func:`make_snapshot` would give the code of ``script`` now, without copying anything."""
    root, files, _ = _files(script)
    return _digest(root, files, too_big)[0]


def snapshot_files(path: Path) -> Dict[str, Path]:
    """The files of a snapshot directory (or any code folder), by path relative to it.

    Python's byte code, which jobs importing from a snapshot write into it, is left out.
    """
    path = Path(path)
    out: Dict[str, Path] = {}
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
        for name in sorted(names):
            if not name.endswith(".pyc"):
                full = Path(folder) / name
                out[str(full.relative_to(path))] = full
    return out


def code_changes(snapshot: Mapping[str, Any], script: str) -> Optional[List[str]]:
    """How the code of ``script`` on disk differs from ``snapshot``: ``["train.py changed", ...]``.

    ``[]`` when it is the same code; None when it cannot be told (the script or the
    snapshot directory is gone). Compares the digest first, so unchanged code costs one
    pass of hashing and no comparison.
    """
    if not Path(script).exists():
        return None
    root, files, _ = _files(script)
    try:
        digest, _ = _digest(root, files, _TOO_BIG)
    except ConfigError:
        digest = None  # too big to snapshot: compare the files themselves
    if digest is not None and digest == snapshot.get("digest"):
        return []
    path = Path(snapshot.get("path") or "")
    if not snapshot.get("path") or not path.is_dir():
        return None
    from .codediff import compare_files

    changes = compare_files(snapshot_files(path), {rel: root / rel for rel in files}, lines=False)
    return [f"{c.path} {c.change}" for c in changes]
