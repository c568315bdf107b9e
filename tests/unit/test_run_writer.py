"""The run as its store's one writer: a batch stored once whatever interrupts a flush, one live
writer per run, one writing rank per job, what a plain run records about its process."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hpctrack
from hpctrack import endrecord
from hpctrack.errors import RunBusyError
from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id
from hpctrack.store import open_store

REPO = Path(__file__).resolve().parents[2]


def _script(tmp_path: Path, body: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _sweep(root: Path, store: str = "hdf5", jobs: int = 1) -> Manifest:
    return create_sweep(root, Manifest(id=new_sweep_id(), created=time.time(), backend="local", store=store,
                                       jobs=[JobRecord(i, [], f"runs/{i}") for i in range(jobs)]))  # fmt: skip


# -- a batch is stored once ---------------------------------------------------------------------

FLUSHING = """
    import sys, hpctrack
    with hpctrack.start_run({}, store=sys.argv[1]) as run:
        step = 0
        print("ready", flush=True)
        while True:
            for _ in range(50):
                run.log({"x": float(step), "y": 1.0}, step=step)
                step += 1
            run.flush()
"""


@pytest.mark.parametrize("backend", ["hdf5", "zarr"])
def test_sigint_during_flushes_stores_every_step_once_and_always_interrupts(hpctrack_root, tmp_path, backend):
    """Ctrl-C lands inside a flush called from the training loop (before, in or after its commit):
    every logged step is stored exactly once, and the run always ends by KeyboardInterrupt."""
    script = _script(tmp_path, FLUSHING)
    rng = random.Random(11)
    tries = 12
    for attempt in range(tries):
        proc = subprocess.Popen(
            [sys.executable, str(script), backend], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"try {attempt}: the interrupt was swallowed, the run went on") from None
        assert proc.returncode == -signal.SIGINT, (attempt, err[-2000:])  # died of its KeyboardInterrupt
        assert "KeyboardInterrupt" in err and "Exception ignored" not in err, err[-2000:]
        sweep = hpctrack.load_sweep("latest")
        record = sweep.run(0)
        assert record.status["state"] == "interrupted"
        steps = open_store(sweep.manifest.run_path(0), backend).read_history("x", raw=True).step.tolist()
        assert steps == list(range(len(steps))), (attempt, [s for s in set(steps) if steps.count(s) > 1][:5])
        assert record.metrics["x"].count == len(steps) == record.status["last_step"] + 1


def test_a_failure_after_the_commit_gives_nothing_back(hpctrack_root, monkeypatch):
    """An I/O error on the directory fsync after the commit: the batch is stored, and only once."""
    import hpctrack.store._hdf5 as h5mod

    real = h5mod._fsync
    with hpctrack.start_run({}) as run:
        for i in range(5):
            run.log({"x": i})
        monkeypatch.setattr(
            h5mod,
            "_fsync",
            lambda p: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")) if Path(p).is_dir() else real(p),
        )
        run.flush()
        monkeypatch.setattr(h5mod, "_fsync", real)
    steps = hpctrack.load_sweep("latest").history("x")["step"].tolist()
    assert open_store(run.run_dir, "hdf5").read_history("x", raw=True).step.tolist() == [0, 1, 2, 3, 4]
    assert steps == [0, 1, 2, 3, 4]


# -- one live writer per run --------------------------------------------------------------------

HOLD_JOB_RUN = """
    import sys, time
    from hpctrack.run import open_job_run
    run = open_job_run(sys.argv[1], 0)
    run.log({"x": 1.0})
    run.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_of_a_running_run_is_refused_before_writing(hpctrack_root):
    from hpctrack.run import open_job_run

    manifest = _sweep(hpctrack_root)
    first = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_JOB_RUN), str(manifest.path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HPCTRACK_FLUSH_INTERVAL_S": "3600"},
    )  # it writes no more
    try:
        assert first.stdout.readline().strip() == "writing"
        store = open_store(manifest.run_path(0), "hdf5")
        before = store.fingerprint()
        with pytest.raises(RunBusyError) as info:
            open_job_run(manifest.path, 0)
        message = str(info.value)
        assert "\n" not in message and f"pid {first.pid}" in message
        assert store.fingerprint() == before  # nothing written
        assert [a["pid"] for a in store.read().status["attempts"]] == [first.pid]
        assert hpctrack.run.current_run() is None
    finally:
        first.kill()
        first.wait()
    again = open_job_run(manifest.path, 0)  # the writer is dead: the run is free
    assert again.attempt == 2
    again.finish()


def test_the_writer_lease_is_held_for_the_attempt_and_released_at_its_end(hpctrack_root):
    from hpctrack.locking import writer_state
    from hpctrack.run import open_job_run

    manifest = _sweep(hpctrack_root)
    run = open_job_run(manifest.path, 0)
    state = writer_state(manifest.run_path(0))
    assert state is not None and state.pid == os.getpid() and state.alive
    run.finish()
    assert writer_state(manifest.run_path(0)) is None


def test_a_plain_run_records_its_process_in_the_manifest(hpctrack_root, tmp_path):
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
        runner = hpctrack.load_sweep("latest").manifest.runner
        import socket

        assert runner["pid"] == proc.pid and runner["host"] == socket.gethostname()
        assert abs(runner["started"] - time.time()) < 120
    finally:
        proc.kill()
        proc.wait()


# -- one writing rank ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env", [{"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}]
)
def test_only_global_rank_zero_writes_the_run(hpctrack_root, monkeypatch, env):
    from hpctrack.locking import writer_state
    from hpctrack.run import open_job_run

    manifest = _sweep(hpctrack_root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run = open_job_run(manifest.path, 0)
    assert run.run_id == f"{manifest.id}/0"
    assert hpctrack.start_run({"a": 1}) is run  # the task's start_run gets it
    for i in range(10):
        run.log({"x": i})
    run.summary["s"] = 1
    run.flush()
    run.finish()
    run_dir = manifest.run_path(0)
    assert not open_store(run_dir, "hdf5").exists()  # rank 1 wrote nothing
    assert writer_state(run_dir) is None and endrecord.read(run_dir) is None


def test_a_plain_script_on_rank_one_creates_no_sweep(hpctrack_root, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with hpctrack.start_run({"a": 1}) as run:
        run.log({"x": 1.0})
    assert not (hpctrack_root / "sweeps").exists() or not list((hpctrack_root / "sweeps").iterdir())


# -- what each flush and each end records -----------------------------------------------------


def test_the_status_says_when_the_last_log_call_was_and_the_step_interval(hpctrack_root, monkeypatch):
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "3600")
    with hpctrack.start_run({}) as run:
        run.log({"x": 0.0})
        run.flush()
        status = run._store.read().status
        assert status["last_log_time"] <= time.time() and status["step_interval_s"] is None  # one call only
        for i in range(1, 6):
            time.sleep(0.05)
            run.log({"x": float(i)})
        last = time.time()
        run.flush()
        status = run._store.read().status
        assert last - 0.05 <= status["last_log_time"] <= last
        assert 0.04 <= status["step_interval_s"] <= 1.0
        time.sleep(0.1)
        run.flush()  # no call since: the time of the last call stays
        assert run._store.read().status["last_log_time"] == status["last_log_time"]


def test_the_end_record_is_reserved_at_start_and_says_how_the_attempt_ended(hpctrack_root):
    from hpctrack.run import open_job_run

    manifest = _sweep(hpctrack_root)
    run = open_job_run(manifest.path, 0)
    assert (manifest.run_path(0) / endrecord.END_FILE).stat().st_size == endrecord.RESERVED_BYTES
    assert endrecord.read(manifest.run_path(0)) is None
    run.finish(hpctrack.RunStatus.FAILED, error=ValueError("bad batch"))
    end = endrecord.read(manifest.run_path(0))
    assert end["state"] == "failed" and end["error"] == "ValueError: bad batch" and end["attempt"] == 1


def test_the_line_a_run_adds_to_the_index_carries_its_store_fingerprint(hpctrack_root):
    from hpctrack.index import read_index
    from hpctrack.run import open_job_run

    manifest = _sweep(hpctrack_root, store="zarr")
    run = open_job_run(manifest.path, 0)
    run.log({"x": 1.0})
    run.finish()
    row = read_index(manifest.path)[0]
    assert row["fingerprint"] == open_store(manifest.run_path(0), "zarr").fingerprint() is not None


def test_attempts_record_the_code_they_ran(hpctrack_root):
    from hpctrack.manifest import update_manifest
    from hpctrack.run import open_job_run

    manifest = _sweep(hpctrack_root, jobs=2)

    def change(m):
        m.code = {"digest": "a" * 16, "path": "/nowhere", "script": "train.py"}
        m.jobs[1].code = {"digest": "b" * 16, "path": "/elsewhere", "script": "train.py"}

    update_manifest(manifest.path, change)
    for index, digest in ((0, "a" * 16), (1, "b" * 16)):
        run = open_job_run(manifest.path, index)
        run.finish()
        assert open_store(manifest.run_path(index), "hdf5").read().status["attempts"][-1]["code"] == digest


def test_run_dir_is_the_run_directory(hpctrack_root):
    with hpctrack.start_run({}) as run:
        assert run.dir == run.run_dir == hpctrack.load_sweep("latest").manifest.run_path(0)


STALLING_RUN = """
    import sys, time
    from hpctrack.run import open_job_run
    run = open_job_run(sys.argv[1], 0)
    step = 0
    try:
        while True:
            run.log({"x": float(step)}, step=step)
            step += 1
            if step == 5:
                run.flush()
                print("writing", flush=True)
            time.sleep(0.05)
    except Exception as err:
        print("stopped:", type(err).__name__, err, flush=True)
        raise
"""


def test_a_writer_stopped_past_the_ttl_never_writes_after_another_took_the_run_over(hpctrack_root):
    """SIGSTOP a job's process past the lease TTL; a resume takes the run over and ends it; the
    first one, continued, stops writing at once instead of writing over the new attempt."""
    manifest = _sweep(hpctrack_root)
    env = {**os.environ, "HPCTRACK_LOCK_TTL_S": "2", "HPCTRACK_FLUSH_INTERVAL_S": "0.2"}
    first = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(STALLING_RUN), str(manifest.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stdout.readline().strip() == "writing"
        os.kill(first.pid, signal.SIGSTOP)
        time.sleep(0.5)
        second = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent("""
            import sys, time
            from hpctrack.run import open_job_run
            run = open_job_run(sys.argv[1], 0)  # waits until the stopped one's lease is older than the TTL
            for step in range(3):
                run.log({"x": 100.0 + step}, step=step)
            run.finish()
            print("done", run.attempt)
        """),
                str(manifest.path),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert second.returncode == 0, second.stderr
        assert second.stdout.split() == ["done", "2"]
    finally:
        os.kill(first.pid, signal.SIGCONT)
    try:
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:  # it went on writing: the failure is asserted below, without an orphan
            first.kill()
            out, err = first.communicate()
    assert first.returncode != 0
    assert "stopped: RunBusyError" in out and "lost its writer lease" in out, (out, err)
    record = open_store(manifest.run_path(0), "hdf5").read()
    assert record.status["state"] == "completed" and record.status["attempt"] == 2
    history = open_store(manifest.run_path(0), "hdf5").read_history("x")
    assert history.step.tolist() == [0, 1, 2] and history.value.tolist() == [100.0, 101.0, 102.0]
    assert endrecord.read(manifest.run_path(0))["attempt"] == 2  # the first never wrote its end over it


def test_the_ranks_of_a_plain_script_share_rank_zeros_run_id(hpctrack_root, tmp_path):
    """As torchrun starts them: one parent, RANK/WORLD_SIZE/LOCAL_WORLD_SIZE set; rank 1 may start first."""
    script = _script(
        tmp_path,
        """
        import time, hpctrack
        with hpctrack.start_run({"a": 1}) as run:
            print(run.run_id, flush=True)
            run.log({"x": 1.0})
            time.sleep(1.0)
    """,
    )
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_PORT": "29555"}
    one = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env={**env, "RANK": "1", "LOCAL_RANK": "1"}
    )
    time.sleep(0.5)
    zero = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env={**env, "RANK": "0", "LOCAL_RANK": "0"}
    )
    ids = [p.communicate(timeout=120)[0].strip() for p in (zero, one)]
    assert zero.returncode == one.returncode == 0
    sweep = hpctrack.load_sweep("latest")
    assert ids == [f"{sweep.manifest.id}/0"] * 2
    assert len(list((hpctrack_root / "sweeps").iterdir())) == 1  # one sweep, created by rank 0
    assert sweep.run(0).metrics["x"].count == 1
