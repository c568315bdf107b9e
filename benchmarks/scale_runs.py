"""`hpctrack runs` at scale: a param + metric query over 1,000,000 runs in 1,000 sweeps.

    python benchmarks/scale_runs.py                              # 1,000 sweeps x 1,000 runs
    python benchmarks/scale_runs.py --sweeps 100 --runs 100000   # smaller
    python benchmarks/scale_runs.py --root /scratch/x --keep     # reuse a built root

The synthetic root holds real sweep directories: a manifest written by `create_sweep` and an
`index.jsonl` of ended runs (one line per run, `record_to_row` plus a fingerprint, appended
with `append_rows`), as runs write them when they end. No run stores: the index serves every run.

Cold: a fresh process with no catalog (`ROOT/catalog/` deleted before each repetition), the
sweeps as hpctrack leaves them after their runs ended, measured twice: with only `index.jsonl`
(what the runs' ends leave: no `index.cache.parquet`, which `table` writes) and with each sweep's
index cache present (written here by `index_frame`, as a `table` of the sweep leaves it). As
root the OS page cache is also dropped before a repetition (`sync; echo 3 >
/proc/sys/vm/drop_caches`) in the "page cache dropped" rows; the table says when that was not
possible. Warm: the same query again in a fresh process, the catalog present. Each is
`python -m hpctrack runs ...` end to end from the shell, repeated; the table gives the median
wall time, the spread (min-max) and the median CPU time (user + system) of the query process,
and the load average when the measurement ended (the machine may be shared).

Goals: cold < 10 s, warm < 2 s. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

GOALS_S = {"cold": 10.0, "warm": 2.0}
QUERY = "optimizer.name == 'adamw' and val/acc:max > 0.9"


def build_root(root: Path, n_sweeps: int, n_runs: int) -> None:
    """``n_runs`` runs spread over ``n_sweeps`` sweeps, written as hpctrack writes them."""
    import numpy as np

    from hpctrack._types import JobState
    from hpctrack.index import append_rows, record_to_row
    from hpctrack.manifest import JobRecord, Manifest, create_sweep
    from hpctrack.store import RunRecord
    from hpctrack.store.base import MetricStats

    rng = np.random.default_rng(0)
    per = max(1, n_runs // n_sweeps)
    now = time.time()
    for s in range(n_sweeps):
        sweep_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(now - 3600 * (n_sweeps - s))) + f"-{s:04x}"
        jobs = []
        for i in range(per):
            opt = ("sgd", "adam", "adamw")[i % 3]
            jobs.append(JobRecord(index=i, overrides=[f"optimizer.name={opt}", f"seed={i // 3}"], run_dir=f"runs/{i}",
                                  state=JobState.COMPLETED, job_id=str(i), submitted=now - 7200))  # fmt: skip
        manifest = create_sweep(root, Manifest(id=sweep_id, created=now - 3600 * (n_sweeps - s), backend="local",
                                               store="hdf5", name=f"bench-{s}", swept_keys=["optimizer.name", "seed"],
                                               runner={}, launcher={}, jobs=jobs))  # fmt: skip
        acc = rng.random(per)
        rows = []
        for i in range(per):
            record = RunRecord(
                path=manifest.run_path(i), format_version=3,
                params={"optimizer.name": ("sgd", "adam", "adamw")[i % 3], "optimizer.lr": 0.01 * (1 + i % 5),
                        "seed": i // 3, "model.hidden": 64},
                summary={"test/acc": float(acc[i]) * 0.95}, tags={},
                status={"state": "completed", "start_time": now - 7000, "attempt_start": now - 7000,
                        "end_time": now - 6900, "runtime_s": 100.0, "last_step": 99, "attempt": 1},
                info={},
                metrics={"train/loss": MetricStats(count=100, last=1 - float(acc[i]), last_step=99,
                                                   min=1 - float(acc[i]), max=2.0),
                         "val/acc": MetricStats(count=100, last=float(acc[i]) * 0.99, last_step=99, min=0.0,
                                                max=float(acc[i]))},
                restarts={},
            )  # fmt: skip
            rows.append({**record_to_row(i, record), "fingerprint": f"run.h5:1000:{i}"})
        append_rows(manifest.path, rows)


def _index_caches(root: Path, present: bool) -> None:
    """Each sweep's ``index.cache.parquet`` written (as ``table`` leaves it) or removed (as runs leave it)."""
    from hpctrack.index import CACHE_FILE, index_frame

    for sweep in sorted((root / "sweeps").iterdir()):
        if present:
            index_frame(sweep)
        else:
            (sweep / CACHE_FILE).unlink(missing_ok=True)


def _drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _query(root: Path) -> "tuple[float, int]":
    env = {**os.environ, "HPCTRACK_ROOT": str(root)}
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hpctrack", "runs", "--where", QUERY, "-m", "val/acc:max",
                           "--format", "csv"], env=env, capture_output=True, text=True)  # fmt: skip
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"hpctrack runs failed: {proc.stderr.strip()}")
    _CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took, max(0, proc.stdout.count("\n") - 1)


#: CPU seconds (user + system) of each query, beside its wall time: this machine is shared.
_CPU: List[float] = []


def rows(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The result rows: one per measurement (cold without and with index caches, each also with the page
    cache dropped; warm)."""
    work = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="hpctrack-runs-"))
    root = work / "root"
    built_s = None
    if not (root / "sweeps").is_dir():
        start = time.perf_counter()
        build_root(root, args.sweeps, args.runs)
        built_s = time.perf_counter() - start
    out: List[Dict[str, Any]] = []
    try:
        for caches in (False, True):
            _index_caches(root, caches)
            for drop in (False, True):
                label = "cold, " + ("index caches present" if caches else "only index.jsonl")
                label += ", page cache dropped" if drop else ""
                times, dropped, hits = [], True, 0
                for _ in range(args.repeat):
                    shutil.rmtree(root / "catalog", ignore_errors=True)
                    if drop:
                        dropped = _drop_caches() and dropped
                    took, hits = _query(root)
                    times.append(took)
                if drop and not dropped:
                    label += " (not possible: not root)"
                out.append(_row(label, times, GOALS_S["cold"], hits, args))
        times = []
        for _ in range(args.repeat):
            took, hits = _query(root)
            times.append(took)
        out.append(_row("warm", times, GOALS_S["warm"], hits, args))
        if built_s is not None:
            out[0]["note"] = f"root built in {built_s:.0f} s"
    finally:
        if not args.keep and not args.root:
            shutil.rmtree(work, ignore_errors=True)
    return out


def _row(label: str, times: List[float], goal: float, hits: int, args: argparse.Namespace) -> Dict[str, Any]:
    median = statistics.median(times)
    cpu = statistics.median(_CPU[-len(times) :])
    return {"case": f"runs {label}", "runs": args.runs, "sweeps": args.sweeps, "matches": hits,
            "median_s": round(median, 2), "spread_s": f"{min(times):.2f}-{max(times):.2f}", "cpu_s": round(cpu, 2),
            "load": f"{os.getloadavg()[0]:.1f}", "goal_s": goal, "met": "yes" if median < goal else "NO"}  # fmt: skip


def _table(result: List[Dict[str, Any]]) -> str:
    keys = ["case", "runs", "sweeps", "matches", "median_s", "spread_s", "cpu_s", "load", "goal_s", "met"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in result]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1_000_000, help="runs in all (default 1,000,000)")
    p.add_argument("--sweeps", type=int, default=1000, help="sweeps (default 1,000)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per measurement")
    p.add_argument("--root", default=None, help="build (or reuse) the synthetic root here")
    p.add_argument("--keep", action="store_true", help="keep the temporary root")
    return p


def main() -> None:
    result = rows(parser().parse_args())
    print(_table(result))
    for r in result:
        if r.get("note"):
            print(r["note"])


if __name__ == "__main__":
    main()
