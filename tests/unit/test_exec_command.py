"""The pieces of an --exec job: a command's ${...} quoted for the shell in every quoting context,
a metrics file read row by row (partial rows, rewrites, a resumed attempt), and SLURM's
requeue signal reaching the command before the run's own handling of it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from omegaconf import OmegaConf

from hpctrack.errors import ConfigError
from hpctrack.launch._command import compose_config, render_command, run_command
from hpctrack.metricsfile import MetricsFileFollower

HOSTILE = "a b; touch pwned $(touch pwned2) `touch pwned3` \"dq\" 'sq' $HOME \\ end"


def _words(line: str, cwd) -> list:
    """The arguments /bin/sh gives a program for ``line`` (printf one per line, NUL-separated)."""
    out = subprocess.run(["/bin/sh", "-c", f"printf '%s\\0' {line}"], cwd=cwd, capture_output=True, check=True)
    return out.stdout.decode().split("\0")[:-1]


def test_a_value_is_one_shell_word_in_every_quoting_context_and_never_runs(tmp_path):
    cfg = OmegaConf.create({"msg": HOSTILE, "n": 3})
    # \\${ is the shell's own ${...} (a variable of the job's environment)
    line = render_command("${msg} \"dq:${msg}:\" 'sq:${msg}:' pre${n}post \\${HOME}", cfg)
    assert _words(line, tmp_path) == [HOSTILE, f"dq:{HOSTILE}:", f"sq:{HOSTILE}:", "pre3post", os.environ["HOME"]]
    assert not list(tmp_path.iterdir())  # nothing in the value ran


def test_overrides_follow_hydras_rules_with_a_yaml_and_add_keys_without_one():
    assert dict(compose_config(None, ["a=1", "b.c=x"], strict=False)) == {"a": 1, "b": {"c": "x"}}
    cfg = compose_config({"lr": 0.1, "opt": {"m": 0.9}}, ["lr=0.2", "+seed=3", "~opt"], strict=True)
    assert dict(cfg) == {"lr": 0.2, "seed": 3}
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        compose_config({"lr": 0.1}, ["lrr=0.2"], strict=True)


class _Recorder:
    """What a run receives: each run.log call."""

    def __init__(self) -> None:
        self.points: list = []

    def log(self, values, step=None):
        self.points.append((step, dict(values)))


def test_a_metrics_file_is_read_by_complete_rows_and_a_resumed_attempt_reads_only_its_own(tmp_path):
    path = tmp_path / "m.csv"
    run = _Recorder()
    follower = MetricsFileFollower(path, run)
    assert follower.poll() == 0  # not there yet
    path.write_text("step,loss,phase\n0,1.0,train\n1,0.5,tr")
    assert follower.poll() == 1 and run.points == [(0, {"loss": 1.0})]  # the text column skipped
    with open(path, "a") as fh:
        fh.write("ain\n2,0.25,")
    assert follower.poll() == 1 and run.points[-1] == (1, {"loss": 0.5})
    assert follower.poll(final=True) == 1 and run.points[-1] == (2, {"loss": 0.25})  # the last row, unended

    # Rewritten whole with one row more: only the new row is read.
    path.write_text("step,loss,phase\n0,1.0,a\n1,0.5,b\n2,0.25,c\n3,0.125,d\n")
    follower.poll()
    assert run.points[-1] == (3, {"loss": 0.125}) and len(run.points) == 4

    # The next attempt starts after the rows already there (an earlier attempt read them).
    again = _Recorder()
    resumed = MetricsFileFollower(path, again, resume=True)
    assert resumed.poll() == 0
    with open(path, "a") as fh:
        fh.write("2,9.0,e\n")
    assert resumed.poll() == 1 and again.points == [(2, {"loss": 9.0})]


def test_a_resumed_attempt_logs_the_rows_it_appended_before_its_first_look(tmp_path):
    # The command starts at once; its first rows can be in the file before the follower looks.
    path = tmp_path / "m.csv"
    path.write_text("step,loss\n0,1.0\n1,0.5\n2,0.25\n3,0.125")  # attempt 1's, the last row unended
    run = _Recorder()
    follower = MetricsFileFollower(path, run, resume=True)  # made before the command starts
    with open(path, "a") as fh:
        fh.write("\n2,9.0\n3,8.0\n")
    assert follower.poll() == 2 and run.points == [(2, {"loss": 9.0}), (3, {"loss": 8.0})]


def test_a_jsonl_file_steps_by_row_without_a_step_key(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"loss": 1}\nnot json\n{"loss": 2, "ok": true}\n')
    run = _Recorder()
    MetricsFileFollower(path, run).poll()
    assert run.points == [(0, {"loss": 1.0}), (2, {"loss": 2.0})]  # row 1 unreadable, skipped


class _Run:
    def __init__(self) -> None:
        self.info: dict = {}

    def _note_info(self, key, value):
        self.info[key] = value


def test_slurms_requeue_signal_reaches_the_command_before_the_runs_own_handler(tmp_path):
    events: list = []
    script = ("trap 'echo saved > ckpt; exit 0' USR2; echo up > up; "
              "while true; do sleep 0.05; done")  # fmt: skip

    def requeue(signum, frame):  # the run's handler (its flush, submitit's requeue) is called after
        events.append(("handler", (tmp_path / "ckpt").exists()))

    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        import threading

        def send() -> None:
            deadline = time.monotonic() + 60
            while not (tmp_path / "up").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)

        threading.Thread(target=send, daemon=True).start()
        run = _Run()
        assert run_command(["/bin/sh", "-c", script], cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, run=run) == 0
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert (tmp_path / "ckpt").read_text() == "saved\n"
    assert events == [("handler", True)]  # once, after the command had saved its state and ended
    assert run.info["exec"]["exit_code"] == 0


def test_an_empty_text_value_is_a_summary_value_and_an_empty_number_says_so():
    from hpctrack.relay import parse_values

    # `hpctrack summary final=$v label="$label"` with an empty $label: both recorded.
    assert parse_values(["final=3", "label="], text=True, command="summary") == {"final": 3, "label": ""}
    with pytest.raises(ConfigError, match=r"'loss=': no value; hpctrack log takes numbers"):
        parse_values(["loss="], text=False, command="log")
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_values(["=3"], text=True, command="summary")
