"""A run's identity leaves the environment when the run ends: what a process starts afterwards
(a second training, the next job of a test session) does not claim the ended run."""

from __future__ import annotations

import os

import hpctrack
from hpctrack.identity import ATTEMPT_ENV, RUN_DIR_ENV, RUN_ID_ENV, identity_from_env

NAMES = (RUN_DIR_ENV, RUN_ID_ENV, ATTEMPT_ENV)


def test_a_plain_runs_identity_is_withdrawn_when_it_ends(hpctrack_root):
    assert identity_from_env() is None
    with hpctrack.start_run({}) as run:
        assert identity_from_env().run_id == run.run_id  # told to what the script starts meanwhile
    assert identity_from_env() is None and not [n for n in NAMES if n in os.environ]


def test_values_that_were_there_before_come_back(hpctrack_root, monkeypatch):
    # A plain run inside a job's process (a job that runs a second script in-process): the job's identity
    # is the environment's again once the inner run has ended.
    outer = {RUN_DIR_ENV: str(hpctrack_root / "sweeps" / "s" / "runs" / "3"), RUN_ID_ENV: "s/3", ATTEMPT_ENV: "2"}
    for name, value in outer.items():
        monkeypatch.setenv(name, value)
    run = hpctrack.start_run({})
    assert os.environ[RUN_ID_ENV] == run.run_id
    run.finish()
    assert {name: os.environ[name] for name in NAMES} == outer
