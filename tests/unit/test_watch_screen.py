"""``status --watch`` in a terminal: a sweep taller than the screen keeps its summary and its live jobs on it."""

from __future__ import annotations

import io

from rich.console import Console
from synthetic import index_runs, make_sweep, write_run

from hpctrack._types import JobState
from hpctrack.cli.render import status_view
from hpctrack.manifest import update_manifest
from hpctrack.status import JobStatus, SweepStatus
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
    assert "40 jobs not shown (40 COMPLETED;" in text, text


def test_more_unfinished_jobs_than_rows_shows_the_ones_that_need_eyes_and_names_what_is_hidden(tmp_path):
    """50 queued, 3 running and 3 failed on a 20-row screen (as the scheduler said of a running sweep):
    the running and failed ones are shown, and the hidden ones are counted by their state (they were
    all called "completed" although none was, and the running ones fell off the screen)."""
    manifest = make_sweep(tmp_path, 60)
    sweep = Sweep(manifest.path)
    states = [JobState.COMPLETED] * 4 + [JobState.PENDING] * 50 + [JobState.RUNNING] * 3 + [JobState.FAILED] * 3
    jobs = [JobStatus(index=i, state=state, job_id=f"7_{i}", overrides=[f"x={i}"], run_dir=manifest.run_path(i))
            for i, state in enumerate(states)]  # fmt: skip
    sweep.sweep_status = lambda: SweepStatus(jobs=jobs)  # type: ignore[method-assign]
    view, _, _ = status_view(sweep, max_rows=20)
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(view)
    text = out.getvalue()
    names = {s.value for s in JobState}
    rows = [r for r in (line.split() for line in text.splitlines()) if len(r) > 1 and r[0].isdigit() and r[1] in names]
    shown = {int(r[0]): r[1] for r in rows}
    assert len(shown) == 20 and set(range(54, 60)) <= set(shown), text  # every running and failed job
    hidden = {s: states.count(JobState(s)) - list(shown.values()).count(s) for s in ("PENDING", "COMPLETED")}
    assert "completed jobs not shown" not in text, text
    assert f"40 jobs not shown ({hidden['PENDING']} PENDING, {hidden['COMPLETED']} COMPLETED;" in text, text
