"""``status --watch`` in a terminal: a sweep taller than the screen keeps its summary and its live jobs on it."""

from __future__ import annotations

import io

from rich.console import Console
from synthetic import index_runs, make_sweep, write_run

from hpctrack._types import JobState
from hpctrack.cli.render import status_view
from hpctrack.manifest import update_manifest
from hpctrack.sweep import Sweep


def test_a_tall_sweep_keeps_its_summary_and_unfinished_jobs_on_screen(tmp_path):
    manifest = make_sweep(tmp_path, 60)
    for i in range(50):
        write_run(manifest, i)
    index_runs(manifest, range(50))

    def fail_last(m):
        for rec in m.jobs[50:]:
            rec.state, rec.error = JobState.FAILED, "boom"

    update_manifest(manifest.path, fail_last)
    view, _, _ = status_view(Sweep(manifest.path), max_rows=20)
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(view)
    text = out.getvalue()
    lines = text.splitlines()
    assert len(lines) < 35, text
    assert "60 jobs" in text and "50 COMPLETED" in text, text
    for i in range(50, 60):  # every job that did not complete is shown
        assert any(line.split()[:1] == [str(i)] for line in lines), (i, text)
    assert "40 completed jobs not shown" in text, text
