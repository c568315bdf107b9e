"""HDF5Store: layout, merge semantics, stats, errors, and real multi-process access."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List

import h5py
import numpy as np
import pytest

from hpctrack.errors import FormatVersionError, RunNotFoundError, StoreError
from hpctrack.locking import lock
from hpctrack.store import HDF5Store, MetricBatch, MetricStats, open_store

REPO = Path(__file__).resolve().parents[2]


def batch(key: str, steps: List[int], values: List[float]) -> MetricBatch:
    b = MetricBatch()
    for s, v in zip(steps, values):
        b.add(key, s, v, 1000.0 + s)
    return b


def spawn(code: str) -> subprocess.Popen:
    """A fresh interpreter running ``code`` with this checkout importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, text=True
    )


@pytest.fixture
def store(tmp_path: Path) -> HDF5Store:
    return HDF5Store(tmp_path / "run.h5")


def test_import_does_not_import_h5py() -> None:
    code = "import sys, hpctrack.store; assert 'h5py' not in sys.modules, 'h5py imported'"
    proc = spawn(code)
    assert proc.wait(timeout=60) == 0


def test_open_store_names_run_h5(tmp_path: Path) -> None:
    st = open_store(tmp_path, "hdf5")
    assert isinstance(st, HDF5Store)
    assert st.path == tmp_path / "run.h5"
    assert st.lock_path == tmp_path / "run.h5.lock"


def test_sections_merge_and_round_trip(store: HDF5Store) -> None:
    store.write(sections={"params": {"lr": 0.1, "layers": [64, 64]}, "tags": {"who": "ünï"}})
    store.write(
        sections={
            "params": {"lr": np.float32(0.5), "seed": np.int64(3), "flag": np.bool_(True)},
            "summary": {"best": math.inf, "worst": -math.inf, "bad": math.nan},
        }
    )
    rec = store.read()
    assert rec.path == store.path
    assert rec.format_version == 1
    assert rec.params == {"lr": 0.5, "layers": [64, 64], "seed": 3, "flag": True}
    assert type(rec.params["seed"]) is int and type(rec.params["flag"]) is bool
    assert rec.tags == {"who": "ünï"}
    assert rec.summary["best"] == math.inf and rec.summary["worst"] == -math.inf
    assert math.isnan(rec.summary["bad"])
    assert rec.status == {} and rec.info == {} and rec.metrics == {}


def test_bad_section_value_leaves_file_untouched(store: HDF5Store) -> None:
    store.write(metrics=batch("x", [0], [1.0]), sections={"params": {"a": 1}})
    with pytest.raises(TypeError, match="params"):
        store.write(metrics=batch("x", [1], [2.0]), sections={"params": {"b": object()}})
    with pytest.raises(ValueError, match="unknown section"):
        store.write(sections={"nope": {}})  # type: ignore[dict-item]
    rec = store.read()
    assert rec.params == {"a": 1} and rec.metrics["x"].count == 1


def test_layout_on_disk(store: HDF5Store) -> None:
    store.write(metrics=batch("train/loss", [0, 1], [1.0, 0.5]), sections={"params": {"a": 1}})
    with h5py.File(store.path, "r", locking=False) as f:
        assert int(f.attrs["format_version"]) == 1
        assert abs(float(f.attrs["created"]) - time.time()) < 60
        sec = f["sections/params"]
        assert sec.shape == () and h5py.check_string_dtype(sec.dtype).encoding == "utf-8"
        ds = f["metrics/train%2Floss"]
        assert ds.attrs["key"] == "train/loss"
        assert ds.dtype == np.dtype([("step", "<i8"), ("value", "<f8"), ("time", "<f8")])
        assert ds.maxshape == (None,) and ds.chunks == (1024,)
        assert {"count", "last", "last_step", "min", "max"} <= set(ds.attrs)


def test_metrics_in_batches_with_escaped_keys(store: HDF5Store) -> None:
    keys = ["train/loss", "acc%top1", "a/%2F/b", "."]
    for start in range(0, 30, 10):
        b = MetricBatch()
        for key in keys:
            for s in range(start, start + 10):
                b.add(key, s, float(s) * 2, 1000.0 + s)
        store.write(metrics=b)
    rec = store.read()
    assert sorted(rec.metrics) == sorted(keys)
    for key in keys:
        stats = rec.metrics[key]
        assert (stats.count, stats.last, stats.last_step, stats.min, stats.max) == (30, 58.0, 29, 0.0, 58.0)
        hist = store.read_history(key)
        assert hist.key == key and len(hist) == 30
        np.testing.assert_array_equal(hist.step, np.arange(30))
        np.testing.assert_array_equal(hist.value, np.arange(30) * 2.0)
        np.testing.assert_array_equal(hist.time, 1000.0 + np.arange(30))
        assert hist.step.dtype == np.int64 and hist.value.dtype == np.float64


def test_history_keeps_logging_order(store: HDF5Store) -> None:
    store.write(metrics=batch("m", [5, 3], [1.0, 2.0]))
    store.write(metrics=batch("m", [9, 1], [3.0, 4.0]))
    hist = store.read_history("m")
    assert hist.step.tolist() == [5, 3, 9, 1]
    assert hist.value.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert store.read().metrics["m"].last_step == 1


def test_nan_values_and_stats(store: HDF5Store) -> None:
    store.write(metrics=batch("m", [0, 1, 2], [math.nan, 1.0, math.nan]))
    store.write(metrics=batch("m", [3, 4], [3.0, math.nan]))
    store.write(metrics=batch("allnan", [0, 1], [math.nan, math.nan]))
    rec = store.read()
    m = rec.metrics["m"]
    assert m.count == 5 and m.last_step == 4 and math.isnan(m.last)
    assert (m.min, m.max) == (1.0, 3.0)
    a = rec.metrics["allnan"]
    assert a.count == 2 and math.isnan(a.min) and math.isnan(a.max)
    assert np.isnan(store.read_history("m").value).tolist() == [True, False, True, False, True]


def test_exception_mid_update_rows_past_count_are_ignored(
    store: HDF5Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Boom(Exception):
        pass

    store.write(metrics=batch("m", [0, 1], [0.0, 1.0]))

    def boom(self: MetricStats, steps: List[int], values: List[float]) -> MetricStats:
        raise Boom  # after the rows were appended, before the stats (commit mark) are

    with monkeypatch.context() as mp:
        mp.setattr(MetricStats, "merged", boom)
        with pytest.raises(Boom):
            store.write(metrics=batch("m", [2, 3], [2.0, 3.0]))
    with h5py.File(store.path, "r", locking=False) as f:
        assert f["metrics/m"].shape == (4,) and f["metrics/m"].attrs["count"] == 2
    assert store.read_history("m").step.tolist() == [0, 1]
    store.write(metrics=batch("m", [2], [2.0]))
    assert store.read_history("m").step.tolist() == [0, 1, 2]
    assert store.read().metrics["m"].count == 3


def test_missing_run(tmp_path: Path) -> None:
    st = HDF5Store(tmp_path / "nodir" / "run.h5")
    with pytest.raises(RunNotFoundError, match="run.h5"):
        st.read()
    with pytest.raises(RunNotFoundError):
        st.read_history("x")
    assert not (tmp_path / "nodir").exists()  # reading did not create a lock or a directory
    with pytest.raises(StoreError, match="does not exist"):
        st.write(sections={"params": {}})


def test_unknown_metric_is_key_error(store: HDF5Store) -> None:
    store.write(metrics=batch("x", [0], [1.0]))
    with pytest.raises(KeyError, match="never logged"):
        store.read_history("y")


def test_newer_format_version_is_refused(store: HDF5Store) -> None:
    store.write(metrics=batch("x", [0], [1.0]))
    with h5py.File(store.path, "a", locking=False) as f:
        f.attrs["format_version"] = 2
    for call in (store.read, lambda: store.read_history("x"), lambda: store.write(sections={"info": {}})):
        with pytest.raises(FormatVersionError, match=r"pip install -U hpctrack"):
            call()


def test_corrupt_file_is_store_error(store: HDF5Store) -> None:
    store.path.write_bytes(b"this is not hdf5\n" * 10)
    with pytest.raises(StoreError) as info:
        store.read()
    assert str(store.path) in str(info.value) and "\n" not in str(info.value)
    assert not isinstance(info.value, RunNotFoundError)


# -- real processes ----------------------------------------------------------

FLUSHES = 100


def _writer_code(path: Path, flushes: int, pause_s: float) -> str:
    return f"""
        import sys, time
        from hpctrack.store import HDF5Store, MetricBatch
        st = HDF5Store({str(path)!r})
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


def _check_consistent(st: HDF5Store) -> int:
    """Assert one read sees whole updates only; return the number of points seen."""
    rec = st.read()
    points = rec.status.get("points", 0)
    counts = set()
    for key in ("train/loss", "acc%"):
        if key not in rec.metrics:
            assert points == 0
            continue
        stats = rec.metrics[key]
        hist = st.read_history(key)
        # A writer may have flushed between the two reads: the history can only be longer.
        assert len(hist) >= stats.count == stats.last_step + 1
        np.testing.assert_array_equal(hist.step, np.arange(len(hist)))
        np.testing.assert_array_equal(hist.value, np.arange(len(hist), dtype=float))
        counts.add(stats.count)
    assert counts <= {points}  # sections and metrics come from the same update
    return int(points)


def test_concurrent_writers_and_reader(tmp_path: Path) -> None:
    stores = [HDF5Store(tmp_path / f"run{i}" / "run.h5") for i in range(3)]
    for st in stores:
        st.path.parent.mkdir()
    procs = [spawn(_writer_code(st.path, FLUSHES, 0.005)) for st in stores]
    total = sum(1 + i % 3 for i in range(FLUSHES))
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
    # The reader really ran alongside the writers: it saw runs half-way through.
    assert len(seen - {0, total}) >= 5
    for st, out in zip(stores, outs):
        assert out.split()[-1] == str(FLUSHES)
        assert _check_consistent(st) == total
        rec = st.read()
        assert rec.status["flushes"] == FLUSHES
        assert {k: s.count for k, s in rec.metrics.items()} == {"train/loss": total, "acc%": total}


def test_writer_killed_between_flushes_leaves_readable_file(tmp_path: Path) -> None:
    st = HDF5Store(tmp_path / "run.h5")
    proc = spawn(_writer_code(st.path, 10_000, 0.02))
    assert proc.stdout is not None
    try:
        seen = [proc.stdout.readline() for _ in range(5)]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert seen[-1].strip() == "5" and proc.returncode == -signal.SIGKILL
    points = _check_consistent(st)
    assert points >= sum(1 + i % 3 for i in range(5))
    with h5py.File(st.path, "r", locking=False) as f:  # no uncommitted tail on disk either
        for ds in f["metrics"].values():
            assert ds.shape[0] == ds.attrs["count"]
            np.testing.assert_array_equal(ds["step"], np.arange(ds.shape[0]))
    # The kernel released the dead writer's lock: a new writer resumes at once.
    with lock(st.lock_path, timeout_s=1.0):
        pass
    st.write(metrics=batch("train/loss", [points], [float(points)]))
    assert st.read().metrics["train/loss"].count == points + 1
    assert st.read_history("train/loss").step.tolist() == list(range(points + 1))
