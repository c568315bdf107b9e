"""Run stores: the store contract (``hpctrack.testing.StoreTests``) run on both backends, and what
is particular to each: its documented layout read by plain h5py/zarr, its migrations from older
format versions, the HDF5 spare copy and lock-free read retries, Zarr's shards."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, List

import h5py
import numpy as np
import pytest
import zarr

from hpctrack.errors import FormatVersionError, StoreError, StoreReplacedError
from hpctrack.store import HDF5Store, MetricBatch, MetricStats, Store, ZarrStore
from hpctrack.testing import StoreTests
from hpctrack.testing.stores import batch, files_of

REPO = Path(__file__).resolve().parents[2]


def _write_fifty_keys_twenty_times(store: Store) -> None:
    for i in range(20):
        b = MetricBatch()
        for k in range(50):
            b.add(f"m{k}", i, float(i), 1.0)
        store.write(metrics=b, sections={"status": {"i": i}})


def spawn(code: str, *args: str) -> subprocess.Popen:
    """A fresh interpreter running ``code`` with this checkout importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, stdout=subprocess.PIPE, text=True
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _spare_of(st: HDF5Store) -> Path:
    current = os.readlink(st.path)
    return next(p for p in st.path.parent.iterdir() if st._copy_re.match(p.name) and p.name != current)


class _Soak:
    """The kill test's knobs from the environment: more kills for a soak run, a seed to replay one."""

    kills_per_chain = int(os.environ.get("HPCTRACK_KILLS_PER_CHAIN", "8"))
    kill_seed = os.environ.get("HPCTRACK_KILL_SEED", None)


class TestHDF5Store(_Soak, StoreTests):
    store_class = HDF5Store
    commit_file = "run.h5"
    files_per_run = 3  # the symlink and two complete copies (the lock file comes and goes with the writer)
    preload = ("h5py", "numpy")

    def set_format_version(self, store: Store, version: int) -> None:
        with h5py.File(store.path, "a", locking=False) as f:  # the copy run.h5 names
            f.attrs["format_version"] = version

    def corrupt_record(self, store: Store) -> None:
        store.path.resolve().write_bytes(b"this is not a store\n" * 10)

    def damage_committed(self, store: Store) -> Callable[[], None]:
        assert isinstance(store, HDF5Store)
        spare = _spare_of(store)
        spare_hash = _sha(spare)
        _truncate(store.path.parent / os.readlink(store.path))

        def spare_untouched() -> None:
            assert _sha(spare) == spare_hash  # never overwritten by the damaged current copy

        return spare_untouched

    def fail_directory_fsync(self, monkeypatch: pytest.MonkeyPatch) -> List[str]:
        import hpctrack.store._hdf5 as h5mod

        calls: List[str] = []
        real = h5mod._fsync

        def failing(path: Any) -> None:
            if not Path(path).is_dir():
                return real(path)
            calls.append(str(path))
            raise OSError(errno.EIO, "Input/output error", str(path))

        monkeypatch.setattr(h5mod, "_fsync", failing)
        return calls

    def debris(self, store: Store) -> str:
        """A torn spare copy, a spare left open, temporary files: where in write() the kill landed."""
        if not store.path.exists():
            return "no store"
        names = files_of(store)
        found = ["tmp"] if any(f.startswith(".") for f in names) else []
        for spare in (f for f in names if f not in ("run.h5", os.readlink(store.path))):
            try:
                with h5py.File(store.path.parent / spare, "r", locking=False) as f:
                    f.attrs["format_version"]
            except Exception as err:  # v110 files killed while open carry a "still open" flag
                found.append("spare left open" if "already open" in str(err) else "torn spare")
        return "+".join(found) or "clean"

    def test_files_are_the_link_and_two_copies(self, store: Store) -> None:
        _write_fifty_keys_twenty_times(store)
        files = files_of(store)
        assert len(files) == 3 and "run.h5" in files
        assert all(re.fullmatch(r"run(\.\d+)?\.h5", f) for f in files)
        assert os.readlink(store.path) in files


class TestZarrStore(_Soak, StoreTests):
    store_class = ZarrStore
    commit_file = "zarr.json"
    files_per_run = 14  # a long table: 5 zarr.json + 4 shards, in 5 directories (run.zarr and one per column)
    preload = ("zarr", "numpy")

    def set_format_version(self, store: Store, version: int) -> None:
        meta = json.loads((store.path / "zarr.json").read_text())
        meta["attributes"]["format_version"] = version
        (store.path / "zarr.json").write_text(json.dumps(meta))

    def corrupt_record(self, store: Store) -> None:
        (store.path / "zarr.json").write_bytes(b"this is not a store\n" * 10)

    def damage_committed(self, store: Store) -> Callable[[], None]:
        _truncate(next((store.path / "key").glob("c.*")))
        return lambda: None  # a Zarr store keeps no spare copy

    def fail_directory_fsync(self, monkeypatch: pytest.MonkeyPatch) -> List[str]:
        import hpctrack.store._zarr as zmod

        calls: List[str] = []

        def failing(path: Any) -> None:
            calls.append(str(path))
            raise OSError(errno.EIO, "Input/output error", str(path))

        monkeypatch.setattr(zmod, "fsync_dir", failing)
        return calls

    def debris(self, store: Store) -> str:
        """Temporary files, rows written past the committed count."""
        if not store.path.exists():
            return "no store"
        found = ["tmp"] if any(Path(f).name.startswith(".") for f in files_of(store)) else []
        record = store.path / "zarr.json"
        count = json.loads(record.read_text())["attributes"]["count"] if record.exists() else 0
        if (store.path / "key" / "zarr.json").exists():  # not when killed before the first write made it
            key = zarr.open_array(store.path / "key", mode="r")
            if key.shape[0] > count and key[count] != -1:
                found.append("rows past count")
        return "+".join(found) or "clean"

    def test_files_are_one_long_table(self, store: Store) -> None:
        _write_fifty_keys_twenty_times(store)
        cols = ("key", "step", "value", "time")
        assert files_of(store) == sorted(
            ["run.zarr", "run.zarr/zarr.json"] + [f"run.zarr/{c}{s}" for c in cols for s in ("", "/zarr.json", "/c.0")]
        )


def test_import_does_not_import_h5py_or_zarr() -> None:
    code = "import sys, hpctrack.store; assert not {'h5py', 'zarr'} & set(sys.modules), 'imported'"
    assert spawn(code).wait(timeout=60) == 0


def test_corrupt_zarr_shard_is_store_error(tmp_path: Path) -> None:
    st = ZarrStore(tmp_path / "run.zarr")
    st.write(metrics=batch("x", [0, 1], [1.0, 2.0]))
    good = (st.path / "value" / "c.0").read_bytes()
    (st.path / "value" / "c.0").write_bytes(b"\0" * 100)
    with pytest.raises(StoreError, match="run.zarr"):
        st.read_history("x")
    (st.path / "value" / "c.0").write_bytes(good)
    assert st.read_history("x").value.tolist() == [1.0, 2.0]
    (st.path / "value" / "c.0").unlink()  # a lost shard reads as fill values (zeros): named, never returned
    with pytest.raises(StoreError, match="missing value/c.0"):
        st.read_history("x")
    (st.path / "value" / "c.0").write_bytes(good)
    (st.path / "key" / "c.0").unlink()
    with pytest.raises(StoreError, match="missing key/c.0"):
        st.read_history("x")


def test_a_zarr_metric_of_zeros_has_no_value_shard_and_reads_back(tmp_path: Path) -> None:
    st = ZarrStore(tmp_path / "run.zarr")
    st.write(metrics=batch("x", [0, 1], [0.0, 0.0]))
    assert not (st.path / "value" / "c.0").exists()  # only fill values: zarr writes no shard
    assert st.read_history("x").value.tolist() == [0.0, 0.0]


# -- backend specifics ------------------------------------------------------------


def test_plain_h5py_reads_the_documented_layout(tmp_path: Path) -> None:
    st = HDF5Store(tmp_path / "run.h5")
    before = time.time()
    st.write(metrics=batch("train/loss", [0, 1], [1.0, 0.5]), sections={"params": {"a": 1}})
    st.write(metrics=batch("train/loss", [2], [0.25]), sections={"params": {"b": 2}})
    after = time.time()
    assert os.path.islink(st.path) and re.fullmatch(r"run\.\d+\.h5", os.readlink(st.path))
    with h5py.File(tmp_path / "run.h5", "r", locking=False) as f:
        assert int(f.attrs["format_version"]) == 3
        assert before <= float(f.attrs["created"]) <= after  # written by the first write
        sec = f["sections/params"]
        assert sec.shape == () and h5py.check_string_dtype(sec.dtype).encoding == "utf-8"
        assert json.loads(sec.asstr()[()]) == {"a": 1, "b": 2}
        ds = f["metrics/train%2Floss"]
        assert ds.attrs["key"] == "train/loss"
        assert ds.dtype == np.dtype([("step", "<i8"), ("value", "<f8"), ("time", "<f8")])
        assert ds.maxshape == (None,) and ds.chunks == (1024,)
        stats = json.loads(f["stats"].asstr()[()])
        assert stats == {"metrics": {"train/loss": {"count": 3, "last": 0.25, "last_step": 2, "min": 0.25, "max": 1.0,
                                                    "rows": 3, "segments": [[1, 0]], "sum": 1.75, "finite": 3,
                                                    "argmin": 2, "argmax": 0}},
                         "restarts": {}}  # fmt: skip
        rows = stats["metrics"]["train/loss"]["rows"]
        assert ds["value"][:rows].tolist() == [1.0, 0.5, 0.25]


def test_plain_zarr_reads_the_documented_layout(tmp_path: Path) -> None:
    st = ZarrStore(tmp_path / "run.zarr")
    before = time.time()
    st.write(metrics=batch("train/loss", [0, 1], [1.0, 0.5]), sections={"params": {"a": 1}})
    after = time.time()
    b = batch("acc", [0], [0.1])
    b.add("train/loss", 2, 0.25, 1002.0)
    st.write(metrics=b, sections={"params": {"b": 2}})
    group = zarr.open_group(tmp_path / "run.zarr", mode="r")
    attrs = group.attrs.asdict()
    assert attrs["format_version"] == 2 and before <= attrs["created"] <= after  # written by the first write
    assert attrs["sections"] == {"params": {"a": 1, "b": 2}}
    assert attrs["keys"] == ["train/loss", "acc"] and attrs["count"] == 4
    assert attrs["stats"]["train/loss"] == {"count": 3, "last": 0.25, "last_step": 2, "min": 0.25, "max": 1.0,
                                            "rows": 3, "segments": [[1, 0]], "sum": 1.75, "finite": 3,
                                            "argmin": 2, "argmax": 0}  # fmt: skip
    n = attrs["count"]
    key = group["key"][:n]
    assert group["key"].dtype == np.int32 and group["step"].dtype == np.int64
    assert group["value"].dtype == np.float64 and group["time"].dtype == np.float64
    mask = key == attrs["keys"].index("train/loss")
    assert group["step"][:n][mask].tolist() == [0, 1, 2]
    assert group["value"][:n][mask].tolist() == [1.0, 0.5, 0.25]
    assert group["key"].shape[0] >= n and group["key"][n:].tolist() == [-1] * (group["key"].shape[0] - n)


def _old_hdf5_layout(f: "h5py.File", version: int) -> None:
    """Formats 1 and 2: the same groups, with each metric's stats in its dataset's attributes."""
    f.attrs["format_version"] = version
    f.attrs["created"] = 1.0
    f.create_dataset("sections/params", data=json.dumps({"a": 1}), dtype=h5py.string_dtype("utf-8"))
    ds = f.create_dataset("metrics/m", data=np.zeros(3, dtype=[("step", "<i8"), ("value", "<f8"), ("time", "<f8")]),
                          maxshape=(None,), chunks=(1024,))  # fmt: skip
    ds["step"] = [0, 1, 99]  # the third row is past `count`: an update that raised
    for attr, v in {"key": "m", "count": 2, "last": 0.0, "last_step": 1, "min": 0.0, "max": 0.0}.items():
        ds.attrs[attr] = v


def test_hdf5_v1_store_is_read_then_migrated(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with h5py.File(path, "w", locking=False) as f:  # format 1: one plain file
        _old_hdf5_layout(f, 1)
    st = HDF5Store(path)
    rec = st.read()
    assert rec.format_version == 1 and rec.params == {"a": 1} and rec.metrics["m"].count == 2
    assert st.read_history("m").step.tolist() == [0, 1]
    st.write(metrics=batch("m", [2], [5.0]), sections={"params": {"b": 2}})
    assert os.path.islink(path)
    rec = st.read()
    assert rec.format_version == 3 and rec.params == {"a": 1, "b": 2} and rec.metrics["m"].max == 5.0
    assert st.read_history("m").step.tolist() == [0, 1, 2]


def test_hdf5_v2_store_is_read_then_migrated(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "run.0.h5", "w", locking=False) as f:  # format 2: copies behind a symlink
        _old_hdf5_layout(f, 2)
    os.symlink("run.0.h5", tmp_path / "run.h5")
    st = HDF5Store(tmp_path / "run.h5")
    assert st.read().format_version == 2 and st.read().metrics["m"].count == 2
    assert st.read_history("m").step.tolist() == [0, 1]
    st.write(sections={"tags": {"t": 1}})  # no metrics: the stats still move to /stats
    st.write(metrics=batch("m", [2], [-1.0]))
    rec = st.read()
    assert rec.format_version == 3 and rec.metrics["m"].count == 3 and rec.metrics["m"].min == -1.0
    assert st.read_history("m").step.tolist() == [0, 1, 2]


def test_hdf5_migrations_are_one_named_step_each(tmp_path: Path) -> None:
    from hpctrack.store._hdf5 import MIGRATIONS, _read_stats

    assert HDF5Store.migrations is MIGRATIONS and [f.__name__ for f in MIGRATIONS.values()] == [
        "_v1_to_v2",
        "_v2_to_v3",
    ]
    with h5py.File(tmp_path / "v1.h5", "w", locking=False) as f:
        _old_hdf5_layout(f, 1)
        MIGRATIONS[1](f)
        assert int(f.attrs["format_version"]) == 2 and "stats" not in f  # the same layout inside
        MIGRATIONS[2](f)
        assert int(f.attrs["format_version"]) == 3
        stored = json.loads(f["stats"].asstr()[()])
        assert stored["metrics"]["m"]["count"] == 2 and stored["restarts"] == {}
        assert _read_stats(f)[0]["m"].stored_rows == 2  # the point past `count` stays superseded by it


def _v1_zarr_store(path: Path) -> None:
    """A Zarr store as format 1 wrote it: the same arrays; stats without rows or segments, no restarts."""
    ZarrStore(path).write(metrics=batch("m", [0, 1], [3.0, 1.0]), sections={"params": {"a": 1}})
    meta = json.loads((path / "zarr.json").read_text())
    record = meta["attributes"]
    record["format_version"] = 1
    record.pop("restarts", None)
    record["stats"] = {k: {a: v[a] for a in ("count", "last", "last_step", "min", "max")}
                       for k, v in record["stats"].items()}  # fmt: skip
    (path / "zarr.json").write_text(json.dumps(meta))


def test_zarr_v1_store_is_read_then_migrated(tmp_path: Path) -> None:
    _v1_zarr_store(tmp_path / "run.zarr")
    st = ZarrStore(tmp_path / "run.zarr")
    rec = st.read()
    assert rec.format_version == 1 and rec.params == {"a": 1} and rec.restarts == {}
    assert rec.metrics["m"] == MetricStats(count=2, last=1.0, last_step=1, min=1.0, max=3.0)
    assert st.read_history("m").step.tolist() == [0, 1]
    st.write(sections={"tags": {"t": 1}})  # no metrics: the record is upgraded all the same
    record = json.loads((st.path / "zarr.json").read_text())["attributes"]
    assert record["format_version"] == 2 and record["restarts"] == {}
    assert record["stats"]["m"]["rows"] == 2 and record["stats"]["m"]["segments"] == [[1, 0]]
    st.write(metrics=batch("m", [2], [0.5], attempt=2), restart=(2, 2))
    rec = st.read()
    assert rec.format_version == 2 and rec.restarts == {2: 2} and rec.metrics["m"].min == 0.5
    assert st.read_history("m").attempt.tolist() == [1, 1, 2]  # type: ignore[union-attr]


def test_zarr_migrations_are_one_named_step_each() -> None:
    from hpctrack.store._zarr import MIGRATIONS

    assert ZarrStore.migrations is MIGRATIONS and [f.__name__ for f in MIGRATIONS.values()] == ["_v1_to_v2"]
    record = {"format_version": 1, "keys": ["m"], "count": 2, "sections": {},
              "stats": {"m": {"count": 2, "last": 1.0, "last_step": 1, "min": 1.0, "max": 3.0}}}  # fmt: skip
    MIGRATIONS[1](record)
    assert record["format_version"] == 2 and record["restarts"] == {}
    assert record["stats"]["m"] == {"count": 2, "last": 1.0, "last_step": 1, "min": 1.0, "max": 3.0, "rows": 2,
                                    "segments": [[1, 0]]}  # fmt: skip


def test_a_store_without_a_migration_for_its_version_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    class Gap(ZarrStore):
        migrations: dict = {}

    _v1_zarr_store(tmp_path / "run.zarr")
    before = (tmp_path / "run.zarr" / "zarr.json").read_bytes()
    with pytest.raises(FormatVersionError, match="format_version 1, which this hpctrack cannot upgrade"):
        Gap(tmp_path / "run.zarr").write(sections={"tags": {"t": 1}})
    assert (tmp_path / "run.zarr" / "zarr.json").read_bytes() == before


def test_hdf5_writer_resyncs_a_torn_spare(tmp_path: Path) -> None:
    st = HDF5Store(tmp_path / "run.h5")
    st.write(metrics=batch("m", [0], [1.0]))
    current = os.readlink(st.path)
    spare = next(f for f in files_of(st) if f not in ("run.h5", current))
    (tmp_path / spare).write_bytes(b"torn" * 100)  # what a writer killed mid-update leaves
    (tmp_path / ".run.h5.dead.tmp").write_bytes(b"x")
    assert st.read().metrics["m"].count == 1  # readers never look at the spare
    fresh = HDF5Store(tmp_path / "run.h5")  # a new writer process
    fresh.write(metrics=batch("m", [1], [2.0]))
    assert fresh.read_history("m").step.tolist() == [0, 1]
    assert len(files_of(st)) == 3
    with pytest.raises(StoreReplacedError):  # the first writer never builds on another writer's update
        st.write(metrics=batch("m", [2], [3.0]))
    assert HDF5Store(tmp_path / "run.h5").read_history("m").step.tolist() == [0, 1]


def test_hdf5_reader_retries_when_commits_land_during_its_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two commits during one read rewrite the copy being read in place and name a new
    generation: the reader must retry (a fixed pair of names a/b would name the same file again)."""
    writer = HDF5Store(tmp_path / "run.h5")
    writer.write(metrics=batch("m", [0], [0.0]))
    reader = HDF5Store(tmp_path / "run.h5")
    seen: List[str] = []
    original = HDF5Store._check_version
    code = """
        import sys
        from hpctrack.store import HDF5Store, MetricBatch
        st = HDF5Store(sys.argv[1])
        for step in (1, 2):
            b = MetricBatch()
            b.add("m", step, float(step), 1000.0 + step)
            st.write(metrics=b)
    """

    def check_then_commit_twice(self: HDF5Store, f: Any) -> None:
        original(self, f)
        seen.append(os.readlink(self.path))
        if len(seen) == 1:  # another process: HDF5 shares files opened twice in one process
            assert spawn(code, str(self.path)).wait(timeout=60) == 0

    monkeypatch.setattr(HDF5Store, "_check_version", check_then_commit_twice)
    monkeypatch.setattr(HDF5Store, "_read_history_fast", lambda *args: None)  # the retrying path under test
    assert reader.read_history("m").step.tolist() == [0, 1, 2]
    assert len(seen) == 2 and seen[0] != seen[1]


def test_hdf5_fast_history_read_matches_the_checked_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = HDF5Store(tmp_path / "run.h5")
    st.write(metrics=batch("loss", [0, 1, 2, 3], [4.0, 3.0, 2.0, 9.0], 1))
    st.write(metrics=batch("loss", [3, 4], [1.0, 0.5], 2), restart=(2, 3))
    fast = st._read_history_fast("loss", "loss", raw=False)
    assert fast is not None and fast.step.tolist() == [0, 1, 2, 3, 4] and fast.attempt.tolist() == [1, 1, 1, 2, 2]
    assert st._read_history_fast("nope", "nope", raw=False) is None
    monkeypatch.setattr(HDF5Store, "_read_history_fast", lambda *args: None)
    slow = st.read_history("loss")
    assert slow.value.tolist() == fast.value.tolist() and slow.time.tolist() == fast.time.tolist()
    with pytest.raises(KeyError):
        st.read_history("nope")
