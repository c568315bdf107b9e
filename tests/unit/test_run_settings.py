"""A run's environment settings are read once, at start, through hpctrack.settings; the signal
handler's flush says what failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hpctrack
from hpctrack.manifest import SWEEPS_DIR


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize("name", ["HPCTRACK_FLUSH_INTERVAL_S", "HPCTRACK_FLUSH_MAX_POINTS", "HPCTRACK_CHECKPOINT_KEEP"])
def test_a_bad_setting_is_one_line_naming_it_before_anything_is_written(hpctrack_root, tmp_path, name):
    script = _script(
        tmp_path,
        """
        import hpctrack
        try:
            run = hpctrack.start_run({"a": 1})
        except hpctrack.ConfigError as err:
            print("ERROR", err, flush=True)
            raise SystemExit(2)
        run.log({"x": 1.0})
        run.save_checkpoint({"x": 1})
        run.finish()
    """,
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env={**os.environ, name: "abc"}
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and name in errors[0] and "'abc'" in errors[0], proc.stdout
    assert not (hpctrack_root / SWEEPS_DIR).exists() or not list((hpctrack_root / SWEEPS_DIR).iterdir())


def test_a_failed_flush_in_the_signal_handler_is_recorded(hpctrack_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "3600")  # only the signal flushes
    script = _script(
        tmp_path,
        """
        import time, hpctrack
        run = hpctrack.start_run({})
        real_write, armed = run._store.write, []

        def write_failing_once(**kwargs):
            if armed:
                armed.clear()
                raise OSError("injected I/O error")
            return real_write(**kwargs)

        run._store.write = write_failing_once
        for i in range(5):
            run.log({"x": i})
        armed.append(1)
        print("ready", flush=True)
        time.sleep(60)
    """,
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM
    lines = [line for line in err.splitlines() if "injected I/O error" in line]
    assert lines and "SIGTERM" in lines[0], err
    record = hpctrack.load_sweep("latest").run(0)
    attempt = record.status["attempts"][-1]
    assert "injected I/O error" in attempt["flush_error"] and attempt["signal"] == "SIGTERM"
    assert record.metrics["x"].count == 5  # the run's final write stored what the failed flush could not
    assert record.status["state"] == "interrupted"


def test_a_signal_never_waits_unboundedly_for_a_write_that_hangs(hpctrack_root, tmp_path, monkeypatch):
    """The background flush is stuck in the store (a hung filesystem): SIGTERM still ends the process,
    says the flush was skipped and why, and the end record holds how the attempt ended."""
    from hpctrack import endrecord

    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "0.2")
    script = _script(
        tmp_path,
        """
        import threading, time, hpctrack, hpctrack.run
        hpctrack.run.SIGNAL_WAIT_S = 1.0  # seconds, so the test is short
        run = hpctrack.start_run({})
        real_write = run._store.write

        def hanging_write(**kwargs):
            if threading.current_thread().name == "hpctrack-flush":
                print("hanging", flush=True)
                time.sleep(3600)
            return real_write(**kwargs)

        run._store.write = hanging_write
        run.log({"x": 1.0})
        time.sleep(3600)
    """,
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "hanging"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM
    assert "the flush on SIGTERM was skipped: a write in progress held the run for more than 1 s" in err
    end = endrecord.read(hpctrack.load_sweep("latest").manifest.run_path(0))
    assert end["state"] == "interrupted" and end["signal"] == "SIGTERM"
