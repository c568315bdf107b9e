"""``hpctrack rerun``: a run's exact config again, as a new one-run sweep.

Plainly it runs the script as it is now (and warns when that code differs from what the run
recorded). ``at_commit`` runs it in a git worktree at the recorded commit with the recorded
uncommitted diff applied, so the code is the run's own.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import ConfigError
from .safefs import check_inside, unlink, write_file

__all__ = ["rerun_run", "WORKTREES_DIR"]

WORKTREES_DIR = "worktrees"
#: ``ROOT/worktrees/<name>.ready`` says the worktree ``<name>`` is whole (checked out, diff applied).
READY_SUFFIX = ".ready"
_OLD_READY = ".hpctrack-ready"  # the marker's name inside the worktree, before it moved beside it


def _code_differs(provenance: Dict[str, Any], script: str) -> Optional[str]:
    """Why the script's current code is not what the run recorded, or None."""
    from .provenance import git_info
    from .snapshot import code_changes

    snapshot = provenance.get("code_snapshot") or {}
    changes = code_changes(snapshot, script) if snapshot.get("digest") else None
    if changes is not None:  # the run's snapshot tells, in git or not
        listing = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        return f"{listing} since the run's code snapshot {snapshot['digest']}" if changes else None
    recorded = provenance.get("git") or {}
    if not recorded.get("available"):
        return None
    now = git_info(script)
    if not now.get("available"):
        return "the script is no longer in a git repository"
    if now.get("commit") != recorded.get("commit"):
        return f"the repository is at {str(now.get('commit'))[:12]}, the run used {str(recorded.get('commit'))[:12]}"
    if now.get("diff_sha256") != recorded.get("diff_sha256"):
        return "the uncommitted changes differ from the run's"
    return None


def _worktree(root: Path, git: Dict[str, Any]) -> Path:
    """A worktree of the run's repository at its commit with its diff applied (made once, reused)."""
    if git.get("diff_truncated"):
        raise ConfigError("the run's uncommitted diff was larger than the recorded cap: its code cannot be "
                          "rebuilt exactly; rerun without --at-commit")  # fmt: skip
    commit, diff = git["commit"], git.get("diff") or ""
    key = hashlib.sha256(f"{commit}\n{diff}".encode()).hexdigest()[:16]
    target = root / WORKTREES_DIR / f"{commit[:12]}-{key}"
    # The marker lives beside the worktree: inside, it would be an untracked file of the rerun's code.
    ready = target.with_name(target.name + READY_SUFFIX)
    # The rerun executes this code, and an interrupted one is removed with --force: worktrees/ or the
    # worktree planted as a link out of the root is refused.
    if (root / WORKTREES_DIR).exists():
        check_inside(root / WORKTREES_DIR, root, "write worktrees in")
    if os.path.lexists(target):
        check_inside(target, root / WORKTREES_DIR, "use the worktree")
    if (target / _OLD_READY).is_file():  # made by an older hpctrack: move its marker out
        unlink(target / _OLD_READY, root)
        write_file(ready, commit + "\n", root)
    if ready.is_file() and target.is_dir():
        return target
    repo = git["root"]
    if not Path(repo).is_dir():
        raise ConfigError(f"the run's repository {repo} is gone: cannot check out commit {commit[:12]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    check_inside(target.parent, root, "write worktrees in")
    unlink(ready, root)  # a worktree removed by hand: made again, and ready only once whole
    if target.exists():  # a half-made worktree of an interrupted rerun
        subprocess.run(["git", "worktree", "remove", "--force", str(target)], cwd=repo, capture_output=True)
    subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True)  # forget one deleted by hand
    proc = subprocess.run(["git", "worktree", "add", "--detach", str(target), commit], cwd=repo,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise ConfigError(f"git worktree add at {commit[:12]} failed: {reason}")
    if diff:
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=target, input=diff,
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            raise ConfigError(f"the run's recorded diff does not apply at {commit[:12]}: "
                              f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")  # fmt: skip
    write_file(ready, commit + "\n", root)
    return target


def _with_secrets(run: str, overrides: List[str], given: List[str]) -> List[str]:
    """The run's overrides with its masked secret values replaced by those ``given`` again."""
    from .secrets import MASK, masked_keys

    def key(override: str) -> str:
        return override.partition("=")[0].strip().lstrip("+~")

    masked = {key(k): k for k in masked_keys(overrides)}
    given_by_key = {key(g): g for g in given}
    for name, override in given_by_key.items():
        if "=" not in override or name not in masked:
            secret = ", ".join(masked) or "none"
            raise ConfigError(f"{override!r}: rerun takes only the values of the run's masked secrets "
                              f"(the run's: {secret}), as KEY=VALUE")  # fmt: skip
    missing = [k for k in masked if k not in given_by_key]
    for name in masked:
        if name in given_by_key and given_by_key[name].partition("=")[2].strip().strip("'\"") == MASK:
            raise ConfigError(f"{name}={MASK}: that is the mask the run was recorded with, not its value; pass the "
                              f"real value again: hpctrack rerun {run} {masked[name]}=...")  # fmt: skip
    if missing:
        again = " ".join(f"{masked[k]}=..." for k in missing)
        raise ConfigError(f"run {run} had secret values that were recorded masked; pass them again: "
                          f"hpctrack rerun {run} {again}")  # fmt: skip
    out = []
    for override in overrides:
        k = key(override)
        if k in masked:
            prefix = masked[k][: len(masked[k]) - len(k)]  # the run's +/++/~, kept
            out.append(f"{prefix}{k}={given_by_key[k].partition('=')[2]}")
        else:
            out.append(override)
    return out


def rerun_run(
    sweep: Any,
    index: int,
    *,
    backend: str = "local",
    at_commit: bool = False,
    root: Optional[str] = None,
    progress: bool = True,
    detach: bool = False,
    secrets: Sequence[str] = (),
) -> Tuple[Any, List[str]]:
    """Launch job ``index`` of ``sweep`` again with its exact overrides; returns (manifest, warnings).

    ``secrets`` gives again, as overrides (``db.password=VALUE``), the values the run's
    overrides held for secret-looking keys: they were recorded masked, and a rerun never
    runs with the mask. Raises :class:`ConfigError` naming the keys when one is missing.
    """
    from .config import resolve_root
    from .launch.script import launch_script

    manifest = sweep.manifest
    if not manifest.script:
        raise ConfigError(f"sweep {manifest.id} does not record its script: it cannot be rerun")
    job = manifest.jobs[index]
    overrides = _with_secrets(f"{manifest.id}/{index}", list(job.overrides), list(secrets))
    record = sweep.run(index)
    provenance = record.info.get("provenance") or {}
    git = provenance.get("git") or {}
    warnings: List[str] = []
    script = manifest.script
    if at_commit:
        if not git.get("available") or not git.get("commit"):
            raise ConfigError(f"run {manifest.id}/{index} recorded no git commit "
                              f"({git.get('reason', 'no provenance')}): --at-commit needs one")  # fmt: skip
        if git.get("diff_masked_lines"):
            raise ConfigError(f"run {manifest.id}/{index}'s uncommitted diff assigned secret values, recorded "
                              "masked: its code cannot be rebuilt exactly; commit the change (keeping the secret "
                              "out of it) or rerun without --at-commit")  # fmt: skip
        try:
            relative = Path(script).resolve().relative_to(Path(git["root"]).resolve())
        except ValueError:
            raise ConfigError(f"the script {script} is not inside the run's repository {git['root']}") from None
        script = str(_worktree(resolve_root(root), git) / relative)
    else:
        why = _code_differs(provenance, script) if Path(script).exists() else "the script no longer exists"
        if why:
            kept = (provenance.get("code_snapshot") or {}).get("path")
            hint = ("use --at-commit to run the recorded code" if git.get("available") and git.get("commit")
                    else f"the run's code is in {kept}" if kept else "the run's code was not kept")  # fmt: skip
            warnings.append(f"the current code is not the run's ({why}); {hint}")
    name = f"rerun-{manifest.name or manifest.id}-{index}"
    command = ["hpctrack", "rerun", f"{manifest.id}/{index}"]
    if manifest.launcher.get("exec"):  # an --exec sweep: its command, from its launch directory's code
        from .launch.command import launch_command

        new = launch_command(str(manifest.launcher["exec"]), overrides, config_file=manifest.launcher.get("config"),
                             metrics_file=manifest.launcher.get("metrics_file"), backend=backend, name=name,
                             root=root, progress=progress, detach=detach, command=command, store=manifest.store,
                             launch_dir=script)  # fmt: skip
    else:
        new = launch_script(script, overrides, backend=backend, name=name, root=root, progress=progress,
                            detach=detach, command=command, store=manifest.store)  # fmt: skip
    assert new is not None  # not a dry run
    return new, warnings
