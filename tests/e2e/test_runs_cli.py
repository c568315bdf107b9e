"""``hpctrack runs``: one query across the sweeps of a root, through real ``python -m hpctrack`` processes.

The example sweeps are launched for real (the shipped digits example, two epochs); the cases about
what is on disk (a run that ends later, a hostile catalog) use sweeps written with the library's
own writers (``tests/synthetic.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLE, error_lines, run_cli
from synthetic import ended_sweep, index_runs, make_sweep, write_run

from hpctrack._index_arrow import parse_frame
from hpctrack._types import JobState

pytestmark = pytest.mark.e2e

WHERE = "optimizer.name == 'adam' and val/acc:max > 0.5"


def _runs(*args: str) -> list:
    return json.loads(run_cli("runs", "--format", "json", *args, check=True).stdout)


def _keys(rows: list) -> list:
    return sorted((r["sweep"], r["job"]) for r in rows)


def _expected(sweeps: list, predicate) -> list:
    """The runs ``table`` shows for each sweep that satisfy ``predicate`` (computed, not written down)."""
    out = []
    for ref in sweeps:
        sweep_id = json.loads(run_cli("show", ref, "--format", "json", check=True).stdout)["id"]
        for row in json.loads(run_cli("table", ref, "--format", "json", "--all-params", check=True).stdout):
            if predicate(row):
                out.append((sweep_id, row["job"]))
    return sorted(out)


@pytest.fixture
def example_sweeps(hpctrack_root, tmp_path):
    for name, overrides in (("opt", ["optimizer.name=sgd,adam", "optimizer.lr=0.01,0.1"]),
                            ("adam-lr", ["optimizer.name=adam", "optimizer.lr=0.001,0.01"])):  # fmt: skip
        proc = run_cli("launch", "--parallel", "2", "--name", name, str(EXAMPLE), *overrides, "epochs=2", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    run_cli("tag", "adam-lr", "stage=ablation", check=True)
    run_cli("note", "adam-lr", "smaller learning rates", check=True)
    return hpctrack_root


def test_runs_across_example_sweeps_filters_selects_and_survives_catalog_loss(example_sweeps):
    expected = _expected(["opt", "adam-lr"], lambda r: r["optimizer.name"] == "adam" and r["val/acc:max"] > 0.5)
    rows = _runs("--where", WHERE, "-m", "val/acc:max")
    assert _keys(rows) == expected and expected
    for row in rows:
        assert row["state"] == "COMPLETED" and row["val/acc:max"] > 0.5 and row["optimizer.name"] == "adam"
        assert row["sweep_name"] in ("opt", "adam-lr")
        if row["sweep_name"] == "adam-lr":
            assert row["tags"] == {"stage": "ablation"} and row["note"] == "smaller learning rates"
    # --sweeps (a glob on names or ids), --tag, --since: as ls selects sweeps
    assert {r["sweep_name"] for r in _runs("--where", WHERE, "--sweeps", "adam-*")} == {"adam-lr"}
    assert {r["sweep_name"] for r in _runs("--where", WHERE, "--tag", "stage=ablation")} == {"adam-lr"}
    assert _runs("--where", WHERE, "--tag", "stage=final") == []
    assert _keys(_runs("--where", WHERE, "--since", "1d")) == expected
    assert _runs("--where", WHERE, "--since", "2999-01-01") == []
    # the text table shows the sweep's tags and note
    text = run_cli("runs", "--where", WHERE, "-m", "val/acc:max", check=True).stdout
    assert "stage=ablation" in text and "smaller learning rates" in text and "adam-lr" in text
    # the catalog is a cache: deleted, it is rebuilt with the same answer
    catalog = example_sweeps / "catalog"
    assert catalog.is_dir()
    shutil.rmtree(catalog)
    assert _keys(_runs("--where", WHERE)) == expected
    assert catalog.is_dir()
    # a sweep moved to the trash drops out of the answer
    run_cli("rm", "opt", check=True)
    assert {r["sweep_name"] for r in _runs("--where", WHERE)} == {"adam-lr"}


def test_runs_follow_a_run_that_ends_after_the_catalog_was_built(hpctrack_root):
    manifest = make_sweep(hpctrack_root, 2, sweep_id="20260101-000000-aaaa", state=JobState.RUNNING)
    write_run(manifest, 0)
    index_runs(manifest, [0])
    first = _runs("--where", "x >= 0")
    assert [(r["job"], r["state"]) for r in first][0] == (0, "COMPLETED")
    assert len(first) == 2 and first[1]["job"] == 1 and first[1]["state"] != "COMPLETED"
    write_run(manifest, 1)
    index_runs(manifest, [1])
    assert [(r["job"], r["state"]) for r in _runs("--where", "x >= 0")] == [(0, "COMPLETED"), (1, "COMPLETED")]
    # a new sweep appears in the next answer
    other = make_sweep(hpctrack_root, 1, sweep_id="20260102-000000-bbbb", name="later")
    write_run(other, 0)
    index_runs(other, [0])
    assert [r["sweep"] for r in _runs("--where", "x == 0")] == ["20260102-000000-bbbb", "20260101-000000-aaaa"]


def _ended(root: Path, sweep_id: str, n: int = 3):
    return ended_sweep(root, n, sweep_id=sweep_id)


def test_hostile_catalog_files_are_ignored_and_rebuilt(hpctrack_root, tmp_path):
    _ended(hpctrack_root, "20260101-000000-aaaa")
    _ended(hpctrack_root, "20260102-000000-bbbb")
    want = _keys(_runs("--where", "x >= 1"))
    assert len(want) == 4
    mine = hpctrack_root / "catalog" / f"u{os.getuid()}"
    parts = sorted((mine / "sweeps").glob("*.parquet"))
    assert len(parts) == 2
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(b"not yours")
    # a planted symlink (to a file outside the root), garbage, a group-writable file
    parts[0].unlink()
    parts[0].symlink_to(outside)
    parts[1].write_bytes(b"PAR1 garbage PAR1")
    (mine / "runs.parquet").symlink_to(outside)
    assert _keys(_runs("--where", "x >= 1")) == want
    assert outside.read_bytes() == b"not yours"  # never written through the link
    assert not parts[0].is_symlink() and parts[1].read_bytes()[:4] == b"PAR1" and len(parts[1].read_bytes()) > 100
    os.chmod(parts[1], 0o666)
    assert _keys(_runs("--where", "x >= 1")) == want
    assert not os.stat(parts[1]).st_mode & 0o022  # rewritten, only its owner may write it
    # a catalog directory that is a link out of the root is not used at all, and the answer stands
    shutil.rmtree(hpctrack_root / "catalog")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (hpctrack_root / "catalog").symlink_to(elsewhere)
    proc = run_cli("runs", "--format", "json", "--where", "x >= 1", check=True)
    assert _keys(json.loads(proc.stdout)) == want and "not used" in proc.stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "__import__('os').system('touch PWNED')"], "not allowed"),
        (["--where", "x.__class__ == 1"], "not allowed"),
        (["--where", "nosuch > 1"], "unknown column 'nosuch'"),
        (["--where", "loss:at=3 > 0"], "history"),
        (["--sweeps", "ab[c"], "unclosed '['"),
        (["--tag", "=x"], "--tag"),
        (["-m", "nosuch:max"], "no selected run logged metric 'nosuch'"),
        (["--where", "tags.my-key == 'x'"], "`tags.my-key`"),  # a name with '-' is quoted, and the error says so
        (["--where", "stat == 'FAILED'"], "did you mean 'state'"),
        (["--where", "state == FAILED"], "quoted: 'FAILED'"),  # a text value written bare
        (["--where", "x > 1 and"], "the filter ends too soon"),
    ],
)
def test_bad_input_is_one_line_saying_what_to_fix(hpctrack_root, tmp_path, args, message):
    _ended(hpctrack_root, "20260101-000000-aaaa")
    proc = run_cli("runs", *args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "PWNED").exists()


def test_a_large_index_is_read_in_columns_with_the_same_answer(hpctrack_root):
    """An index big enough for the columnar parse (and one with a failed run's error) answers as written."""
    n = 40
    manifest = make_sweep(hpctrack_root, n, sweep_id="20260103-000000-cccc", name="big")
    for i in range(n):
        if i % 9 == 4:
            write_run(manifest, i, state="failed", error={"type": "ValueError", "message": f"boom {i}"})
        else:
            write_run(manifest, i)
    index_runs(manifest, range(n))
    assert parse_frame((manifest.path / "index.jsonl").read_bytes()) is not None  # the columnar parse serves it
    rows = _runs("--where", "x >= 0", "-m", "loss:min", "-m", "final")
    assert [r["job"] for r in rows] == list(range(n))
    for row in rows:
        i = row["job"]
        assert row["x"] == i and row["final"] == 10.0 * i and row["loss:min"] == 0.2
        assert row["state"] == ("FAILED" if i % 9 == 4 else "COMPLETED") and row["runtime_s"] == 50.0
    failed = _runs("--where", "state == 'FAILED' and x > 10")
    assert [r["job"] for r in failed] == [i for i in range(11, n) if i % 9 == 4]


@pytest.mark.parametrize("select", [["--tag", "stage=ablation"], ["--sweeps", "nosuch*"], ["--since", "2099-01-01"]])
def test_a_selection_of_no_sweep_says_so_rather_than_blaming_a_metric(hpctrack_root, select):
    """`runs --tag nosuch=1 -m loss:min` said "no selected run logged metric 'loss'" (exit 1)."""
    _ended(hpctrack_root, "20260101-000000-aaaa")
    proc = run_cli("runs", *select, "-m", "loss:min")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no sweep matches the selection (--sweeps, --since, --tag; see `hpctrack ls`)"
    assert _runs(*select, "-m", "loss:min") == []


def test_a_sweep_with_jobs_that_never_ran_is_read_without_warnings(hpctrack_root):
    """Jobs cancelled before they started have no index line: their rows (all empty but the state) were
    concatenated with the indexed ones under a pandas FutureWarning printed to every `runs` user."""
    from hpctrack.manifest import update_manifest

    manifest = _ended(hpctrack_root, "20260101-000000-aaaa", n=1)
    more = make_sweep(hpctrack_root, 3, sweep_id="20260102-000000-bbbb")
    write_run(more, 0)
    index_runs(more, [0])

    def cancel(m):
        for rec in m.jobs[1:]:
            rec.state = JobState.CANCELLED

    update_manifest(more.path, cancel)
    trash = hpctrack_root / "trash"
    trash.mkdir()
    for step in ("first", "moved away", "moved back"):
        if step == "moved away":
            more.path.rename(trash / more.path.name)
        elif step == "moved back":
            (trash / more.path.name).rename(more.path)
        proc = run_cli("runs", "--where", "job >= 0", check=True)
        assert "Warning" not in proc.stderr, (step, proc.stderr)
    rows = _runs("--where", "job >= 0")
    assert sorted((r["sweep"], r["job"], r["state"]) for r in rows) == [
        (manifest.path.name, 0, "COMPLETED"), (more.path.name, 0, "COMPLETED"),
        (more.path.name, 1, "CANCELLED"), (more.path.name, 2, "CANCELLED")]  # fmt: skip
