"""The run-side API on plain (non-launched) runs, in process and as real processes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hpctrack
from hpctrack._types import JobState
from hpctrack.run import flatten_config
from hpctrack.status import job_statuses


def test_flatten_config_resolves_and_flattens():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"a": 1, "opt": {"lr": "${b}", "betas": [0.9, 0.99]}, "b": 0.5, "empty": {}})
    assert flatten_config(cfg) == {"a": 1, "opt.lr": 0.5, "opt.betas": [0.9, 0.99], "b": 0.5, "empty": {}}


def test_plain_run_records_everything(hpctrack_root, tmp_path):
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    with hpctrack.start_run({"optimizer": {"lr": 0.1}, "seed": 3}, name="plain", tags={"kind": "unit"}) as run:
        run.log({"loss": 2.0, "acc": 0.5})  # step 0
        run.log({"loss": 1.0})  # step 1
        run.log({"loss": 0.5, "acc": 0.75}, step=10)
        run.log({"loss": float("nan")})  # step 11
        run.summary["test/acc"] = 0.9
        run.tags["stage"] = "baseline"
        copied = run.log_artifact(artifact)
    assert copied.read_bytes() == b"weights"
    sweep = hpctrack.load_sweep("plain")
    record = sweep.run(0)
    assert record.params == {"optimizer.lr": 0.1, "seed": 3}
    assert record.summary == {"test/acc": 0.9}
    assert record.tags == {"kind": "unit", "stage": "baseline"}
    assert record.status["state"] == "completed"
    assert record.status["last_step"] == 11
    assert record.status["end_time"] >= record.status["start_time"]
    loss = sweep.history("loss")
    assert loss["step"].tolist() == [0, 1, 10, 11]
    assert loss["value"].tolist()[:3] == [2.0, 1.0, 0.5] and math.isnan(loss["value"].iloc[3])
    stats = record.metrics["loss"]
    assert (stats.count, stats.min, stats.max, stats.last_step) == (4, 0.5, 2.0, 11)
    art = record.info["artifacts"]["model.bin"]
    assert art["size"] == 7 and len(art["sha256"]) == 64
    assert sweep.manifest.backend == "direct"
    assert sweep.manifest.jobs[0].state == JobState.COMPLETED


def test_exception_marks_run_failed_with_traceback(hpctrack_root):
    with pytest.raises(ZeroDivisionError):
        with hpctrack.start_run({"a": 1}) as run:
            run.log({"loss": 1.0})
            run.log({"ratio": 1 / 0})
    record = hpctrack.load_sweep("latest").run(0)
    assert record.status["state"] == "failed"
    assert record.status["error"]["type"] == "ZeroDivisionError"
    assert "1 / 0" in record.status["error"]["traceback"]
    assert record.metrics["loss"].count == 1
    statuses = job_statuses(hpctrack.load_sweep("latest").manifest)
    assert statuses[0].state == JobState.FAILED
    assert statuses[0].error == "ZeroDivisionError: division by zero"


def test_log_rejects_non_numbers_and_logging_after_end(hpctrack_root):
    with hpctrack.start_run({}) as run:
        with pytest.raises(TypeError, match="value of 'name' must be a number"):
            run.log({"name": "abc"})
    with pytest.raises(hpctrack.HpctrackError, match="has ended"):
        run.log({"x": 1})


def test_log_accepts_numpy_scalars(hpctrack_root):
    import numpy as np

    with hpctrack.start_run({}) as run:
        run.log({"a": np.float32(0.25), "b": np.int64(3), "c": np.array(1.5)}, step=np.int64(4))
        run.summary["s"] = np.float64(2.5)
    record = hpctrack.load_sweep("latest").run(0)
    assert record.metrics["a"].last == 0.25 and record.metrics["b"].last == 3.0
    assert record.metrics["c"].last_step == 4 and record.summary["s"] == 2.5


def _wait_for(predicate, timeout_s=10.0):
    deadline = time.time() + timeout_s
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_log_is_buffered_until_size_or_interval(hpctrack_root, monkeypatch):
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "3600")
    with hpctrack.start_run({}, store="hdf5") as run:
        store = run._store
        run._max_points = 5
        for i in range(4):
            run.log({"x": i})
        assert "x" not in store.read().metrics  # still in memory
        run.log({"x": 4})  # 5th point reaches the size limit: the background thread writes it
        _wait_for(lambda: "x" in store.read().metrics)
        assert store.read().metrics["x"].count == 5
        run.log({"x": 5})
        time.sleep(0.2)
        assert store.read().metrics["x"].count == 5
    assert store.read().metrics["x"].count == 6


def test_log_waits_when_the_background_flush_falls_behind(hpctrack_root, monkeypatch):
    import threading

    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "3600")
    with hpctrack.start_run({}, store="hdf5") as run:
        run._max_points = 5
        real_write, release, blocked = run._store.write, threading.Event(), threading.Event()

        def slow_write(**kwargs):
            if threading.current_thread().name == "hpctrack-flush":
                blocked.set()
                release.wait(30)  # a filesystem that stalls
            return real_write(**kwargs)

        run._store.write = slow_write
        for i in range(5):
            run.log({"x": i})
        assert blocked.wait(10)  # the background flush took the 5 points and is stuck
        logger = threading.Thread(target=lambda: [run.log({"x": i}) for i in range(5, 20)])
        logger.start()
        logger.join(1.0)
        assert logger.is_alive()  # 10 more points buffered: log waits instead of growing without bound
        release.set()
        logger.join(30)
        assert not logger.is_alive()
    assert run._store.read().metrics["x"].count == 20
    assert run._store.read_history("x").step.tolist() == list(range(20))


def test_background_flush_and_heartbeat(hpctrack_root, monkeypatch):
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "0.2")
    with hpctrack.start_run({}) as run:
        run.log({"x": 1.0})
        first = run._store.read().status["heartbeat"]
        deadline = time.time() + 10
        while time.time() < deadline:
            record = run._store.read()
            if "x" in record.metrics and record.status["heartbeat"] > first:
                break
            time.sleep(0.05)
        assert record.metrics["x"].count == 1
        assert record.status["heartbeat"] > first


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_sigterm_flushes_and_records_interrupted(hpctrack_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "3600")  # only the signal can flush
    script = _script(
        tmp_path,
        """
        import sys, time, hpctrack
        run = hpctrack.start_run({"a": 1})
        for i in range(100):
            run.log({"x": i})
        print("ready", flush=True)
        time.sleep(60)
    """,
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    sweep = hpctrack.load_sweep("latest")
    record = sweep.run(0)
    assert record.metrics["x"].count == 100
    assert record.status["state"] == "interrupted"
    assert "SIGTERM" in record.status["error"]["message"]
    assert sweep.manifest.jobs[0].state == JobState.CANCELLED


def test_sigusr1_flushes_and_chains_to_the_previous_handler(hpctrack_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "3600")
    script = _script(
        tmp_path,
        """
        import signal, sys, time, hpctrack
        seen = []
        signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
        with hpctrack.start_run({}) as run:
            for i in range(7):
                run.log({"x": i})
            print("ready", flush=True)
            while not seen:
                time.sleep(0.01)
            print("chained", flush=True)
            time.sleep(0.5)
            run.log({"x": 7})
    """,
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGUSR1)
    assert proc.stdout.readline().strip() == "chained"
    record = hpctrack.load_sweep("latest").run(0)
    assert record.metrics["x"].count == 7  # flushed by the signal, before the run ended
    assert proc.wait(timeout=30) == 0
    assert hpctrack.load_sweep("latest").run(0).status["state"] == "completed"


def test_sigkilled_run_is_reconciled_as_failed(hpctrack_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "0.1")
    script = _script(
        tmp_path,
        """
        import time, hpctrack
        run = hpctrack.start_run({})
        run.log({"x": 1.0})
        run.flush()
        print("ready", flush=True)
        time.sleep(60)
    """,
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    manifest = hpctrack.load_sweep("latest").manifest
    assert job_statuses(manifest)[0].state == JobState.RUNNING
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    status = job_statuses(hpctrack.load_sweep("latest").manifest)[0]
    assert status.state == JobState.FAILED
    assert "ended without recording a result" in status.error
    assert status.record.metrics["x"].count == 1


def test_script_without_with_block_completes_at_exit(hpctrack_root, tmp_path):
    script = _script(
        tmp_path,
        """
        import hpctrack
        run = hpctrack.start_run({"a": 1})
        run.log({"x": 1.0})
        run.summary["done"] = True
    """,
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    record = hpctrack.load_sweep("latest").run(0)
    assert record.status["state"] == "completed" and record.summary == {"done": True}


def test_uncaught_exception_without_with_block_fails_the_run(hpctrack_root, tmp_path):
    script = _script(
        tmp_path,
        """
        import hpctrack
        run = hpctrack.start_run({"a": 1})
        raise KeyError("boom")
    """,
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert proc.returncode == 1
    record = hpctrack.load_sweep("latest").run(0)
    assert record.status["state"] == "failed" and record.status["error"]["type"] == "KeyError"


def test_running_job_with_a_stale_heartbeat_is_flagged_possibly_hung(hpctrack_root, tmp_path):
    from hpctrack.status import sweep_status

    script = _script(
        tmp_path,
        """
        import time, hpctrack
        run = hpctrack.start_run({})
        print("ready", flush=True)
        time.sleep(60)
    """,
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        manifest = hpctrack.load_sweep("latest").manifest
        fresh = sweep_status(manifest).jobs[0]
        assert fresh.state == JobState.RUNNING and not fresh.possibly_hung
        later = sweep_status(manifest, now=time.time() + 600).jobs[0]  # as seen 10 minutes on
        assert later.state == JobState.RUNNING and later.possibly_hung
        assert later.error.startswith("no heartbeat for") and later.error.endswith("possibly hung")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/abs.txt", "a/../../b.txt", ""])
def test_artifact_names_cannot_leave_the_run_directory(hpctrack_root, tmp_path, name):
    source = tmp_path / "f.txt"
    source.write_text("x")
    with hpctrack.start_run({}) as run:
        with pytest.raises(ValueError, match="inside the run's artifacts"):
            run.log_artifact(source, name=name or ".")
        nested = run.log_artifact(source, name="sub/dir/f.txt")
    assert nested == run.run_dir / "artifacts" / "sub" / "dir" / "f.txt" and nested.read_text() == "x"
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("value", [[1.0, 2.0], {"a": 1}, None, "1.5", object()])
def test_non_scalar_values_are_refused_without_touching_the_store(hpctrack_root, value):
    import numpy as np

    with hpctrack.start_run({}) as run:
        run.log({"ok": 1.0}, step=0)
        with pytest.raises(TypeError, match="must be a number"):
            run.log({"ok": 2.0, "bad": value if value is not object else np.zeros(3)}, step=1)
    record = hpctrack.load_sweep("latest").run(0)
    assert record.metrics["ok"].count == 1 and "bad" not in record.metrics


def test_interleaved_key_sets_keep_call_order(hpctrack_root):
    with hpctrack.start_run({}) as run:
        for i in range(50):
            run.log({"a": i, "b": -i}, step=i) if i % 3 else run.log({"a": i}, step=i)
            if i % 7 == 0:
                run.log({"b": 100 + i, "c": i}, step=i)
    sweep = hpctrack.load_sweep("latest")
    a, b = sweep.history("a"), sweep.history("b")
    assert a["step"].tolist() == list(range(50)) and a["value"].tolist() == [float(i) for i in range(50)]
    expected_b = []
    for i in range(50):
        if i % 3:
            expected_b.append(-i)
        if i % 7 == 0:
            expected_b.append(100 + i)
    assert b["value"].tolist() == expected_b


def test_points_of_a_failed_flush_stay_ahead_of_later_ones(hpctrack_root):
    with hpctrack.start_run({}) as run:
        real_write, failures = run._store.write, []

        def flaky_write(**kwargs):
            if kwargs.get("metrics") and not failures:
                failures.append(1)
                raise OSError("disk full")
            return real_write(**kwargs)

        run._store.write = flaky_write
        for i in range(10):
            run.log({"a": i, "b": -i} if i % 2 else {"a": i}, step=i)
        with pytest.raises(OSError, match="disk full"):
            run.flush()
        for i in range(10, 20):
            run.log({"b": -i} if i % 3 else {"a": i, "b": -i}, step=i)
    sweep = hpctrack.load_sweep("latest")
    assert sweep.history("a")["step"].tolist() == list(range(10)) + [12, 15, 18]
    assert sweep.history("b")["step"].tolist() == [1, 3, 5, 7, 9] + list(range(10, 20))


def test_a_step_beyond_64_bits_is_refused_whole(hpctrack_root):
    with hpctrack.start_run({}) as run:
        with pytest.raises(OverflowError, match="64 bits"):
            run.log({"a": 1.0}, step=2**63)
        run.log({"a": 2.0}, step=1)
    assert hpctrack.load_sweep("latest").history("a")["value"].tolist() == [2.0]
