"""The local runner records outcomes only for the submissions it started."""

from __future__ import annotations

import time

from hpctrack._types import JobState
from hpctrack.launch.local._runner import Runner
from hpctrack.manifest import JobRecord, Manifest, create_sweep, load_manifest, update_manifest


def _sweep(tmp_path):
    return create_sweep(tmp_path, Manifest(
        id="20260101-000000-aaaa", created=time.time(), backend="local", store="hdf5",
        jobs=[JobRecord(index=0, overrides=["x=1"], run_dir="runs/0", state=JobState.RUNNING, job_id="111",
                        submitted=time.time())],
    ))  # fmt: skip


def test_an_outcome_noticed_after_a_requeue_does_not_overwrite_the_new_submission(tmp_path):
    # The job's store says it completed, the user requeues it at once, and only then does
    # the runner that started it notice the process ended: the requeued submission stays pending
    # (the new runner starts it) and the outcome goes to the submission it belongs to.
    sweep = _sweep(tmp_path)
    update_manifest(sweep.path, lambda m: m.jobs[0].resubmit(JobState.COMPLETED, None, time.time()))
    Runner(sweep.path, 1, [], 1.0)._finish(0, "111", JobState.COMPLETED, None)
    job = load_manifest(sweep.path).jobs[0]
    assert job.state == JobState.PENDING and job.job_id is None and job.ended is None
    assert job.history[-1]["job_id"] == "111" and job.history[-1]["state"] == "COMPLETED"
    assert job.history[-1]["ended"] is not None


def test_the_outcome_of_the_current_submission_is_recorded(tmp_path):
    sweep = _sweep(tmp_path)
    Runner(sweep.path, 1, [], 1.0)._finish(0, "111", JobState.FAILED, "boom")
    job = load_manifest(sweep.path).jobs[0]
    assert (job.state, job.error) == (JobState.FAILED, "boom") and job.ended is not None
