"""`hpctrack status` tells the truth about jobs: scheduler states at the time limit, live jobs of a
dead runner, a plain run killed early, stalled jobs. Real processes and real kills; the scheduler's
answers, where needed, are recorded `sacct` output printed by a stand-in `sacct` on PATH.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SCRIPTS, run_cli
from synthetic import make_sweep, write_run

pytestmark = pytest.mark.e2e
SLEEPY = SCRIPTS / "sleepy.py"


def _status(ref: str, *extra: str) -> dict:
    return json.loads(run_cli("status", ref, "--format", "json", *extra, check=True).stdout)


def _wait(predicate, timeout_s: float = 120, what: str = "condition"):
    deadline = time.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _fake_sacct(tmp_path: Path, text: str, monkeypatch) -> Path:
    """A `sacct` on PATH that prints recorded output and logs each call."""
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    log = tmp_path / "sacct-calls.log"
    (tmp_path / "sacct-output.txt").write_text(text)
    (shim / "sacct").write_text(f'#!/bin/sh\necho "$@" >> {log}\ncat {tmp_path / "sacct-output.txt"}\n')
    (shim / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    return log


def test_completed_run_at_its_time_limit_is_completed_and_not_resumed(hpctrack_root, tmp_path, monkeypatch):
    from hpctrack._types import JobState

    manifest = make_sweep(
        hpctrack_root, 2, backend="slurm", state=JobState.PENDING, job_ids=["41_0", "41_1"], name="limit"
    )
    attempts = [
        {"attempt": a, "start": 150.0 + a, "end": 151.0 + a, "outcome": "requeued: time limit"} for a in (1, 2, 3)
    ] + [{"attempt": 4, "start": 160.0, "end": 190.0, "outcome": "completed"}]
    write_run(manifest, 0, steps=40, attempt=4, attempts=attempts)
    _fake_sacct(tmp_path, "41_0|TIMEOUT|0:0|node1|BeginTime\n41_1|FAILED|0:12|node1|BeginTime\n", monkeypatch)
    jobs = _status("limit")["jobs"]
    assert jobs[0]["state"] == "COMPLETED" and jobs[0]["error"] is None and jobs[0]["last_step"] == 39
    assert jobs[1]["state"] == "FAILED" and "SIGUSR2" in jobs[1]["error"]
    assert "BeginTime" not in run_cli("status", "limit", check=True).stdout
    dry = run_cli("resume", "limit", "--dry-run", check=True).stdout
    assert "would resume 1 job: 1 (FAILED)" in dry, dry


def test_live_jobs_of_a_killed_runner_stay_running_and_are_not_resubmitted(hpctrack_root, tmp_path):
    import hpctrack

    proc = run_cli("launch", "--detach", "--parallel", "2", "--name", "orphans", str(SLEEPY), "x=1,2", "steps=60",
                   "sleep_s=0.25", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _wait(lambda: all(j["state"] == "RUNNING" and (j["last_step"] or 0) >= 1 for j in _status("orphans")["jobs"]),
          what="both jobs running")  # fmt: skip
    runner = hpctrack.load_sweep("orphans").manifest.runner["pid"]
    os.kill(runner, signal.SIGKILL)
    _wait(lambda: not Path(f"/proc/{runner}").exists() or "Z" in Path(f"/proc/{runner}/stat").read_text().split()[2],
          what="the runner gone")  # fmt: skip
    status = _status("orphans")
    assert [j["state"] for j in status["jobs"]] == ["RUNNING", "RUNNING"], status
    assert "nothing to resume" in run_cli("resume", "orphans", "--dry-run", check=True).stdout

    # Left alone, they end as they should: completed.
    def ended():
        status = _status("orphans")
        return status if all(j["state"] != "RUNNING" for j in status["jobs"]) else None

    final = _wait(ended, what="the jobs' end")
    assert [j["state"] for j in final["jobs"]] == ["COMPLETED", "COMPLETED"], final


def test_plain_run_killed_before_its_first_store_write_is_not_running_forever(hpctrack_root, tmp_path, monkeypatch):
    # A git that never answers holds the run in its provenance capture, after sweep.json and before
    # its first store write, long enough to kill it there.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "git").write_text("#!/bin/sh\nsleep 60\n")
    (shim / "git").chmod(0o755)
    script = tmp_path / "plain.py"
    script.write_text("import time, hpctrack\nrun = hpctrack.start_run({'a': 1})\ntime.sleep(60)\n")
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path)
    try:
        manifest = _wait(lambda: next(iter(hpctrack_root.glob("sweeps/*/sweep.json")), None), timeout_s=60,
                         what="the manifest")  # fmt: skip
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    run_dir = manifest.parent / "runs" / "0"
    assert not any(p.name.startswith("run.") for p in run_dir.iterdir()), "killed too late: the store exists"
    (job,) = _status("latest")["jobs"]
    assert job["state"] == "FAILED" and job["error"], job
    assert "nothing to cancel" in run_cli("cancel", "latest", check=True).stdout


def test_job_blocked_in_its_main_thread_is_flagged_stalled(hpctrack_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_STALL_AFTER_S", "3")
    for name, extra in (("blocked", ["block_after=3", "sleep_s=0.05"]), ("steady", ["sleep_s=1.0"])):
        proc = run_cli("launch", "--detach", "--name", name, str(SLEEPY), "steps=1000", *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    try:
        # The steady job logs every second: with a threshold of max(3 s, 10 x 1 s) it is never flagged.
        seen_steady = []

        def sample_steady() -> bool:
            steady = _status("steady")["jobs"][0]
            if steady["state"] == "RUNNING" and steady["last_log_age_s"] is not None:
                seen_steady.append(steady)
            return len(seen_steady) >= 8 and seen_steady[-1]["last_step"] >= 8

        def stalled_blocked():
            sample_steady()
            job = _status("blocked")["jobs"][0]
            return job if job["stalled"] else None

        job = _wait(stalled_blocked, timeout_s=90, what="the blocked job flagged")
        assert job["state"] == "RUNNING" and "last step 2" in job["note"] and not job["possibly_hung"]
        _wait(sample_steady, timeout_s=90, what="the steady job's steps")
        assert not any(s["stalled"] for s in seen_steady), seen_steady
        human = run_cli("status", "blocked", check=True).stdout
        assert "stalled" in human and "last step 2" in human
        assert [j["job"] for j in _status("blocked", "--stalled")["jobs"]] == [0]
        assert "stalled" in run_cli("status", "blocked", "--stalled", check=True).stdout
        assert _status("steady", "--stalled")["jobs"] == []
    finally:
        for name in ("blocked", "steady"):
            run_cli("cancel", name)


def test_stalled_flag_in_status_stalled_watch_and_json(hpctrack_root, tmp_path, monkeypatch):
    from hpctrack._types import JobState

    monkeypatch.setenv("HPCTRACK_STALL_AFTER_S", "60")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        manifest = make_sweep(hpctrack_root, 3, state=JobState.RUNNING, name="progress")
        now = time.time()
        write_run(manifest, 0, steps=3, state="running", pid=live.pid, last_log_time=now - 400, step_interval_s=0.5)
        write_run(manifest, 1, steps=3, state="running", pid=live.pid, last_log_time=now - 100, step_interval_s=20)
        write_run(manifest, 2, steps=3, state="running", pid=live.pid, last_log_time=now - 1, step_interval_s=0.5)
        jobs = _status("progress")["jobs"]
        assert [j["stalled"] for j in jobs] == [True, False, False]
        assert jobs[0]["last_log_age_s"] >= 400 and jobs[0]["step_interval_s"] == 0.5
        only = run_cli("status", "progress", "--stalled", check=True).stdout
        assert "stalled" in only and "x=0" in only and "x=1" not in only and "x=2" not in only
        only_json = _status("progress", "--stalled")["jobs"]
        assert [j["job"] for j in only_json] == [0]
        watch = subprocess.Popen([sys.executable, "-m", "hpctrack", "status", "progress", "--watch", "--interval",
                                  "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            out, _ = watch.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            watch.send_signal(signal.SIGINT)
            out, _ = watch.communicate(timeout=30)
        assert "stalled" in out and "last step 2" in out
    finally:
        live.kill()
        live.wait()


def test_a_failed_plain_script_run_is_not_offered_to_resume(hpctrack_root, tmp_path):
    # `resume` refuses a plain script run (python train.py): status must not suggest it.
    script = tmp_path / "plain.py"
    script.write_text("import hpctrack\nwith hpctrack.start_run({'a': 1}, name='plain') as run:\n"
                      "    run.log({'x': 1.0})\n    raise RuntimeError('boom')\n")  # fmt: skip
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "boom" in proc.stderr
    out = run_cli("status", "plain", check=True).stdout
    assert "without a completed run: 1 of 1 configs" in out, out
    assert "hpctrack resume" not in out and "run the script again" in out, out
    refused = run_cli("resume", "plain")
    assert refused.returncode != 0 and "run the script again" in refused.stderr
