"""A sweep that varies nothing (a plain ``python train.py`` run, a one-run launch, a ``rerun``), as the dashboard serves it.

Its params frame has no column at all: every run must still be drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from uiserver import cli, running_servers

pytestmark = pytest.mark.ui

SLEEPY = Path(__file__).resolve().parents[1] / "e2e" / "scripts" / "sleepy.py"


def test_a_sweep_without_swept_keys_has_its_curve(tmp_path):
    root = tmp_path / "root"
    proc = cli(root, "launch", "--name", "plain", "--no-progress", str(SLEEPY), "steps=6", "sleep_s=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = json.loads(cli(root, "show", "plain/0", "--format", "json").stdout)
    with running_servers() as start:
        ui = start(root)
        sweep = ui.request("api/sweeps/plain").json()
        assert sweep["swept_keys"] == [] and sweep["n_jobs"] == 1
        data = ui.request(f"api/sweeps/{sweep['id']}/history?metric=loss").json()
        assert data["n_runs"] == 1 and len(data["runs"]) == 1, data
        run = data["runs"][0]
        assert run["job"] == 0 and run["params"] == {} and run["x"] == list(range(6))
        assert run["y"][-1] == shown["metrics"]["loss"]["last"]
        # group_by=all is the table's --grouped: every swept key but the seeds; none here, so one group of all runs
        grouped = ui.request(f"api/sweeps/{sweep['id']}/history?metric=loss&group_by=all").json()
        (group,) = grouped["groups"]
        assert group["label"] == "all runs" and group["n"] == 1 and group["mean"] == run["y"]
        wrong = ui.request(f"api/sweeps/{sweep['id']}/history?metric=loss&group_by=nope")
        assert wrong.status == 400 and "varies nothing" in wrong.json()["error"]
