"""`hpctrack cancel` signals a local job only when its recorded process is still the job's, on this host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import SCRIPTS, run_cli

DECOY = """
import signal, sys, time
out = sys.argv[1]
def hit(signum, frame):
    open(out, "a").write(f"got {signum}\\n")
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, hit)
open(out + ".ready", "w").write("ready")
while True:
    time.sleep(0.1)
"""


def _wait(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _running_sweep(name: str) -> Path:
    # At most a few minutes, whatever happens to the test: nothing of it outlives it for long.
    run_cli("launch", "--detach", "--name", name, str(SCRIPTS / "sleepy.py"), "x=1", "steps=900", "sleep_s=0.2",
            check=True)  # fmt: skip
    (sweep,) = (Path(os.environ["HPCTRACK_ROOT"]) / "sweeps").glob("*")
    _wait(lambda: json.loads((sweep / "sweep.json").read_text())["jobs"][0]["state"] == "RUNNING")
    return sweep


def _kill_tree(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass


def _decoy(tmp_path: Path, sweep: Path) -> "tuple[subprocess.Popen, Path]":
    out = tmp_path / "decoy.txt"
    # Its command line even names the sweep and the run: only the recorded start time tells it apart.
    decoy = subprocess.Popen([sys.executable, "-c", DECOY, str(out), str(sweep / "runs" / "0" / "logs")],
                             start_new_session=True)  # fmt: skip
    _wait(lambda: Path(str(out) + ".ready").exists())
    return decoy, out


def _plant_pid(sweep: Path, pid: int, *, host: str | None = None) -> None:
    manifest = json.loads((sweep / "sweep.json").read_text())
    manifest["runner"]["pid"] = pid
    manifest["jobs"][0]["job_id"] = str(pid)
    if manifest["jobs"][0].get("process"):
        manifest["jobs"][0]["process"]["pid"] = pid
    if host:
        manifest["runner"]["host"] = host
        if manifest["jobs"][0].get("process"):
            manifest["jobs"][0]["process"]["host"] = host
    (sweep / "sweep.json").write_text(json.dumps(manifest))


def test_cancel_never_signals_a_decoy_that_took_a_dead_runners_pid(hpctrack_root, tmp_path):
    sweep = _running_sweep("decoy")
    manifest = json.loads((sweep / "sweep.json").read_text())
    runner, job = int(manifest["runner"]["pid"]), int(manifest["jobs"][0]["job_id"])
    _kill_tree(runner)  # the runner and the job die (a reboot, kill -9)
    _kill_tree(job)
    decoy, out = _decoy(tmp_path, sweep)
    try:
        _plant_pid(sweep, decoy.pid)
        proc = run_cli("cancel", "decoy")
        time.sleep(1.0)  # a signal sent would have been handled by now; nothing is waited on for the outcome
        assert decoy.poll() is None and not out.exists(), proc.stdout + proc.stderr
        assert "has already gone" in proc.stderr, proc.stdout + proc.stderr
    finally:
        decoy.kill()
        decoy.wait()


def test_cancel_never_signals_a_job_recorded_on_another_host(hpctrack_root, tmp_path):
    sweep = _running_sweep("elsewhere")
    manifest = json.loads((sweep / "sweep.json").read_text())
    runner, job = int(manifest["runner"]["pid"]), int(manifest["jobs"][0]["job_id"])
    _kill_tree(runner)
    _kill_tree(job)
    decoy, out = _decoy(tmp_path, sweep)
    try:
        _plant_pid(sweep, decoy.pid, host="node-elsewhere")
        proc = run_cli("cancel", "elsewhere")
        time.sleep(1.0)
        assert decoy.poll() is None and not out.exists(), proc.stdout + proc.stderr
        assert "runs on node-elsewhere" in proc.stderr, proc.stdout + proc.stderr
    finally:
        decoy.kill()
        decoy.wait()


def test_cancel_still_stops_a_live_local_sweep(hpctrack_root):
    sweep = _running_sweep("live")
    proc = run_cli("cancel", "live", check=True)
    assert "not signalled" not in proc.stderr
    _wait(lambda: json.loads((sweep / "sweep.json").read_text())["jobs"][0]["state"] == "CANCELLED")


def test_cancel_of_a_sweep_whose_runner_died_stops_the_job_and_says_cancelled(hpctrack_root, tmp_path):
    import hpctrack

    proc = run_cli("launch", str(SCRIPTS / "resumable.py"), "x=1", "steps=600", "sleep_s=0.1", "--name", "orphaned",
                   "--detach", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def status():
        return json.loads(run_cli("status", "orphaned", "--format", "json", check=True).stdout)["jobs"][0]

    deadline = time.time() + 120
    while (status()["last_step"] or 0) < 2:
        assert time.time() < deadline, "the job did not start"
        time.sleep(0.3)
    sweep = hpctrack.load_sweep("orphaned")
    training = int(sweep.run(0).status["attempts"][-1]["pid"])
    os.kill(int(sweep.manifest.runner["pid"]), signal.SIGKILL)
    cancelled = run_cli("cancel", "orphaned")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    deadline = time.time() + 120
    while status()["state"] == "RUNNING":
        assert time.time() < deadline, "the job was not stopped"
        time.sleep(0.3)
    job = status()
    assert job["state"] == "CANCELLED" and "cancelled" in (job["error"] or ""), job
    assert not os.path.exists(f"/proc/{training}") or "Z" in open(f"/proc/{training}/stat").read().split()[2]
