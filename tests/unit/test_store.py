"""Run stores, every backend: layout, merge semantics, stats, errors, lock-free
readers, and crash safety of writers killed with SIGKILL at random moments."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import h5py
import numpy as np
import pytest
import zarr

from hpctrack.errors import FormatVersionError, RunNotFoundError, StoreError, StoreReplacedError
from hpctrack.locking import lock
from hpctrack.store import BACKENDS, HDF5Store, MetricBatch, MetricStats, Store, ZarrStore, open_store

REPO = Path(__file__).resolve().parents[2]
ODD_KEYS = ["train/loss", "acc%top1", "a/%2F/b", ".", "..", "a/../b", "%", "/x", "../../escape", "ünï/ß", "sp ace", "nul\0byte"]


def batch(key: str, steps: List[int], values: List[float]) -> MetricBatch:
    b = MetricBatch()
    for s, v in zip(steps, values):
        b.add(key, s, v, 1000.0 + s)
    return b


def spawn(code: str, *args: str) -> subprocess.Popen:
    """A fresh interpreter running ``code`` with this checkout importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, stdout=subprocess.PIPE, text=True
    )


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(tmp_path: Path, backend: str) -> Store:
    return open_store(tmp_path, backend)


def files_of(store: Store) -> List[str]:
    """Every file and directory of one run's store, relative to the run directory; no lock."""
    run_dir = store.path.parent
    out = []
    for root, dirs, files in os.walk(run_dir):
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(root, name), run_dir)
            if not rel.endswith(".lock"):
                out.append(rel)
    return sorted(out)


def set_format_version(store: Store, version: int) -> None:
    """Edit the version in place, as a newer hpctrack would have written it."""
    if isinstance(store, HDF5Store):
        with h5py.File(store.path, "a", locking=False) as f:  # the copy run.h5 names
            f.attrs["format_version"] = version
    else:
        meta = json.loads((store.path / "zarr.json").read_text())
        meta["attributes"]["format_version"] = version
        (store.path / "zarr.json").write_text(json.dumps(meta))


# -- basics, on every backend --------------------------------------------------


def test_import_does_not_import_h5py_or_zarr() -> None:
    code = "import sys, hpctrack.store; assert not {'h5py', 'zarr'} & set(sys.modules), 'imported'"
    assert spawn(code).wait(timeout=60) == 0


@pytest.mark.parametrize("name, file", [("hdf5", "run.h5"), ("zarr", "run.zarr")])
def test_open_store_names(tmp_path: Path, name: str, file: str) -> None:
    st = open_store(tmp_path, name)
    assert type(st) is {"hdf5": HDF5Store, "zarr": ZarrStore}[name]
    assert st.path == tmp_path / file
    assert st.lock_path == tmp_path / f"{file}.lock"  # type: ignore[attr-defined]


def test_sections_merge_and_round_trip(store: Store) -> None:
    store.write(sections={"params": {"lr": 0.1, "layers": [64, 64]}, "tags": {"who": "ünï"}})
    store.write(
        sections={
            "params": {"lr": np.float32(0.5), "seed": np.int64(3), "flag": np.bool_(True)},
            "summary": {"best": math.inf, "worst": -math.inf, "bad": math.nan, "nested": {"a": [1, None]}},
        }
    )
    rec = store.read()
    assert rec.path == store.path
    assert rec.format_version == type(store).format_version
    assert rec.params == {"lr": 0.5, "layers": [64, 64], "seed": 3, "flag": True}
    assert type(rec.params["seed"]) is int and type(rec.params["flag"]) is bool
    assert rec.tags == {"who": "ünï"}
    assert rec.summary["best"] == math.inf and rec.summary["worst"] == -math.inf
    assert math.isnan(rec.summary["bad"]) and rec.summary["nested"] == {"a": [1, None]}
    assert rec.status == {} and rec.info == {} and rec.metrics == {}


def test_bad_input_leaves_store_untouched(store: Store) -> None:
    store.write(metrics=batch("x", [0], [1.0]), sections={"params": {"a": 1}})
    with pytest.raises(TypeError, match="params"):
        store.write(metrics=batch("x", [1], [2.0]), sections={"params": {"b": object()}})
    with pytest.raises(ValueError, match="unknown section"):
        store.write(sections={"nope": {}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="non-empty string"):
        store.write(metrics=batch("", [1], [2.0]))
    rec = store.read()
    assert rec.params == {"a": 1} and rec.metrics["x"].count == 1


def test_metrics_in_batches_with_odd_keys(store: Store, tmp_path: Path) -> None:
    around = sorted(os.listdir(tmp_path.parent))
    for start in range(0, 30, 10):
        b = MetricBatch()
        for key in ODD_KEYS:
            for s in range(start, start + 10):
                b.add(key, s, float(s) * 2, 1000.0 + s)
        store.write(metrics=b)
    rec = store.read()
    assert sorted(rec.metrics) == sorted(ODD_KEYS)
    for key in ODD_KEYS:
        stats = rec.metrics[key]
        assert (stats.count, stats.last, stats.last_step, stats.min, stats.max) == (30, 58.0, 29, 0.0, 58.0)
        hist = store.read_history(key)
        assert hist.key == key and len(hist) == 30
        np.testing.assert_array_equal(hist.step, np.arange(30))
        np.testing.assert_array_equal(hist.value, np.arange(30) * 2.0)
        np.testing.assert_array_equal(hist.time, 1000.0 + np.arange(30))
        assert hist.step.dtype == np.int64 and hist.value.dtype == np.float64
    # Keys are data: nothing was created outside the store, whatever the key says.
    assert sorted(os.listdir(tmp_path.parent)) == around
    assert [f for f in files_of(store) if not f.startswith("run")] == []
    assert len(files_of(store)) == (3 if isinstance(store, HDF5Store) else 14)


def test_history_keeps_logging_order(store: Store) -> None:
    store.write(metrics=batch("m", [5, 3], [1.0, 2.0]))
    store.write(metrics=batch("m", [9, 1], [3.0, 4.0]))
    hist = store.read_history("m")
    assert hist.step.tolist() == [5, 3, 9, 1]
    assert hist.value.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert store.read().metrics["m"].last_step == 1


def test_non_finite_values_and_stats(store: Store) -> None:
    store.write(metrics=batch("m", [0, 1, 2], [math.nan, 1.0, math.inf]))
    store.write(metrics=batch("m", [3, 4], [-math.inf, math.nan]))
    store.write(metrics=batch("allnan", [0, 1], [math.nan, math.nan]))
    rec = store.read()
    m = rec.metrics["m"]
    assert m.count == 5 and m.last_step == 4 and math.isnan(m.last)
    assert (m.min, m.max) == (-math.inf, math.inf)
    a = rec.metrics["allnan"]
    assert a.count == 2 and math.isnan(a.min) and math.isnan(a.max) and math.isnan(a.last)
    values = store.read_history("m").value
    assert np.isnan(values).tolist() == [True, False, False, False, True]
    assert values[1:4].tolist() == [1.0, math.inf, -math.inf]


def test_points_as_numpy_arrays(store: Store) -> None:
    # Run.flush hands over numpy columns; plain lists (above) work too.
    b = MetricBatch(points={"m": (np.arange(3, dtype=np.int64), np.array([0.5, np.nan, 2.0]), np.full(3, 7.0))})
    store.write(metrics=b)
    hist = store.read_history("m")
    assert hist.step.tolist() == [0, 1, 2] and hist.time.tolist() == [7.0] * 3
    np.testing.assert_array_equal(hist.value, [0.5, np.nan, 2.0])
    assert store.read().metrics["m"] == MetricStats(count=3, last=2.0, last_step=2, min=0.5, max=2.0)


def test_thousands_of_keys_are_accepted(store: Store) -> None:
    b = MetricBatch()
    for k in range(2000):
        b.add(f"layer{k}/grad", 0, float(k), 1.0)
        b.add(f"layer{k}/grad", 1, float(-k), 2.0)
    store.write(metrics=b)
    store.write(metrics=batch("layer7/grad", [2], [0.5]))
    rec = store.read()
    assert len(rec.metrics) == 2000
    assert rec.metrics["layer7/grad"] == MetricStats(count=3, last=0.5, last_step=2, min=-7.0, max=7.0)
    assert store.read_history("layer1999/grad").value.tolist() == [1999.0, -1999.0]
    assert store.read_history("layer7/grad").step.tolist() == [0, 1, 2]
    # HDF5: 3 files, one dataset per key inside; Zarr: a long table, 9 files + 5 directories.
    assert len(files_of(store)) == (3 if isinstance(store, HDF5Store) else 14)


def test_missing_run(tmp_path: Path, backend: str) -> None:
    st = open_store(tmp_path / "nodir", backend)
    with pytest.raises(RunNotFoundError, match=st.path.name):
        st.read()
    with pytest.raises(RunNotFoundError):
        st.read_history("x")
    assert not (tmp_path / "nodir").exists()  # reading did not create a lock or a directory
    with pytest.raises(StoreError, match="does not exist"):
        st.write(sections={"params": {}})
    (tmp_path / "nodir").mkdir()
    with pytest.raises(RunNotFoundError):
        st.read()
    assert list((tmp_path / "nodir").iterdir()) == []


def test_unknown_metric_is_key_error(store: Store) -> None:
    store.write(metrics=batch("x", [0], [1.0]))
    with pytest.raises(KeyError, match="never logged"):
        store.read_history("y")


def test_newer_format_version_is_refused(store: Store) -> None:
    store.write(metrics=batch("x", [0], [1.0]))
    set_format_version(store, type(store).format_version + 1)
    writer = type(store)(store.path)  # a new writer (this one would refuse a store changed under it anyway)
    for call in (store.read, lambda: store.read_history("x"), lambda: writer.write(sections={"info": {}})):
        with pytest.raises(FormatVersionError, match=r"pip install -U hpctrack") as info:
            call()
        assert str(store.path) in str(info.value)
    set_format_version(store, type(store).format_version)
    assert store.read().metrics["x"].count == 1  # the refused write changed nothing


def test_corrupt_store_is_store_error(store: Store) -> None:
    store.write(metrics=batch("x", [0], [1.0]))
    victim = store.path.resolve() if isinstance(store, HDF5Store) else store.path / "zarr.json"
    victim.write_bytes(b"this is not a store\n" * 10)
    with pytest.raises(StoreError) as info:
        store.read()
    assert str(store.path) in str(info.value) and "\n" not in str(info.value)
    assert not isinstance(info.value, (RunNotFoundError, FormatVersionError))


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


def test_exception_mid_update_is_invisible(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(Exception):
        pass

    store.write(metrics=batch("m", [0, 1], [0.0, 1.0]))

    def boom(self: MetricStats, steps: List[int], values: List[float], attempt: int = 1) -> MetricStats:
        raise Boom  # in the middle of the update, before it is committed

    with monkeypatch.context() as mp:
        mp.setattr(MetricStats, "merged", boom)
        with pytest.raises(Boom):
            store.write(metrics=batch("m", [2, 3], [2.0, 3.0]), sections={"status": {"x": 1}})
    assert store.read_history("m").step.tolist() == [0, 1]
    assert store.read().status == {}
    store.write(metrics=batch("m", [2], [2.0]))
    assert store.read_history("m").step.tolist() == [0, 1, 2]
    assert store.read().metrics["m"].count == 3
    assert open_store(store.path.parent, type(store).name).read_history("m").step.tolist() == [0, 1, 2]


def test_both_backends_give_identical_records(tmp_path: Path) -> None:
    stores = [open_store(tmp_path / name, name) for name in sorted(BACKENDS)]
    rng = random.Random(7)
    for st in stores:
        st.path.parent.mkdir()
    for i in range(12):
        b = MetricBatch()
        for key in ("loss", "acc/top1", f"k{i % 4}", "ünï"):
            for _ in range(rng.randint(1, 5)):
                b.add(key, rng.randint(-5, 1000), rng.choice([rng.random(), math.nan, math.inf]), rng.random())
        secs: Dict[str, Dict[str, Any]] = {"status": {"i": i}, "summary": {f"s{i % 3}": rng.random()}}
        if i == 3:
            secs["params"] = {"lr": 0.1, "name": "ü", "big": 2**60, "inf": -math.inf}
        for st in stores:
            st.write(metrics=b, sections=secs)  # type: ignore[arg-type]
    recs = [st.read() for st in stores]

    def comparable(rec: Any) -> str:  # NaN != NaN: compare through JSON
        return json.dumps({k: getattr(rec, k) for k in ("params", "summary", "tags", "status", "info")}, sort_keys=True)

    assert comparable(recs[0]) == comparable(recs[1])
    assert sorted(recs[0].metrics) == sorted(recs[1].metrics)
    for key, stats in recs[0].metrics.items():
        assert repr(stats) == repr(recs[1].metrics[key])
        hists = [st.read_history(key) for st in stores]
        for col in ("step", "value", "time"):
            a, b2 = getattr(hists[0], col), getattr(hists[1], col)
            assert a.dtype == b2.dtype
            np.testing.assert_array_equal(a, b2)


def test_reader_needs_no_lock(store: Store) -> None:
    store.write(metrics=batch("m", [0], [1.0]))
    with lock(store.lock_path, timeout_s=1.0):  # type: ignore[attr-defined]
        t0 = time.monotonic()
        assert store.read().metrics["m"].count == 1
        assert store.read_history("m").step.tolist() == [0]
        assert time.monotonic() - t0 < 1.0


def test_files_per_run(store: Store) -> None:
    for i in range(20):
        b = MetricBatch()
        for k in range(50):
            b.add(f"m{k}", i, float(i), 1.0)
        store.write(metrics=b, sections={"status": {"i": i}})
    files = files_of(store)
    if isinstance(store, HDF5Store):
        # The symlink and two complete copies (the lock file comes and goes with the writer).
        assert len(files) == 3 and "run.h5" in files
        assert all(re.fullmatch(r"run(\.\d+)?\.h5", f) for f in files)
        assert os.readlink(store.path) in files
    else:
        # 5 zarr.json + 4 shards; 5 directories (run.zarr and one per column).
        cols = ("key", "step", "value", "time")
        assert files == sorted(
            ["run.zarr", "run.zarr/zarr.json"] + [f"run.zarr/{c}{s}" for c in cols for s in ("", "/zarr.json", "/c.0")]
        )


# -- backend specifics ------------------------------------------------------------


def test_plain_h5py_reads_the_documented_layout(tmp_path: Path) -> None:
    st = HDF5Store(tmp_path / "run.h5")
    st.write(metrics=batch("train/loss", [0, 1], [1.0, 0.5]), sections={"params": {"a": 1}})
    st.write(metrics=batch("train/loss", [2], [0.25]), sections={"params": {"b": 2}})
    assert os.path.islink(st.path) and re.fullmatch(r"run\.\d+\.h5", os.readlink(st.path))
    with h5py.File(tmp_path / "run.h5", "r", locking=False) as f:
        assert int(f.attrs["format_version"]) == 3
        assert abs(float(f.attrs["created"]) - time.time()) < 60
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
    st.write(metrics=batch("train/loss", [0, 1], [1.0, 0.5]), sections={"params": {"a": 1}})
    b = batch("acc", [0], [0.1])
    b.add("train/loss", 2, 0.25, 1002.0)
    st.write(metrics=b, sections={"params": {"b": 2}})
    group = zarr.open_group(tmp_path / "run.zarr", mode="r")
    attrs = group.attrs.asdict()
    assert attrs["format_version"] == 2 and abs(attrs["created"] - time.time()) < 60
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


# -- real processes: concurrent readers, killed writers ------------------------------

FLUSHES = 60


def _writer_code(backend: str, run_dir: Path, flushes: int, pause_s: float) -> str:
    return f"""
        import time
        from hpctrack.store import open_store, MetricBatch
        st = open_store({str(run_dir)!r}, {backend!r})
        step = 0
        for i in range({flushes}):
            b = MetricBatch()
            for _ in range(1 + i % 3):          # 1..3 points of each key per flush
                b.add("train/loss", step, float(step), time.time())
                b.add("acc%", step, float(step), time.time())
                step += 1
            st.write(metrics=b, sections={{"status": {{"flushes": i + 1, "points": step}}}})
            print(i + 1, flush=True)
            time.sleep({pause_s})
    """


BOUNDARIES = {sum(1 + i % 3 for i in range(n)) for n in range(FLUSHES + 1)}


def _check_consistent(st: Store) -> int:
    """Assert every read sees whole updates only; return the number of points seen."""
    rec = st.read()
    points = rec.status.get("points", 0)
    for key in ("train/loss", "acc%"):
        if key not in rec.metrics:
            assert points == 0
            continue
        stats = rec.metrics[key]
        assert stats.count == points == stats.last_step + 1  # sections and metrics: one update
        hist = st.read_history(key)
        after = st.read().metrics[key].count
        # Each read is one snapshot: a whole number of flushes, between the two record reads.
        assert stats.count <= len(hist) <= after and len(hist) in BOUNDARIES
        np.testing.assert_array_equal(hist.step, np.arange(len(hist)))
        np.testing.assert_array_equal(hist.value, np.arange(len(hist), dtype=float))
    return int(points)


def test_concurrent_writers_and_reader(tmp_path: Path, backend: str) -> None:
    stores = [open_store(tmp_path / f"run{i}", backend) for i in range(3)]
    for st in stores:
        st.path.parent.mkdir()
    procs = [spawn(_writer_code(backend, st.path.parent, FLUSHES, 0.005)) for st in stores]
    total = max(BOUNDARIES)
    seen = set()
    try:
        while any(p.poll() is None for p in procs):
            for st in stores:
                try:
                    seen.add(_check_consistent(st))
                except RunNotFoundError:
                    continue  # that writer has not started yet
    finally:
        outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert len(seen - {0, total}) >= 5  # the reader really ran alongside the writers
    for st, out in zip(stores, outs):
        assert out.split()[-1] == str(FLUSHES)
        assert _check_consistent(st) == total
        rec = st.read()
        assert rec.status["flushes"] == FLUSHES
        assert {k: s.count for k, s in rec.metrics.items()} == {"train/loss": total, "acc%": total}


# The kill test. Batch i is a pure function of i, so a reader can tell every
# row that should be there from every row that should not. Shared as source
# with the writer processes.
BATCH_CODE = """
def batch_content(i):
    keys = ["loss", "acc/top1", "layer.%d/grad" % (i % 5), "\\u00fcn\\u00ef"]
    out = {}
    for k, key in enumerate(keys):
        pts = []
        for j in range(1 + (i + k) % 4):
            v = i + k / 10 + j / 100
            if (i + j + k) % 11 == 0:
                v = float("nan")
            elif (i + j + k) % 13 == 0:
                v = float("inf")
            pts.append((i * 4 + j, v, 1e9 + i + j / 10))
        out[key] = pts
    return out

def batch_sections(i):
    return {"status": {"batch": i}, "summary": {"s%d" % (i % 3): i}}
"""
_ns: Dict[str, Any] = {}
exec(BATCH_CODE, _ns)
batch_content: Callable[[int], Dict[str, List[Tuple[int, float, float]]]] = _ns["batch_content"]
batch_sections: Callable[[int], Dict[str, Dict[str, Any]]] = _ns["batch_sections"]

KILL_WRITER = (
    BATCH_CODE
    + """
import sys
import h5py, numpy, zarr  # imported up front: a kill should land in the I/O, not in an import
from hpctrack.store import MetricBatch, open_store
st = open_store(sys.argv[1], sys.argv[2])
for i in range(int(sys.argv[3]), int(sys.argv[4])):
    b = MetricBatch()
    for key, pts in batch_content(i).items():
        for s, v, t in pts:
            b.add(key, s, v, t)
    print("begin", i, flush=True)
    st.write(metrics=b, sections=batch_sections(i))
    print("end", i, flush=True)
"""
)


def _check_batches(st: Store, low: int, high: int) -> int:
    """The store holds exactly batches 0..k-1, for some low <= k <= high, and nothing else; return k."""
    try:
        rec = st.read()
    except RunNotFoundError:
        assert low == 0, "acknowledged batches were lost with the whole store"
        return 0
    k = rec.status.get("batch", -1) + 1
    assert low <= k <= high, f"store holds {k} batches, expected {low}..{high}"
    expected: Dict[str, List[Tuple[int, float, float]]] = {}
    summary: Dict[str, int] = {}
    for i in range(k):
        for key, pts in batch_content(i).items():
            expected.setdefault(key, []).extend(pts)
        summary.update(batch_sections(i)["summary"])
    assert rec.summary == summary
    assert sorted(rec.metrics) == sorted(expected)
    for key, pts in expected.items():
        hist = st.read_history(key)
        steps, values, times = (np.array(c) for c in zip(*pts))
        np.testing.assert_array_equal(hist.step, steps)
        np.testing.assert_array_equal(hist.value, values)  # NaN == NaN here
        np.testing.assert_array_equal(hist.time, times)
        stats = rec.metrics[key]
        assert (stats.count, stats.last_step) == (len(pts), steps[-1])
        assert repr(stats.last) == repr(float(values[-1]))
    return k


def _debris(st: Store) -> str:
    """What a killed writer left that readers must not see: a torn spare copy, temporary
    files, rows written past the committed count. Tells where in write() the kill landed."""
    found = []
    if not st.path.exists():
        return "no store"
    names = files_of(st)
    if isinstance(st, HDF5Store):
        if any(f.startswith(".") for f in names):
            found.append("tmp")
        for spare in (f for f in names if f not in ("run.h5", os.readlink(st.path))):
            try:
                with h5py.File(st.path.parent / spare, "r", locking=False) as f:
                    f.attrs["format_version"]
            except Exception as err:  # v110 files killed while open carry a "still open" flag
                found.append("spare left open" if "already open" in str(err) else "torn spare")
    else:
        if any(Path(f).name.startswith(".") for f in names):
            found.append("tmp")
        record = st.path / "zarr.json"
        count = json.loads(record.read_text())["attributes"]["count"] if record.exists() else 0
        if (st.path / "key" / "zarr.json").exists():  # not when killed before the first write made it
            key = zarr.open_array(st.path / "key", mode="r")
            if key.shape[0] > count and key[count] != -1:
                found.append("rows past count")
    return "+".join(found) or "clean"


def _kill_chain(backend: str, run_dir: Path, kills: int, rng: random.Random, log: List[Tuple[str, int, str]]) -> None:
    """Kill one writer after another on one store; each new writer continues the last."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    st = open_store(run_dir, backend)
    k = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, str(run_dir), backend, str(k), str(10**9)],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        # Kill during the first write (which resynchronises) or a later one, after 50 us .. 50 ms.
        lines = [proc.stdout.readline().split() for _ in range(1 + 2 * rng.randrange(3))]
        assert lines[0] == ["begin", str(k)], lines
        time.sleep(math.exp(rng.uniform(math.log(5e-5), math.log(0.05))))
        os.kill(proc.pid, signal.SIGKILL)
        lines += [line.split() for line in proc.stdout.read().splitlines()]
        proc.wait(timeout=30)
        acked = [int(n) for word, n in lines if word == "end"]
        in_flight = lines[-1][0] == "begin"  # killed inside write(), or right around it
        low = (acked[-1] + 1) if acked else k
        k = _check_batches(st, low, low + int(in_flight))
        log.append((backend, int(in_flight), ("committed " if k > low else "") + _debris(st)))
    # A last writer that is not killed appends to whatever the killed ones left.
    proc = spawn(KILL_WRITER, str(run_dir), backend, str(k), str(k + 3))
    assert proc.wait(timeout=60) == 0
    assert _check_batches(open_store(run_dir, backend), k + 3, k + 3) == k + 3


def _disk_load(path: Path, stop: threading.Event) -> None:
    """fsync-heavy writes beside the stores, to widen every window a kill can land in."""
    data = os.urandom(1 << 20)
    while not stop.is_set():
        with open(path, "wb") as fh:
            for _ in range(4):
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    path.unlink()


#: 4 chains x 8 kills per backend (about 15 s each); raise it for a soak run.
KILLS_PER_CHAIN = int(os.environ.get("HPCTRACK_KILLS_PER_CHAIN", "8"))
CHAINS = 4


def test_writers_killed_at_random_moments_never_corrupt_the_store(tmp_path: Path, backend: str) -> None:
    rng = random.Random(os.environ.get("HPCTRACK_KILL_SEED", None))
    log: List[Tuple[str, int, str]] = []
    errors: List[BaseException] = []
    stop = threading.Event()
    load = threading.Thread(target=_disk_load, args=(tmp_path / "load.bin", stop))
    load.start()

    def chain(i: int) -> None:
        try:
            run_dir = tmp_path / f"run{i}"
            run_dir.mkdir()
            _kill_chain(backend, run_dir, KILLS_PER_CHAIN, random.Random(rng.random()), log)
        except BaseException as err:  # reported below, with the others
            errors.append(err)

    threads = [threading.Thread(target=chain, args=(i,)) for i in range(CHAINS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        load.join()
    if errors:
        raise errors[0]
    kills, mid = len(log), sum(m for _, m, _ in log)
    left = {what: sum(1 for _, _, w in log if w == what) for what in sorted({w for _, _, w in log})}
    print(f"\n{backend}: {kills} writers killed, {mid} inside write(), none lost or changed an acknowledged "
          f"batch; left behind: {left}")
    assert kills == KILLS_PER_CHAIN * CHAINS
    assert mid >= kills // 4, f"only {mid} of {kills} kills landed inside write()"
    for i in range(CHAINS):  # killed writers left no garbage behind the last writer
        st = open_store(tmp_path / f"run{i}", backend)
        assert len(files_of(st)) == (3 if backend == "hdf5" else 14)


def _attempt_batch(key: str, steps: List[int], values: List[float], attempt: int) -> MetricBatch:
    b = batch(key, steps, values)
    b.attempt = attempt
    return b


def test_a_restart_supersedes_the_earlier_attempts_later_steps(store: Store) -> None:
    # Attempt 1 logs steps 0-5 of "loss" and 0, 3 of "val"; it checkpointed after step 2 and died.
    store.write(metrics=_attempt_batch("loss", [0, 1, 2, 3, 4, 5], [5.0, 4.0, 3.0, 9.0, 9.0, 9.0], 1))
    store.write(metrics=_attempt_batch("val", [0, 3], [0.5, 0.9], 1))
    # Attempt 2 restarts at step 3 and logs 3-4; then attempt 3 restarts at 4 and logs 4-6.
    store.write(metrics=_attempt_batch("loss", [3, 4], [2.0, 8.0], 2), restart=(2, 3))
    rec = store.read()
    assert rec.restarts == {2: 3}
    assert rec.metrics["loss"] == MetricStats(count=5, last=8.0, last_step=4, min=2.0, max=8.0)
    assert rec.metrics["val"] == MetricStats(count=1, last=0.5, last_step=0, min=0.5, max=0.5)  # step 3 superseded
    store.write(metrics=_attempt_batch("loss", [4, 5, 6], [1.5, 1.0, 0.5], 3), restart=(3, 4))
    loss = store.read_history("loss")
    assert loss.step.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert loss.value.tolist() == [5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5]
    assert loss.attempt.tolist() == [1, 1, 1, 2, 3, 3, 3]
    raw = store.read_history("loss", raw=True)
    assert raw.step.tolist() == [0, 1, 2, 3, 4, 5, 3, 4, 4, 5, 6]  # the superseded points stay inspectable
    assert raw.attempt.tolist() == [1] * 6 + [2, 2] + [3] * 3
    rec = store.read()
    assert rec.metrics["loss"] == MetricStats(count=7, last=0.5, last_step=6, min=0.5, max=5.0)
    assert rec.metrics["loss"].rows == 11 and rec.restarts == {2: 3, 3: 4}
    assert store.read_history("val").step.tolist() == [0]


def test_a_restart_from_scratch_supersedes_everything(store: Store) -> None:
    store.write(metrics=_attempt_batch("loss", [0, 1], [1.0, 2.0], 1))
    store.write(metrics=_attempt_batch("loss", [0], [7.0], 2), restart=(2, 0))
    assert store.read_history("loss").value.tolist() == [7.0]
    assert store.read().metrics["loss"].count == 1


def test_hdf5_fast_history_read_matches_the_checked_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = HDF5Store(tmp_path / "run.h5")
    st.write(metrics=_attempt_batch("loss", [0, 1, 2, 3], [4.0, 3.0, 2.0, 9.0], 1))
    st.write(metrics=_attempt_batch("loss", [3, 4], [1.0, 0.5], 2), restart=(2, 3))
    fast = st._read_history_fast("loss", "loss", raw=False)
    assert fast is not None and fast.step.tolist() == [0, 1, 2, 3, 4] and fast.attempt.tolist() == [1, 1, 1, 2, 2]
    assert st._read_history_fast("nope", "nope", raw=False) is None
    monkeypatch.setattr(HDF5Store, "_read_history_fast", lambda *args: None)
    slow = st.read_history("loss")
    assert slow.value.tolist() == fast.value.tolist() and slow.time.tolist() == fast.time.tolist()
    with pytest.raises(KeyError):
        st.read_history("nope")
