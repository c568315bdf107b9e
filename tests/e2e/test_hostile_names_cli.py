"""Hostile names on the terminal, and names too long for one.

Sweep names, param keys and values, metric names, summary keys, tags and error lines are
written by jobs, or by anyone who can write to the root. Planted here through the
library's writers and through ``hpctrack launch``, they must reach the terminal as visible
escapes (``\\x1b``, ``\\n``), never as the raw characters a terminal obeys, in every
human-readable command; JSON keeps the exact values. Names over 255 characters are refused
with one line at input, and data that has them anyway is shown without a traceback.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import SCRIPTS, error_lines, run_cli
from synthetic import make_sweep, write_run

pytestmark = pytest.mark.e2e

#: What a terminal obeys: C0 but newline, DEL, C1, bidi controls, Unicode line separators.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")

NAME = "evil\x1b[2J\x1b]0;owned\x07\nFORGED sweep line\u202eesrever"
KEY = "opt\x1b[31m.lr\rFORGED"
VALUE = "v\x9b31m\x08\x08\nFORGED value line"
METRIC = "loss\x1b]52;c;cGF5bG9hZA==\x07"
SUMMARY_KEY = "acc\x00\nFORGED summary"
TAG = "tag\x1b[5m\u202e"
ERROR = "boom\x1b[2J\r\nFORGED error line"
LONG = "k" * 300


def _assert_safe(proc, *, code=0):
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert "Traceback" not in out, out
    assert not RAW.search(out), repr(out)
    assert not any(line.lstrip().startswith("FORGED") for line in out.splitlines()), out


@pytest.fixture
def hostile(hpctrack_root):
    """A sweep of 2 runs whose names, keys, values, tags and errors hold terminal controls and long names."""
    from hpctrack.store import MetricBatch, open_store

    manifest = make_sweep(hpctrack_root, 2, name=NAME)
    write_run(
        manifest,
        0,
        summary={SUMMARY_KEY: 1.0, LONG: 2.0},
        error={"type": "RuntimeError", "message": ERROR, "traceback": ""},
        state="failed",
    )
    store = open_store(manifest.run_path(1), manifest.store)
    batch = MetricBatch()
    batch.add(METRIC, 0, 1.0, 1000.0)
    batch.add(LONG + "m", 0, 2.0, 1000.0)
    store.write(
        metrics=batch,
        sections={"params": {KEY: VALUE, "x": 1, LONG + "p": LONG}, "tags": {TAG: TAG}, "summary": {"final": 3.0}},
    )
    write_run(manifest, 1, summary={"final": 3.0})
    return manifest


@pytest.mark.parametrize(
    "command",
    [
        ["ls"],
        ["status", "latest"],
        ["table", "latest"],
        ["table", "latest", "--all-params"],
        ["table", "latest", "--group-by", "x"],
        ["table", "latest", "--format", "markdown"],
        ["show", "latest/0"],
        ["show", "latest/1"],
        ["diff", "latest/0", "latest/1"],
        ["compare", "latest", "latest", "-m", "final"],
        ["verify", "latest"],
    ],
)
def test_hostile_names_are_escaped_on_the_terminal(hostile, command):
    proc = run_cli(*command)
    _assert_safe(proc, code=proc.returncode if command[0] == "verify" else 0)
    if command[0] in ("ls", "status", "show", "diff"):
        assert "\\x1b[2J" in proc.stdout or "\\x1b" in proc.stdout, proc.stdout


def test_escapes_are_visible_where_the_names_stand(hostile):
    status = run_cli("status", "latest")
    assert "RuntimeError: boom\\x1b[2J" in status.stdout  # an error line is the message's first line
    assert "\\u202eesrever" in status.stdout
    show = run_cli("show", "latest/1").stdout
    assert "loss\\x1b]52;c;cGF5bG9hZA==\\x07" in show
    table = run_cli("table", "latest", "--all-params").stdout
    assert "acc\\x00\\nFORGED summary" in table
    assert "opt\\x1b[31m.lr\\rFORGED" in table and "v\\x9b31m\\x08\\x08\\nFORGED value line" in table


def test_json_keeps_the_exact_values(hostile):
    rows = json.loads(run_cli("table", "latest", "--all-params", "--format", "json", check=True).stdout)
    assert rows[1][KEY] == VALUE and rows[0][SUMMARY_KEY] == 1.0
    shown = json.loads(run_cli("show", "latest/1", "--format", "json", check=True).stdout)
    assert shown["params"][KEY] == VALUE and shown["sweep"]["name"] == NAME
    listed = json.loads(run_cli("ls", "--format", "json", check=True).stdout)
    assert listed[0]["name"] == NAME


def test_csv_on_a_pipe_keeps_the_exact_values(hostile):
    text = run_cli("table", "latest", "--all-params", "--format", "csv", check=True).stdout
    # ANSI sequences and all, as stored: a pipe is not a terminal (a terminal gets them escaped).
    assert "opt\x1b[31m.lr" in text and METRIC in text, repr(text)


def test_error_lines_naming_hostile_input_are_escaped(hostile):
    proc = run_cli("status", "no\x1b[2Jsuch\nFORGED")
    _assert_safe(proc, code=1)
    assert len(error_lines(proc.stderr)) == 1
    proc = run_cli("table", "latest", "--sort", "no\x1b]0;x\x07such")
    _assert_safe(proc, code=1)
    assert len(error_lines(proc.stderr)) == 1


def test_long_names_in_existing_data_do_not_traceback(hpctrack_root):
    """A sweep name, param key, summary key and metric name of 300 characters, written by the library's writers."""
    manifest = make_sweep(hpctrack_root, 1, name="N" * 300)
    write_run(manifest, 0, summary={LONG: 1.0})
    from hpctrack.store import MetricBatch, open_store

    batch = MetricBatch()
    batch.add(LONG + "m", 10, 2.0, 1000.0)
    open_store(manifest.run_path(0), manifest.store).write(metrics=batch, sections={"params": {LONG + "p": 1}})
    for command in (
        ["ls"],
        ["status", "N" * 300],
        ["table", "N" * 300, "--all-params"],
        ["show", "N" * 300 + "/0"],
        ["table", "latest", "-m", LONG + "m:max"],
        ["show", "latest/0"],
        ["diff", "latest/0", "latest/0"],
    ):
        proc = run_cli(*command)
        _assert_safe(proc)


def test_long_names_are_refused_at_launch(hpctrack_root, tmp_path):
    script = str(SCRIPTS / "resumable.py")
    proc = run_cli("launch", script, "--name", "n" * 256, "steps=1", "sleep_s=0", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1 and error_lines(proc.stderr) == [
        f"Error: sweep name '{'n' * 40}...' is 256 characters long; at most 255 are allowed (give a shorter --name)"
    ], proc.stderr
    proc = run_cli("launch", script, f"+{LONG}=1", "steps=1", "sleep_s=0", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1 and len(error_lines(proc.stderr)) == 1, proc.stderr
    assert "param key 'kkkk" in proc.stderr and "is 300 characters long; at most 255" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (hpctrack_root / "sweeps").exists() or not any((hpctrack_root / "sweeps").iterdir())


def test_launch_with_a_hostile_name_and_values(hpctrack_root, tmp_path):
    """Through the CLI as a user would: the name and an override value hold terminal controls."""
    name = "evil\x1b]0;owned\x07\u202e"
    proc = run_cli(
        "launch",
        str(SCRIPTS / "resumable.py"),
        "--name",
        name,
        "x=1,2",
        "steps=2",
        "sleep_s=0",
        "--no-progress",
        cwd=tmp_path,
    )
    _assert_safe(proc)
    for command in (
        ["ls"],
        ["status", "latest"],
        ["table", "latest"],
        ["show", "latest/0"],
        ["diff", "latest/0", "latest/1"],
    ):
        proc = run_cli(*command)
        _assert_safe(proc)
    assert "evil\\x1b]0;owned\\x07\\u202e" in run_cli("ls").stdout
