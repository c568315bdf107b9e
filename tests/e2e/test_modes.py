"""File modes under the root whatever the umask, --share-group, and jobs refusing files others could write."""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCRIPTS, error_lines

SLEEPY = SCRIPTS / "sleepy.py"


def _cli(*args: str, umask: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m hpctrack ARGS`` in a real process started under ``umask``."""
    return subprocess.run([sys.executable, "-m", "hpctrack", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ), preexec_fn=lambda: os.umask(umask))  # fmt: skip


def _everything(root: Path):
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = Path(folder) / name
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode):
                yield path, st


@pytest.mark.parametrize("umask", [0o002, 0o022])
def test_nothing_under_a_new_root_is_writable_by_others(hpctrack_root, umask):
    proc = _cli("launch", str(SLEEPY), "x=1,2", "steps=3", "sleep_s=0", "--name", "modes", umask=umask)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stat.S_IMODE(hpctrack_root.stat().st_mode) == 0o700
    seen = {p.name for p, _ in _everything(hpctrack_root)}
    assert {"job.pkl", "sweep.json", "sleepy.py"} <= seen and any(
        n.startswith("run.") and n.endswith(".h5") for n in seen
    )
    writable = [f"{p} {stat.filemode(st.st_mode)}" for p, st in _everything(hpctrack_root) if st.st_mode & 0o022]
    assert writable == []
    (pkl,) = hpctrack_root.glob("sweeps/*/job.pkl")
    assert stat.S_IMODE(pkl.stat().st_mode) == 0o600


def test_an_existing_root_keeps_its_mode_and_one_others_may_write_into_is_refused(hpctrack_root, tmp_path):
    hpctrack_root.mkdir()
    os.chmod(hpctrack_root, 0o750)
    proc = _cli("launch", str(SLEEPY), "x=1", "steps=1", "sleep_s=0", umask=0o002)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stat.S_IMODE(hpctrack_root.stat().st_mode) == 0o750
    # A group-writable root (a project directory used as is): a group member could rename sweeps/ and
    # plant the pickles a job loads before any check of its own. Refused before anything is written.
    for target, mode in ((hpctrack_root, 0o2770), (hpctrack_root / "sweeps", 0o2775)):
        before = sorted(p.name for p in hpctrack_root.rglob("*"))
        os.chmod(target, mode)
        proc = _cli("launch", str(SLEEPY), "x=1", "steps=1", "sleep_s=0", umask=0o002)
        assert proc.returncode == 1 and error_lines(proc.stderr) == [proc.stderr.strip()], proc.stderr
        assert "writable by its group" in proc.stderr and str(target) in proc.stderr
        assert sorted(p.name for p in hpctrack_root.rglob("*")) == before  # nothing written
        os.chmod(target, 0o750)
    # A root someone else owns (pre-created in a shared scratch directory): refused too.
    os.chown(hpctrack_root, 65534, -1)
    try:
        proc = _cli("launch", str(SLEEPY), "x=1", "steps=1", "sleep_s=0", umask=0o022)
        assert proc.returncode == 1 and "belongs to uid 65534" in proc.stderr, proc.stderr
    finally:
        os.chown(hpctrack_root, os.geteuid(), -1)


def _other_group() -> grp.struct_group:
    for group in grp.getgrall():
        if group.gr_gid not in (0, os.getegid()) and (os.geteuid() == 0 or group.gr_gid in os.getgroups()):
            return group
    pytest.skip("no second group to share with")


def test_share_group_makes_the_sweep_group_readable_never_group_writable(hpctrack_root):
    group = _other_group()
    proc = _cli("launch", str(SLEEPY), "x=1,2", "steps=3", "sleep_s=0", "--name", "shared",
                "--share-group", group.gr_name, umask=0o002)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep,) = hpctrack_root.glob("sweeps/*")
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert manifest["launcher"]["share_group"] == group.gr_name
    snapshot = Path(manifest["code"]["path"])
    for top in (sweep, snapshot):
        for path, st in [(top, top.stat()), *_everything(top)]:
            assert st.st_gid == group.gr_gid, path
            assert not st.st_mode & 0o022, f"{path} {stat.filemode(st.st_mode)}"
            if stat.S_ISDIR(st.st_mode):
                assert stat.S_IMODE(st.st_mode) == 0o2750, f"{path} {stat.filemode(st.st_mode)}"
            elif path.name == "job.pkl":
                assert stat.S_IMODE(st.st_mode) == 0o600
            else:
                assert st.st_mode & stat.S_IRGRP and not st.st_mode & 0o007, f"{path} {stat.filemode(st.st_mode)}"
    for folder in (hpctrack_root, hpctrack_root / "sweeps"):
        assert folder.stat().st_gid == group.gr_gid and stat.S_IMODE(folder.stat().st_mode) == 0o2750


def test_a_bad_share_group_is_one_line_before_anything_is_written(hpctrack_root):
    proc = _cli("launch", str(SLEEPY), "x=1", "--share-group", "no-such-group-xyz", umask=0o022)
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert "no-such-group-xyz" in line
    assert not hpctrack_root.exists()


def test_a_job_refuses_a_job_pkl_others_could_have_written(hpctrack_root, tmp_path):
    import cloudpickle

    proc = _cli("launch", str(SLEEPY), "x=1", "steps=1", "sleep_s=0", "fail_at=0", "--name", "planted",
                umask=0o022)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (pkl,) = hpctrack_root.glob("sweeps/*/job.pkl")
    pwned = tmp_path / "pwned.txt"

    def payload(index: int) -> None:
        Path(pwned).write_text("ran as the sweep's owner\n")

    # What a group member can do to a job.pkl that a umask of 002 left group-writable.
    pkl.write_bytes(cloudpickle.dumps(payload))
    os.chmod(pkl, 0o664)
    proc = _cli("requeue", "planted", "--state", "failed", umask=0o022)
    assert not pwned.exists()
    status = json.loads(_cli("status", "planted", "--format", "json", umask=0o022).stdout)
    text = json.dumps(status)
    assert "refusing to load the job function" in text and "chmod go-w" in text, text
