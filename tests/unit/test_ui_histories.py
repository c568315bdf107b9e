"""The dashboard's history cache: what Sweep.history gives, reading again only the runs whose store changed."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pandas as pd
import pytest
from synthetic import index_runs, make_sweep, write_run

from hpctrack.errors import ConfigError
from hpctrack.store import MetricBatch, open_store
from hpctrack.store._hdf5 import HDF5Store
from hpctrack.sweep import Sweep
from hpctrack.ui.histories import HistoryCache


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """The jobs whose stores are read (in this process: small sweeps are read without workers)."""
    read: List[int] = []
    for name in ("read_history", "read_history_indexed"):  # a run with an index line is read by the second
        real = getattr(HDF5Store, name)

        def reading(self: HDF5Store, *args, _real=real, **kwargs):
            read.append(int(self.path.parent.name))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(HDF5Store, name, reading)
    return read


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    cols = ["job", "step", "value", "time", "elapsed_s", "attempt"]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want[cols].reset_index(drop=True))
    assert got["run"].astype(str).tolist() == want["run"].astype(str).tolist()
    assert got.attrs["skipped"] == want.attrs["skipped"]


def test_a_finished_sweep_is_read_once_and_a_changed_run_again(tmp_path: Path, counted: List[int]) -> None:
    manifest = make_sweep(tmp_path, 5)
    for i in range(5):
        write_run(manifest, i, steps=3 + i)
    index_runs(manifest, range(5))
    sweep, cache = Sweep(manifest.path), HistoryCache()
    _same(cache.read(sweep, "loss"), sweep.history("loss"))
    assert sorted(counted) == sorted([0, 1, 2, 3, 4] * 2)  # the cache's read, then history's own
    counted.clear()
    _same(cache.read(sweep, "loss"), sweep.history("loss"))
    assert sorted(counted) == [0, 1, 2, 3, 4]  # history's own only
    counted.clear()
    # Run 3 writes more (a running run's flush): only it is read again, and its new point is there.
    more = MetricBatch()
    more.add("loss", 50, 7.0, 5000.0)
    open_store(manifest.run_path(3), manifest.store).write(metrics=more)
    got = cache.read(sweep, "loss")
    assert set(counted) == {3}  # (its index line's stats no longer fit: read by both readers)
    _same(got, sweep.history("loss"))
    assert got[got.job == 3]["step"].tolist()[-1] == 50
    # A subset: from what was read, nothing read again.
    counted.clear()
    _same(cache.read(sweep, "loss", [4, 1]), sweep.history("loss", jobs=[1, 4]))
    assert sorted(counted) == [1, 4]  # history's own


def test_a_run_whose_store_is_lost_is_skipped_as_history_says(tmp_path: Path, counted: List[int]) -> None:
    manifest = make_sweep(tmp_path, 3)
    for i in range(3):
        write_run(manifest, i, steps=4)
    index_runs(manifest, range(3))
    sweep, cache = Sweep(manifest.path), HistoryCache()
    cache.read(sweep, "loss")
    for path in manifest.run_path(1).iterdir():
        if path.name.startswith("run"):
            path.unlink()
    got = cache.read(sweep, "loss")
    _same(got, sweep.history("loss"))
    assert sorted(got.job.unique()) == [0, 2] and "run store missing" in got.attrs["skipped"][1]


def test_only_max_rows_are_kept_and_bad_jobs_are_refused(tmp_path: Path, counted: List[int]) -> None:
    manifest = make_sweep(tmp_path, 3)
    for i in range(3):
        write_run(manifest, i, steps=10)
    sweep, cache = Sweep(manifest.path), HistoryCache(max_rows=15)
    _same(cache.read(sweep, "loss"), sweep.history("loss"))  # 30 rows: returned, not kept
    counted.clear()
    cache.read(sweep, "loss", [0])
    assert counted == [0]
    counted.clear()
    cache.read(sweep, "loss", [0])  # 10 rows: kept
    assert counted == []
    with pytest.raises(ConfigError, match="has jobs 0-2; no job 3"):
        cache.read(sweep, "loss", [3])
