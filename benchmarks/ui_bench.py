"""The dashboard at scale: `hpctrack ui` serving a 10,000-run sweep and 1,000 runs x 1,000 steps of a metric.

Builds two synthetic sweeps with aggregate_bench's generator (the real run stores and the
summary index an ending run appends), starts a real `python -m hpctrack ui --port 0`
subprocess on them and times, beside the goals of issue 16:

- `api/sweeps/<ref>/table` of the 10,000-run sweep: the first request to a fresh server (the
  index cache removed) and the median of the warm ones (goal < 1 s);
- the sweep page in Chromium (Playwright, Debian's /usr/bin/chromium): navigation start to
  the results table's first rows visible, and to the page answering again (a frame painted
  and a task run after it) (goal < 3 s);
- `api/sweeps/<ref>/history?metric=m0&runs=all` of 1,000 runs x 1,000 steps, and that sweep's
  page in Chromium until the curves' canvas has pixels on it (goal < 2 s);
- the same data in-process (`Sweep.table`, `hpctrack.ui.series.sweep_curves`, each with its
  JSON encoding), which tells the server's share from the library's;
- MLflow's server (`mlflow server`, SQLite backend) filled with the same runs: its search API
  for all runs, its experiment page in Chromium until the runs table shows a run, and the
  metric histories of 1,000 runs through its bulk-history API.

Asserts nothing; prints one table, each row with the load average it was measured at.

    python benchmarks/ui_bench.py                          # ~20 min, most of it filling MLflow
    python benchmarks/ui_bench.py --runs 1000 --no-mlflow  # ~2 min
    python benchmarks/ui_bench.py --dir /tmp --keep        # then --reuse DIR to measure again
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aggregate_bench  # the sweep generator: real stores, real index lines

GOAL_TABLE_S = 1.0
GOAL_PAGE_S = 3.0
GOAL_CURVES_S = 2.0
CHROMIUM = "/usr/bin/chromium"
TABLE_NAME, HISTORY_NAME = "ui-table", "ui-history"
#: Results-table rows of the sweep page (the virtual table renders only rows in view, each with a run link).
ROW_SELECTOR = "table.vt tbody tr[data-key] a.run-link"
#: True once the curves' canvas has a pixel that is not transparent: uPlot has drawn.
PAINTED_JS = """() => {
  for (const c of document.querySelectorAll('#curves canvas')) {
    if (!c.width || !c.height) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
  }
  return false;
}"""
#: Milliseconds since navigation start once the page has painted a frame and run a task after it.
RESPONSIVE_JS = "() => new Promise(r => requestAnimationFrame(() => setTimeout(() => r(performance.now()), 0)))"


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return os.getloadavg()[0]


def wait_quiet(max_load: float, timeout_s: float) -> float:
    """Wait until the 1-minute load average is below ``max_load`` (others share the machine); return it."""
    deadline = time.time() + timeout_s
    while load1() >= max_load and time.time() < deadline:
        progress(f"load {load1():.1f} >= {max_load}: waiting (up to {deadline - time.time():.0f} s more)")
        time.sleep(30)
    return load1()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the sweeps ----------------------------------------------------------------------------------


def sweeps(root: Path, args: argparse.Namespace) -> Dict[str, Path]:
    """The table and history sweeps under ``root``: found by name, else built."""
    found: Dict[str, Path] = {}
    for d in (root / "sweeps").glob("*") if (root / "sweeps").is_dir() else []:
        try:
            found[json.loads((d / "sweep.json").read_text()).get("name")] = d
        except (OSError, ValueError):
            continue
    for name, runs, steps in ((TABLE_NAME, args.runs, args.table_steps), (HISTORY_NAME, args.history_runs, args.steps)):
        if name not in found:
            progress(f"building {name}: {runs:,} runs x 10 metrics x {steps:,} steps")
            found[name] = aggregate_bench.build_sweep(root, name, runs, steps, "hdf5", args.workers)
    return {TABLE_NAME: found[TABLE_NAME], HISTORY_NAME: found[HISTORY_NAME]}


# -- hpctrack ui -------------------------------------------------------------------------------


class UiServer:
    """A `python -m hpctrack ui --port 0` subprocess on ``root``; ``url`` is what it printed."""

    def __init__(self, root: Path, token: str) -> None:
        self.token = token
        env = {**os.environ, "HPCTRACK_ROOT": str(root)}
        self.proc = subprocess.Popen([sys.executable, "-m", "hpctrack", "ui", "--port", "0", "--token", token],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        seen: List[str] = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"hpctrack ui exited with {self.proc.returncode}: {''.join(seen)[-500:].strip()}")
            seen.append(line)
            found = re.search(r"(http://[^\s?]+)/?\?token=", line)
            if found:
                self.url = found.group(1).rstrip("/") + "/"
                return
        self.close()
        raise RuntimeError(f"hpctrack ui printed no URL within 120 s: {''.join(seen)[-500:].strip()}")

    def get(self, path: str) -> Tuple[float, bytes]:
        """GET ``path`` (relative to the app) with the token: (seconds to the last byte, body)."""
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=600) as resp:
            body = resp.read()
        return time.perf_counter() - t, body

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ui_available() -> Optional[str]:
    """None when `hpctrack ui` can be run here, else why not."""
    proc = subprocess.run([sys.executable, "-m", "hpctrack", "ui", "--help"], capture_output=True, text=True)
    if proc.returncode != 0:
        return "`hpctrack ui` is not available: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def timed_requests(server: UiServer, path: str, repeat: int) -> Dict[str, Any]:
    """The first request (cold) and the median of ``repeat`` more (warm), with the response size."""
    first, body = server.get(path)
    warm = [server.get(path)[0] for _ in range(repeat)]
    return {"cold": first, "warm": statistics.median(warm), "spread": (min(warm), max(warm)), "bytes": len(body),
            "body": body}  # fmt: skip


# -- Chromium ----------------------------------------------------------------------------------


def browser_missing() -> Optional[str]:
    """None when Playwright and Chromium are here, else why the browser rows are not run."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (bash tests/browser/setup.sh installs it)"
    return None


def browser_times(url: str, token: str, pages: List[Tuple[str, str, str]], repeat: int) -> Dict[str, Any]:
    """Each page ``(label, hash, what)`` opened ``1 + repeat`` times in Chromium: seconds since navigation start.

    ``what`` is ``rows`` (the results table's first row visible, then the page responsive; the
    page is then left to draw its curves before it is closed) or ``curves`` (the curves' canvas
    painted). Every opening is in a fresh browser context (nothing
    cached) that sends the token as a bearer header, so the page's own navigation is the first
    one; the first opening is "cold" (a server just started: its first request for that sweep's
    page, no history kept yet; the files in the OS page cache), the others give the medians.
    """
    from playwright.sync_api import sync_playwright

    out: Dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for label, fragment, what in pages:
                times: List[Tuple[float, float]] = []
                for _ in range(repeat + 1):
                    context = browser.new_context(viewport={"width": 1400, "height": 900},
                                                  extra_http_headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                    page = context.new_page()
                    page.goto(f"{url}#{fragment}", wait_until="commit")
                    if what == "rows":
                        page.wait_for_selector(ROW_SELECTOR, state="visible", timeout=120_000)
                        shown = page.evaluate("() => performance.now()")
                        ready = page.evaluate(RESPONSIVE_JS)
                        # The page goes on to draw its runs' curves (the server reads every run's store):
                        # let it finish, or its read would slow the next opening down.
                        page.wait_for_function(PAINTED_JS, timeout=300_000, polling=200)
                    else:
                        page.wait_for_function(PAINTED_JS, timeout=120_000, polling=50)
                        shown = ready = page.evaluate("() => performance.now()")
                    times.append((shown / 1000, ready / 1000))
                    context.close()
                out[label] = {"cold": times[0], "warm": tuple(statistics.median(t[i] for t in times[1:]) for i in (0, 1))
                              if len(times) > 1 else times[0]}  # fmt: skip
        finally:
            browser.close()
    return out


# -- MLflow ------------------------------------------------------------------------------------

_ML_FILL = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=spec["uri"])
t0 = time.time()
for name, runs, steps in (("ui-table", spec["runs"], 1), ("ui-history", spec["history_runs"], spec["steps"])):
    exp = client.create_experiment(name)
    for i in range(runs):
        lr, seed = (0.001, 0.003, 0.01, 0.03, 0.1)[i % 5], i // 5
        run = client.create_run(exp, run_name=f"job-{i}")
        rid = run.info.run_id
        # The last value of each of the 10 metrics (what a table shows); the history sweep logs m0 in full.
        pts = [Metric(f"m{k}", 1.0 / (k + 1) + lr, int(1.7e12), 999) for k in range(10)]
        if steps > 1:
            pts = [Metric("m0", 1.0 / (s + 1) + lr, int(1.7e12) + s, s) for s in range(steps)] + pts[1:]
        client.log_batch(rid, params=[Param("optimizer.lr", str(lr)), Param("seed", str(seed)),
                                      Param("model.hidden", "64")])
        for j in range(0, len(pts), 1000):
            client.log_batch(rid, metrics=pts[j:j + 1000])
        client.set_terminated(rid)
print(json.dumps({"fill_s": time.time() - t0}))
"""


def ml_missing() -> Optional[str]:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return "mlflow is not installed (pip install -e '.[bench]')"
    return None


class MlflowServer:
    """`mlflow server` on a SQLite store, on a free port of 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        self.log = open(workdir / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
             "--default-artifact-root", str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}: see {workdir / 'server.log'}")
            try:
                urllib.request.urlopen(self.url + "health", timeout=5).read()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.close()
        raise RuntimeError("mlflow server did not answer /health within 180 s")

    def call(self, method: str, path: str, payload: Optional[Dict[str, Any]] = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())

    def experiment(self, name: str) -> str:
        return str(self.call("GET", f"api/2.0/mlflow/experiments/get-by-name?experiment_name={name}")["experiment"][
            "experiment_id"])  # fmt: skip

    def search_all(self, exp: str) -> Tuple[float, int]:
        """Every run of ``exp`` through runs/search, 1,000 a page: (seconds, runs)."""
        t = time.perf_counter()
        n, token = 0, None
        while True:
            body: Dict[str, Any] = {"experiment_ids": [exp], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = self.call("POST", "api/2.0/mlflow/runs/search", body)
            n += len(page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                return time.perf_counter() - t, n

    def histories(self, exp: str, key: str) -> Tuple[float, int]:
        """``key``'s history of every run of ``exp`` through metrics/get-history-bulk-interval, 100 runs a call."""
        ids = []
        token = None
        while True:
            body: Dict[str, Any] = {"experiment_ids": [exp], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = self.call("POST", "api/2.0/mlflow/runs/search", body)
            ids += [r["info"]["run_id"] for r in page.get("runs", [])]
            token = page.get("next_page_token")
            if not token:
                break
        t = time.perf_counter()
        points = 0
        for i in range(0, len(ids), 100):
            query = "&".join(f"run_ids={rid}" for rid in ids[i : i + 100])
            got = self.call("GET", f"ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?{query}&metric_key={key}"
                                   "&max_results=1000")  # fmt: skip
            points += len(got.get("metrics", []))
        return time.perf_counter() - t, points

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def mlflow_page(url: str, exp: str, repeat: int) -> Tuple[float, float]:
    """MLflow's runs page of ``exp`` in Chromium until a run's name shows (it lists 100): (cold, median warm) seconds."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(repeat + 1):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                page.goto(f"{url}#/experiments/{exp}/runs", wait_until="commit")
                page.get_by_text(re.compile(r"^job-\d+$")).first.wait_for(state="visible", timeout=300_000)
                times.append(page.evaluate("() => performance.now()") / 1000)
                context.close()
        finally:
            browser.close()
    return times[0], statistics.median(times[1:]) if len(times) > 1 else times[0]


# -- in-process ----------------------------------------------------------------------------------


def in_process(paths: Dict[str, Path], repeat: int) -> Dict[str, Any]:
    """`Sweep.table` and `sweep_curves` with their JSON encoding, in this process (warm medians)."""
    from hpctrack.aggregate import export_table
    from hpctrack.sweep import Sweep
    from hpctrack.ui.series import sweep_curves

    def median_of(fn: Callable[[], Any]) -> float:
        fn()  # warm-up: imports, page cache
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    table, history = Sweep(paths[TABLE_NAME]), Sweep(paths[HISTORY_NAME])
    out = {"table": median_of(lambda: export_table(table.table(), "json"))}
    out["history_read"] = median_of(lambda: history.history("m0"))
    out["curves"] = median_of(lambda: json.dumps(sweep_curves(history, "m0")))
    out["curves_grouped"] = median_of(lambda: json.dumps(sweep_curves(history, "m0", group_by=["optimizer.lr"])))
    return out


# -- report ------------------------------------------------------------------------------------


def fmt_s(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}"


def verdict(x: Optional[float], goal: Optional[float]) -> str:
    if x is None or goal is None:
        return ""
    return "yes" if x < goal else "NO"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs of the table sweep (default 10,000)")
    parser.add_argument("--steps", type=int, default=1_000, help="steps of the history sweep's runs (default 1,000)")
    parser.add_argument("--history-runs", type=int, default=1_000, help="runs of the history sweep (default 1,000)")
    parser.add_argument("--table-steps", type=int, default=20, help="steps of the table sweep's runs (default 20)")
    parser.add_argument("--repeat", type=int, default=5, help="warm measurements per row (median shown)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow rows")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium rows")
    parser.add_argument("--workers", type=int, default=2, help="processes building the sweeps")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for a 1-minute load below this")
    parser.add_argument("--wait-quiet-s", type=float, default=900, help="wait at most this long for it")
    parser.add_argument("--dir", default=None, help="where to build (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep what was built (reuse it with --reuse DIR)")
    parser.add_argument("--reuse", default=None, help="a directory a --keep run left: build only what is missing")
    args = parser.parse_args(argv)

    import hpctrack

    base = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="hpctrack-uibench-", dir=args.dir))
    rows: List[Tuple[str, str, str, str, str, str]] = []  # what, cold, warm, goal, met, load

    def row(
        what: str,
        cold: Optional[float],
        warm: Optional[float],
        goal: Optional[float],
        note: str = "",
        judge_cold: bool = False,
    ) -> None:
        # judge_cold: the warm answers come from what the server kept, so the first one is the goal's
        met = verdict(cold if judge_cold or warm is None else warm, goal)
        rows.append((what, fmt_s(cold), fmt_s(warm), f"< {goal:g} s" if goal else "", met or note,
                     f"{load1():.1f}"))  # fmt: skip
        progress(" | ".join(rows[-1]))  # as measured: the table comes at the end, after MLflow is filled

    print("# hpctrack dashboard benchmark\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- cpu: {os.cpu_count()} cores; load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    print(f"- hpctrack {hpctrack.__version__} at {commit or '?'}; dir: {base}")
    try:
        paths = sweeps(base / "root", args)
        table_id, history_id = paths[TABLE_NAME].name, paths[HISTORY_NAME].name
        print(f"- sweeps: {args.runs:,} runs x 10 metrics x {args.table_steps} steps ({table_id}); "
              f"{args.history_runs:,} runs x 10 metrics x {args.steps:,} steps ({history_id})")  # fmt: skip
        print(f"- load wanted below {args.max_load} before each section; the last column is the load after the row\n")

        wait_quiet(args.max_load, args.wait_quiet_s)
        progress("in-process: Sweep.table and sweep_curves with their JSON")
        lib = in_process(paths, args.repeat)
        row(f"in-process: table of {args.runs:,} runs as JSON", None, lib["table"], None)
        row(f"in-process: history of m0, {args.history_runs:,} runs (Sweep.history)", None, lib["history_read"], None)
        row("in-process: sweep_curves(m0, points=1000) + json.dumps", None, lib["curves"], None)
        row("in-process: sweep_curves(m0, group_by=optimizer.lr) + json.dumps", None, lib["curves_grouped"], None)

        why_not = ui_available()
        if why_not:
            rows.append(("hpctrack ui rows", "-", "-", "", f"not run: {why_not}", f"{load1():.1f}"))
        else:
            cache = paths[TABLE_NAME] / "index.cache.parquet"
            if cache.exists():
                cache.unlink()  # the first table request builds it: part of "cold"
            wait_quiet(args.max_load, args.wait_quiet_s)
            token = secrets.token_urlsafe(16)
            server = UiServer(base / "root", token)
            try:
                progress(f"hpctrack ui at {server.url}: table of {args.runs:,} runs")
                table = timed_requests(server, f"api/sweeps/{table_id}/table", args.repeat)
                shown = json.loads(table["body"])
                count = len(shown) if isinstance(shown, list) else len(shown.get("rows", []))
                row(f"hpctrack ui: api/.../table, {count:,} rows, {table['bytes'] / 1e6:.1f} MB",
                    table["cold"], table["warm"], GOAL_TABLE_S)  # fmt: skip
                progress(f"history of m0 over {args.history_runs:,} runs")
                hist = timed_requests(server, f"api/sweeps/{history_id}/history?metric=m0&runs=all", args.repeat)
                data = json.loads(hist["body"])
                drawn = sum(len(r["x"]) for r in data.get("runs", []))
                row(f"hpctrack ui: api/.../history m0 runs=all ({len(data.get('runs', []))} runs, {drawn:,} points, "
                    f"{hist['bytes'] / 1e6:.1f} MB; warm: kept by the server)", hist["cold"], hist["warm"],
                    GOAL_CURVES_S, judge_cold=True)  # fmt: skip
                grouped = timed_requests(server, f"api/sweeps/{history_id}/history?metric=m0&runs=all"
                                                 "&group_by=optimizer.lr&band=ci", args.repeat)  # fmt: skip
                row("hpctrack ui: api/.../history m0 grouped by optimizer.lr (ci band)", grouped["cold"],
                    grouped["warm"], None)  # fmt: skip
                no_browser = "--no-browser" if args.no_browser else browser_missing()
                if no_browser:
                    rows.append(("Chromium rows", "-", "-", "", f"not run: {no_browser}", f"{load1():.1f}"))
                else:
                    # A fresh server: the first opening of each page is its first request for that sweep
                    # (no history kept yet), as for a user who has just started `hpctrack ui`.
                    server.close()
                    server = UiServer(base / "root", token)
                    wait_quiet(args.max_load, args.wait_quiet_s)
                    progress("Chromium: the sweep pages")
                    pages = browser_times(server.url, token, [
                        ("table", f"/sweep/{table_id}", "rows"), ("curves", f"/sweep/{history_id}", "curves"),
                    ], args.repeat)  # fmt: skip
                    t = pages["table"]
                    row(f"Chromium: sweep page of {args.runs:,} runs, first rows visible", t["cold"][0], t["warm"][0],
                        GOAL_PAGE_S)  # fmt: skip
                    row("Chromium: ... and the page responsive", t["cold"][1], t["warm"][1], GOAL_PAGE_S)
                    c = pages["curves"]
                    row(f"Chromium: sweep page of {args.history_runs:,} runs x {args.steps:,} steps, curves drawn "
                        "(cold: a fresh server)", c["cold"][0], c["warm"][0], GOAL_CURVES_S, judge_cold=True)  # fmt: skip
            finally:
                server.close()

        missing = None if not args.no_mlflow else "--no-mlflow"
        missing = missing or ml_missing()
        if missing:
            rows.append(("MLflow rows", "-", "-", "", f"not run: {missing}", f"{load1():.1f}"))
        else:
            work = base / "mlflow"
            work.mkdir(exist_ok=True)
            if not (work / "filled").exists():
                progress(f"MLflow: filling SQLite with {args.runs:,} + {args.history_runs:,} runs (this takes a while)")
                spec = {"uri": f"sqlite:///{work / 'mlflow.db'}", "runs": args.runs, "history_runs": args.history_runs,
                        "steps": args.steps}  # fmt: skip
                filled = aggregate_bench.ml_run(_ML_FILL, {**spec, "cwd": str(work)})
                (work / "filled").write_text(json.dumps(filled))
                progress(f"MLflow filled in {filled['fill_s']:.0f} s")
            wait_quiet(args.max_load, args.wait_quiet_s)
            ml = MlflowServer(work)
            try:
                table_exp, history_exp = ml.experiment(TABLE_NAME), ml.experiment(HISTORY_NAME)
                first = ml.search_all(table_exp)
                warm = [ml.search_all(table_exp)[0] for _ in range(args.repeat)]
                row(f"MLflow server: runs/search, all {first[1]:,} runs (1,000 a page)", first[0],
                    statistics.median(warm), GOAL_TABLE_S)  # fmt: skip
                hist_first = ml.histories(history_exp, "m0")
                hist_warm = [ml.histories(history_exp, "m0")[0] for _ in range(max(1, args.repeat // 2))]
                row(f"MLflow server: m0 of {args.history_runs:,} runs (get-history-bulk-interval, "
                    f"{hist_first[1]:,} points)", hist_first[0], statistics.median(hist_warm), GOAL_CURVES_S)  # fmt: skip
                if not args.no_browser and not browser_missing():
                    wait_quiet(args.max_load, args.wait_quiet_s)
                    progress("Chromium: MLflow's experiment page")
                    try:
                        cold, warm_page = mlflow_page(ml.url, table_exp, args.repeat)
                        row(f"Chromium: MLflow experiment page of {args.runs:,} runs, a run shown", cold, warm_page,
                            GOAL_PAGE_S)  # fmt: skip
                    except Exception as err:  # its page layout changes between releases: say so, keep the rest
                        rows.append(("Chromium: MLflow experiment page", "-", "-", "",
                                     f"not measured: {str(err).splitlines()[0][:120]}", f"{load1():.1f}"))  # fmt: skip
            finally:
                ml.close()
    finally:
        if not args.keep and not args.reuse:
            shutil.rmtree(base, ignore_errors=True)

    print("| what | cold (s) | warm (s, median) | goal | met | load |")
    print("| --- | ---: | ---: | --- | --- | ---: |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
