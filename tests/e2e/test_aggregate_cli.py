"""Grouped tables, filters, compare, plot and the summary index, through the CLI and the Python API.

Means and stds are recomputed here from the runs' own histories with the statistics module,
not with hpctrack's code.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest
from conftest import SCRIPTS, run_cli

pytestmark = pytest.mark.e2e
SLEEPY = SCRIPTS / "sleepy.py"


def _launch(tmp_path, name, *overrides, fail=False):
    proc = run_cli("launch", str(SCRIPTS / "resumable.py"), *overrides, "--name", name, "--no-progress", cwd=tmp_path)
    assert proc.returncode == (1 if fail else 0), proc.stdout + proc.stderr


def _expected(sweep, metric_key, stat, group_key):
    """{group value: (mean, std, n)} from each completed run's history."""
    groups = {}
    for status in sweep.status():
        if status.state.value != "COMPLETED":
            continue
        history = sweep.history(metric_key)
        values = history[history.job == status.index].value.tolist()
        value = {"max": max(values), "last": values[-1], "mean": statistics.fmean(values)}[stat]
        groups.setdefault(status.record.params[group_key], []).append(value)
    return {
        g: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else math.nan, len(v)) for g, v in groups.items()
    }


def test_grouped_table_numbers_filter_sort_top(hpctrack_root, tmp_path):
    import hpctrack

    # x scales "x" and seed shifts the steps: 2 x 3 runs, one of them failing.
    flag = tmp_path / "fail-2-1"
    flag.write_text("x")
    _launch(
        tmp_path,
        "grid",
        "x=2,3",
        "seed=0,1,2",
        "steps=4",
        "sleep_s=0",
        "fail_at=2",
        f"fail_flag={tmp_path}/fail-${{x}}-${{seed}}",
        fail=True,
    )
    sweep = hpctrack.load_sweep("grid")
    frame = sweep.table(group_by=True, metrics=["loss:mean", "x:max"], agg=["mean", "std", "sem", "count", "ci95"])
    assert frame.attrs["group_by"] == ["x"]
    assert "left out 1 run that did not complete (1 FAILED)" in frame.attrs["note"]
    expected = _expected(sweep, "loss", "mean", "x")
    for row in frame.to_dict(orient="records"):
        mean, std, n = expected[row["x"]]
        assert row["n"] == n == row["loss:mean count"]
        assert row["loss:mean mean"] == pytest.approx(mean)
        assert row["x:max mean"] == pytest.approx(row["x"])
        if n > 1:
            assert row["loss:mean std"] == pytest.approx(std, abs=1e-12)
            assert row["loss:mean sem"] == pytest.approx(std / math.sqrt(n), abs=1e-12)
    assert sorted(frame["n"]) == [2, 3]

    # Through the CLI: json, the same numbers; filter on params and state; sort; top.
    out = run_cli("table", "grid", "-g", "x", "-m", "x:last", "--format", "json", check=True)
    rows = json.loads(out.stdout)
    assert {r["x"]: r["x:last mean"] for r in rows} == {2: 2.0, 3: 3.0}
    assert "left out 1 run" in out.stderr
    rows = json.loads(run_cli("table", "grid", "--filter", "x >= 3 and state == 'COMPLETED'", "--sort", "-job",
                              "--top", "2", "--format", "json", check=True).stdout)  # fmt: skip
    assert [r["job"] for r in rows] == [5, 4] and all(r["x"] == 3 for r in rows)
    text = run_cli("table", "grid", "--grouped", "-m", "x:max", check=True).stdout
    assert "* best" in text and "* best: highest mean of x:max" in text
    assert "final" not in text  # only what was asked for
    bad = run_cli("table", "grid", "--filter", "nosuch > 1")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: bad --filter")
    bad = run_cli("table", "grid", "-g", "nosuch")
    assert bad.returncode == 1 and "cannot group by 'nosuch'" in bad.stderr


def test_selectors_argmin_argmax_at_and_summary(hpctrack_root, tmp_path):
    import hpctrack

    _launch(tmp_path, "sel", "x=1,2", "steps=5", "sleep_s=0")
    frame = hpctrack.load_sweep("sel").table(metrics=["loss:argmin", "loss:argmax", "loss:at=2", "loss:mean", "final"])
    assert frame["loss:argmin"].tolist() == [4, 4] and frame["loss:argmax"].tolist() == [0, 0]
    assert frame["loss:at=2"].tolist() == [1 / 3, 1 / 3]
    assert frame["loss:mean"].tolist() == pytest.approx([statistics.fmean(1 / (s + 1) for s in range(5))] * 2)
    assert frame["final"].tolist() == [10.0, 20.0]  # a summary value by key
    bad = run_cli("table", "sel", "-m", "loss:median")
    assert bad.returncode == 1 and "unknown metric statistic 'median'" in bad.stderr


def test_compare_two_sweeps_with_deltas(hpctrack_root, tmp_path):
    _launch(tmp_path, "before", "x=1,2", "seed=0,1", "steps=3", "sleep_s=0")
    _launch(tmp_path, "after", "x=1,2,3", "seed=0,1", "steps=3", "sleep_s=0")
    rows = json.loads(run_cli("compare", "before", "after", "-m", "final", "--format", "json", check=True).stdout)
    by_x = {r["x"]: r for r in rows}
    assert sorted(by_x) == [1, 2, 3]
    assert by_x[2]["final mean before"] == 20.0 and by_x[2]["final mean after"] == 20.0
    assert by_x[2]["final delta after"] == 0.0 and by_x[2]["final count after"] == 2
    assert by_x[3]["final mean before"] is None  # only the second sweep ran x=3
    text = run_cli("compare", "before", "after", "-m", "final", check=True).stdout
    assert "delta" in text and "(n=2)" in text
    assert "differ in settings" not in run_cli("compare", "before", "after", "-m", "final", check=True).stderr


def test_compare_says_when_the_sweeps_differ_in_a_setting_each_held_fixed(hpctrack_root, tmp_path):
    """steps=3 in one sweep, 5 in the other: the deltas were shown as if only x told them apart."""
    _launch(tmp_path, "short", "x=1,2", "steps=3", "sleep_s=0")
    _launch(tmp_path, "long", "x=1,2", "steps=5", "sleep_s=0")
    proc = run_cli("compare", "short", "long", "-m", "loss:min", check=True)
    notes = [line for line in proc.stderr.splitlines() if "differ in settings" in line]
    assert len(notes) == 1 and "steps (short: 3, long: 5)" in notes[0], proc.stderr


def test_plot_writes_png_and_svg(hpctrack_root, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: pip install 'hpctrack[plot]'")
    _launch(tmp_path, "curves", "x=1,2", "seed=0,1", "steps=6", "sleep_s=0")
    png, svg = tmp_path / "loss.png", tmp_path / "loss.svg"
    assert run_cli("plot", "curves", "loss", "-o", str(png), check=True).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    run_cli("plot", "curves", "loss", "--x", "time", "--band", "ci", "-g", "x", "-o", str(svg), check=True)
    text = svg.read_text()
    assert "<svg" in text and "x=1" in text and "x=2" in text
    bad = run_cli("plot", "curves", "loss", "-o", str(tmp_path / "loss.gif"))
    assert bad.returncode == 1 and "use a .png, .svg or .pdf" in bad.stderr


def test_index_serves_ended_runs_and_a_corrupt_run_is_lost(hpctrack_root, tmp_path):
    import hpctrack
    from hpctrack.index import read_index

    _launch(tmp_path, "idx", "x=1,2,3", "steps=3", "sleep_s=0")
    sweep = hpctrack.load_sweep("idx")
    rows = read_index(sweep.path)
    assert sorted(rows) == [0, 1, 2] and rows[1]["summary"]["final"] == 20.0
    if not all(row.get("fingerprint") for row in rows.values()):
        run_cli("reindex", "idx", check=True)  # lines written before runs recorded their store's fingerprint
    before = sweep.table(metrics=["final", "loss:last"])
    assert before["final"].tolist() == [10.0, 20.0, 30.0]
    # Corrupt run 1's store: its index line no longer stands for it. It is LOST, its cells are empty, the
    # note names it; never the index's old numbers as if nothing happened.
    for f in (sweep.path / "runs" / "1").glob("run*.h5"):
        f.unlink() if f.is_symlink() else f.write_bytes(b"garbage")
    (sweep.path / "runs" / "1" / "run.h5").symlink_to("run.0.h5")
    (sweep.path / "runs" / "1" / "run.0.h5").write_bytes(b"garbage")
    frame = sweep.table(metrics=["final"])
    assert frame["state"].tolist() == ["COMPLETED", "LOST", "COMPLETED"]
    assert frame["final"].tolist()[0] == 10.0 and math.isnan(frame["final"].tolist()[1])
    assert "lost" in frame.attrs["note"] and "job 1" in frame.attrs["note"] and "unreadable" in frame.attrs["note"]
    out = run_cli("reindex", "idx", check=True).stdout
    assert "indexed 2 ended runs" in out and "kept 1 unreadable run in the index, marked LOST" in out
    assert "job 1: unreadable run store" in out
    frame = sweep.table(metrics=["final"])
    assert frame["final"].tolist()[0] == 10.0 and frame["final"].tolist()[2] == 30.0
    assert frame["state"].tolist()[1] == "LOST" and "job 1" in frame.attrs["note"]
    # A torn last line (a writer killed mid-append) is ignored.
    with open(sweep.path / "index.jsonl", "a") as fh:
        fh.write('{"v": 1, "job": 0, "stat')
    assert sorted(read_index(sweep.path)) == [0, 1, 2] and read_index(sweep.path)[1]["lost"]


def test_an_override_may_interpolate_a_key_only_the_jobs_add(hpctrack_root, tmp_path):
    proc = run_cli("launch", str(SLEEPY), "+rep=0,1", "x=${rep}", "steps=2", "--name", "interp", "--no-progress",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(run_cli("table", "interp", "-m", "final", "--format", "json", check=True).stdout)
    assert [(r["rep"], r["final"]) for r in rows] == [(0, 0.0), (1, 10.0)]
