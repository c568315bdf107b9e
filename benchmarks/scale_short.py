"""Short runs at scale: what hpctrack costs each of 1,000 short runs packed 50 to an array task, and
how fast `table` and `status` answer on the ended sweep.

    python benchmarks/scale_short.py                 # 1,000 runs on the test cluster (~3-6 min)
    python benchmarks/scale_short.py --runs 200      # quicker
    python benchmarks/scale_short.py --no-mlflow     # without the MLflow comparison

Needs SLURM's commands (`. /tmp/hpctrack-slurm/env.sh` for the test cluster from `slurm/`) and,
for the comparison row, MLflow (the optional `bench` extra). Asserts nothing.

1. **Per-run overhead in a packed task.** `hpctrack launch APP '+i=range(N)' --backend slurm
   hydra.launcher.runs_per_task=50 hydra.launcher.array_parallelism=<cores>` (the test cluster's node
   offers 4 CPUs on a 2-core machine: more tasks at once would time the sweep's own tasks sharing a
   core), where APP is a Hydra app whose run logs 100 steps of 2 metrics and
   records how long its own loop took (`user_s`, in the run's summary: the user's work, `run.log`
   calls included). For each array task, with its runs' own records:
   - `span` = last run's `end_time` - first run's `attempt_start` (from opening the first run to
     recording the end of the last one: every run's start, provenance, store creation, Hydra's
     composition of its config, its end, its index line and the gaps between runs);
   - **overhead per run** = (`span` - sum of `user_s`) / runs in the task (the goal: < 0.1 s);
   - task startup per run = (SLURM's elapsed time of the task - `span`) / runs: the interpreter,
     imports and submitit before the first run opens, paid once per task (sacct's 1 s resolution).
   The same app started plainly (`python app.py`, one run in its own process) gives the single-process
   overhead: the run's own `end_time - attempt_start - user_s`, and the whole process's wall time.
2. **`hpctrack table` and `status`** (text and `--format json`) end to end from the shell on that
   ended 1,000-run sweep: median and spread of `--repeat` runs each, each a fresh process. The SLURM
   sweep's status asks `sacct` once; the time of that call alone is measured too (median of the
   same count) and subtracted for the "without sacct" figure.
3. **`Sweep.table()` warm vs MLflow `search_runs`** on 1,000 runs of the same shape (2 metrics x 100
   steps, MLflow's SQLite store), each in a fresh process, through `benchmarks/aggregate_bench.py`.

Prints one table with the goals and "yes"/"NO"; :func:`rows` returns its rows (for `scale_bench.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

GOAL_OVERHEAD_S = 0.1
GOAL_CLI_S = 0.5
GOAL_VS_SEARCH_RUNS = 10.0

APP = """
import time

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        started = time.perf_counter()
        for step in range(cfg.steps):
            run.log({"loss": 1.0 / (step + 1), "acc": step / cfg.steps}, step=step)
        run.summary["user_s"] = time.perf_counter() - started


if __name__ == "__main__":
    main()
"""

CONFIG = "seed: 0\nsteps: 100\noptimizer:\n  name: sgd\n  lr: 0.1\nmodel:\n  hidden: 64\n"


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    """The options of :func:`rows` (``parser().parse_args([])`` gives the defaults)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--per-task", type=int, default=50)
    p.add_argument("--repeat", type=int, default=7, help="runs of each CLI command and of the plain start")
    p.add_argument("--partition", default=None)
    p.add_argument("--array-parallelism", type=int, default=os.cpu_count() or 1,
                   help="array tasks running at once (default: this machine's cores, so that the sweep's own "
                        "tasks do not share a core; the test cluster's node offers more CPUs than it has)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the sweep to end")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed after)")
    return p


def _write_app(folder: Path) -> Path:
    (folder / "conf").mkdir(parents=True, exist_ok=True)
    (folder / "conf" / "config.yaml").write_text(CONFIG)
    (folder / "app.py").write_text(APP)
    return folder / "app.py"


def _hpctrack(env: Dict[str, str], cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "hpctrack", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)  # fmt: skip
    if check and proc.returncode != 0:
        raise RuntimeError(f"hpctrack {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc


def _wait_ended(env: Dict[str, str], cwd: Path, name: str, timeout_s: float) -> Dict[str, Any]:
    """The sweep's status once every job ended.

    While the arrays are in SLURM's queue, only ``squeue`` is asked (every 5 s): an
    ``hpctrack status`` every 5 s would take CPU from the 2 cores the tasks being measured
    run on. Then ``status`` until it sees every job ended.
    """
    deadline = time.time() + timeout_s
    status = json.loads(_hpctrack(env, cwd, "status", name, "--format", "json").stdout)
    arrays = sorted({str(j["job_id"]).split("_")[0] for j in status["jobs"] if j.get("job_id")})
    while arrays and time.time() < deadline:
        queued = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(arrays)], capture_output=True,
                                text=True)  # fmt: skip
        if queued.returncode == 0 and not queued.stdout.strip():
            break
        time.sleep(5)
    while True:
        status = json.loads(_hpctrack(env, cwd, "status", name, "--format", "json").stdout)
        if all(j["state"] not in ("PENDING", "RUNNING", "REQUEUED") for j in status["jobs"]):
            return status
        if time.time() > deadline:
            raise RuntimeError(f"sweep {name} not ended after {timeout_s:g} s: {status['summary']}")
        time.sleep(5)


def _cpu_time_s(text: str) -> Optional[float]:
    """sacct's ``TotalCPU`` (``[D-]HH:MM:SS.mmm`` or ``MM:SS.mmm``) in seconds."""
    days, _, rest = text.strip().rpartition("-")
    try:
        parts = [float(p) for p in rest.split(":")]
    except ValueError:
        return None
    seconds = sum(v * 60**i for i, v in enumerate(reversed(parts)))
    return seconds + (int(days) * 86400 if days else 0)


def _sacct_tasks(job_ids: List[str]) -> Dict[str, Tuple[float, Optional[float]]]:
    """SLURM's elapsed time and CPU time (user + system, all steps) of each array task, by ``<array>_<task>`` id."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    out = subprocess.run(["sacct", "-P", "-n", "-j", ",".join(arrays), "-o", "JobID,ElapsedRaw,TotalCPU"],
                         capture_output=True, text=True).stdout  # fmt: skip
    found = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and "." not in parts[0]:  # the task, not its steps
            found[parts[0]] = (float(parts[1]), _cpu_time_s(parts[2]))
    return found


def packed_overhead(args: Any, work: Path) -> Dict[str, Any]:
    """Launch the sweep of short runs on SLURM, wait for it, and measure each task from its runs' records."""
    import hpctrack

    folder = work / "packed"
    _write_app(folder)
    root = folder / "root"
    env = {**os.environ, "HPCTRACK_ROOT": str(root)}
    name = f"short-{uuid.uuid4().hex[:6]}"
    cmd = ["launch", "app.py", f"+i=range({args.runs})", "--backend", "slurm", "--name", name, "--time", "30",
           f"hydra.launcher.runs_per_task={args.per_task}",
           f"hydra.launcher.array_parallelism={args.array_parallelism}"] + (["--partition", args.partition] if args.partition
                                                               else [])  # fmt: skip
    progress(f"hpctrack {' '.join(cmd)}")
    _hpctrack(env, folder, *cmd)
    status = _wait_ended(env, folder, name, args.timeout)
    progress(f"ended: {status['summary']}")
    sweep = hpctrack.load_sweep(name, root=str(root))
    tasks: Dict[str, List[Dict[str, Any]]] = {}
    for job in status["jobs"]:
        record = sweep.run(job["job"])
        st = record.status
        tasks.setdefault(job["job_id"], []).append({"start": st.get("attempt_start"), "end": st.get("end_time"),
                                                    "user": record.summary.get("user_s")})  # fmt: skip
    accounted = _sacct_tasks(list(tasks))
    per_run, startup, cpu = [], [], []
    for job_id, runs in tasks.items():
        if any(r["start"] is None or r["end"] is None or r["user"] is None for r in runs):
            continue  # a run that did not complete: not a measurement
        span = max(r["end"] for r in runs) - min(r["start"] for r in runs)
        per_run.append((span - sum(r["user"] for r in runs)) / len(runs))
        if job_id in accounted:
            elapsed, task_cpu = accounted[job_id]
            startup.append(max(0.0, elapsed - span) / len(runs))
            if task_cpu is not None:
                cpu.append((task_cpu - sum(r["user"] for r in runs)) / len(runs))
    user = [r["user"] for runs in tasks.values() for r in runs if r["user"] is not None]
    return {"name": name, "root": root, "cwd": folder, "env": env, "summary": status["summary"],
            "tasks": len(per_run), "per_run": per_run, "startup": startup, "cpu": cpu, "user": user}  # fmt: skip


def plain_overhead(args: Any, work: Path) -> Dict[str, Any]:
    """``python app.py`` (one run in its own process), ``--repeat`` times."""
    import hpctrack

    folder = work / "plain"
    script = _write_app(folder)
    env = {**os.environ, "HPCTRACK_ROOT": str(folder / "root")}
    inside, wall = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=folder)
        wall.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        record = hpctrack.load_sweep("latest", root=env["HPCTRACK_ROOT"]).run(0)
        st = record.status
        inside.append(st["end_time"] - st["attempt_start"] - record.summary["user_s"])
    return {"inside": inside, "wall": wall}


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: List[str], env: Dict[str, str], cwd: Path, repeat: int) -> Tuple[List[float], List[float]]:
    """Wall and CPU (user + system) seconds of ``repeat`` runs of ``cmd``, each a fresh process."""
    took, cpu = [], []
    for _ in range(repeat):
        started, cpu_before = time.perf_counter(), _cpu_s()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
        took.append(time.perf_counter() - started)
        cpu.append(_cpu_s() - cpu_before)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr[-1000:]}")
    return took, cpu


def cli_times(args: Any, packed: Dict[str, Any]) -> Dict[str, List[float]]:
    """Each command end to end from the shell, in a fresh process each time; and sacct's own call."""
    from hpctrack.launch.slurm import SlurmBackend
    from hpctrack.sweep import load_sweep

    env, cwd, name = packed["env"], packed["cwd"], packed["name"]
    out = {}
    for label, extra in [("table", []), ("table --format json", ["--format", "json"]), ("status", []),
                         ("status --format json", ["--format", "json"])]:  # fmt: skip
        command = label.split()[0]
        _hpctrack(env, cwd, command, name, *extra)  # the first builds the index cache: not timed
        out[label], out[f"{label} cpu"] = _timed([sys.executable, "-m", "hpctrack", command, name, *extra], env, cwd,
                                                 args.repeat)  # fmt: skip
    manifest = load_sweep(name, root=str(packed["root"])).manifest
    sacct = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        SlurmBackend().query(manifest)
        sacct.append(time.perf_counter() - started)
    out["sacct"] = sacct
    return out


def table_vs_mlflow(args: Any, packed: Dict[str, Any], work: Path) -> Dict[str, Any]:
    """``Sweep.table()`` warm in a fresh process beside MLflow ``search_runs`` on runs of the same shape."""
    import aggregate_bench as ab

    spec = {"sweep": str(load_path(packed)), "metrics": ["loss", "acc"], "what": "table"}
    ab.hp_measure(spec)  # warms the files and the index cache
    warm = [ab.hp_measure(spec)["first"] for _ in range(3)]
    out: Dict[str, Any] = {"warm": warm}
    if args.no_mlflow or not ab.ml_available():
        return out
    folder = work / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mspec = {"uri": uri, "runs": args.runs, "steps": 100, "cwd": str(folder), "pandas": False}
    built = folder / f"built-{args.runs}"
    if not built.exists():  # a --dir kept from an earlier run keeps its MLflow store
        progress(f"mlflow: logging {args.runs:,} runs x 2 metrics x 100 steps into SQLite")
        # The same build as aggregate_bench's, with the 2 metrics of this benchmark's runs instead of its 10.
        build = ab._ML_BUILD.replace("for k in range(10)", "for k in range(2)")
        out["ml_build"] = ab.ml_run(build, mspec)
        built.write_text("1")
    # aggregate_bench's measurement up to search_runs: the metric-history reads after it are not compared here.
    head, found, _ = ab._ML_MEASURE.partition("t = time.perf_counter()\npoints = 0")
    measure = head + "print(json.dumps(out))\n" if found else ab._ML_MEASURE
    out["ml"] = [ab.ml_run(measure, mspec) for _ in range(3)]
    return out


def load_path(packed: Dict[str, Any]) -> Path:
    from hpctrack.sweep import load_sweep

    return load_sweep(packed["name"], root=str(packed["root"])).path


def _spread(xs: List[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.median(xs):.3f} s ({min(xs):.3f}-{max(xs):.3f}, n={len(xs)})"


def _met(value: Optional[float], ok: bool) -> str:
    return "n/a" if value is None else ("yes" if ok else "NO")


def rows(args: Any) -> List[Dict[str, str]]:
    """Measure everything; one row per figure: ``what``, ``hpctrack``, ``peer``, ``goal``, ``met``."""
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="hpctrack-short-"))
    work.mkdir(parents=True, exist_ok=True)
    out: List[Dict[str, str]] = []
    try:
        packed = packed_overhead(args, work)
        per_run = statistics.median(packed["per_run"]) if packed["per_run"] else None
        out.append({"what": f"overhead per run in a packed task ({args.runs:,} runs, {args.per_task} per task, "
                            f"{packed['tasks']} tasks, {args.array_parallelism} at once): median over tasks (min-max)",
                    "hpctrack": _spread(packed["per_run"]), "peer": "",
                    "goal": f"< {GOAL_OVERHEAD_S:g} s", "met": _met(per_run, (per_run or 0) < GOAL_OVERHEAD_S)})  # fmt: skip
        out.append({"what": "  CPU time per run outside user code (the task's TotalCPU, startup included, / runs)",
                    "hpctrack": _spread(packed["cpu"]), "peer": "", "goal": "", "met": ""})  # fmt: skip
        out.append({"what": "task startup per run (interpreter, imports, submitit; once per task / runs)",
                    "hpctrack": _spread(packed["startup"]), "peer": "", "goal": "", "met": ""})  # fmt: skip
        out.append({"what": "user code per run (the app's own loop: 100 steps x 2 metrics, run.log included)",
                    "hpctrack": _spread(packed["user"]), "peer": "", "goal": "", "met": ""})  # fmt: skip
        progress("plain single-process runs")
        plain = plain_overhead(args, work)
        out.append({"what": "plain `python app.py`: the run's own overhead (end - start - user code)",
                    "hpctrack": _spread(plain["inside"]), "peer": "", "goal": "", "met": ""})  # fmt: skip
        out.append({"what": "plain `python app.py`: the whole process", "hpctrack": _spread(plain["wall"]),
                    "peer": "", "goal": "", "met": ""})  # fmt: skip
        progress("table and status from the shell")
        cli = cli_times(args, packed)
        sacct = statistics.median(cli["sacct"])
        for label in ("table", "table --format json", "status", "status --format json"):
            median = statistics.median(cli[label])
            out.append({"what": f"`hpctrack {label}`, {args.runs:,}-run ended sweep, end to end",
                        "hpctrack": _spread(cli[label]), "peer": "", "goal": f"< {GOAL_CLI_S:g} s",
                        "met": _met(median, median < GOAL_CLI_S)})  # fmt: skip
            out.append({"what": "  its CPU time (user + system): what it costs without the machine's other load",
                        "hpctrack": _spread(cli[f"{label} cpu"]), "peer": "", "goal": "", "met": ""})  # fmt: skip
            out.append({"what": f"  the same without its sacct call (median {sacct:.3f} s)",
                        "hpctrack": f"{median - sacct:.3f} s", "peer": "", "goal": f"< {GOAL_CLI_S:g} s",
                        "met": _met(median, median - sacct < GOAL_CLI_S)})  # fmt: skip
        progress("Sweep.table() warm beside MLflow search_runs")
        vs = table_vs_mlflow(args, packed, work)
        warm = statistics.median(vs["warm"])
        searches = [m["search_runs_s"] for m in vs.get("ml", [])]
        search = statistics.median(searches) if searches else None
        ratio = search / warm if search else None
        out.append({"what": f"`Sweep.table()` warm (fresh process) vs MLflow `search_runs` (SQLite), {args.runs:,} runs",
                    "hpctrack": _spread(vs["warm"]), "peer": _spread(searches) if searches else "not measured",
                    "goal": f">= {GOAL_VS_SEARCH_RUNS:g}x",
                    "met": _met(ratio, (ratio or 0) >= GOAL_VS_SEARCH_RUNS) + (f" ({ratio:.1f}x)" if ratio else "")})  # fmt: skip
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return out


def table(found: List[Dict[str, str]]) -> str:
    cols = ["what", "hpctrack", "peer", "goal", "met"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(row.get(c, "") for c in cols) + " |" for row in found]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if shutil.which("sbatch") is None:
        sys.exit("sbatch not found: run this where SLURM's commands are (. /tmp/hpctrack-slurm/env.sh)")
    load = os.getloadavg()[0]
    found = rows(args)
    print(f"\n{os.cpu_count()} cores; load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n")
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
