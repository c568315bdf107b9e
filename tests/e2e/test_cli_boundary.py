"""What the commands print: counts that are true, only the columns asked for, strict JSON, and one
line with the fix for every expected failure (a damaged file, a bad setting, an unwritable path)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import error_lines, run_cli
from synthetic import SWEEP_ID, index_runs, make_sweep, write_run

pytestmark = pytest.mark.e2e


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _fake_sacct(tmp_path, monkeypatch, *, fail: bool):
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    log = tmp_path / "sacct-calls.log"
    body = "echo 'sacct: error: accounting down' >&2\nexit 1" if fail else "exit 0"
    (shim / "sacct").write_text(f'#!/bin/sh\necho "$@" >> {log}\n{body}\n')
    (shim / "sacct").chmod(0o755)
    (shim / "squeue").write_text(f'#!/bin/sh\necho squeue "$@" >> {log}\nexit 1\n')
    (shim / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    return log


def test_ls_reconciles_a_finished_slurm_sweep_without_asking_the_scheduler(hpctrack_root, tmp_path, monkeypatch):
    from hpctrack._types import JobState

    # The manifest still says PENDING (no `status` since the array was queued); the runs ended.
    done = make_sweep(hpctrack_root, 12, backend="slurm", state=JobState.PENDING, name="done",
                      job_ids=[f"41_{i}" for i in range(12)])  # fmt: skip
    for i in range(12):
        write_run(done, i, state="failed" if i == 11 else "completed")
    index_runs(done, range(12))
    half = make_sweep(hpctrack_root, 3, backend="slurm", state=JobState.PENDING, name="half",
                      job_ids=[f"42_{i}" for i in range(3)], sweep_id="20260101-000001-bbbb")  # fmt: skip
    write_run(half, 0)
    index_runs(half, [0])
    calls = _fake_sacct(tmp_path, monkeypatch, fail=True)
    out = run_cli("ls", check=True).stdout
    line = next(line for line in out.splitlines() if "done" in line)
    assert "12 jobs: 11 COMPLETED, 1 FAILED" in line and "PENDING" not in line, out
    line = next(line for line in out.splitlines() if "half" in line)
    assert "3 jobs: 2 PENDING, 1 COMPLETED (2 unconfirmed" in line and "hpctrack status" in line, out
    rows = _strict_json(run_cli("ls", "--format", "json", check=True).stdout)
    assert {r["name"]: r["unconfirmed"] for r in rows} == {"done": 0, "half": 2}
    assert not calls.exists()  # ls never asked the scheduler


def test_damaged_sweep_is_named_and_skipped_never_fatal(hpctrack_root):
    good = make_sweep(hpctrack_root, 1, name="good", sweep_id="20260101-000001-bbbb")
    write_run(good, 0)
    for bad, data in (("20260101-000002-cccc", {"jobs": "x"}), ("20260101-000003-dddd", None)):
        manifest = make_sweep(hpctrack_root, 2, sweep_id=bad)
        raw = json.loads((manifest.path / "sweep.json").read_text())
        if data is None:
            raw["jobs"][1]["state"] = "BOGUS"
        else:
            raw.update(data)
        (manifest.path / "sweep.json").write_text(json.dumps(raw))
    listing = run_cli("ls")
    assert listing.returncode == 0 and "good" in listing.stdout
    assert "20260101-000002-cccc" in listing.stderr and "20260101-000003-dddd" in listing.stderr
    assert "Traceback" not in listing.stderr
    assert [r["name"] for r in _strict_json(run_cli("ls", "--format", "json", check=True).stdout)] == ["good"]
    for args in (["status", "20260101-000002-cccc"], ["table", "20260101-000002-cccc"],
                 ["show", "20260101-000002-cccc/0"], ["status", "20260101-000003-dddd"],
                 ["table", "20260101-000003-dddd"]):  # fmt: skip
        proc = run_cli(*args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
        (line,) = error_lines(proc.stderr)
        assert "sweep.json" in line and ("jobs" in line or "BOGUS" in line), line
    assert run_cli("status", "good", check=True).returncode == 0  # latest/name lookups step over the damaged ones
    verified = run_cli("verify", "--all")
    assert verified.returncode == 1 and "Traceback" not in verified.stderr
    assert "20260101-000002-cccc: damaged sweep manifest" in verified.stdout
    assert "sweep 20260101-000001-bbbb: no problem found" in verified.stdout


def test_wrongly_typed_index_line_is_ignored_and_named(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 2, name="idx")
    for i in range(2):
        write_run(manifest, i)
    index_runs(manifest, range(2))
    with open(manifest.path / "index.jsonl", "a") as fh:
        fh.write(json.dumps({"v": 1, "job": 1, "status": {"state": "BOGUS"}, "metrics": "x"}) + "\n")
    for args in (["status", "idx"], ["table", "idx"]):
        proc = run_cli(*args, check=True)
        assert "COMPLETED" in proc.stdout and "index.jsonl line 3" in proc.stdout + proc.stderr, proc


def test_json_outputs_are_strict_json(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 2, name="inf")
    for i in range(2):
        write_run(manifest, i, summary={"best": math.inf, "worst": -math.inf, "none": math.nan, "ok": 1.5})
    index_runs(manifest, range(2))
    rows = _strict_json(run_cli("table", "inf", "--format", "json", check=True).stdout)
    assert rows[0]["best"] is None and rows[0]["worst"] is None and rows[0]["ok"] == 1.5
    grouped = _strict_json(run_cli("table", "inf", "-g", "x", "-m", "best", "--format", "json", check=True).stdout)
    assert grouped[0]["best mean"] is None
    _strict_json(run_cli("status", "inf", "--format", "json", check=True).stdout)
    _strict_json(run_cli("ls", "--format", "json", check=True).stdout)
    _strict_json(run_cli("verify", "inf", "--format", "json", check=True).stdout)


def test_grouped_table_shows_only_what_was_asked_and_says_how_best_was_chosen(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 4, name="grp")
    for i in range(4):
        write_run(manifest, i, steps=3 + i, summary={"test/acc": 0.5 + i / 10, "test/loss": 1.0 - i / 10})
    index_runs(manifest, range(4))
    rows = _strict_json(run_cli("table", "grp", "--grouped", "-m", "test/acc", "--format", "json", check=True).stdout)
    assert set(rows[0]) == {"x", "n", "test/acc mean", "test/acc std", "test/acc count"}
    text = run_cli("table", "grp", "--grouped", "-m", "test/acc", check=True).stdout
    assert "test/loss" not in text and "* best" in text
    assert "* best: highest mean of test/acc" in text
    text = run_cli("table", "grp", "--grouped", "-m", "loss:last", check=True).stdout
    assert "* best: lowest mean of loss:last" in text
    # Without --metric the table shows every metric and summary value, as before.
    rows = _strict_json(run_cli("table", "grp", "--format", "json", check=True).stdout)
    assert {"loss:last", "test/acc", "test/loss"} <= set(rows[0])


def test_watch_into_a_file_keeps_every_column_whole(hpctrack_root, tmp_path):
    from hpctrack._types import JobState

    long_value = "a-long-value-" + "x" * 90
    manifest = make_sweep(hpctrack_root, 2, state=JobState.FAILED, name="piped")
    raw = json.loads((manifest.path / "sweep.json").read_text())
    raw["jobs"][0]["overrides"] = [f"x={long_value}"]
    (manifest.path / "sweep.json").write_text(json.dumps(raw))
    write_run(
        manifest,
        0,
        state="failed",
        error={"type": "RuntimeError", "message": "a long error message " + "y" * 80, "traceback": ""},
    )
    with open(tmp_path / "watch.txt", "w") as fh:
        subprocess.run(
            [sys.executable, "-m", "hpctrack", "status", "piped", "--watch", "--interval", "0.2"],
            stdout=fh,
            stderr=subprocess.PIPE,
            timeout=120,
            check=True,
        )
    text = (tmp_path / "watch.txt").read_text()
    assert long_value in text and "y" * 80 in text and "…" not in text, text


# -- the error boundary -------------------------------------------------------------------------


def test_unwritable_output_is_one_line_and_debug_keeps_the_traceback(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 1, name="out")
    write_run(manifest, 0)
    proc = run_cli("table", "out", "-o", "/nonexistent/x.csv")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = error_lines(proc.stderr)
    assert "/nonexistent/x.csv" in line and "No such file or directory" in line
    debug = run_cli("--debug", "table", "out", "-o", "/nonexistent/x.csv")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize("variable", ["HPCTRACK_LOCK_TTL_S", "HPCTRACK_FLUSH_INTERVAL_S", "HPCTRACK_STALL_AFTER_S"])
def test_bad_setting_is_one_line_naming_it(hpctrack_root, monkeypatch, variable):
    manifest = make_sweep(hpctrack_root, 1, name="env")
    write_run(manifest, 0)
    monkeypatch.setenv(variable, "abc")
    for args in (["status", "env"], ["ls"]):
        proc = run_cli(*args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        (line,) = error_lines(proc.stderr)
        assert line.startswith(f"Error: {variable}='abc'") and "fix it or unset it" in line


def test_bad_debug_setting_names_itself(hpctrack_root, monkeypatch):
    monkeypatch.setenv("HPCTRACK_DEBUG", "maybe")
    proc = run_cli("ls")
    assert proc.returncode == 1 and error_lines(proc.stderr)[0].startswith("Error: HPCTRACK_DEBUG='maybe'")


def test_broken_user_config_is_one_line(hpctrack_root, tmp_path, monkeypatch):
    monkeypatch.delenv("HPCTRACK_ROOT")
    config = tmp_path / "xdg-config" / "hpctrack" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("root: [unclosed\nother: 1\n")
    proc = run_cli("ls")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert str(config) in line and "line" in line and "fix or remove it" in line


def test_run_index_out_of_range_is_one_line(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 3, name="few")
    write_run(manifest, 0)
    code = "import hpctrack\nhpctrack.load_sweep('few').run(5)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hpctrack.errors.ConfigError") and "no job 5" in last and "0-2" in last
    assert SWEEP_ID in last
