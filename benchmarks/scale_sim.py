"""Beyond this machine, simulated: a 100,000-run SLURM sweep, its table, its sacct output and its watch.

    python benchmarks/scale_sim.py                 # 100,000 runs (~1-2 min, ~60 MB on disk)
    python benchmarks/scale_sim.py --runs 10000    # smaller
    python benchmarks/scale_sim.py --dir /scratch/me --keep

What it builds, the way hpctrack writes it:
- a SLURM sweep manifest of N jobs in job arrays of 1,000 tasks (``create_sweep``), every job
  ended, with the scheduler's final word recorded as the first ``status`` records it;
- one real HDF5 run store (``open_store(...).write``: 10 metrics x 100 steps, params, summary,
  status ``completed``) whose data file every run shares as a hard link (``run.0.h5``) behind
  its own ``run.h5`` link, so that each run has a store whose fingerprint its index line
  records, at the cost of one inode per run instead of N stores;
- the sweep's ``index.jsonl``: one line per run (``record_to_row`` of that record with the
  run's own params and summary, and the store's fingerprint), appended by ``append_rows``;
- ``sacct`` output for the N jobs in the exact format hpctrack asks for
  (``sacct -X -P -n -o JobID,State,ExitCode,NodeList,Reason``), with pending array ranges
  (``A_[900-999%256]``), requeued tasks listed twice (the older row first), and step rows
  (``A_3.batch``), served by an ``sacct`` script on PATH that prints it.

What it times ("cold": the page cache dropped through /proc/sys/vm/drop_caches, which needs
root; the output says when it could not be, then the numbers are warm):
- ``Sweep.table()`` of the N runs in a fresh interpreter, with the columnar index cache
  removed first (goal < 10 s cold; ``--repeat`` times: the median, every run and the load
  average after it, and the CPU time of the call's process and of its children);
- ``SlurmBackend.query`` of the N jobs against the recorded sacct output: the call, the parse
  and the merge into the jobs' states by index (goal < 2 s);
- ``status --watch``'s refresh (:class:`hpctrack.watch.StatusWatch`) while a few jobs still
  run: store reads, store fingerprints and index bytes per refresh, counted in the code path
  (the store class's methods are wrapped with counters), beside a plain ``status`` refresh.

Prints "yes"/"NO" per goal. ``rows(args)`` returns the table rows (``scale_bench.py`` prints them).
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
from pathlib import Path
from typing import Any, Dict, List, Optional

GOAL_TABLE_COLD_S = 10.0
GOAL_SACCT_S = 2.0
ARRAY = 1000  # tasks per job array (SLURM's default MaxArraySize is 1001)
RUNNING = 10  # jobs still running during the watch
LINKS = 50_000  # runs sharing one copy of the template's data file


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _job_id(i: int) -> str:
    return f"{700000 + i // ARRAY}_{i % ARRAY}"


def _lr(i: int) -> float:
    return (0.001, 0.003, 0.01, 0.03, 0.1)[i % 5]


def _template(folder: Path) -> Any:
    """One real run store: 10 metrics x 100 steps, params, summary, status completed."""
    import numpy as np

    from hpctrack.store import MetricBatch, open_store

    batch = MetricBatch()
    step = np.arange(100, dtype=np.int64)
    for k in range(10):
        batch.points[f"m{k}"] = (step, np.exp(-step / (20.0 * (k + 1))), 1.7e9 + step * 0.1)
    now = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    store = open_store(folder, "hdf5")
    store.write(metrics=batch, sections={
        "params": {"optimizer.lr": 0.01, "seed": 0, "model.hidden": 64},
        "summary": {"test/acc": 0.9},
        "status": {"state": "completed", "start_time": now - 100, "attempt_start": now - 100, "end_time": now,
                   "runtime_s": 100.0, "last_step": 99, "attempt": 1},
    })  # fmt: skip
    return store


def build(base: Path, runs: int) -> Path:
    """The sweep, its index and the recorded sacct output under ``base``; returns the sweep directory."""
    from hpctrack._types import JobState
    from hpctrack.index import append_rows, record_to_row
    from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id

    t0 = time.time()
    template = _template(base / "template")
    record = template.read()
    target = os.readlink(template.path)
    now = time.time()
    jobs = []
    for i in range(runs):
        said = {"job_id": _job_id(i), "state": "COMPLETED", "scheduler_state": "COMPLETED", "exit_code": "0:0",
                "node": f"node{i % 64:03d}"}  # fmt: skip
        jobs.append(JobRecord(index=i, overrides=[f"optimizer.lr={_lr(i)}", f"seed={i // 5}"], run_dir=f"runs/{i}",
                              state=JobState.COMPLETED, job_id=_job_id(i), submitted=now - 1000, ended=now,
                              scheduler=said))  # fmt: skip
    manifest = create_sweep(base / "root", Manifest(id=new_sweep_id(), created=now, backend="slurm", store="hdf5",
                                                    name="sim", swept_keys=["optimizer.lr", "seed"], jobs=jobs))  # fmt: skip
    data = template.path.parent / target
    rows = []
    fingerprint = None
    for i in range(runs):
        run_dir = manifest.run_path(i)
        if i and i % LINKS == 0:  # a file has at most 65,000 links on ext4: a copy (same size and mtime)
            copy = base / "template" / f"copy-{i // LINKS}"
            copy.mkdir()
            shutil.copy2(template.path.parent / target, copy / target)
            data, fingerprint = copy / target, None
        os.link(data, run_dir / target)
        os.symlink(target, run_dir / "run.h5")
        if fingerprint is None:
            from hpctrack.store import open_store

            fingerprint = open_store(run_dir, "hdf5").fingerprint()
        row = record_to_row(i, record)
        row["params"] = {"optimizer.lr": _lr(i), "seed": i // 5, "model.hidden": 64}
        row["summary"] = {"test/acc": 0.9 + (i % 97) / 1000}
        rows.append({**row, "fingerprint": fingerprint})
    append_rows(manifest.path, rows)
    (base / "sacct.txt").write_text(sacct_text(runs))
    progress(f"built {runs:,} runs in {time.time() - t0:.0f} s")
    return manifest.path


def sacct_text(runs: int) -> str:
    """sacct's answer for the sweep: ``JobID|State|ExitCode|NodeList|Reason``, as ``-X -P -n`` prints it."""
    lines = []
    for i in range(runs):
        if i % 1000 == 7:  # requeued once: the older row first (as with --duplicates)
            lines.append(f"{_job_id(i)}|REQUEUED|0:0|node001|None")
        if i % 1000 == 3:  # a step row (sacct without -X): never taken for the job
            lines.append(f"{_job_id(i)}.batch|COMPLETED|0:0|node001|")
        state = "RUNNING" if i < RUNNING else "COMPLETED"  # the jobs the watch sees running
        lines.append(f"{_job_id(i)}|{state}|0:0|node{i % 64:03d}|None")
    # a pending range of another array: what a queued array looks like before its tasks start
    lines.append(f"{700000 + runs // ARRAY + 1}_[900-999%256]|PENDING|0:0|None assigned|JobArrayTaskLimit")
    return "\n".join(lines) + "\n"


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=False)
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


_TABLE = r"""
import json, resource, sys, time
import hpctrack
import numpy, pandas, pyarrow.parquet, h5py  # imported lazily by the call: not part of its time
sweep = hpctrack.load_sweep(sys.argv[1])
def cpu():
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
t, c = time.perf_counter(), cpu()
frame = sweep.table()
print(json.dumps({"s": time.perf_counter() - t, "cpu_s": cpu() - c, "rows": len(frame)}))
"""


def time_table(sweep_dir: Path, env: Dict[str, str], repeat: int = 1) -> Dict[str, Any]:
    """``Sweep.table()`` cold ``repeat`` times: wall and CPU seconds (the call's process and its children) of each."""
    runs = []
    for _ in range(repeat):
        cache = sweep_dir / "index.cache.parquet"
        if cache.exists():
            cache.unlink()  # the first table builds it: part of "cold"
        dropped = drop_caches()
        proc = subprocess.run([sys.executable, "-c", _TABLE, str(sweep_dir)], capture_output=True, text=True,
                              env=env)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        runs.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "cold": dropped,
                     "load": os.getloadavg()[0]})  # fmt: skip
    order = sorted(runs, key=lambda r: r["s"])
    return {**order[len(order) // 2], "runs": runs, "cold": all(r["cold"] for r in runs)}


def time_sacct(sweep_dir: Path) -> Dict[str, Any]:
    from hpctrack.launch.slurm.backend import SlurmBackend, parse_sacct
    from hpctrack.manifest import load_manifest

    manifest = load_manifest(sweep_dir)
    text = (sweep_dir.parent.parent.parent / "sacct.txt").read_text()
    t = time.perf_counter()
    parsed = parse_sacct(text)
    parse_s = time.perf_counter() - t
    t = time.perf_counter()
    infos, note = SlurmBackend().query(manifest)  # runs the sacct on PATH: the recorded output
    query_s = time.perf_counter() - t
    wrong = [
        i
        for i, info in infos.items()
        if info.state is None or info.state.value != ("RUNNING" if i < RUNNING else "COMPLETED")
    ]
    assert note is None and len(infos) == len(manifest.jobs) and not wrong, (note, len(infos), wrong[:3])
    return {"rows": len(text.splitlines()), "parse_s": parse_s, "query_s": query_s, "parsed": len(parsed)}


def watch_reads(sweep_dir: Path) -> Dict[str, Any]:
    """Store reads, fingerprints and index bytes of watch refreshes, beside plain status refreshes."""
    # A few jobs still run: their own stores, no index line, the scheduler not settled on them.
    import numpy as np

    from hpctrack.index import INDEX_FILE
    from hpctrack.manifest import update_manifest
    from hpctrack.status import sweep_status
    from hpctrack.store import MetricBatch, _hdf5, open_store
    from hpctrack.watch import StatusWatch

    running = list(range(RUNNING))
    for i in running:
        run_dir = sweep_dir / "runs" / str(i)
        for p in run_dir.iterdir():
            p.unlink()
        batch = MetricBatch()
        batch.points["m0"] = (np.arange(5, dtype=np.int64), np.ones(5), np.full(5, time.time()))
        open_store(run_dir, "hdf5").write(metrics=batch, sections={
            "params": {"optimizer.lr": _lr(i), "seed": i // 5}, "info": {"host": os.uname().nodename,
                                                                        "pid": os.getpid()},
            "status": {"state": "running", "start_time": time.time(), "attempt_start": time.time(),
                       "heartbeat": time.time(), "last_step": 4, "attempt": 1},
        })  # fmt: skip

    def unsettle(m: Any) -> None:
        for i in running:
            m.jobs[i].scheduler = {}

    update_manifest(sweep_dir, unsettle)
    counts = {"read": 0, "fingerprint": 0, "ended": 0}
    cls = _hdf5.HDF5Store
    real = {name: getattr(cls, name) for name in ("read", "fingerprint")}

    def counted(name: str) -> Any:
        def call(self: Any, *a: Any, **k: Any) -> Any:
            counts[name] += 1
            counts["ended"] += int(self.path.parent.name) >= RUNNING  # a store of an ended run
            return real[name](self, *a, **k)

        return call

    index = sweep_dir / INDEX_FILE
    out: Dict[str, Any] = {}
    try:
        for name in real:
            setattr(cls, name, counted(name))
        watch = StatusWatch(sweep_dir)
        for n in range(3):
            counts.update(read=0, fingerprint=0, ended=0)
            t = time.perf_counter()
            st = watch.refresh()
            out[f"watch_{n}"] = {**counts, "index_bytes": watch.index_bytes_read, "jobs": watch.jobs_read,
                                 "s": time.perf_counter() - t}  # fmt: skip
        assert sum(s.state.value == "RUNNING" for s in st.jobs) == RUNNING, [s.state for s in st.jobs[:RUNNING]]
        counts.update(read=0, fingerprint=0, ended=0)
        t = time.perf_counter()
        sweep_status(__import__("hpctrack").load_sweep(str(sweep_dir)).manifest, persist=False)
        out["status"] = {**counts, "index_bytes": index.stat().st_size, "jobs": len(st.jobs),
                         "s": time.perf_counter() - t}  # fmt: skip
    finally:
        for name, fn in real.items():
            setattr(cls, name, fn)
    return out


def rows(args: Any) -> List[Dict[str, Any]]:
    """Build (or reuse), measure and return the table rows: what, size, measured, goal, met."""
    base = Path(args.reuse) if getattr(args, "reuse", None) else Path(
        tempfile.mkdtemp(prefix="hpctrack-scalesim-", dir=getattr(args, "dir", None)))  # fmt: skip
    runs = int(getattr(args, "runs", 100_000))
    shim = base / "bin"
    try:
        if not getattr(args, "reuse", None):
            build(base, runs)
        sweep_dir = next(p for p in (base / "root" / "sweeps").iterdir() if (p / "sweep.json").is_file())
        shim.mkdir(exist_ok=True)
        (shim / "sacct").write_text(f"#!/bin/sh\nexec cat {base / 'sacct.txt'}\n")
        (shim / "sacct").chmod(0o755)
        os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ['PATH']}"
        progress("table of every run (fresh interpreter, page cache dropped)")
        table = time_table(sweep_dir, dict(os.environ), int(getattr(args, "repeat", 1)))
        progress("sacct output: parse and merge")
        sacct = time_sacct(sweep_dir)
        progress("status --watch refreshes")
        watch = watch_reads(sweep_dir)
    finally:
        if not getattr(args, "keep", False) and not getattr(args, "reuse", None):
            shutil.rmtree(base, ignore_errors=True)
    warm = "" if table["cold"] else " (page cache NOT dropped: warm)"
    spread = ", ".join(f"{r['s']:.2f}" for r in table["runs"])
    loads = ", ".join(f"{r['load']:.1f}" for r in table["runs"])
    out = [
        {"what": f"Sweep.table(), cold, fresh interpreter{warm}", "size": f"{table['rows']:,} runs",
         "measured": f"{table['s']:.2f} s, {table['cpu_s']:.2f} s CPU (median; runs: {spread}; load {loads})",
         "goal": f"< {GOAL_TABLE_COLD_S:g} s",
         "met": "yes" if all(r["s"] < GOAL_TABLE_COLD_S for r in table["runs"]) else "NO"},
        {"what": "sacct rows parsed and merged into job states (SlurmBackend.query, recorded output)",
         "size": f"{sacct['rows']:,} rows", "measured": f"{sacct['query_s']:.2f} s (parse alone {sacct['parse_s']:.2f} s)",
         "goal": f"< {GOAL_SACCT_S:g} s", "met": "yes" if sacct["query_s"] < GOAL_SACCT_S else "NO"},
    ]  # fmt: skip
    for key in ("watch_0", "watch_1", "watch_2", "status"):
        w = watch[key]
        label = ("status --watch, first refresh" if key == "watch_0" else
                 f"status --watch, refresh {key[-1]}" if key != "status" else "plain status (each refresh before)")  # fmt: skip
        ok = w["ended"] == 0 and w["index_bytes"] == 0
        out.append({"what": label, "size": f"{runs:,} runs, {RUNNING} running",
                    "measured": f"{w['jobs']:,} jobs worked out, {w['read']:,} store reads, "
                                f"{w['fingerprint']:,} store fingerprints ({w['ended']:,} of ended runs' stores), "
                                f"{w['index_bytes']:,} index bytes; "
                                f"{w['s']:.2f} s",
                    "goal": "no ended run re-read" if key in ("watch_1", "watch_2") else "",
                    "met": ("yes" if ok else "NO") if key in ("watch_1", "watch_2") else ""})  # fmt: skip
    return out


def table_text(rows_: List[Dict[str, Any]]) -> str:
    cols = ["what", "size", "measured", "goal", "met"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows_]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The options of :func:`rows` (``parser().parse_args([])`` gives the defaults)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--dir", default=None, help="where to build (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep what was built (reuse it with --reuse DIR)")
    p.add_argument("--reuse", default=None, help="a directory a --keep run left: skip building")
    p.add_argument("--repeat", type=int, default=1, help="cold tables to time (median, every run listed)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    import hpctrack

    print("# hpctrack scale simulation\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; hpctrack {hpctrack.__version__}")
    print(f"- cpu: {os.cpu_count()} cores; load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    result = rows(args)
    print(f"- load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print(table_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
