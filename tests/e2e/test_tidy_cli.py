"""Sweeps a lab can keep tidy: ``hpctrack tag``, ``note``, ``rm [--purge]`` and ``ls --where/--tag/--since``.

Every command runs as a real ``python -m hpctrack`` subprocess. The sweeps are launched for real
where the test is about jobs (rm while a job runs), and written with the library's own writers
(``tests/synthetic.py``) where it is about what is on disk (planted links, hostile names).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import SCRIPTS, error_lines, run_cli
from synthetic import ended_sweep, make_sweep, write_run

from hpctrack._types import JobState

pytestmark = pytest.mark.e2e

SLEEPY = SCRIPTS / "sleepy.py"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _ls(*args: str) -> list:
    return json.loads(run_cli("ls", "--format", "json", *args, check=True).stdout)


def _ids(*args: str) -> list:
    return [row["id"] for row in _ls(*args)]


def _wait(predicate, what: str, timeout: float = 180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _ended_sweep(root: Path, sweep_id: str, n: int = 2, name: str | None = None):
    return ended_sweep(root, n, sweep_id=sweep_id, name=name)


def test_round_trip_tag_note_ls_show_rm_ls_purge(hpctrack_root, tmp_path):
    proc = run_cli("launch", "--name", "lrs", str(SLEEPY), "x=1,2", "steps=2", "sleep_s=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    other = _ended_sweep(hpctrack_root, "20260101-000000-bbbb", name="other")

    run_cli("tag", "lrs", "project=vit", "stage=ablation", check=True)
    out = run_cli("tag", "lrs", "stage=final", "owner=ana", check=True).stdout
    assert "owner=ana project=vit stage=final" in out, out
    run_cli("tag", "lrs", "owner=", check=True)  # key= removes
    run_cli("tag", "lrs", "--remove", "stage", check=True)
    assert run_cli("tag", "lrs", check=True).stdout.strip() == "project=vit"
    run_cli("note", "lrs", "learning rates after the data fix; the longer part is cut in ls", check=True)
    assert run_cli("note", "lrs", check=True).stdout.strip().startswith("learning rates after the data fix")

    rows = _ls()
    lrs = next(r for r in rows if r["name"] == "lrs")
    assert lrs["tags"] == {"project": "vit"}
    assert lrs["note"] == "learning rates after the data fix; the longer part is cut in ls"
    assert lrs["n_jobs"] == 2 and lrs["states"]["COMPLETED"] == 2 and lrs["states"]["FAILED"] == 0
    table = run_cli("ls", check=True).stdout
    assert "tags" in table and "note" in table and "project=vit" in table
    assert "learning rates after the data fix" in table and "cut in ls" not in table  # trimmed
    shown = run_cli("show", "lrs/0", check=True).stdout
    assert "sweep tags: project=vit" in shown
    assert "sweep note: learning rates after the data fix; the longer part is cut in ls" in shown
    sweep_view = run_cli("show", "lrs", check=True).stdout
    assert "tags:       project=vit" in sweep_view and "2 jobs: 2 COMPLETED" in sweep_view, sweep_view
    assert "note:       learning rates after the data fix; the longer part is cut in ls" in sweep_view
    as_json = json.loads(run_cli("show", "lrs/1", "--format", "json", check=True).stdout)
    assert as_json["sweep"]["tags"] == {"project": "vit"} and as_json["sweep"]["note"].startswith("learning")

    sweep_id = lrs["id"]
    moved = run_cli("rm", "lrs", check=True).stdout
    trashed = hpctrack_root / "trash" / sweep_id
    assert f"moved sweep {sweep_id} (lrs) to {trashed}" in moved, moved
    assert trashed.is_dir() and (trashed / "labels.json").is_file() and (trashed / "runs" / "1").is_dir()
    assert not (hpctrack_root / "sweeps" / sweep_id).exists()
    assert _ids() == [other.id]  # ls no longer lists it
    assert _ids("--trash") == [sweep_id]
    assert "no sweep 'lrs'" in error_lines(run_cli("status", "lrs").stderr)[0]
    assert run_cli("show", "latest/0", check=True).stdout.startswith(f"run {other.id}/0")

    purged = run_cli("rm", "--purge", sweep_id, check=True).stdout
    assert f"deleted sweep {sweep_id} (lrs) for good" in purged, purged
    assert not trashed.exists() and _ids() == [other.id]
    assert (hpctrack_root / "sweeps" / other.id / "sweep.json").is_file()  # the other sweep untouched

    # --purge of a live sweep deletes it without leaving anything in the trash or in the listing.
    run_cli("rm", "--purge", "other", check=True)
    assert _ids() == [] and os.listdir(hpctrack_root / "trash") == []


def test_rm_refuses_while_a_job_runs_then_removes_once_cancelled(hpctrack_root, tmp_path):
    proc = run_cli("launch", "--detach", "--name", "busy", str(SLEEPY), "x=1", "steps=600", "sleep_s=0.2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    status = lambda: json.loads(run_cli("status", "busy", "--format", "json", check=True).stdout)  # noqa: E731
    _wait(lambda: status()["jobs"][0]["state"] == "RUNNING", "the job running")

    refused = run_cli("rm", "busy")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    lines = error_lines(refused.stderr)
    assert len(lines) == 1 and "1 job is pending or running (job 0 RUNNING)" in lines[0], refused.stderr
    assert "hpctrack cancel" in lines[0] and "nothing was moved" in lines[0]
    assert [r["name"] for r in _ls()] == ["busy"] and not (hpctrack_root / "trash").exists()
    assert run_cli("rm", "--purge", "busy").returncode == 1  # purge asks the same
    assert status()["jobs"][0]["state"] == "RUNNING"  # nothing was disturbed

    run_cli("cancel", "busy", check=True)
    _wait(lambda: status()["jobs"][0]["state"] == "CANCELLED", "the job cancelled")
    run_cli("rm", "busy", check=True)
    assert _ls() == []


def test_rm_of_several_sweeps_checks_all_before_moving_any(hpctrack_root):
    from synthetic import sleeper

    _ended_sweep(hpctrack_root, "20260101-000000-aaaa", name="done")
    live = make_sweep(hpctrack_root, 1, sweep_id="20260101-000001-bbbb", name="live", state=JobState.RUNNING)
    job = sleeper()
    try:
        write_run(live, 0, state="running", pid=job.pid)
        proc = run_cli("rm", "done", "live")
        assert proc.returncode == 1 and "not removing sweep 20260101-000001-bbbb" in proc.stderr, proc.stderr
        assert sorted(_ids()) == ["20260101-000000-aaaa", "20260101-000001-bbbb"]  # "done" was not moved either
    finally:
        job.kill()
        job.wait()


def test_rm_never_follows_a_planted_symlink_out_of_the_root(hpctrack_root, tmp_path):
    victim = tmp_path / "victim"
    (victim / "keep").mkdir(parents=True)
    (victim / "keep" / "precious.txt").write_text("mine")
    (victim / "file.txt").write_text("mine too")
    m = _ended_sweep(hpctrack_root, "20260101-000000-aaaa", name="planted")
    (m.path / "runs" / "0" / "artifacts").symlink_to(victim / "keep")  # a directory link inside the sweep
    (m.path / "runs" / "1" / "model.txt").symlink_to(victim / "file.txt")  # a file link
    (m.path / "logs").symlink_to(victim)

    run_cli("rm", "planted", check=True)
    trashed = hpctrack_root / "trash" / m.id
    assert os.path.islink(trashed / "logs") and os.readlink(trashed / "runs" / "0" / "artifacts") == str(
        victim / "keep"
    )
    run_cli("rm", "--purge", m.id, check=True)
    assert not trashed.exists()
    assert (victim / "keep" / "precious.txt").read_text() == "mine" and (victim / "file.txt").read_text() == "mine too"

    # A sweep directory that is itself a link to a sweep elsewhere is refused, link and target kept.
    elsewhere = _ended_sweep(tmp_path / "other-root", "20260101-000000-cccc", name="elsewhere")
    link = hpctrack_root / "sweeps" / elsewhere.id
    link.symlink_to(elsewhere.path)
    for args in (("rm", elsewhere.id), ("rm", "--purge", elsewhere.id)):
        proc = run_cli(*args)
        lines = error_lines(proc.stderr)
        assert proc.returncode == 1 and len(lines) == 1 and "it is a symlink" in lines[0], proc.stderr
    assert link.is_symlink() and (elsewhere.path / "runs" / "0").is_dir()

    # A trash planted as a link out of the root is refused before anything moves.
    link.unlink()
    _ended_sweep(hpctrack_root, "20260101-000000-dddd", name="tidy")
    (hpctrack_root / "trash").rmdir()
    (hpctrack_root / "trash").symlink_to(victim)
    proc = run_cli("rm", "tidy")
    assert proc.returncode == 1 and "trash" in proc.stderr and "symlink" in proc.stderr, proc.stderr
    assert _ids() == ["20260101-000000-dddd"] and sorted(os.listdir(victim)) == ["file.txt", "keep"]


def test_rm_refuses_paths_outside_the_root_and_hostile_names_stay_data(hpctrack_root, tmp_path):
    name = "../../evil\x1b[2J\nFORGED line\u202e"
    m = _ended_sweep(hpctrack_root, "20260101-000000-ffff", name=name)
    outside = _ended_sweep(tmp_path / "elsewhere", "20260101-000000-eeee", name="outside")
    for ref in (str(outside.path), f"../../elsewhere/sweeps/{outside.id}"):
        for args in (("rm", ref), ("rm", "--purge", ref)):
            proc = run_cli(*args)
            assert proc.returncode == 1 and "removes sweeps of the root" in proc.stderr, proc.stderr
    assert (outside.path / "sweep.json").is_file() and not (hpctrack_root / "trash").exists()

    raw = json.loads((m.path / "sweep.json").read_text())
    raw["id"] = "../../../escaped"  # the manifest's id never makes a path
    (m.path / "sweep.json").write_text(json.dumps(raw))
    run_cli("tag", name, "k=v\x1b[31m", check=True)
    run_cli("note", name, "see\x1b]0;owned\x07\nFORGED note line", check=True)
    for args in (("ls",), ("show", name), ("show", f"{m.id}/0"), ("tag", name), ("note", name)):
        shown = run_cli(*args)
        out = shown.stdout + shown.stderr
        assert shown.returncode == 0 and not RAW.search(out), (args, repr(out))
        assert "\\x1b" in out and not any(line.startswith("FORGED") for line in out.splitlines()), (args, out)
    assert json.loads(run_cli("ls", "--format", "json", check=True).stdout)[0]["tags"] == {"k": "v\x1b[31m"}
    proc = run_cli("rm", name, check=True)
    out = proc.stdout + proc.stderr
    assert not RAW.search(out) and not any(line.startswith("FORGED") for line in out.splitlines()), repr(out)
    assert (hpctrack_root / "trash" / m.id / "sweep.json").is_file()
    assert not (tmp_path / "escaped").exists() and not (hpctrack_root.parent / "escaped").exists()


def test_ls_selects_by_tag_since_and_where(hpctrack_root):
    old = _ended_sweep(hpctrack_root, "20250101-000000-0001", name="old")
    raw = json.loads((old.path / "sweep.json").read_text())
    raw["created"] = time.time() - 90 * 86400
    (old.path / "sweep.json").write_text(json.dumps(raw))
    _ended_sweep(hpctrack_root, "20260101-000000-0002", name="adam")
    failed = make_sweep(hpctrack_root, 2, sweep_id="20260101-000000-0003", name="broken", state=JobState.FAILED)
    run_cli("tag", "old", "project=vit", "optimizer=adamw", check=True)
    run_cli("tag", "adam", "project=vit", "optimizer=adam", check=True)
    run_cli("tag", "broken", "project=other", check=True)

    assert _ids("--tag", "project=vit") == ["20260101-000000-0002", "20250101-000000-0001"]
    assert _ids("--tag", "project=vit", "--tag", "optimizer=adamw") == ["20250101-000000-0001"]
    assert _ids("--tag", "optimizer") == ["20260101-000000-0002", "20250101-000000-0001"]
    assert _ids("--since", "30d") == ["20260101-000000-0003", "20260101-000000-0002"]
    assert _ids("--since", "30d", "--tag", "project=vit") == ["20260101-000000-0002"]
    assert _ids("--where", "states.FAILED > 0") == [failed.id]
    assert _ids("--where", "tags.optimizer in ['adam', 'adamw'] and n_jobs == 2") == [
        "20260101-000000-0002", "20250101-000000-0001"]  # fmt: skip
    assert _ids("--where", "tags.nobody_has_this == 'x'") == []  # an unknown tag selects nothing
    assert _ids("--where", "name == 'broken' or created < '2000'") == [failed.id]
    assert "no sweep under" in run_cli("ls", "--tag", "project=none", check=True).stdout

    for args, words in (
        (("--where", "__import__('os')"), "filter"),
        (("--where", "nosuchfield > 1"), "nosuchfield"),
        (("--tag", "=x"), "--tag '=x'"),
    ):
        proc = run_cli("ls", *args)
        lines = error_lines(proc.stderr)
        assert proc.returncode == 1 and len(lines) == 1 and words in lines[0], (args, proc.stderr)


def test_bad_tags_and_notes_are_one_line_and_write_nothing(hpctrack_root):
    m = _ended_sweep(hpctrack_root, "20260101-000000-aaaa", name="s")
    for args, words in (
        (("tag", "s", "novalue"), "write key=value"),
        (("tag", "s", "=v"), "tag key must be non-empty"),
        (("tag", "s", "k" * 300 + "=v"), "300 characters long"),
        (("tag", "s", "ok=1", "k=" + "v" * 300), "300 characters long"),
        (("note", "s", "n" * 5000), "at most 4096"),
        (("tag", "nosuch", "k=v"), "no sweep 'nosuch'"),
    ):
        proc = run_cli(*args)
        lines = error_lines(proc.stderr)
        assert proc.returncode == 1 and len(lines) == 1 and words in lines[0], (args, proc.stderr)
    assert not (m.path / "labels.json").exists()


def test_purge_by_a_name_a_live_and_a_trashed_sweep_share_deletes_neither(hpctrack_root):
    """`rm dup` then `rm --purge dup`: the name now finds the older live sweep too; it was deleted for good.

    A name that stands for a sweep in the root and one in the trash is ambiguous to --purge: refused,
    naming both ids; by id each goes as asked.
    """
    older = _ended_sweep(hpctrack_root, "20260101-000000-aaaa", name="dup")
    newer = _ended_sweep(hpctrack_root, "20260102-000000-bbbb", name="dup")
    run_cli("rm", "dup", check=True)  # the newest of that name goes to the trash
    assert (hpctrack_root / "trash" / newer.path.name).is_dir()
    proc = run_cli("rm", "--purge", "dup")
    lines = error_lines(proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert older.path.name in lines[0] and newer.path.name in lines[0] and "ambiguous" in lines[0]
    assert older.path.is_dir() and (hpctrack_root / "trash" / newer.path.name).is_dir()  # nothing deleted
    run_cli("rm", "--purge", newer.path.name, check=True)
    assert not (hpctrack_root / "trash" / newer.path.name).exists() and older.path.is_dir()


def test_ls_shows_a_job_whose_run_has_a_live_writer_as_running(hpctrack_root):
    """A SLURM job the manifest last saw queued, whose run is writing (its writer lease is held and fresh):
    `ls` said PENDING ("unconfirmed") while `status` said RUNNING."""
    from hpctrack.locking import WriterLease

    manifest = make_sweep(hpctrack_root, 3, backend="slurm", state=JobState.PENDING, sweep_id="20260101-000000-aaaa",
                          job_ids=["77_0", "77_1", "77_2"])  # fmt: skip
    manifest.run_path(1).mkdir(parents=True, exist_ok=True)
    lease = WriterLease(manifest.run_path(1)).acquire()
    try:
        (row,) = _ls()
        assert _nonzero(row["states"]) == {"PENDING": 2, "RUNNING": 1} and row["unconfirmed"] == 2, row
    finally:
        lease.release()
    (row,) = _ls()
    assert _nonzero(row["states"]) == {"PENDING": 3}, row  # the writer is gone: nothing on disk says more


def _nonzero(states: dict) -> dict:
    return {k: v for k, v in states.items() if v}
