"""Stores under faults, what is particular to each backend: a store changed under its writer
(HDF5 keeps its spare copy), a filesystem that cannot allocate ahead.

The faults every backend meets the same way (a failure after the commit, a store a new writer
cannot validate, a full disk) are in the store contract, ``hpctrack.testing.StoreTests``, which
``test_store.py`` runs on both backends."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import List

import pytest

from hpctrack.errors import StoreReplacedError
from hpctrack.store import HDF5Store, MetricBatch, ZarrStore


def batch(key: str, steps: List[int]) -> MetricBatch:
    b = MetricBatch()
    for s in steps:
        b.add(key, s, float(s), 1000.0 + s)
    return b


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def test_hdf5_writes_where_the_filesystem_cannot_allocate_ahead(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    st = HDF5Store(tmp_path / "run.h5")
    for i in range(3):
        st.write(metrics=batch("x", [i]))
    assert st.read_history("x").step.tolist() == [0, 1, 2]
