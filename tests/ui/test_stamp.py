"""The change stamp the page polls, on a real local sweep that is still running.

The stamp must change when a run that is still running writes (new steps, its heartbeat), so
the page re-fetches the table and curves of running jobs, and when one of its runs ends; and
hold still while nothing the page shows has changed.
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


def test_the_stamp_follows_a_running_run_as_it_logs_and_ends_then_holds_still(tmp_path):
    root = tmp_path / "root"
    # job 0 logs for 15 s (flushing every 0.5 s), job 1 for 1 s; one at a time: job 1 starts once job 0 ended
    proc = cli(root, "launch", "--detach", "--parallel", "1", "--name", "live", str(SLEEPY), "steps=60,4",
               "sleep_s=0.25", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with running_servers() as start:
        ui = start(root)
        sweep = ui.request("api/sweeps").json()["sweeps"][0]["id"]

        def states():
            return {j["job"]: j["state"] for j in ui.request(f"api/sweeps/{sweep}/status").json()["jobs"]}

        def stamp(query=""):
            reply = ui.request(f"api/stamp?sweep={sweep}{query}")
            assert reply.status == 200, reply.body
            return reply.json()["stamp"]

        def points():
            rows = ui.request(f"api/sweeps/{sweep}/table?metrics=loss:count").json()
            return {row["job"]: (row["state"], row["loss:count"]) for row in rows}

        _wait("job 0 running and logging", lambda: states()[0] == "RUNNING" and (points()[0][1] or 0) > 0)
        # no run has ended (the index is empty), yet the running run's metric can be chosen and drawn
        assert "loss" in ui.request(f"api/sweeps/{sweep}").json()["metrics"]
        live = ui.request(f"api/sweeps/{sweep}/history?metric=loss").json()
        assert [r["job"] for r in live["runs"]] == [0] and len(live["runs"][0]["x"]) > 0, live
        first, first_run, first_list = stamp(), stamp("&job=0"), ui.request("api/stamp").json()["stamp"]
        seen = points()[0]
        # job 0 flushes its new points into its store: the sweep's and the run's stamps move on
        _wait("the sweep's stamp changed", lambda: stamp() != first)
        _wait("the run's stamp changed", lambda: stamp("&job=0") != first_run)
        now = points()[0]
        assert now[0] == "RUNNING" and now[1] > seen[1], (seen, now)  # still running: what changed is its data
        assert stamp("&job=0") != stamp(), "the run's stamp is its own"
        _wait("the sweep ended", lambda: set(states().values()) == {"COMPLETED"})
        assert ui.request("api/stamp").json()["stamp"] != first_list  # runs ended and were indexed

        def holds_still():  # over three flush intervals; the runner records the jobs' ends shortly after they end
            before = stamp(), stamp("&job=0"), stamp("&job=1")
            time.sleep(1.5)
            return (stamp(), stamp("&job=0"), stamp("&job=1")) == before

        _wait("the stamps hold still once nothing runs", holds_still)
        assert ui.request(f"api/stamp?sweep={sweep}&job=2").status == 404
        assert ui.request(f"api/stamp?sweep={sweep}&job=x").status == 400
        assert ui.request("api/stamp?job=0").status == 400
