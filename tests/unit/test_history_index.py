"""A sweep's history reads a run's rows with the stats its index line recorded, while its store has
the line's fingerprint: the same history as reading every store's own stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import numpy as np
import pandas as pd
import pytest
from synthetic import index_runs, make_sweep, write_run

import hpctrack.sweep as sweep_module
from hpctrack.store import MetricBatch, open_store
from hpctrack.store._hdf5 import HDF5Store
from hpctrack.sweep import Sweep


def _sweep(tmp_path: Path) -> Any:
    manifest = make_sweep(tmp_path, 12)
    for i in range(12):
        write_run(manifest, i, steps=3 + i)
    # Run 4 restarted at step 2 in its second attempt: its rows are two segments, one superseded point.
    batch = MetricBatch(attempt=2)
    for step in (2, 3):
        batch.add("loss", step, -float(step), 2000.0 + step)
    store = open_store(manifest.run_path(4), manifest.store)
    store.write(metrics=batch, restart=(2, 2), sections={"status": {"attempt": 2}})
    index_runs(manifest, range(12))
    # Run 6 logged more after its line was written (a stale line), run 9's store is gone: both from the stores.
    more = MetricBatch()
    more.add("loss", 100, 42.0, 3000.0)
    open_store(manifest.run_path(6), manifest.store).write(metrics=more)
    for name in (manifest.run_path(9)).iterdir():
        if name.name.startswith("run"):
            name.unlink()
    return manifest


def _expected(manifest: Any) -> List[Any]:
    out = []
    for i in range(12):
        try:
            h = open_store(manifest.run_path(i), manifest.store).read_history("loss")
        except Exception:
            continue
        out.append((i, h.step.tolist(), h.value.tolist(), h.time.tolist(), h.attempt.tolist()))
    return out


def _got(frame: pd.DataFrame) -> List[Any]:
    return [(int(j), g["step"].tolist(), g["value"].tolist(), g["time"].tolist(), g["attempt"].tolist())
            for j, g in frame.groupby("job", sort=True)]  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_history_from_indexed_stats_is_the_stores_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    manifest = _sweep(tmp_path)
    monkeypatch.setattr(sweep_module, "PARALLEL_HISTORY_MIN_RUNS", 4)
    calls: List[str] = []
    real = HDF5Store.read_history

    def counted(self: HDF5Store, key: str, *, raw: bool = False) -> Any:
        calls.append(self.path.parent.name)
        return real(self, key, raw=raw)

    monkeypatch.setattr(HDF5Store, "read_history", counted)
    frame = Sweep(manifest.path).history("loss", workers=workers)
    if workers == 1:  # in this process: only the stale line's and the gone store's runs read their stats
        assert sorted(calls) == ["6", "9"]
    assert _got(frame) == _expected(manifest)
    assert 9 in frame.attrs["skipped"]
    assert frame.loc[frame["job"] == 4, "attempt"].tolist() == [1, 1, 2, 2]  # attempt 1's steps 2-6 superseded


def test_without_hints_the_history_is_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _sweep(tmp_path)
    with_hints = Sweep(manifest.path).history("loss", workers=1)
    monkeypatch.setattr(sweep_module, "_indexed_stats", lambda sweep_dir, key: {})
    without = Sweep(manifest.path).history("loss", workers=1)
    pd.testing.assert_frame_equal(with_hints, without)
    assert np.array_equal(with_hints["value"].to_numpy(), without["value"].to_numpy(), equal_nan=True)


def test_a_hint_with_another_fingerprint_or_format_is_not_used(tmp_path: Path) -> None:
    manifest = _sweep(tmp_path)
    hints = sweep_module._indexed_stats(manifest.path, "loss")
    assert set(hints) == set(range(12))
    store = open_store(manifest.run_path(0), manifest.store)
    fingerprint, rows, segments, restarts, version = hints[0]
    assert store.read_history_indexed("loss", fingerprint, rows, segments, restarts, version) is not None
    assert store.read_history_indexed("loss", "run.9.h5:1:1", 1, segments, restarts, version) is None
    assert store.read_history_indexed("loss", fingerprint, rows, segments, restarts, version + 1) is None
    assert store.read_history_indexed("loss", fingerprint, rows + 1, segments, restarts, version) is None
