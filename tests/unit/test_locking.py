"""Locks between real processes: holder records, stale locks, TTL, different hostnames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hpctrack.errors import LockTimeout
from hpctrack.locking import describe_holder, lock

# A process that takes the lock, says so, and holds it; HOST (if set) is the hostname it sees.
HOLDER = textwrap.dedent("""
    import socket, sys, time
    host = sys.argv[3]
    if host:
        socket.gethostname = lambda: host
    from hpctrack.locking import lock
    with lock(sys.argv[1], timeout_s=60):
        print("locked", time.time(), flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", time.time(), flush=True)
""")


def _holder(path: Path, hold_s: float, host: str = "", env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(hold_s), host],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    line = proc.stdout.readline().split()
    assert line and line[0] == "locked", line
    return proc


def test_holder_is_recorded_and_named_on_timeout(tmp_path, monkeypatch):
    path = tmp_path / "sweep.json.lock"
    proc = _holder(path, 30, env={"SLURM_JOB_ID": "4242"})
    try:
        record = path.read_text()
        assert f"pid={proc.pid}" in record and "job=4242" in record and "host=" in record
        with pytest.raises(LockTimeout) as info:
            with lock(path, timeout_s=0.5):
                pass
        assert proc.poll() is None, "the wait ended by the timeout, while the holder still held the lock"
        message = str(info.value)
        assert str(path) in message and f"pid {proc.pid}" in message and "job 4242" in message
        assert "heartbeat" in message and "\n" not in message
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_on_this_host_is_taken_at_once(tmp_path, monkeypatch):
    # A TTL far longer than the wait below: the lock can only be taken by seeing that its holder is dead.
    monkeypatch.setenv("HPCTRACK_LOCK_TTL_S", "3600")
    path = tmp_path / "a.lock"
    proc = _holder(path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert path.exists()  # a soft lock outlives its holder...
    with lock(path, timeout_s=30):  # ...but a dead pid on this host is provably gone, long before the TTL
        pass


def test_lock_of_a_killed_process_on_another_host_is_taken_after_the_ttl(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_LOCK_TTL_S", "3")
    path = tmp_path / "b.lock"
    proc = _holder(path, 60, host="node-that-died", env={"HPCTRACK_LOCK_TTL_S": "3"})
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.time()
    with lock(path, timeout_s=30):
        waited = time.time() - killed
    assert 2.0 <= waited < 15, waited  # its pid can't be probed from here: only the TTL frees it


def test_live_holder_keeps_its_lock_beyond_the_ttl(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_LOCK_TTL_S", "1.5")
    path = tmp_path / "c.lock"
    proc = _holder(path, 4, host="other-node", env={"HPCTRACK_LOCK_TTL_S": "1.5"})
    try:
        with lock(path, timeout_s=30):  # the holder's heartbeat keeps the lease fresh
            acquired = time.time()
        released = float(proc.stdout.readline().split()[1])
        assert acquired >= released
    finally:
        proc.wait()


def test_processes_that_see_different_hostnames_still_exclude_each_other(tmp_path):
    path = tmp_path / "d.lock"
    first = _holder(path, 2, host="node-a")
    second = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "0", "node-b"], stdout=subprocess.PIPE, text=True
    )
    first_released = float(first.stdout.readline().split()[1])
    second_locked = float(second.stdout.readline().split()[1])
    first.wait()
    second.wait()
    assert second_locked >= first_released


def test_describe_holder_without_a_lock(tmp_path):
    assert describe_holder(tmp_path / "none.lock") == "no holder any more"


def test_atomic_write_keeps_a_rewritten_files_mode_and_never_adds_group_write(tmp_path):
    import stat

    from hpctrack.locking import atomic_write

    target = tmp_path / "sweep.json"
    target.write_text("{}")
    os.chmod(target, 0o640)  # a shared sweep's file: group-readable, hidden from others
    previous = os.umask(0o022)
    try:
        atomic_write(target, "{}")
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
        os.chmod(target, 0o664)
        atomic_write(target, "{}")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        fresh = tmp_path / "new.json"
        os.umask(0o002)
        atomic_write(fresh, "{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    finally:
        os.umask(previous)
