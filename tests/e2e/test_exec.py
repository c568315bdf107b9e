"""Sweeps of any program (`hpctrack launch --exec`) and the commands a job's program records with
(`hpctrack log`, `summary`, `artifact`), through the real CLI: metrics both ways and grouped in a
table, a failing command, hostile values (and a rerun of them), cancels, a resumed attempt, and bad
input."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import SCRIPTS, error_lines, run_cli, wait_for

import hpctrack

pytestmark = pytest.mark.e2e
PROGRAMS = SCRIPTS / "exec"


def _history(sweep, key: str, job: int) -> list:
    frame = sweep.history(key)
    frame = frame[frame.job == job]
    return list(zip(frame.step.tolist(), frame.value.tolist(), frame.attempt.tolist()))


def test_a_command_sweep_records_through_hpctrack_log_a_metrics_file_and_start_run(hpctrack_root, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("lr: 0.1\nepochs: 3\n")
    inner = f"{shlex.quote(sys.executable)} {PROGRAMS / 'inner.py'} ${{epochs}}"
    command = f"sh {PROGRAMS / 'train.sh'} ${{lr}} ${{seed}} && {inner}"
    proc = run_cli("launch", "--exec", command, "--config", str(config), "lr=0.1,0.2", "+seed=0,1",
                   "--metrics-file", "metrics.jsonl", "--name", "cmd", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 jobs: 4 COMPLETED" in proc.stdout

    sweep = hpctrack.load_sweep("cmd")
    for job, (lr, seed) in enumerate([(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)]):
        record = sweep.run(job)
        assert record.params["lr"] == lr and record.params["seed"] == seed and record.params["epochs"] == 3
        assert record.params["inner.width"] == 3  # the Python program's params, into the job's run
        assert _history(sweep, "acc", job) == [(s, seed * 10 + s, 1) for s in range(3)]  # hpctrack log
        assert _history(sweep, "loss", job) == [(s, lr, 1) for s in range(3)]  # the metrics file
        assert _history(sweep, "inner_loss", job) == [(0, 1.5, 1), (1, 0.5, 1)]  # start_run in the program
        assert record.summary["final_acc"] == seed * 10 + 2 and record.summary["note"] == f"seed {seed}"
        assert record.summary["inner_best"] == 0.5
        artifact = record.info["artifacts"]["model.txt"]
        assert (sweep.path / "runs" / str(job) / artifact["path"]).read_text() == f"weights of {lr}/{seed}\n"
        assert "phase" not in record.metrics  # a text column is skipped
        inner_seen = json.loads((sweep.path / "runs" / str(job) / "inner.json").read_text())
        assert inner_seen == {"run_id": f"{sweep.id}/{job}", "attempt": 1}
    assert len(list((hpctrack_root / "sweeps").iterdir())) == 1  # the Python program made no sweep of its own

    table = run_cli("table", "cmd", "--group-by", "lr", "--grouped", "-m", "acc:last", "-m", "loss:last",
                    "--format", "json", check=True)  # fmt: skip
    rows = {row["lr"]: row for row in json.loads(table.stdout)}
    assert sorted(rows) == [0.1, 0.2] and all(row["n"] == 2 for row in rows.values())
    assert rows[0.1]["acc:last mean"] == 7.0 and rows[0.2]["loss:last mean"] == 0.2


def test_values_reach_the_program_verbatim_and_a_failing_command_ends_failed(hpctrack_root, tmp_path):
    hostile = (f"a b; touch {tmp_path}/pwned1 $(touch {tmp_path}/pwned2) `touch {tmp_path}/pwned3` "
               "\"dq\" 'sq' $HOME \\ end")  # fmt: skip
    config = tmp_path / "hostile.yaml"
    config.write_text(json.dumps({"msg": hostile, "fail": 0}))  # JSON is YAML: the value exactly as written
    command = f"sh {PROGRAMS / 'args.sh'} ${{msg}} \"dq: ${{msg}}\" 'sq: ${{msg}}' ${{other}} ${{fail}}"
    proc = run_cli("launch", "--exec", command, "--config", str(config), "fail=0,1",
                   f"+other='x; touch {tmp_path}/pwned4'", "--name", "hostile", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr  # job 1 failed
    assert "2 jobs: 1 COMPLETED, 1 FAILED" in proc.stdout

    sweep = hpctrack.load_sweep("hostile")
    for job in (0, 1):
        args = (sweep.path / "runs" / str(job) / "args.bin").read_bytes().split(b"\0")[:-1]
        assert [a.decode() for a in args] == [hostile, f"dq: {hostile}", f"sq: {hostile}",
                                              f"x; touch {tmp_path}/pwned4", str(job)]  # fmt: skip
    assert not list(tmp_path.glob("pwned*"))  # nothing in a value was ever run

    status = json.loads(run_cli("status", "hostile", "--format", "json", check=True).stdout)
    states = [j["state"] for j in status["jobs"]]
    assert states == ["COMPLETED", "FAILED"], status
    error = status["jobs"][1]["error"]
    assert "exit code 3" in error and "solver diverged at step 7" in error, error
    record = sweep.run(1)
    assert "starting the solver" in record.status["error"]["message"]  # the stderr's last lines, in full
    assert record.info["exec"]["exit_code"] == 3
    # show prints the stderr tail line by line, under the error (never one line of literal \n)
    show = run_cli("show", "hostile/1", check=True).stdout.splitlines()
    at = next(i for i, line in enumerate(show) if line.startswith("  error:"))
    tail = show[at + 1 : at + 4]
    assert "\\n" not in show[at] and any("starting the solver" in line for line in tail), show[at : at + 4]
    assert all(line.startswith("            | ") for line in tail), tail  # behind a gutter: never a line of show's

    # A rerun runs the same command with the same config, from the launch directory's code.
    rerun = run_cli("rerun", "hostile/0", "--no-progress", cwd=tmp_path / "root")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    again = hpctrack.load_sweep("latest")
    assert (again.path / "runs" / "0" / "args.bin").read_bytes() == (
        sweep.path / "runs" / "0" / "args.bin"
    ).read_bytes()


def test_sigterm_and_cancel_end_the_command_and_its_children(hpctrack_root, tmp_path):
    from hpctrack.locking import writer_state

    proc = run_cli("launch", "--exec", f"sh {PROGRAMS / 'waiter.sh'}", "n=0,1", "--name", "waits", "--detach",
                   "--parallel", "2", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sweep = hpctrack.load_sweep("waits")
    runs = [sweep.path / "runs" / str(job) for job in (0, 1)]
    # Both commands started their child, and what they logged reached the runs.
    wait_for("both commands running", lambda: all((r / "child.pid").exists() for r in runs), timeout_s=120)
    wait_for("both logged", lambda: all(s.last_step == 0 for s in sweep.status()), timeout_s=120)
    pids = [int((r / name).read_text()) for r in runs for name in ("sh.pid", "child.pid")]

    writer = writer_state(runs[0])
    assert writer is not None and writer.alive
    os.kill(writer.pid, signal.SIGTERM)  # job 0: SIGTERM to the job's own process (as scancel sends)
    assert run_cli("cancel", "waits", "--jobs", "1").returncode == 0  # job 1: hpctrack cancel

    def ended() -> bool:
        return all(s.state.is_final for s in sweep.status())

    wait_for("both jobs ended", ended, timeout_s=120)
    for pid in pids:  # the commands and their children are gone
        wait_for(f"pid {pid} gone", lambda pid=pid: not _alive(pid), timeout_s=30)
    errors = [sweep.run(job).status["error"]["message"] for job in (0, 1)]
    assert "SIGTERM" in errors[0] and "SIGINT" in errors[1], errors
    assert [sweep.run(job).status["state"] for job in (0, 1)] == ["interrupted", "interrupted"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_resumed_command_continues_its_run_with_exactly_once_metrics(hpctrack_root, tmp_path):
    proc = run_cli("launch", "--exec", f"sh {PROGRAMS / 'resumable.sh'}", "--metrics-file", "m.csv",
                   "--name", "again", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the first attempt crashes at step 3
    sweep = hpctrack.load_sweep("again")
    run_dir = sweep.path / "runs" / "0"
    identity = {"HPCTRACK_RUN_DIR": str(run_dir.resolve()), "HPCTRACK_RUN_ID": f"{sweep.id}/0"}

    resumed = run_cli("resume", "again", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # Each step once: attempt 1's up to its checkpoint, attempt 2's from there, by both ways.
    expected = [(0, 100, 1), (1, 101, 1), (2, 202, 2), (3, 203, 2), (4, 204, 2), (5, 205, 2)]
    assert _history(sweep, "acc", 0) == expected
    assert _history(sweep, "loss", 0) == expected
    assert sweep.run(0).status["attempt"] == 2
    # Each attempt's relay was read by its own attempt only, once.
    lines = [len((run_dir / "relay" / f"{a}.jsonl").read_text().splitlines()) for a in (1, 2)]
    assert lines == [4, 4]

    # A straggler of attempt 1 (or a call after the job ended) records nothing and says why.
    late = _log_as(identity, "1", "acc=5")
    assert late.returncode == 1 and "attempt 1 has ended" in late.stderr
    assert _history(sweep, "acc", 0) == expected


def _log_as(identity: dict, attempt: str, *args: str):
    import subprocess

    env = {**os.environ, **identity, "HPCTRACK_ATTEMPT": attempt}
    return subprocess.run([sys.executable, "-m", "hpctrack", "log", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_bad_input_is_one_line_before_anything_is_written(hpctrack_root, tmp_path):
    run_dir = tmp_path / "elsewhere" / "sweeps" / "s" / "runs" / "0"
    run_dir.mkdir(parents=True)
    identity = {"HPCTRACK_RUN_DIR": str(run_dir), "HPCTRACK_RUN_ID": "s/0"}
    cases = [
        (("loss",), "is not KEY=VALUE"),
        (("loss=abc",), "is not a number"),
        (("loss=1", "--step", "1.5"), "--step must be a whole number"),
        (("loss=1",), "nothing records it"),  # well formed, but no job's process follows this run
    ]
    for args, message in cases:
        proc = _log_as(identity, "1", *args)
        assert proc.returncode == 1 and len(error_lines(proc.stderr)) == 1 and message in proc.stderr, (args, proc)
    assert not (run_dir / "relay").exists()
    outside = run_cli("summary", "x=1")
    assert outside.returncode == 1 and "in no job" in outside.stderr

    config = tmp_path / "c.yaml"
    config.write_text("lr: 0.1\n")
    launches = [
        (("--exec", "echo ${nokey}", "a=1,2"), "nokey"),
        (("--exec", "echo ${a}", "a=1", "--metrics-file", "out.txt"), "--metrics-file 'out.txt'"),
        (("--exec", "echo ${a}", "a=interval(0,1)"), "needs a study"),
        (("--exec", "echo ${lr}", "--config", str(config), "lrr=0.2"), "did you mean 'lr'"),
        (("--exec", "echo ${a}", "a=1", "hydra.launcher.nope=1"), "has no setting 'nope'"),
        (("--config", str(config), str(tmp_path / "x.py")), "--config is an option of --exec"),
    ]
    for args, message in launches:
        proc = run_cli("launch", *args, cwd=tmp_path)
        assert proc.returncode == 1 and len(error_lines(proc.stderr)) == 1 and message in proc.stderr, (args, proc)
    assert not (hpctrack_root / "sweeps").exists() or not list((hpctrack_root / "sweeps").iterdir())


def test_a_program_left_out_of_the_code_snapshot_is_refused_before_launch(hpctrack_root, tmp_path):
    # In a git repository the snapshot holds the tracked files: an untracked program named by
    # $HPCTRACK_CODE_DIR would make every job fail ("cannot open").
    repo = tmp_path / "repo"
    (repo / "prog").mkdir(parents=True)
    (repo / "README").write_text("x\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x", "--allow-empty"],
                   cwd=repo, check=True)  # fmt: skip
    subprocess.run(["git", "add", "README"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "r"], cwd=repo, check=True)
    (repo / "prog" / "sim.sh").write_text("echo ${1}\n")
    for form in ("$HPCTRACK_CODE_DIR/sim.sh", '"$HPCTRACK_CODE_DIR/sim.sh"'):
        proc = run_cli("launch", "--exec", f"sh {form} ${{a}}", "a=1,2", "--name", "untracked", cwd=repo / "prog")
        assert proc.returncode == 1 and len(error_lines(proc.stderr)) == 1, (form, proc.stderr)
        assert "prog/sim.sh is not in the sweep's code snapshot" in proc.stderr and "git add" in proc.stderr, (
            proc.stderr
        )
    assert not (hpctrack_root / "sweeps").exists() or not list((hpctrack_root / "sweeps").iterdir())

    subprocess.run(["git", "add", "prog/sim.sh"], cwd=repo, check=True)  # tracked (not committed): in the snapshot
    proc = run_cli("launch", "--exec", "sh $HPCTRACK_CODE_DIR/sim.sh ${a}", "a=1", "--name", "tracked",
                   "--no-progress", cwd=repo / "prog")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
