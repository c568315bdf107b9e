"""Aggregation at scale: a synthetic sweep of 10,000 runs x 10 metrics x 1,000 steps on disk.

Times `table` (cold and warm), `history` of one metric across all runs, and `compare`, then
MLflow's `search_runs` and metric-history reads on an MLflow store holding the same kind of
runs, and prints one table. Asserts nothing.

    python benchmarks/aggregate_bench.py                      # 10,000 runs (build ~3-5 min on 2 cores)
    python benchmarks/aggregate_bench.py --runs 1000          # smaller
    python benchmarks/aggregate_bench.py --dir /scratch/me --keep   # build once, reuse with --reuse

The hpctrack sweep is written through the real store (`open_store(...).write`, one update per
run holding its 10,000 points, its params, summary and final status) by 2 worker processes,
and its summary index is appended the way an ending run appends it. MLflow gets fewer runs by
default (`--ml-runs`, 1,000) and fewer steps (`--ml-steps`, 100): logging 10 M points into its
SQLite store would take hours. Per-run rates make the two comparable; the table says which
sizes were used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

METRICS = [f"m{i}" for i in range(10)]
GOAL_TABLE_WARM_S = 2.0
GOAL_TABLE_COLD_S = 10.0
GOAL_VS_SEARCH_RUNS = 20.0
GOAL_HISTORY_S = 10.0


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


# -- building the hpctrack sweep ---------------------------------------------------------------


def _lr(i: int) -> float:
    return (0.001, 0.003, 0.01, 0.03, 0.1)[i % 5]


def _write_runs(sweep_dir: str, store: str, indices: Sequence[int], steps: int) -> int:
    import numpy as np

    from hpctrack.index import append_rows, record_to_row
    from hpctrack.store import MetricBatch, open_store

    rows = []
    for i in indices:
        lr, seed = _lr(i), i // 5
        rng = np.random.default_rng(i)
        run_dir = Path(sweep_dir) / "runs" / str(i)
        run_dir.mkdir(parents=True, exist_ok=True)
        batch = MetricBatch()
        step = np.arange(steps, dtype=np.int64)
        t0 = 1.7e9 + i
        for k, key in enumerate(METRICS):
            values = np.exp(-step / (200.0 * (k + 1))) * (1 + 0.05 * rng.standard_normal(steps)) + lr
            batch.points[key] = (step, values, t0 + step * 0.1)
        now = time.time()
        st = open_store(run_dir, store)
        st.write(
            metrics=batch,
            sections={
                "params": {"optimizer.lr": lr, "seed": seed, "model.hidden": 64},
                "summary": {"test/acc": float(0.9 + 0.01 * rng.standard_normal())},
                "status": {
                    "state": "completed",
                    "start_time": now - 100,
                    "attempt_start": now - 100,
                    "end_time": now,
                    "runtime_s": 100.0,
                    "heartbeat": now,
                    "last_step": steps - 1,
                    "attempt": 1,
                },
                "info": {"run_id": f"bench/{i}", "job_index": i},
            },
        )
        rows.append({**record_to_row(i, st.read()), "fingerprint": st.fingerprint()})  # as an ending run does
        if len(rows) >= 200:
            append_rows(Path(sweep_dir), rows)
            rows = []
    append_rows(Path(sweep_dir), rows)
    return len(indices)


def build_sweep(root: Path, name: str, runs: int, steps: int, store: str, workers: int) -> Path:
    from hpctrack._types import JobState
    from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id

    now = time.time()
    jobs = [JobRecord(index=i, overrides=[f"optimizer.lr={_lr(i)}", f"seed={i // 5}"], run_dir=f"runs/{i}",
                      state=JobState.COMPLETED, job_id=str(100000 + i), submitted=now - 1000, ended=now)
            for i in range(runs)]  # fmt: skip
    manifest = create_sweep(root, Manifest(id=new_sweep_id(), created=now, backend="local", store=store, name=name,
                                           swept_keys=["optimizer.lr", "seed"], jobs=jobs))  # fmt: skip
    chunks = [list(range(w, runs, workers)) for w in range(workers)]
    t0 = time.time()
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_write_runs, str(manifest.path), store, chunk, steps) for chunk in chunks]
        done = sum(f.result() for f in futures)
    progress(f"built {done:,} runs x {len(METRICS)} metrics x {steps:,} steps in {time.time() - t0:.0f} s")
    return manifest.path


# -- timing hpctrack (each measurement in a fresh interpreter) -----------------------------------

_CODE = r"""
import json, sys, time
t0 = time.perf_counter()
import hpctrack
from hpctrack.compare import compare_sweeps
spec = json.loads(sys.argv[1])
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
import numpy, pandas, pyarrow.parquet, h5py  # what the calls below import lazily: not part of their time
t_libs = time.perf_counter() - t1
sweep = hpctrack.load_sweep(spec["sweep"])
out = {"import_s": t_import, "libs_s": t_libs}
def timed(name, fn):
    t = time.perf_counter(); value = fn(); out[name] = time.perf_counter() - t; return value
metrics = [m + ":last" for m in spec["metrics"]] + [spec["metrics"][0] + ":min"]
if spec["what"] == "table":
    frame = timed("first", lambda: sweep.table(metrics=metrics))
    timed("second", lambda: sweep.table(metrics=metrics))
    timed("grouped", lambda: sweep.table(metrics=metrics, group_by=True))
    out["rows"] = len(frame)
elif spec["what"] == "history":
    frame = timed("first", lambda: sweep.history(spec["metrics"][0]))
    out["points"] = len(frame)
elif spec["what"] == "compare":
    other = hpctrack.load_sweep(spec["other"])
    frame = timed("first", lambda: compare_sweeps([sweep, other], metrics[:2]))
    out["rows"] = len(frame)
print(json.dumps(out))
"""


def drop_caches() -> bool:
    """Drop the page cache (needs root and a writable /proc/sys); False when not allowed."""
    try:
        subprocess.run(["sync"], check=False)
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def _median(reps: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The repetition with the median ``first`` time, with every repetition's in ``all`` (the spread)."""
    ordered = sorted(reps, key=lambda r: r["first"])
    return {**ordered[len(ordered) // 2], "all": [r["first"] for r in reps]}


def _spread(r: Dict[str, Any]) -> str:
    times = r.get("all") or [r["first"]]
    return f" (runs: {', '.join(fmt_s(t) for t in times)})" if len(times) > 1 else ""


def _every(r: Dict[str, Any], goal: float) -> bool:
    """Met reproducibly: every repetition, not only the median."""
    return all(t < goal for t in (r.get("all") or [r["first"]]))


def hp_measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _CODE, json.dumps(spec)], capture_output=True, text=True,
                          timeout=3600)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- MLflow ------------------------------------------------------------------------------------

_ML_BUILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_ALLOW_FILE_STORE="true")
import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=spec["uri"])
exp = client.create_experiment("bench")
t0 = time.time()
for i in range(spec["runs"]):
    run = client.create_run(exp)
    rid = run.info.run_id
    lr, seed = (0.001, 0.003, 0.01, 0.03, 0.1)[i % 5], i // 5
    client.log_batch(rid, params=[Param("optimizer.lr", str(lr)), Param("seed", str(seed)),
                                  Param("model.hidden", "64")])
    pts = [Metric(f"m{k}", 1.0 / (s + k + 1) + lr, int(1.7e12) + s, s) for k in range(10)
           for s in range(spec["steps"])]
    for j in range(0, len(pts), 1000):
        client.log_batch(rid, metrics=pts[j:j + 1000])
    client.log_batch(rid, metrics=[Metric("test/acc", 0.9, int(1.7e12), 0)])
    client.set_terminated(rid)
print(json.dumps({"build_s": time.time() - t0}))
"""

_ML_MEASURE = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_ALLOW_FILE_STORE="true")
import mlflow
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=spec["uri"])
exp = client.get_experiment_by_name("bench").experiment_id
out = {}
t = time.perf_counter()
runs = client.search_runs([exp], max_results=50000)
out["search_runs_s"] = time.perf_counter() - t
t = time.perf_counter()
frame = mlflow.search_runs(experiment_ids=[exp], max_results=50000) if spec["pandas"] else None
out["search_runs_pandas_s"] = time.perf_counter() - t if spec["pandas"] else None
out["runs"] = len(runs)
t = time.perf_counter()
points = 0
for run in runs:
    points += len(client.get_metric_history(run.info.run_id, "m0"))
out["history_s"] = time.perf_counter() - t
out["points"] = points
print(json.dumps(out))
"""


def ml_available() -> bool:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True


def ml_run(code: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                          timeout=7200, cwd=spec["cwd"])  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- output ------------------------------------------------------------------------------------


def fmt_s(x: Optional[float]) -> str:
    return "-" if x is None else (f"{x:.2f}" if x < 100 else f"{x:.0f}")


def yes_no(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--store", default="hdf5", choices=["hdf5", "zarr"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ml-runs", type=int, default=1_000)
    parser.add_argument("--ml-steps", type=int, default=100)
    parser.add_argument("--ml-stores", default="sqlite,file")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--dir", default=None, help="where to build (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep what was built (reuse it with --reuse DIR)")
    parser.add_argument("--reuse", default=None, help="a directory a --keep run left: skip building")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measure table and history this many times (median shown, with the spread)",
    )
    args = parser.parse_args(argv)

    import hpctrack

    base = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="hpctrack-aggbench-", dir=args.dir))
    root = base / "root"
    print("# hpctrack aggregation benchmark\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- cpu: {os.cpu_count()} cores; load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"- hpctrack {hpctrack.__version__}; store: {args.store}; dir: {base}")
    try:
        if args.reuse:
            sweep_dir = next(p for p in (root / "sweeps").iterdir() if (p / "sweep.json").is_file())
            progress(f"reusing {sweep_dir}")
            build_s = None
        else:
            t0 = time.time()
            sweep_dir = build_sweep(root, "bench", args.runs, args.steps, args.store, args.workers)
            build_s = time.time() - t0
        du = subprocess.run(["du", "-sh", str(sweep_dir)], capture_output=True, text=True).stdout.split()[0]
        runs = args.runs
        print(
            f"- sweep: {runs:,} runs x {len(METRICS)} metrics x {args.steps:,} steps "
            f"({runs * len(METRICS) * args.steps:,} points), {du} on disk"
            + (f", built in {build_s:.0f} s" if build_s else "")
        )
        spec = {"sweep": str(sweep_dir), "metrics": METRICS}
        results: Dict[str, Any] = {}
        index = sweep_dir / "index.jsonl"

        cache = sweep_dir / "index.cache.parquet"
        if cache.exists():
            cache.unlink()  # the first table builds it: part of "cold"
        cold, warm = [], []
        for rep in range(args.repeat):
            if cache.exists():
                cache.unlink()
            progress(f"table: fresh process, index present ({rep + 1}/{args.repeat})")
            dropped = drop_caches()
            cold.append(hp_measure({**spec, "what": "table"}))
            progress("table: again (warm)")
            warm.append(hp_measure({**spec, "what": "table"}))
        results["table_cold"], results["table_warm"] = _median(cold), _median(warm)
        progress("table: without the index (every run store read)")
        moved = index.with_name("index.jsonl.away")
        shutil.move(index, moved)
        shutil.move(cache, cache.with_name("cache.away"))
        try:
            drop_caches()
            results["table_noindex"] = hp_measure({**spec, "what": "table"})
        finally:
            for made in (index, cache):
                if made.exists():
                    made.unlink()  # the table re-created them from the stores: restore the originals
            shutil.move(moved, index)
            shutil.move(cache.with_name("cache.away"), cache)
        cold, warm = [], []
        for rep in range(args.repeat):
            progress(f"history of one metric across all runs ({rep + 1}/{args.repeat})")
            drop_caches()
            cold.append(hp_measure({**spec, "what": "history"}))
            warm.append(hp_measure({**spec, "what": "history"}))
        results["history_cold"], results["history_warm"] = _median(cold), _median(warm)
        progress("compare (the sweep with itself)")
        results["compare"] = hp_measure({**spec, "what": "compare", "other": str(sweep_dir)})

        ml: Dict[str, Dict[str, Any]] = {}
        if not args.no_mlflow and ml_available():
            for kind in [k for k in args.ml_stores.split(",") if k]:
                d = base / f"mlflow-{kind}"
                d.mkdir(exist_ok=True)
                uri = f"sqlite:///{d / 'mlflow.db'}" if kind == "sqlite" else (d / "mlruns").as_uri()
                mspec = {"uri": uri, "runs": args.ml_runs, "steps": args.ml_steps, "cwd": str(d), "pandas": True}
                if not (d / "built").exists():
                    progress(f"mlflow {kind}: logging {args.ml_runs:,} runs x 10 metrics x {args.ml_steps} steps")
                    ml.setdefault(kind, {}).update(ml_run(_ML_BUILD, mspec))
                    (d / "built").write_text("1")
                progress(f"mlflow {kind}: search_runs and metric histories")
                ml.setdefault(kind, {}).update(ml_run(_ML_MEASURE, mspec))
        print_results(args, results, ml, dropped)
    finally:
        if not args.keep and not args.reuse:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def print_results(args: Any, r: Dict[str, Any], ml: Dict[str, Dict[str, Any]], dropped: bool) -> None:
    runs = args.runs
    search = {k: v["search_runs_s"] / v["runs"] for k, v in ml.items() if v.get("runs")}
    best_search = min(search.values()) if search else None
    print("\n## Results\n")
    print("| what | hpctrack | per run | goal | met |")
    print("| --- | ---: | ---: | --- | --- |")
    cold, warm = r["table_cold"]["first"], r["table_warm"]["first"]
    in_process = r["table_warm"]["second"]
    print(
        f"| table, 11 metric columns, {runs:,} runs: cold (fresh process{', page cache dropped' if dropped else ''}) "
        f"| {fmt_s(cold)} s{_spread(r['table_cold'])} | {cold / runs * 1e3:.3f} ms | < {GOAL_TABLE_COLD_S:g} s "
        f"| {yes_no(_every(r['table_cold'], GOAL_TABLE_COLD_S))} |"
    )
    print(
        f"| table: warm (fresh process, files cached) | {fmt_s(warm)} s{_spread(r['table_warm'])} "
        f"| {warm / runs * 1e3:.3f} ms | < {GOAL_TABLE_WARM_S:g} s | {yes_no(_every(r['table_warm'], GOAL_TABLE_WARM_S))} |"
    )
    print(f"| table: second call in the same process | {fmt_s(in_process)} s | {in_process / runs * 1e3:.3f} ms | | |")
    print(f"| table, grouped by lr (5 groups, mean/std/n) | {fmt_s(r['table_warm']['grouped'])} s | | | |")
    noidx = r["table_noindex"]["first"]
    print(
        f"| table without the summary index (reads all {runs:,} run stores{', cold' if dropped else ''}) "
        f"| {fmt_s(noidx)} s | {noidx / runs * 1e3:.3f} ms | | |"
    )
    if best_search is not None:
        ratio = best_search / (warm / runs)
        print(
            f"| table vs MLflow search_runs, per run (best MLflow store) | {ratio:,.0f}x faster | | >= "
            f"{GOAL_VS_SEARCH_RUNS:g}x | {yes_no(ratio >= GOAL_VS_SEARCH_RUNS)} |"
        )
    hc, hw = r["history_cold"], r["history_warm"]
    print(
        f"| history of m0 across all runs ({hc['points']:,} points): cold | {fmt_s(hc['first'])} s{_spread(hc)} "
        f"| {hc['first'] / runs * 1e3:.3f} ms | < {GOAL_HISTORY_S:g} s | {yes_no(_every(hc, GOAL_HISTORY_S))} |"
    )
    print(
        f"| history: warm | {fmt_s(hw['first'])} s{_spread(hw)} | {hw['first'] / runs * 1e3:.3f} ms "
        f"| < {GOAL_HISTORY_S:g} s | {yes_no(_every(hw, GOAL_HISTORY_S))} |"
    )
    print(f"| compare (2 sweeps of {runs:,} runs, 2 metrics) | {fmt_s(r['compare']['first'])} s | | | |")
    print(f"| `import hpctrack` | {fmt_s(r['table_warm']['import_s'])} s | | | |")
    print(
        f"| importing numpy, pandas, pyarrow, h5py (before the timed calls, as MLflow's import) "
        f"| {fmt_s(r['table_warm']['libs_s'])} s | | | |"
    )
    if ml:
        print(
            "\n| MLflow store | runs x metrics x steps | search_runs | per run | mlflow.search_runs (pandas) "
            "| get_metric_history of m0, every run | per run | logging it took |"
        )
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for kind, v in ml.items():
            print(
                f"| {kind} | {v['runs']:,} x 10 x {args.ml_steps} | {fmt_s(v['search_runs_s'])} s "
                f"| {v['search_runs_s'] / v['runs'] * 1e3:.2f} ms | {fmt_s(v.get('search_runs_pandas_s'))} s "
                f"| {fmt_s(v['history_s'])} s | {v['history_s'] / v['runs'] * 1e3:.1f} ms "
                f"| {fmt_s(v.get('build_s'))} s |"
            )
        print(
            f"\n- MLflow holds {args.ml_runs:,} runs with {args.ml_steps} steps per metric (logging "
            f"{runs:,} x 1,000 steps into it would take hours); compare per run."
        )
    print(
        "- cold: "
        + (
            "page cache dropped before the call"
            if dropped
            else "a fresh interpreter; the page cache could not be dropped here (no permission), so "
            "files may still be cached"
        )
    )
    if args.repeat > 1:
        print(
            f"- table and history: the median of {args.repeat} repetitions, each one's time in brackets; "
            "a goal is met only when every repetition meets it"
        )
    print(
        "- table reads the sweep's summary index for ended runs and the run stores for the others; "
        "history reads every run store (the index holds stats, not histories)."
    )
    print(f"\n(load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    sys.exit(main())
