"""The results table from stores written directly, and its export formats."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest

from hpctrack.aggregate import export_table, parse_metric, sweep_table
from hpctrack.errors import ConfigError
from hpctrack.manifest import JobRecord, Manifest, create_sweep
from hpctrack.store import MetricBatch, open_store


def _sweep(tmp_path):
    jobs = [["optimizer.lr=0.1", "seed=0"], ["optimizer.lr=0.1", "seed=1"], ["optimizer.lr=0.01", "seed=0"]]
    manifest = create_sweep(
        tmp_path,
        Manifest(
            id="20260101-000000-aaaa",
            created=time.time(),
            backend="direct",
            store="hdf5",
            swept_keys=["optimizer.lr", "seed"],
            jobs=[JobRecord(index=i, overrides=o, run_dir=f"runs/{i}") for i, o in enumerate(jobs)],
        ),
    )
    for i in range(2):  # job 2 never started
        store = open_store(manifest.run_path(i), "hdf5")
        batch = MetricBatch()
        for step, value in enumerate([0.5, 0.9 - i * 0.1, 0.7]):
            batch.add("val/acc", step, value, time.time())
        store.write(
            metrics=batch,
            sections={
                "params": {"optimizer.lr": 0.1, "seed": i, "epochs": 3},
                "summary": {"test/acc": 0.8 + i / 100},
                "status": {"state": "completed", "start_time": 100.0, "end_time": 110.0 + i},
            },
        )
    return manifest


def test_one_row_per_run_with_params_state_metrics_summary(tmp_path):
    frame = sweep_table(_sweep(tmp_path))
    assert list(frame.columns) == [
        "job",
        "optimizer.lr",
        "seed",
        "state",
        "runtime_s",
        "val/acc:last",
        "val/acc:min",
        "val/acc:max",
        "test/acc",
    ]
    assert frame["optimizer.lr"].tolist() == [0.1, 0.1, 0.01]  # job 2's value from its override
    assert frame["state"].tolist() == ["COMPLETED", "COMPLETED", "PENDING"]
    assert frame["runtime_s"].tolist()[:2] == [10.0, 11.0]
    assert frame["val/acc:max"].tolist()[:2] == [0.9, 0.8]
    assert frame["val/acc:last"].tolist()[:2] == [0.7, 0.7]
    assert math.isnan(frame["val/acc:min"].iloc[2])
    assert frame["test/acc"].tolist()[:2] == [0.8, 0.81]


def test_metric_selection_and_all_params(tmp_path):
    frame = sweep_table(_sweep(tmp_path), metrics=["val/acc:max", "val/acc:count"], all_params=True)
    assert [c for c in frame.columns if ":" in c] == ["val/acc:max", "val/acc:count"]
    assert "epochs" in frame.columns
    with pytest.raises(ConfigError, match="logged: val/acc"):
        sweep_table(_sweep(tmp_path / "b"), metrics=["val/acc2"])


def test_parse_metric():
    assert parse_metric("val/acc") == ("val/acc", None)
    assert parse_metric("val/acc:max") == ("val/acc", "max")
    with pytest.raises(ConfigError, match="unknown metric statistic 'best'"):
        parse_metric("val/acc:best")


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "markdown"])
def test_export_formats_round_trip(tmp_path, fmt):
    frame = sweep_table(_sweep(tmp_path))
    out = tmp_path / f"t.{fmt}"
    assert export_table(frame, fmt, out) is None
    if fmt == "csv":
        back = pd.read_csv(out)
        assert back["val/acc:max"].tolist()[:2] == [0.9, 0.8] and len(back) == 3
    elif fmt == "json":
        rows = json.loads(out.read_text())
        assert len(rows) == 3 and rows[0]["val/acc:max"] == 0.9 and rows[2]["val/acc:max"] is None
        assert rows[0]["optimizer.lr"] == 0.1 and rows[0]["state"] == "COMPLETED"
    elif fmt == "parquet":
        back = pd.read_parquet(out)
        assert back.shape == frame.shape and back["seed"].tolist() == [0, 1, 0]
    else:
        lines = out.read_text().splitlines()
        assert lines[0].startswith("|") and "val/acc:max" in lines[0] and len(lines) == 5


def test_parquet_needs_a_file(tmp_path):
    with pytest.raises(ConfigError, match="-o FILE"):
        export_table(sweep_table(_sweep(tmp_path)), "parquet")


def _lost_3_and_stale_7(root, n):
    """An ended, indexed sweep of ``n`` runs whose run 3's store was deleted and run 7's rewritten since indexed."""
    import os

    from synthetic import ended_sweep, write_run

    manifest = ended_sweep(root, n)
    for name in os.listdir(manifest.run_path(3)):
        if name.startswith("run"):
            os.unlink(manifest.run_path(3) / name)
    write_run(manifest, 7, summary={"final": -1.0})  # its line is stale now
    return manifest


@pytest.mark.parametrize("parallel", [False, True])
def test_indexed_runs_whose_store_changed_or_went_are_read_or_lost_with_fingerprints_from_threads(
    tmp_path, monkeypatch, parallel
):
    """The fingerprints of many runs are taken from threads while the index is read: same table as one by one."""

    import hpctrack.aggregate as aggregate

    monkeypatch.setattr(aggregate, "PARALLEL_STAT_MIN_RUNS", 10 if parallel else 10**9)
    manifest = _lost_3_and_stale_7(tmp_path, 40)
    frame = sweep_table(manifest).set_index("job")
    assert frame.at[3, "state"] == "LOST" and 3 in frame.attrs["lost"]
    assert frame.at[7, "final"] == -1.0
    assert frame.drop(index=[3, 7])["final"].tolist() == [10.0 * i for i in range(40) if i not in (3, 7)]
    assert (frame.drop(index=[3])["state"] == "COMPLETED").all()


def test_fingerprints_from_a_child_process_give_the_table_of_the_stores(tmp_path, monkeypatch):
    """A large sweep's fingerprints are taken by a child before the manifest is read: same table, same LOST."""

    import hpctrack._prefetch as prefetch
    from hpctrack.sweep import Sweep

    manifest = _lost_3_and_stale_7(tmp_path, 30)
    expected = Sweep(manifest.path).table()  # a small sweep: no child
    answers = []
    real = prefetch.TableInputs.early_prints

    def spied(self, store):
        answers.append(real(self, store))
        return answers[-1]

    monkeypatch.setattr(prefetch, "EARLY_PRINTS_MIN_MANIFEST_BYTES", 0)
    monkeypatch.setattr("hpctrack.sweep.PREFETCH_MIN_MANIFEST_BYTES", 0)
    monkeypatch.setattr(prefetch.TableInputs, "early_prints", spied)
    frame = Sweep(manifest.path).table()
    assert answers and answers[0] is not None and len(answers[0]) == 30 and answers[0]["3"] is None
    pd.testing.assert_frame_equal(frame, expected)
    assert frame.set_index("job").at[3, "state"] == "LOST" and frame.set_index("job").at[7, "final"] == -1.0


def test_a_child_whose_answer_is_not_taken_is_stopped(tmp_path, monkeypatch):
    from synthetic import make_sweep

    import hpctrack._prefetch as prefetch

    manifest = make_sweep(tmp_path, 3)
    monkeypatch.setattr(prefetch, "EARLY_PRINTS_MIN_MANIFEST_BYTES", 0)
    inputs = prefetch.start(manifest.path)
    assert inputs.child is not None and inputs.store == "hdf5"
    assert inputs.early_prints("zarr") is None  # fingerprints of another store kind are never used
    inputs.close()
    assert inputs.child.returncode is not None
