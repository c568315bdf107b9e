"""The change stamp the page polls, on a real local sweep that is still running.

The stamp must change when one of its runs ends (the page then re-fetches the table), and
hold still while nothing the page shows has changed, however long a run keeps logging.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from uiserver import cli, running_servers

pytestmark = pytest.mark.ui

SLEEPY = Path(__file__).resolve().parents[1] / "e2e" / "scripts" / "sleepy.py"


def _wait(what: str, predicate, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: {what}")
        time.sleep(0.3)


def test_the_stamp_changes_when_a_run_of_a_running_sweep_ends_and_not_while_it_logs(tmp_path):
    root = tmp_path / "root"
    # job 0 logs for 15 s, job 1 for 1 s; one at a time: job 1 starts once job 0 ended
    proc = cli(root, "launch", "--detach", "--parallel", "1", "--name", "live", str(SLEEPY), "steps=60,4",
               "sleep_s=0.25", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with running_servers() as start:
        ui = start(root)
        sweep = ui.request("api/sweeps").json()["sweeps"][0]["id"]

        def states():
            return {j["job"]: j["state"] for j in ui.request(f"api/sweeps/{sweep}/status").json()["jobs"]}

        def stamps():
            return ui.request(f"api/stamp?sweep={sweep}").json()["stamp"], ui.request("api/stamp").json()["stamp"]

        _wait("job 0 running", lambda: states()[0] == "RUNNING")
        first = stamps()
        time.sleep(1.0)  # job 0 logs meanwhile (its store grows): nothing the page shows changed
        again = stamps()
        table = ui.request(f"api/sweeps/{sweep}/table").json()
        assert states()[0] == "RUNNING", "job 0 ended already: the check below would prove nothing"
        assert again == first, "the stamp changed while no run ended"
        assert all(row["state"] != "COMPLETED" for row in table)
        _wait("job 0 completed", lambda: states()[0] == "COMPLETED")
        after = stamps()
        assert after[0] != first[0] and after[1] != first[1]
        done = {row["job"]: row["state"] for row in ui.request(f"api/sweeps/{sweep}/table").json()}
        assert done[0] == "COMPLETED"
        _wait("the sweep ended", lambda: set(states().values()) == {"COMPLETED"})
        assert stamps() != after  # job 1 started and ended since
