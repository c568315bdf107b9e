"""Stores under faults: a failure after the commit, a store changed under its writer, a full disk.

A write is committed once or not at all (``Store.commits`` tells which); a writer never builds on
a store it cannot validate; ENOSPC is a prompt, one-line DiskFullError and the stored prefix stays
readable."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

from hpctrack.errors import DiskFullError, StoreError, StoreReplacedError
from hpctrack.store import BACKENDS, HDF5Store, MetricBatch, Store, ZarrStore, open_store

REPO = Path(__file__).resolve().parents[2]


def batch(key: str, steps: List[int]) -> MetricBatch:
    b = MetricBatch()
    for s in steps:
        b.add(key, s, float(s), 1000.0 + s)
    return b


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fail_directory_fsync(monkeypatch: pytest.MonkeyPatch, backend: str) -> List[str]:
    """Make the fsync of a directory (after the commit's rename) fail with EIO; returns the calls."""
    import hpctrack.store._hdf5 as h5mod
    import hpctrack.store._zarr as zmod

    calls: List[str] = []

    def failing(path) -> None:
        calls.append(str(path))
        raise OSError(errno.EIO, "Input/output error", str(path))

    if backend == "hdf5":
        real = h5mod._fsync
        monkeypatch.setattr(h5mod, "_fsync", lambda p: failing(p) if Path(p).is_dir() else real(p))
    else:
        monkeypatch.setattr(zmod, "fsync_dir", failing)
    return calls


def test_a_failure_after_the_commit_is_not_raised_and_the_update_counts_once(tmp_path, backend, monkeypatch,
                                                                               capfd):
    st = open_store(tmp_path, backend)
    st.write(metrics=batch("x", [0, 1]))
    calls = _fail_directory_fsync(monkeypatch, backend)
    before = st.commits
    st.write(metrics=batch("x", [2, 3]), sections={"summary": {"a": 1}})  # committed: must not raise
    assert calls and st.commits == before + 1
    st.write(metrics=batch("x", [4]))  # warned once, not for every write
    assert capfd.readouterr().err.count("hpctrack: warning") == 1
    monkeypatch.undo()
    st.write(metrics=batch("x", [5]))
    again = open_store(tmp_path, backend)
    assert again.read_history("x").step.tolist() == [0, 1, 2, 3, 4, 5]
    assert again.read().summary == {"a": 1}


def test_commits_count_the_commit_even_when_an_interrupt_lands_right_after_it(tmp_path, backend, monkeypatch):
    """A KeyboardInterrupt raised just after the commit's rename returns: the caller can still tell."""
    import hpctrack.store._hdf5 as h5mod
    import hpctrack.store._zarr as zmod

    st = open_store(tmp_path, backend)
    st.write(metrics=batch("x", [0]))
    target = "run.h5" if backend == "hdf5" else "zarr.json"
    real_replace = os.replace

    def replace_then_interrupt(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if Path(dst).name == target:
            raise KeyboardInterrupt

    monkeypatch.setattr((h5mod if backend == "hdf5" else zmod).os, "replace", replace_then_interrupt)
    before = st.commits
    with pytest.raises(KeyboardInterrupt):
        st.write(metrics=batch("x", [1]))
    assert st.commits == before + 1  # stored: a caller must not write it again
    monkeypatch.undo()
    assert open_store(tmp_path, backend).read_history("x").step.tolist() == [0, 1]


# -- a store changed under its writer ---------------------------------------------------------


def _spare_of(st: HDF5Store) -> Path:
    current = os.readlink(st.path)
    return next(p for p in st.path.parent.iterdir() if st._copy_re.match(p.name) and p.name != current)


@pytest.mark.parametrize("damage", ["truncate", "remove", "replace"])
def test_hdf5_writer_refuses_a_store_changed_under_it_and_keeps_the_spare(tmp_path, damage):
    st = HDF5Store(tmp_path / "run.h5")
    for i in range(3):
        st.write(metrics=batch("x", [i]), sections={"params": {"a": 1}})
    spare = _spare_of(st)
    spare_hash, spare_name = _sha(spare), spare.name
    current = st.path.parent / os.readlink(st.path)
    if damage == "truncate":
        with open(current, "r+b") as fh:
            fh.truncate(current.stat().st_size // 2)
    elif damage == "remove":
        st.path.unlink()
    else:  # another store put in its place
        other = HDF5Store(tmp_path / "other" / "run.h5")
        other.path.parent.mkdir()
        other.write(metrics=batch("y", [0]))
        os.replace(other.path.parent / os.readlink(other.path), tmp_path / "run.99.h5")
        os.symlink("run.99.h5", tmp_path / ".link")
        os.replace(tmp_path / ".link", st.path)
    with pytest.raises(StoreReplacedError) as info:
        st.write(metrics=batch("x", [3]))
    assert "\n" not in str(info.value) and str(st.path) in str(info.value)
    assert (tmp_path / spare_name).exists() and _sha(tmp_path / spare_name) == spare_hash  # never overwritten
    if damage == "remove":
        assert not st.path.exists()  # no new, empty store in its place
    with pytest.raises(StoreReplacedError):  # and it stays refused
        st.write(sections={"summary": {"b": 2}})


@pytest.mark.parametrize("damage", ["truncate-record", "truncate-shard", "remove"])
def test_zarr_writer_refuses_a_store_changed_under_it(tmp_path, damage):
    st = ZarrStore(tmp_path / "run.zarr")
    for i in range(3):
        st.write(metrics=batch("x", [i]), sections={"params": {"a": 1}})
    if damage == "truncate-record":
        path = st.path / "zarr.json"
    else:
        path = next((st.path / "step").glob("c.*"))
    if damage == "remove":
        import shutil

        shutil.rmtree(st.path)
    else:
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
        damaged = path.read_bytes()
    with pytest.raises(StoreReplacedError) as info:
        st.write(metrics=batch("x", [3]))
    assert "\n" not in str(info.value)
    if damage == "remove":
        assert not st.path.exists()
    else:
        assert path.read_bytes() == damaged  # left as found, for `hpctrack verify` to name


def test_a_new_writer_refuses_a_store_it_cannot_validate(tmp_path, backend):
    """A resumed attempt (a new writer) never copies a damaged current copy over the good spare."""
    st = open_store(tmp_path, backend)
    for i in range(3):
        st.write(metrics=batch("x", [i]))
    if backend == "hdf5":
        spare = _spare_of(st)
        spare_hash = _sha(spare)
        current = st.path.parent / os.readlink(st.path)
    else:
        current = next((st.path / "key").glob("c.*"))
    with open(current, "r+b") as fh:
        fh.truncate(current.stat().st_size // 2)
    with pytest.raises(StoreError):
        open_store(tmp_path, backend).write(metrics=batch("x", [3]))
    if backend == "hdf5":
        assert _sha(spare) == spare_hash


# -- a full disk -------------------------------------------------------------------------------

FILL = """
import sys, numpy as np
from pathlib import Path
from hpctrack.errors import DiskFullError
from hpctrack.store import MetricBatch, open_store
run_dir = Path(sys.argv[1]); run_dir.mkdir()
st = open_store(run_dir, sys.argv[2])
committed = 0
for i in range(100000):
    b = MetricBatch()
    steps = np.arange(committed, committed + 20000)
    b.points["x"] = (steps, steps.astype(float), steps.astype(float))
    before = st.commits
    try:
        st.write(metrics=b, sections={"status": {"batch": i}})
    except DiskFullError as err:
        print("full", committed, str(err), flush=True)
        break
    committed += 20000 if st.commits > before else 0
# The disk stays full: the next writes fail the same way, promptly, and nothing is torn.
for _ in range(3):
    try:
        st.write(metrics=b)
    except DiskFullError as err:
        print("again", str(err), flush=True)
print("exit", flush=True)
"""


def test_a_full_disk_is_a_prompt_one_line_error_and_the_prefix_stays_readable(small_tmpfs, backend):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FILL), str(small_tmpfs / "run"), backend],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]  # no crash, no hang
    lines = proc.stdout.splitlines()
    full = [line for line in lines if line.startswith("full ")]
    assert full, proc.stdout
    committed = int(full[0].split()[1])
    assert committed > 0
    assert f"no space left on {small_tmpfs / 'run'} (writing " in full[0]
    assert sum(line.startswith("again no space left on") for line in lines) == 3
    assert lines[-1] == "exit"
    st = open_store(small_tmpfs / "run", backend)
    history = st.read_history("x")
    assert history.step.tolist() == list(range(committed))  # the stored prefix, whole


def test_hdf5_writes_where_the_filesystem_cannot_allocate_ahead(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    st = HDF5Store(tmp_path / "run.h5")
    for i in range(3):
        st.write(metrics=batch("x", [i]))
    assert st.read_history("x").step.tolist() == [0, 1, 2]
