"""Locks between real processes: a holder stalled past the TTL (SIGSTOP) loses its lock and never
commits over the process that took it; a stale lock published under another TTL can be broken."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hpctrack.errors import StoreError
from hpctrack.locking import lock
from hpctrack.manifest import JobRecord, Manifest, create_sweep, load_manifest, new_sweep_id
from hpctrack.store import open_store

REPO = Path(__file__).resolve().parents[2]
TTL = "2"


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HPCTRACK_LOCK_TTL_S": TTL, **extra}


def _spawn(code: str, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )


def _stall_then_lose_the_lock(first: subprocess.Popen, second_code: str, *args: str) -> str:
    """Stop `first` inside its critical section past the TTL, let `second_code` take the lock and
    commit, then let `first` go on; returns what `first` printed last."""
    assert first.stdout.readline().strip() == "inside"
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(second_code), *args],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        assert second.returncode == 0, second.stderr
        assert "committed" in second.stdout
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 3, (out, err)
    return out.strip().splitlines()[-1]


def test_a_stalled_manifest_writer_never_commits_over_the_one_that_took_its_lock(tmp_path):
    manifest = create_sweep(tmp_path, Manifest(id=new_sweep_id(), created=time.time(), backend="local",
                                               store="hdf5", jobs=[JobRecord(0, [], "runs/0")]))  # fmt: skip
    first = _spawn(
        """
        import sys, time
        from hpctrack.manifest import update_manifest
        def change(m):
            print("inside", flush=True)
            time.sleep(1.0)  # stopped here, past the TTL
            m.name = "first"
        try:
            update_manifest(sys.argv[1], change)
        except Exception as err:
            print("refused:", err, flush=True)
            sys.exit(3)
        print("committed", flush=True)
    """,
        str(manifest.path),
    )
    last = _stall_then_lose_the_lock(
        first,
        """
        import sys
        from hpctrack.manifest import update_manifest
        def change(m):
            m.name = "second"
        update_manifest(sys.argv[1], change)
        print("committed")
    """,
        str(manifest.path),
    )
    assert last.startswith("refused:") and "taken over" in last
    assert load_manifest(manifest.path).name == "second"


STALLING_WRITER = """
    import sys, time
    import hpctrack.store._hdf5 as h5mod, hpctrack.store._zarr as zmod
    from hpctrack.store import MetricBatch, open_store
    st = open_store(sys.argv[1], sys.argv[2])
    st.write(metrics=MetricBatch(points={"x": ([0], [0.0], [0.0])}))
    target = (h5mod.HDF5Store, "_apply") if sys.argv[2] == "hdf5" else (zmod, "_write_rows")
    real = getattr(*target)
    def stalling(*args, **kwargs):
        print("inside", flush=True)
        time.sleep(1.0)  # stopped here, past the TTL
        return real(*args, **kwargs)
    setattr(*target, stalling)
    try:
        st.write(metrics=MetricBatch(points={"x": ([1], [1.0], [1.0])}), sections={"tags": {"by": "first"}})
    except Exception as err:
        print("refused:", err, flush=True)
        sys.exit(3)
    print("committed", flush=True)
"""

SECOND_WRITER = """
    import sys
    from hpctrack.store import MetricBatch, open_store
    st = open_store(sys.argv[1], sys.argv[2])
    st.write(metrics=MetricBatch(points={"x": ([1], [10.0], [1.0])}), sections={"tags": {"by": "second"}})
    print("committed")
"""


@pytest.mark.parametrize("backend", ["hdf5", "zarr"])
def test_a_stalled_store_writer_never_commits_over_the_one_that_took_its_lock(tmp_path, backend):
    first = _spawn(STALLING_WRITER, str(tmp_path), backend)
    last = _stall_then_lose_the_lock(first, SECOND_WRITER, str(tmp_path), backend)
    assert last.startswith("refused:") and "taken over" in last, last
    st = open_store(tmp_path, backend)
    record = st.read()
    assert record.tags == {"by": "second"}
    history = st.read_history("x")
    assert history.step.tolist() == [0, 1] and history.value.tolist() == [0.0, 10.0]


def test_a_stalled_index_append_never_lands_after_its_lock_was_taken(tmp_path):
    first = _spawn(
        """
        import sys, time
        import hpctrack.index as index
        real_open = open
        def slow_open(path, *args, **kwargs):
            if str(path).endswith("index.jsonl"):
                print("inside", flush=True)
                time.sleep(1.0)
            return real_open(path, *args, **kwargs)
        index.open = slow_open
        try:
            index.append_rows(sys.argv[1], [{"v": 1, "job": 0, "status": {"by": "first"}}])
        except Exception as err:
            print("refused:", err, flush=True)
            sys.exit(3)
        print("committed", flush=True)
    """,
        str(tmp_path),
    )
    last = _stall_then_lose_the_lock(
        first,
        """
        import sys
        from hpctrack.index import append_rows
        append_rows(sys.argv[1], [{"v": 1, "job": 1, "status": {"by": "second"}}])
        print("committed")
    """,
        str(tmp_path),
    )
    assert last.startswith("refused:")
    lines = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert [line["status"]["by"] for line in lines] == ["second"]


# -- a lock published under another TTL -----------------------------------------------------------

HOLDER = """
    import socket, sys, time
    if sys.argv[3]:
        socket.gethostname = lambda: sys.argv[3]
    from hpctrack.locking import lock
    with lock(sys.argv[1], timeout_s=60):
        print("locked", time.time(), flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", time.time(), flush=True)
"""


def _holder(path: Path, hold_s: float, ttl: str, host: str = "") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path), str(hold_s), host],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(HPCTRACK_LOCK_TTL_S=ttl),
    )
    assert proc.stdout.readline().split()[0] == "locked"
    return proc


def test_a_lock_of_a_dead_holder_under_another_ttl_is_taken_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_LOCK_TTL_S", "60")
    path = tmp_path / "a.lock"
    proc = _holder(path, 60, ttl="100")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with lock(path, timeout_s=10):  # its pid is dead on this host: provably gone, whatever its TTL
        pass


def test_a_lock_under_another_ttl_is_taken_after_the_larger_ttl(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_LOCK_TTL_S", "1")
    path = tmp_path / "b.lock"
    proc = _holder(path, 60, ttl="3", host="node-that-died")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.time()
    with lock(path, timeout_s=30):
        waited = time.time() - killed
    assert waited >= 2.0  # not after its own 1 s: the holder was promised 3 s


def test_a_live_holder_under_another_ttl_keeps_its_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_LOCK_TTL_S", "0.5")
    path = tmp_path / "c.lock"
    proc = _holder(path, 4, ttl="1.5", host="other-node")
    try:
        with lock(path, timeout_s=30):  # its heartbeat is fresh under its own TTL
            acquired = time.time()
        released = float(proc.stdout.readline().split()[1])
        assert acquired >= released
    finally:
        proc.wait()


def test_a_commit_after_the_lock_was_taken_over_is_refused_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_LOCK_TTL_S", "60")
    path = tmp_path / "d.lock"
    with lock(path) as guard:
        guard.check()  # still ours
        os.unlink(path)  # what a contender's break does
        with pytest.raises(StoreError, match="taken over"):
            guard.check()
