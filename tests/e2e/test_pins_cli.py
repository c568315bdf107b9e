"""Pinned runs: ``hpctrack pin`` / ``unpin``, shown by ``show``; ``rm`` refuses a sweep with a pinned run.

Every command runs as a real ``python -m hpctrack`` subprocess on sweeps written with the
library's own writers (``tests/synthetic.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import error_lines, run_cli
from synthetic import index_runs, make_sweep, write_run

pytestmark = pytest.mark.e2e


def _ended_sweep(root: Path, sweep_id: str, n: int = 3, name: str | None = None):
    manifest = make_sweep(root, n, sweep_id=sweep_id, name=name)
    for i in range(n):
        write_run(manifest, i)
    index_runs(manifest, range(n))
    return manifest


def test_pin_show_rm_refused_unpin_rm(hpctrack_root):
    m = _ended_sweep(hpctrack_root, "20260101-000000-pppp", name="paper")
    out = run_cli("pin", "paper", "1", "2", "--reason", "figure 3 of the paper", check=True).stdout
    assert "pinned runs 1, 2" in out, out
    run_cli("pin", "paper", "2", "--reason", "model resnet v4", check=True)

    listed = run_cli("pin", "paper", check=True).stdout
    assert "1  figure 3 of the paper" in listed and "2  model resnet v4" in listed, listed
    shown = run_cli("show", "paper/2", check=True).stdout
    assert "pinned:" in shown and "figure 3 of the paper" in shown and "model resnet v4" in shown, shown
    assert "pinned:" not in run_cli("show", "paper/0", check=True).stdout
    sweep_view = run_cli("show", "paper", check=True).stdout
    assert "pinned:     runs 1, 2" in sweep_view, sweep_view
    data = json.loads(run_cli("show", "paper/1", "--format", "json", check=True).stdout)
    assert [p["reason"] for p in data["pins"]] == ["figure 3 of the paper"]

    for purge in ([], ["--purge"]):
        proc = run_cli("rm", *purge, "paper")
        assert proc.returncode != 0
        line = error_lines(proc.stderr)
        assert len(line) == 1, proc.stderr
        assert (
            "run 1 (figure 3 of the paper)" in line[0] and "run 2 (figure 3 of the paper; model resnet v4)" in line[0]
        )
        assert "hpctrack unpin" in line[0] and "nothing was moved" in line[0], line
        assert m.path.is_dir()

    run_cli("unpin", "paper", "2", "--reason", "model resnet v4", check=True)
    assert "2  model resnet v4" not in run_cli("pin", "paper", check=True).stdout
    assert "2  figure 3" in run_cli("pin", "paper", check=True).stdout
    run_cli("unpin", "paper", "1", "2", check=True)
    assert run_cli("pin", "paper", check=True).stdout.strip() == "no pinned runs"
    run_cli("rm", "paper", check=True)
    assert not m.path.exists()


def test_bad_pins_are_one_line_and_write_nothing(hpctrack_root):
    m = _ended_sweep(hpctrack_root, "20260101-000000-qqqq", n=2, name="small")
    for args, expect in [
        (["pin", "small", "5"], "no job 5"),
        (["pin", "small", "x"], "a run is a job index"),
        (["pin", "small", "0", "--reason", "r" * 300], "at most 255"),
        (["pin", "small", "0", "--reason", "a\nb"], "control"),
        (["unpin", "small", "7"], "no job 7"),
    ]:
        proc = run_cli(*args)
        assert proc.returncode != 0, args
        line = error_lines(proc.stderr)
        assert len(line) == 1 and expect in line[0], (args, proc.stderr)
    assert not (m.path / "pins.json").exists()


def test_pins_file_planted_as_symlink_is_refused_not_followed(hpctrack_root, tmp_path):
    m = _ended_sweep(hpctrack_root, "20260101-000000-rrrr", n=2, name="planted")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(outside, m.path / "pins.json")
    proc = run_cli("pin", "planted", "0", "--reason", "keep")
    assert proc.returncode != 0 and "symlink" in error_lines(proc.stderr)[0], proc.stderr
    assert outside.read_text() == "{}"
    # rm must not be talked out of its check by a damaged pins file either: it refuses, saying why
    proc = run_cli("rm", "planted")
    assert proc.returncode != 0 and "pins" in error_lines(proc.stderr)[0], proc.stderr
    assert m.path.is_dir()
