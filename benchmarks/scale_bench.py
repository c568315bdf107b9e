"""hpctrack at scale: every goal of the scale benchmark in one report, each with "yes" or "NO".

    python benchmarks/scale_bench.py                          # every section (about an hour on 2 cores)
    python benchmarks/scale_bench.py --sections launch        # only the launch (~2.5 min)
    python benchmarks/scale_bench.py --sections launch --jobs 1000 --no-peer    # quicker
    python benchmarks/scale_bench.py --hydra-validation       # also hpctrack with Hydra's own validation

Sections (``--sections``, comma-separated; the default is all of them):

- ``launch``: below; this file.
- ``short``: ``scale_short.py``: per-run overhead of 1,000 short runs packed 50 per task on SLURM,
  ``hpctrack table``/``status`` end to end on that ended sweep, ``Sweep.table()`` beside MLflow.
- ``sim``: ``scale_sim.py``: a simulated 100,000-run SLURM sweep (cold table, recorded ``sacct``
  output, ``status --watch`` reads).
- ``runs``: ``scale_runs.py``: ``hpctrack runs`` over a synthetic root of 1,000,000 runs in 1,000
  sweeps, cold and warm.

Each section's own script runs it alone, with more options (``python benchmarks/scale_runs.py --help``).

Launch at scale: how long `hpctrack launch` takes to hand 1,000 and 10,000 jobs to SLURM.

Each sweep is `'+i=range(N)'` over a small Hydra app (100 steps of 2 metrics per run), launched
with `--backend slurm` and `hydra.launcher.runs_per_task=50` on the cluster `sbatch` reaches
(the test cluster from `slurm/`). The arrays are cancelled (scancel by their ids) as soon as the
launch returned: this measures the launch only. `sbatch` is reached through a shim on `PATH`
that records when it is called and then runs the real `sbatch`, so the table says both the
time to the first `sbatch` and the time until the launch returned with every array queued.

The peer is Hydra's own `submitit_slurm` launcher (`pip install hydra-submitit-launcher` into a
virtualenv this benchmark makes) on the same app and sweep. It composes every job's config
before it submits one array of all jobs, which a cluster whose `MaxArraySize` is smaller than
the sweep refuses: the table shows what it says. Any job it did queue is cancelled by id.

The goals: 1,000 jobs submitted in < 5 s, 10,000 in < 30 s. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

GOALS_S = {1000: 5.0, 10000: 30.0}

APP = """
import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        for step in range(cfg.steps):
            run.log({"loss": 1.0 / (step + 1), "acc": step / cfg.steps}, step=step)


if __name__ == "__main__":
    main()
"""

PEER_APP = APP.replace("import hpctrack\n", "").replace(
    """    with hpctrack.start_run(cfg) as run:
        for step in range(cfg.steps):
            run.log({"loss": 1.0 / (step + 1), "acc": step / cfg.steps}, step=step)""",
    """    return sum(1.0 / (step + 1) for step in range(cfg.steps))""",
)

CONFIG = "seed: 0\nsteps: 100\noptimizer:\n  name: sgd\n  lr: 0.1\nmodel:\n  hidden: 64\n"

SHIM = """#!/bin/sh
date +%s.%N >> "{log}"
exec "{real}" "$@"
"""


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _write_app(folder: Path, source: str) -> Path:
    (folder / "conf").mkdir(parents=True, exist_ok=True)
    (folder / "conf" / "config.yaml").write_text(CONFIG)
    script = folder / "app.py"
    script.write_text(source)
    return script


def _sbatch_shim(folder: Path) -> "tuple[Path, Path]":
    real = shutil.which("sbatch")
    if real is None:
        sys.exit("sbatch not found: run this where SLURM's commands are (bash slurm/up.sh brings up the test cluster)")
    bin_dir, log = folder / "bin", folder / "sbatch-calls.log"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "sbatch"
    shim.write_text(SHIM.format(log=log, real=real))
    shim.chmod(0o755)
    return bin_dir, log


def _calls(log: Path) -> List[float]:
    return [float(line) for line in log.read_text().split()] if log.exists() else []


def _scancel(ids: List[str]) -> None:
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, text=True)


def _ids_named(job_name: str) -> List[str]:
    out = subprocess.run(["squeue", "--me", "-h", "-n", job_name, "-o", "%F"], capture_output=True, text=True).stdout
    return sorted(set(out.split()))


def run_hpctrack(work: Path, n: int, extra: List[str], label: str) -> Dict[str, object]:
    """`hpctrack launch` of n jobs on SLURM; the arrays are cancelled at once."""
    folder = work / f"hpctrack-{n}-{uuid.uuid4().hex[:6]}"
    script = _write_app(folder, APP)
    bin_dir, log = _sbatch_shim(folder)
    name = f"scale-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HPCTRACK_ROOT": str(folder / "root")}
    cmd = [sys.executable, "-m", "hpctrack", "launch", str(script), f"+i=range({n})", "--backend", "slurm",
           "--name", name, "--time", "10", "hydra.launcher.runs_per_task=50", *extra]  # fmt: skip
    progress(f"{label}: {' '.join(cmd[3:])}")
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
    end = time.time()
    match = re.search(r"job array ([\d, ]+)", proc.stdout)
    arrays = [a.strip() for a in match.group(1).split(",") if a.strip()] if match else []
    _scancel(arrays or _ids_named(f"hpctrack-{name}"))  # by id: only this launch's arrays
    calls = _calls(log)
    result: Dict[str, object] = {
        "launcher": label,
        "jobs": n,
        "to first sbatch s": round(calls[0] - start, 2) if calls else None,
        "submitted s": round(end - start, 2) if proc.returncode == 0 else None,
        "sbatch calls": len(calls),
        "outcome": (
            f"queued as {len(arrays)} arrays, cancelled"
            if proc.returncode == 0
            else _last_line(proc.stderr or proc.stdout)
        ),  # fmt: skip
    }
    if proc.returncode != 0:
        progress(f"{label} failed:\n{proc.stderr[-2000:]}")
    time.sleep(2)  # let the cancelled tasks leave the run directories before they are removed
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def _peer_venv(work: Path) -> Optional[Path]:
    venv = work / "peer-venv"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    progress("peer: python -m venv + pip install hydra-submitit-launcher (hydra-core as hpctrack's)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    from importlib.metadata import version

    # the same Hydra as hpctrack's, so that both compose configs with the same code
    pins = ["hydra-submitit-launcher", f"hydra-core=={version('hydra-core')}"]
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], capture_output=True, text=True)
    if pip.returncode != 0:
        progress(f"peer: pip install failed: {_last_line(pip.stderr)}")
        return None
    return python


def run_peer(work: Path, n: int) -> Dict[str, object]:
    """Hydra's submitit_slurm launcher on the same sweep; whatever it queued is cancelled by id."""
    python = _peer_venv(work)
    if python is None:
        return {"launcher": "peer: hydra submitit_slurm", "jobs": n, "outcome": "could not install the peer"}
    folder = work / f"peer-{n}-{uuid.uuid4().hex[:6]}"
    script = _write_app(folder, PEER_APP)
    bin_dir, log = _sbatch_shim(folder)
    name = f"scalebench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        str(python),
        str(script),
        "-m",
        "hydra/launcher=submitit_slurm",
        f"+i=range({n})",
        "hydra.launcher.timeout_min=10",
        f"hydra.launcher.name={name}",
        f"hydra.sweep.dir={folder / 'multirun'}",
    ]
    progress(f"peer: {' '.join(cmd[1:])}")
    start = time.time()
    # The peer waits for its jobs when they were accepted: give it a bound, then cancel them by id.
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder, timeout=900)
        out, code = proc.stderr + proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as err:
        out, code = f"{err.stderr or ''}{err.stdout or ''}", -1
    end = time.time()
    queued = _ids_named(name)
    _scancel(queued)
    calls = _calls(log)
    reason = _sbatch_error(out)
    result: Dict[str, object] = {
        "launcher": "peer: hydra submitit_slurm",
        "jobs": n,
        "to first sbatch s": round(calls[0] - start, 2) if calls else None,
        "submitted s": round(end - start, 2) if code == 0 and not reason else None,
        "sbatch calls": len(calls),
        "outcome": (
            f"refused: {reason}"
            if reason
            else f"queued {len(queued)} ids, cancelled"
            if code in (0, -1)
            else _last_line(out)
        ),  # fmt: skip
    }
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _sbatch_error(text: str) -> str:
    match = re.search(r"sbatch: error: ([^\n]+)", text)
    return match.group(1).strip() if match else ""


def run_dry(work: Path, n: int) -> Dict[str, object]:
    """`hpctrack launch --dry-run`: the validation and the plan alone."""
    folder = work / f"dry-{n}-{uuid.uuid4().hex[:6]}"
    script = _write_app(folder, APP)
    env = {**os.environ, "HPCTRACK_ROOT": str(folder / "root")}
    cmd = [sys.executable, "-m", "hpctrack", "launch", str(script), f"+i=range({n})", "--backend", "slurm",
           "--time", "10", "hydra.launcher.runs_per_task=50", "--dry-run"]  # fmt: skip
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
    took = time.time() - start
    plan = next((line for line in proc.stdout.splitlines() if line.startswith("SLURM:")), _last_line(proc.stderr))
    shutil.rmtree(folder, ignore_errors=True)
    return {"launcher": "hpctrack --dry-run", "jobs": n, "to first sbatch s": None,
            "submitted s": None, "sbatch calls": 0, "outcome": f"{took:.2f} s: {plan}"}  # fmt: skip


def _table(rows: List[Dict[str, object]]) -> str:
    cols = ["launcher", "jobs", "to first sbatch s", "submitted s", "sbatch calls", "goal", "met", "outcome"]
    for row in rows:
        goal = GOALS_S.get(int(row["jobs"])) if str(row["launcher"]).startswith("hpctrack launch") else None
        row["goal"] = f"< {goal:g} s" if goal else ""
        took = row.get("submitted s")
        row["met"] = ("yes" if isinstance(took, float) and took < goal else "NO") if goal else ""
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("" if row.get(c) is None else f"{row[c]:,}" if isinstance(row.get(c), int)
                                       else str(row[c]) for c in cols) + " |")  # fmt: skip
    return "\n".join(lines)


SECTIONS = {"short": "scale_short", "sim": "scale_sim", "runs": "scale_runs"}


def run_section(name: str) -> None:
    """Run section ``name`` (a sibling script's ``rows(args)`` with its default options) and print its table."""
    import importlib

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    module = importlib.import_module(SECTIONS[name])
    print(f"\n## {name}: {(module.__doc__ or '').strip().splitlines()[0]}\n", flush=True)
    result = module.rows(module.parser().parse_args([]))
    print(_markdown(result), flush=True)


def _markdown(rows: List[Dict[str, object]]) -> str:
    cols = list(dict.fromkeys(k for row in rows for k in row if k != "note"))
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in cols) + " |" for row in rows]
    notes = [str(row["note"]) for row in rows if row.get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="launch," + ",".join(SECTIONS),
                        help="comma-separated: launch, " + ", ".join(SECTIONS) + " (default: all)")  # fmt: skip
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--peer-jobs", type=int, default=1000)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--hydra-validation",
        action="store_true",
        help="also hpctrack launch with Hydra's own validation (hydra/sweeper=basic), on --peer-jobs",
    )
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s != "launch" and s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from launch, {', '.join(SECTIONS)}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()  # fmt: skip
    print(f"# hpctrack scale benchmark\n\n- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"hpctrack at {commit or '?'}\n- {os.cpu_count()} cores; load average at start: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
    if "launch" in sections:
        launch_section(args)
    for name in sections:
        if name != "launch":
            run_section(name)
    print(f"\n- load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def launch_section(args: argparse.Namespace) -> None:
    """The launch goals: 1,000 and 10,000 jobs to SLURM, the dry run, and the peer."""
    print("\n## launch: time from `hpctrack launch` to every array queued\n", flush=True)
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="hpctrack-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    max_array = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", max_array, re.MULTILINE)
    rows: List[Dict[str, object]] = []
    for n in args.jobs:
        rows.append(run_dry(work, n))
        rows.append(run_hpctrack(work, n, [], "hpctrack launch"))
    if args.hydra_validation:
        rows.append(run_hpctrack(work, args.peer_jobs, ["hydra/sweeper=basic"], "hpctrack, Hydra's validation"))
    if not args.no_peer:
        rows.append(run_peer(work, args.peer_jobs))
    print(f"\nMaxArraySize {found.group(1) if found else '?'}; runs_per_task=50 (hpctrack); "
          f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print(_table(rows))
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
