"""`hpctrack status --watch` refreshes without re-reading ended runs or the index lines it has read.

Evidence from the files' access times, not from timing: after the watch's first view, the
access times of the index and of the ended runs' stores are set back to 0; a later refresh
(shown because a running job died meanwhile) must leave them at 0, and the watch must still
see the last job end when its index line is appended.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import wait_for
from synthetic import dead_pid, index_runs, make_sweep, sleeper, write_run

from hpctrack._types import JobState
from hpctrack.index import INDEX_FILE


def _files(run_dir: Path) -> list:
    return [p for p in run_dir.rglob("*") if p.is_file() and p.name.startswith("run.")]


def _shows(out: Path, *counts: str) -> bool:
    """The watch's latest view says each of ``counts`` (``"4 COMPLETED"``) in its summary line."""
    summaries = [line for line in out.read_text().splitlines() if line.startswith("6 jobs: ")]
    return bool(summaries) and all(c in summaries[-1].split(": ", 1)[1].split(", ") for c in counts)


def _forget_access(paths) -> None:
    for p in paths:
        os.utime(p, (0, os.stat(p).st_mtime))  # relatime: the next read sets the access time again


def test_watch_reads_neither_ended_runs_nor_old_index_lines(hpctrack_root, tmp_path):
    jobs = [sleeper(), sleeper()]
    try:
        manifest = make_sweep(hpctrack_root, 6, state=JobState.RUNNING,
                              runner={"host": socket.gethostname(), "pid": dead_pid(), "started": 1.0})  # fmt: skip
        for i in range(4):
            write_run(manifest, i)
        index_runs(manifest, range(4))
        write_run(manifest, 4, state="running", pid=jobs[0].pid)
        write_run(manifest, 5, state="running", pid=jobs[1].pid)
        out = tmp_path / "watch.txt"
        with open(out, "w") as fh:
            watch = subprocess.Popen([sys.executable, "-m", "hpctrack", "status", "--watch", "--interval", "0.3"],
                                     stdout=fh, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            wait_for("the first view", lambda: _shows(out, "4 COMPLETED", "2 RUNNING"))
            ended = [p for i in range(4) for p in _files(manifest.run_path(i))] + [manifest.path / INDEX_FILE]
            _forget_access(ended)
            jobs[1].kill()
            jobs[1].wait()
            wait_for("a refresh after the reset", lambda: _shows(out, "4 COMPLETED", "1 FAILED", "1 RUNNING"))
            read = [str(p) for p in ended if os.stat(p).st_atime != 0]
            assert not read, f"a refresh read what had not changed: {read}"
            write_run(manifest, 4)  # the last job completes and appends its index line
            index_runs(manifest, [4])
            assert watch.wait(timeout=120) == 0
        finally:
            if watch.poll() is None:
                watch.kill()
        assert _shows(out, "5 COMPLETED", "1 FAILED")
    finally:
        for job in jobs:
            job.kill()
            job.wait()
