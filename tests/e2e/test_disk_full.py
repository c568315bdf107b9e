"""A full disk (a 12 MB tmpfs) never hangs a job: it fails within bounded time with one line naming
"no space left on", the end record reserved at its start says so, SIGTERM still ends it promptly,
and what was stored stays whole and readable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import SCRIPTS, run_cli

import hpctrack
from hpctrack import endrecord
from hpctrack.store import open_store

pytestmark = pytest.mark.e2e
FILLER = SCRIPTS / "filler.py"


def _check_prefix(run_dir: Path, store: str) -> int:
    """The stored points are whole and readable: steps 0..n-1 of every key, the same n; returns n."""
    st = open_store(run_dir, store)
    record = st.read()
    counts = {key: stats.count for key, stats in record.metrics.items()}
    assert counts and len(set(counts.values())) == 1, counts
    for key in record.metrics:
        assert st.read_history(key).step.tolist() == list(range(counts[key]))
    return next(iter(counts.values()))


@pytest.mark.parametrize("store", ["hdf5", "zarr"])
def test_a_plain_run_on_a_full_disk_fails_with_the_cause(small_tmpfs, tmp_path, monkeypatch, store):
    monkeypatch.setenv("HPCTRACK_ROOT", str(small_tmpfs / "root"))
    proc = subprocess.run(
        [sys.executable, str(FILLER), f"store={store}", f"hydra.run.dir={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "DiskFullError: no space left on " in proc.stderr
    sweep = hpctrack.load_sweep("latest", root=str(small_tmpfs / "root"))
    run_dir = sweep.manifest.run_path(0)
    end = endrecord.read(run_dir)
    assert end["state"] == "failed" and end["error"].startswith(f"no space left on {run_dir} (writing "), end
    assert _check_prefix(run_dir, store) > 0


def test_a_local_sweep_job_on_a_full_disk_ends_failed_with_the_cause(small_tmpfs, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_ROOT", str(small_tmpfs / "root"))
    proc = run_cli("launch", "--no-progress", "--name", "full", str(FILLER), cwd=tmp_path, timeout=240)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 job: 1 FAILED" in proc.stdout
    sweep = hpctrack.load_sweep("full")
    run_dir = sweep.manifest.run_path(0)
    end = endrecord.read(run_dir)
    assert end["state"] == "failed" and end["error"].startswith("no space left on "), end
    status = json.loads(run_cli("status", "full", "--format", "json", check=True).stdout)
    assert status["jobs"][0]["state"] == "FAILED"
    assert "DiskFullError: no space left on " in Path(sweep.manifest.jobs[0].stderr).read_text()
    assert _check_prefix(run_dir, "hdf5") > 0


STUCK_AFTER_FULL = """
    import sys, time, hpctrack
    run = hpctrack.start_run({}, store=sys.argv[1])
    run.log({"x": 0.0})
    run.flush()
    print("ready", flush=True)
    step = 1
    while True:
        try:
            for _ in range(100):
                run.log({"x": float(step)})
                step += 1
        except hpctrack.HpctrackError as err:
            print("stopped:", err, flush=True)
            break
        time.sleep(0.01)
    while True:  # the training loop goes on with something else
        time.sleep(0.1)
"""


def _fill(directory: Path) -> None:
    """Take every free byte of the filesystem, as another user's job would."""
    with open(directory / "ballast", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
                fh.flush()
        except OSError:
            pass


@pytest.mark.parametrize("store", ["hdf5", "zarr"])
def test_sigterm_ends_a_run_on_a_full_disk_promptly(small_tmpfs, tmp_path, monkeypatch, store):
    monkeypatch.setenv("HPCTRACK_ROOT", str(small_tmpfs / "root"))
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "0.2")
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent(STUCK_AFTER_FULL))
    proc = subprocess.Popen(
        [sys.executable, str(script), store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        _fill(small_tmpfs)
        deadline = time.time() + 60
        line = ""
        while not line.startswith("stopped:") and time.time() < deadline:
            line = proc.stdout.readline()
        assert line.startswith("stopped: no space left on "), line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # seconds, not minutes: nothing waits on the full disk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM, err[-3000:]
    os.unlink(small_tmpfs / "ballast")
    sweep = hpctrack.load_sweep("latest", root=str(small_tmpfs / "root"))
    run_dir = sweep.manifest.run_path(0)
    end = endrecord.read(run_dir)
    assert end["state"] == "failed" and end["error"].startswith("no space left on ") and end["signal"] == "SIGTERM"
    assert _check_prefix(run_dir, store) >= 1
