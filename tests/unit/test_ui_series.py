"""The dashboard's curves (hpctrack.ui.series) on real sweeps written through the run stores.

Every expectation is computed independently of the module: per-bucket extremes by a
plain loop over the points, group statistics by pandas over the stores' own histories,
the smoothing by TensorBoard's loop, the t-interval by scipy.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import pytest
from synthetic import index_runs

from hpctrack._types import JobState
from hpctrack.errors import ConfigError, RunNotFoundError
from hpctrack.manifest import JobRecord, Manifest, create_sweep
from hpctrack.store import MetricBatch, open_store
from hpctrack.sweep import Sweep
from hpctrack.ui.series import minmax_downsample, run_curves, sweep_curves

LRS = (0.1, 0.01)
SEEDS = (0, 1, 2)
T0 = 1.7e9


def _values(job: int, steps: int) -> np.ndarray:
    rng = np.random.default_rng(job)
    values = np.exp(-np.arange(steps) / 50.0) + 0.05 * rng.standard_normal(steps)
    values[rng.integers(1, steps - 1, size=3)] += 5.0  # spikes one step wide
    values[rng.integers(1, steps - 1)] = -5.0
    return values


def _grid_sweep(
    root: Path, steps: Tuple[int, ...] = (300,) * 6, *, nan_at: Optional[Dict[int, List[int]]] = None
) -> Sweep:
    """A sweep over optimizer.lr x seed (6 runs), each run ``steps[job]`` points of ``loss``, ended and indexed.

    Run ``j`` logs ``loss`` at steps 0, 2, 4, ... (even steps) with times ``T0 + j + 0.5 * step``.
    """
    combos = [(lr, seed) for lr in LRS for seed in SEEDS]
    manifest = create_sweep(root, Manifest(
        id="20260101-000000-bbbb", created=time.time(), backend="local", store="hdf5",
        swept_keys=["optimizer.lr", "seed"],
        jobs=[JobRecord(index=i, overrides=[f"optimizer.lr={lr}", f"seed={seed}"], run_dir=f"runs/{i}",
                        state=JobState.COMPLETED, job_id=str(100 + i), submitted=100.0)
              for i, (lr, seed) in enumerate(combos)],
    ))  # fmt: skip
    for i, (lr, seed) in enumerate(combos):
        n = steps[i]
        values = _values(i, n)
        for at in (nan_at or {}).get(i, []):
            values[at] = np.nan
        step = np.arange(n, dtype=np.int64) * 2
        batch = MetricBatch()
        batch.points["loss"] = (step, values, T0 + i + 0.5 * step)
        batch.points["acc"] = (step[:5], np.linspace(0.1, 0.5, 5), T0 + i + 0.5 * step[:5])
        store = open_store(manifest.run_path(i), "hdf5")
        store.write(metrics=batch, sections={
            "params": {"optimizer.lr": lr, "seed": seed},
            "status": {"state": "completed", "start_time": 150.0, "attempt_start": 150.0, "end_time": 200.0,
                       "heartbeat": 200.0, "last_step": int(step[-1]), "attempt": 1},
        })  # fmt: skip
    index_runs(manifest, range(len(combos)))
    return Sweep(manifest.path)


def _stored(sweep: Sweep, job: int, key: str = "loss") -> pd.DataFrame:
    """The run's resolved history as the store gives it."""
    h = open_store(sweep.manifest.run_path(job), "hdf5").read_history(key)
    return pd.DataFrame({"step": h.step, "value": h.value, "time": h.time})


def _bucket_extremes(x: np.ndarray, y: np.ndarray, buckets: int) -> List[Tuple[float, float]]:
    """(x, y) of the min and the max of every equal-width x bucket, by a loop over the points."""
    lo, hi = float(x[0]), float(x[-1])
    members: Dict[int, List[int]] = {}
    for i, xi in enumerate(x):
        b = min(int((float(xi) - lo) / (hi - lo) * buckets), buckets - 1)
        members.setdefault(b, []).append(i)
    out = []
    for idx in members.values():
        out.append((float(x[min(idx, key=lambda i: y[i])]), float(y[min(idx, key=lambda i: y[i])])))
        out.append((float(x[max(idx, key=lambda i: y[i])]), float(y[max(idx, key=lambda i: y[i])])))
    return out


def test_downsampling_keeps_every_buckets_min_and_max_and_the_ends(tmp_path):
    sweep = _grid_sweep(tmp_path)
    points = 50
    out = sweep_curves(sweep, "loss", points=points)
    assert out["downsampled"] is True and out["n_runs"] == 6 and out["skipped"] == {}
    assert [r["job"] for r in out["runs"]] == list(range(6))
    for run in out["runs"]:
        stored = _stored(sweep, run["job"])
        x, y = stored["step"].to_numpy(), stored["value"].to_numpy()
        got = list(zip(run["x"], run["y"]))
        assert len(got) <= points
        assert run["x"] == sorted(run["x"])
        assert got[0] == (x[0], y[0]) and got[-1] == (x[-1], y[-1])
        assert set(got) <= set(zip(x.tolist(), y.tolist()))  # real points only
        for pair in _bucket_extremes(x, y, (points - 2) // 2):
            assert pair in got, f"job {run['job']}: bucket extreme {pair} was dropped"
        assert max(run["y"]) == y.max() and min(run["y"]) == y.min()  # the spikes
        assert run["run"] == f"{sweep.id}/{run['job']}"
        assert run["params"] == {"optimizer.lr": LRS[run["job"] // 3], "seed": SEEDS[run["job"] % 3]}


def test_short_runs_come_whole_and_full_returns_every_point(tmp_path):
    sweep = _grid_sweep(tmp_path, steps=(40, 300, 40, 300, 40, 40))
    out = sweep_curves(sweep, "loss", points=100)
    for run in out["runs"]:
        stored = _stored(sweep, run["job"])
        if len(stored) <= 100:
            assert run["x"] == stored["step"].tolist() and run["y"] == stored["value"].tolist()
        else:
            assert len(run["x"]) <= 100
    assert out["downsampled"] is True
    full = sweep_curves(sweep, "loss", points=100, full=True)
    assert full["downsampled"] is False
    for run in full["runs"]:
        stored = _stored(sweep, run["job"])
        assert run["x"] == stored["step"].tolist() and run["y"] == stored["value"].tolist()
    assert sweep_curves(sweep, "loss", points=1000)["downsampled"] is False


def test_minmax_downsample_on_its_own():
    x = np.arange(1000)
    y = np.sin(x / 30.0)
    y[[123, 777]] = [40.0, -40.0]
    dx, dy = minmax_downsample(x, y, 20)
    assert len(dx) <= 42 and dx[0] == 0 and dx[-1] == 999 and list(dx) == sorted(dx)
    assert {(123, 40.0), (777, -40.0)} <= set(zip(dx.tolist(), dy.tolist()))
    for pair in _bucket_extremes(x, y, 20):
        assert pair in set(zip(dx.tolist(), dy.tolist()))
    same_x, same_y = minmax_downsample(x[:30], y[:30], 20)
    assert same_x.tolist() == x[:30].tolist() and same_y.tolist() == y[:30].tolist()


def test_groups_mean_and_std_equal_pandas_over_the_stores(tmp_path):
    # Unequal lengths: at the late steps fewer runs of a group have a point.
    sweep = _grid_sweep(tmp_path, steps=(300, 250, 200, 300, 300, 120))
    out = sweep_curves(sweep, "loss", group_by=["optimizer.lr"], full=True)
    long = pd.concat([_stored(sweep, j).assign(lr=LRS[j // 3], job=j) for j in range(6)])
    expected = long.groupby(["lr", "step"])["value"].agg(["mean", "std", "count"])
    assert [g["key"] for g in out["groups"]] == [{"optimizer.lr": 0.01}, {"optimizer.lr": 0.1}]
    alone = 0
    for g in out["groups"]:
        lr = g["key"]["optimizer.lr"]
        exp = expected.loc[lr]
        assert g["label"] == f"optimizer.lr={lr}"
        assert g["jobs"] == [j for j in range(6) if LRS[j // 3] == lr] and g["n"] == 3
        assert g["x"] == exp.index.tolist()
        assert g["count"] == exp["count"].tolist()
        np.testing.assert_allclose(g["mean"], exp["mean"].to_numpy(), rtol=1e-12)
        std = exp["std"].to_numpy()
        lo = np.array([np.nan if v is None else v for v in g["lo"]])
        hi = np.array([np.nan if v is None else v for v in g["hi"]])
        np.testing.assert_allclose(lo, exp["mean"].to_numpy() - std, rtol=1e-12)
        np.testing.assert_allclose(hi, exp["mean"].to_numpy() + std, rtol=1e-12)
        one = np.flatnonzero(exp["count"].to_numpy() == 1)
        assert all(g["lo"][i] is None and g["hi"][i] is None for i in one)
        alone += len(one)
    assert alone == 50  # job 0 alone at steps 500..598: no band there


def test_ci_band_is_the_95_percent_t_interval(tmp_path):
    stats = pytest.importorskip("scipy.stats")
    sweep = _grid_sweep(tmp_path, steps=(300, 250, 300, 300, 300, 300))
    out = sweep_curves(sweep, "loss", group_by=["optimizer.lr"], band="ci", full=True)
    long = pd.concat([_stored(sweep, j).assign(lr=LRS[j // 3]) for j in range(6)])
    sizes = set()
    for g in out["groups"]:
        exp = long[long.lr == g["key"]["optimizer.lr"]].groupby("step")["value"].agg(["mean", "std", "count"])
        n = exp["count"].to_numpy()
        half = stats.t.ppf(0.975, n - 1) * exp["std"].to_numpy() / np.sqrt(n)
        # hpctrack's t table has 3 decimals: 12.706, 4.303, ...
        np.testing.assert_allclose(np.array(g["hi"], dtype=float) - g["mean"], half, rtol=1e-3)
        np.testing.assert_allclose(np.array(g["mean"]) - np.array(g["lo"], dtype=float), half, rtol=1e-3)
        sizes |= set(n.tolist())
    assert sizes == {2, 3}


def test_groups_are_downsampled_with_their_spikes_and_one_group_of_all_runs(tmp_path):
    sweep = _grid_sweep(tmp_path)
    out = sweep_curves(sweep, "loss", group_by=[], points=40)
    (g,) = out["groups"]
    assert g["label"] == "all runs" and g["n"] == 6 and g["jobs"] == list(range(6)) and g["key"] == {}
    full = sweep_curves(sweep, "loss", group_by=[], full=True)["groups"][0]
    assert len(g["x"]) <= 40 and out["downsampled"] is True
    assert g["x"][0] == full["x"][0] and g["x"][-1] == full["x"][-1]
    assert max(g["mean"]) == max(full["mean"]) and min(g["mean"]) == min(full["mean"])
    where = {x: i for i, x in enumerate(full["x"])}
    for key in ("mean", "lo", "hi", "count"):  # the band at the kept steps is the band there
        assert g[key] == [full[key][where[x]] for x in g["x"]]


def _tensorboard_smooth(values: List[float], weight: float) -> List[float]:
    """TensorBoard's smoothing loop (its scalar dashboard), verbatim in Python."""
    last, num_accum, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        num_accum += 1
        out.append(last / (1 - weight**num_accum))
    return out


def test_smoothing_is_tensorboards_debiased_moving_average_per_run(tmp_path):
    sweep = _grid_sweep(tmp_path, steps=(300, 80, 300, 300, 300, 300), nan_at={1: [0, 10, 11]})
    out = sweep_curves(sweep, "loss", smooth=0.9, full=True)
    for run in out["runs"]:
        expected = _tensorboard_smooth(_stored(sweep, run["job"])["value"].tolist(), 0.9)
        got = [math.nan if v is None else v for v in run["y"]]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    nan_run = out["runs"][1]
    assert nan_run["y"][0] is None and nan_run["y"][10] is None and nan_run["y"][12] is not None
    # Smoothed before downsampling: the downsampled curve's points are points of the smoothed one.
    down = sweep_curves(sweep, "loss", smooth=0.9, points=30)
    for full_run, run in zip(out["runs"], down["runs"]):
        smoothed = dict(zip(full_run["x"], full_run["y"]))
        assert all(smoothed[x] == y for x, y in zip(run["x"], run["y"]))
    # Smoothing a group smooths its runs, then averages them.
    group = sweep_curves(sweep, "loss", group_by=["seed"], smooth=0.9, full=True)["groups"][0]
    per_step: Dict[int, List[float]] = {}
    for run in out["runs"]:
        if run["params"]["seed"] == 0:
            for x, y in zip(run["x"], run["y"]):
                per_step.setdefault(x, []).append(y)
    np.testing.assert_allclose(group["mean"], [np.mean(per_step[x]) for x in group["x"]], rtol=1e-12)


def test_x_time_is_seconds_since_the_runs_first_point(tmp_path):
    sweep = _grid_sweep(tmp_path)
    out = sweep_curves(sweep, "loss", x="time", full=True)
    assert out["x"] == "time"
    for run in out["runs"]:
        stored = _stored(sweep, run["job"])
        np.testing.assert_allclose(run["x"], stored["time"] - stored["time"].min())
        assert run["x"][0] == 0.0 and run["x"][-1] == pytest.approx(0.5 * stored["step"].iloc[-1])
    group = sweep_curves(sweep, "loss", x="time", group_by=["optimizer.lr"], full=True)["groups"][0]
    assert group["x"][:3] == pytest.approx([0.0, 1.0, 2.0])  # the mean of the runs' times at each step
    one = run_curves(sweep, 2, ["loss"], x="time", full=True)["metrics"]["loss"]
    stored = _stored(sweep, 2)
    np.testing.assert_allclose(one["x"], stored["time"] - stored["time"].min())


def test_runs_filter_and_bad_jobs(tmp_path):
    sweep = _grid_sweep(tmp_path)
    out = sweep_curves(sweep, "loss", runs=[4, 1], points=20)
    assert [r["job"] for r in out["runs"]] == [1, 4] and out["n_runs"] == 2
    grouped = sweep_curves(sweep, "loss", runs=[0, 1, 3], group_by=["optimizer.lr"], full=True)
    assert [(g["jobs"], g["n"]) for g in grouped["groups"]] == [([3], 1), ([0, 1], 2)]
    with pytest.raises(ConfigError, match=r"has jobs 0-5; no job 6"):
        sweep_curves(sweep, "loss", runs=[1, 6])


def test_bad_options_are_one_line_config_errors(tmp_path):
    sweep = _grid_sweep(tmp_path)
    for kwargs, message in [({"x": "epoch"}, "x must be 'step' or 'time'"), ({"band": "sem"}, "band must be"),
                            ({"points": 1}, "points must be"), ({"points": 10_001}, "points must be"),
                            ({"smooth": 1.0}, "smooth must be"), ({"group_by": ["lr"]}, "cannot group by 'lr'")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message) as err:
            sweep_curves(sweep, "loss", **kwargs)
        assert "\n" not in str(err.value)


def test_an_unknown_metric_names_the_metrics_of_the_index(tmp_path):
    sweep = _grid_sweep(tmp_path)
    with pytest.raises(ConfigError) as err:
        sweep_curves(sweep, "los")
    assert str(err.value) == f"no run of sweep {sweep.id} logged metric 'los'; logged: acc, loss"
    with pytest.raises(ConfigError, match=r"run .*/0 did not log metric 'los'; logged: acc, loss"):
        run_curves(sweep, 0, ["los"])


def test_nan_and_inf_become_null_in_json(tmp_path):
    sweep = _grid_sweep(tmp_path, nan_at={0: [3, 4]})
    store = open_store(sweep.manifest.run_path(5), "hdf5")
    batch = MetricBatch()
    batch.points["loss"] = (np.array([600]), np.array([np.inf]), np.array([T0 + 400.0]))
    store.write(metrics=batch)
    out = sweep_curves(sweep, "loss", full=True)
    text = json.dumps(out, allow_nan=False)  # raises on a NaN or inf left in
    runs = json.loads(text)["runs"]
    assert runs[0]["y"][3] is None and runs[0]["y"][4] is None and runs[5]["y"][-1] is None
    assert runs[5]["x"][-1] == 600
    json.dumps(sweep_curves(sweep, "loss", group_by=["seed"], band="ci"), allow_nan=False)
    json.dumps(run_curves(sweep, 0), allow_nan=False)


def test_a_restarted_runs_replaced_points_are_not_drawn(tmp_path):
    sweep = _grid_sweep(tmp_path, steps=(300, 300, 300, 300, 300, 10))
    # Job 5 was requeued: attempt 2 restarted it at step 10 and logged steps 10..29 anew.
    store = open_store(sweep.manifest.run_path(5), "hdf5")
    batch = MetricBatch(attempt=2)
    step = np.arange(10, 30, dtype=np.int64)
    batch.points["loss"] = (step, np.full(len(step), 7.0), T0 + 1000 + step)
    store.write(metrics=batch, restart=(2, 10))
    raw = store.read_history("loss", raw=True)
    assert (raw.step >= 10).sum() == 5 + 20  # attempt 1's steps 10..18 are stored, superseded
    for out in (sweep_curves(sweep, "loss", runs=[5], full=True)["runs"][0],
                run_curves(sweep, 5, ["loss"], full=True)["metrics"]["loss"]):  # fmt: skip
        assert out["x"] == list(range(0, 10, 2)) + list(range(10, 30))
        assert out["y"][5:] == [7.0] * 20


def test_run_curves_every_metric_downsampled(tmp_path):
    sweep = _grid_sweep(tmp_path)
    out = run_curves(sweep, 3, points=30)
    assert out["run"] == f"{sweep.id}/3" and out["job"] == 3 and out["downsampled"] is True
    assert sorted(out["metrics"]) == ["acc", "loss"]
    loss, acc = out["metrics"]["loss"], out["metrics"]["acc"]
    stored = _stored(sweep, 3)
    assert loss["downsampled"] is True and len(loss["x"]) <= 30
    assert max(loss["y"]) == stored["value"].max() and min(loss["y"]) == stored["value"].min()
    assert acc == {"x": [0, 2, 4, 6, 8], "y": pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5]), "downsampled": False}
    with pytest.raises(ConfigError, match="has jobs 0-5; no job 9"):
        run_curves(sweep, 9)


def test_a_run_that_has_not_started_is_not_found(tmp_path):
    sweep = _grid_sweep(tmp_path)
    import shutil

    shutil.rmtree(sweep.manifest.run_path(2))
    with pytest.raises(RunNotFoundError):
        run_curves(sweep, 2)


def test_points_logged_out_of_step_order_are_drawn_in_x_order(tmp_path):
    sweep = _grid_sweep(tmp_path, steps=(300, 300, 300, 300, 300, 10))
    store = open_store(sweep.manifest.run_path(5), "hdf5")
    batch = MetricBatch()
    batch.points["loss"] = (np.array([7, 1, 3]), np.array([70.0, 10.0, 30.0]), np.array([T0 + 900, T0 + 901, T0 + 902]))
    store.write(metrics=batch)
    for out in (sweep_curves(sweep, "loss", runs=[5], full=True)["runs"][0],
                run_curves(sweep, 5, ["loss"], full=True)["metrics"]["loss"]):  # fmt: skip
        assert out["x"] == sorted(out["x"]) and len(out["x"]) == 13
        assert dict(zip(out["x"], out["y"]))[7] == 70.0
    short = sweep_curves(sweep, "loss", runs=[5], points=4)["runs"][0]
    assert short["x"] == sorted(short["x"]) and max(short["y"]) == 70.0 and len(short["x"]) <= 4


def _plain_sweep(root: Path, n: int) -> Sweep:
    """A sweep that varies nothing (``python train.py`` without -m, a one-run launch, a rerun): ``n`` runs of ``loss``."""
    manifest = create_sweep(root, Manifest(
        id="20260101-000000-cccc", created=time.time(), backend="local", store="hdf5", swept_keys=[],
        jobs=[JobRecord(index=i, overrides=[], run_dir=f"runs/{i}", state=JobState.COMPLETED, job_id=str(100 + i),
                        submitted=100.0) for i in range(n)],
    ))  # fmt: skip
    for i in range(n):
        step = np.arange(10, dtype=np.int64)
        batch = MetricBatch()
        batch.points["loss"] = (step, 1.0 / (step + 1.0 + i), T0 + step)
        open_store(manifest.run_path(i), "hdf5").write(metrics=batch, sections={
            "params": {"lr": 0.1},
            "status": {"state": "completed", "start_time": 150.0, "attempt_start": 150.0, "end_time": 200.0,
                       "heartbeat": 200.0, "last_step": 9, "attempt": 1},
        })  # fmt: skip
    index_runs(manifest, range(n))
    return Sweep(manifest.path)


@pytest.mark.parametrize("n", [1, 2])
def test_a_sweep_that_varies_nothing_draws_every_run_and_one_group(tmp_path, n):
    sweep = _plain_sweep(tmp_path, n)
    out = sweep_curves(sweep, "loss")
    assert out["n_runs"] == n and [r["job"] for r in out["runs"]] == list(range(n))
    for run in out["runs"]:
        assert run["params"] == {} and run["x"] == list(range(10))
        assert run["y"] == pytest.approx(1.0 / (np.arange(10) + 1.0 + run["job"]))
    grouped = sweep_curves(sweep, "loss", group_by=[])
    (group,) = grouped["groups"]
    assert group["label"] == "all runs" and group["n"] == n and group["jobs"] == list(range(n))
    expected = np.mean([1.0 / (np.arange(10) + 1.0 + j) for j in range(n)], axis=0)
    assert group["mean"] == pytest.approx(expected)


def test_many_runs_share_a_point_budget_and_keep_their_spikes(tmp_path):
    sweep = _grid_sweep(tmp_path, steps=(600,) * 6)
    out = sweep_curves(sweep, "loss", points=1000, budget=600)
    # 6 runs share 600 points: 100 each (49 buckets' min and max, and the ends), not 600 each.
    assert out["points"] == 100 and out["downsampled"]
    for run in out["runs"]:
        assert len(run["x"]) <= 100
        stored = _stored(sweep, run["job"])
        kept = set(zip(run["x"], run["y"]))
        for point in _bucket_extremes(stored["step"].to_numpy(), stored["value"].to_numpy(), 49):
            assert point in kept
    # Fewer runs: each keeps what the budget allows, up to `points`.
    assert sweep_curves(sweep, "loss", runs=[0, 1], points=1000, budget=600)["points"] == 300
    assert sweep_curves(sweep, "loss", points=1000, budget=None)["points"] == 1000
    # Groups share it likewise: 2 groups of 3 runs, 300 points each.
    grouped = sweep_curves(sweep, "loss", group_by=["optimizer.lr"], points=1000, budget=600)
    assert grouped["points"] == 300 and all(len(g["x"]) <= 300 for g in grouped["groups"])
    # Never fewer than 50 points a curve, however many runs; full ignores the budget.
    assert sweep_curves(sweep, "loss", points=1000, budget=60)["points"] == 50
    whole = sweep_curves(sweep, "loss", budget=60, full=True)
    assert sum(len(r["x"]) for r in whole["runs"]) == 3600 and whole["points"] is None
    with pytest.raises(ConfigError, match="budget must be a whole number"):
        sweep_curves(sweep, "loss", budget=1)


def test_a_subset_of_runs_reads_only_those_runs(tmp_path, monkeypatch):
    from hpctrack.store._hdf5 import HDF5Store

    sweep = _grid_sweep(tmp_path)
    read: List[str] = []
    for name in ("read_history", "read_history_indexed"):  # a run with an index line is read by the second
        real = getattr(HDF5Store, name)

        def counted(self, *args, _real=real, **kwargs):
            read.append(self.path.parent.name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(HDF5Store, name, counted)
    out = sweep_curves(sweep, "loss", runs=[4, 1], points=20)
    assert [r["job"] for r in out["runs"]] == [1, 4]
    assert sorted(read) == ["1", "4"]
    # A subset whose runs have no point of a metric others logged: no curves, no error.
    assert sweep_curves(sweep, "acc", runs=[2])["runs"][0]["job"] == 2
    with pytest.raises(ConfigError, match="no run of sweep .* logged metric 'nope'"):
        sweep_curves(sweep, "nope", runs=[2])
